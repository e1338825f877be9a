#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vtpm-pci against the virtual TPMs users run today.

Boots the guest test image of contrib/vtpm-pci for each configuration,
three times in a full run (the configurations in turn, boot after boot,
in another order each round), runs bench/tpm2bench in it through
/dev/tpm0 and /dev/tpmrm0, runs the same workloads against libtpms
called directly on the host (the floor), and prints: operations per
second (the median over the boots of each boot's median of several runs,
and their range), each with its ratio to tpm-crb + swtpm measured in the
same run on the same kernel, and for vtpm-pci with commands in BAR 2,
its ratio to the same configuration with commands through the DATA port
(the driver loaded with port=1: every vtpm-pci configuration runs both
ways, and each boot's driver must say it moves commands the way its
configuration says); the latency of single commands sent 1 ms and 100 ms
apart; back-to-back RSA 2048 key generation (TPM2_CreatePrimary); the
host CPU time QEMU and swtpm spent in each measurement, with the guest
idle, and per key; and, for vtpm-pci, the commands the card executed
against those the benchmark sent, read from the card (qom-get) at the
guest's marks on its second serial port: a measurement where they differ
by more than 1% is disturbed, and reported as such rather than as a
number.  A boot the host disturbed (its port accesses slower than the
run's, or QEMU short of the CPU time the configuration's other boots
had) is left out of the medians.

The kernel's hwrng thread would use the TPM during the measurements: the
guest boots with rng_core.default_quality=0 and unhooks the TPM from
/dev/hwrng ("none" in rng_current, Linux 6.2 and later), so the main
kernel line is the oldest one that can (6.12, Debian 13's; on 6.1 the
thread keeps reading the TPM once per reseed interval whatever its
quality).  The newest (7.x) adds its rows for vtpm-pci + libtpms, with
and without TPM_CHIP_FLAG_SYNC, and tpm-crb + swtpm.  Then host memory
(QEMU's and swtpm's RSS), and the device overhead of vtpm-pci + libtpms
for GetRandom(32): where QEMU spends its time per command outside
libtpms, from a run with trace events on; the card's trapped accesses
(port accesses) per command in each workload, counted by trace events
in boots of their own, for each vtpm-pci configuration both ways; and,
on the newest kernel, the port accesses per GetRandom(32) with and
without TPM_CHIP_FLAG_SYNC.

    bench/bench.py [--quick] [--out DIR] [--only CONFIG,...]

--quick runs short, and leaves out the newest kernel's row without SYNC,
the SYNC port counts, the DATA port twins of all but the main
configuration and the trapped accesses of all but its two ways.

Run it through "make bench" (or "make bench QUICK=1"), which builds QEMU
first.  The table, a JSON file of the numbers and a gnuplot image go to
DIR (default $VTPM_CACHE/bench/out).  Exits non-zero if any configuration
fails to run; never because of a number.
"""

import argparse
import bisect
import calendar
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get('VTPM_CACHE',
                       os.path.expanduser('~/.cache/vtpm-pci'))
QEMU = os.path.join(CACHE, 'build', 'qemu-system-x86_64')
IMAGES = os.path.join(CACHE, 'guest', 'image')
KERNELS = os.path.join(TOP, 'contrib', 'vtpm-pci', 'guest', 'kernels.sh')
WORK = os.path.join(CACHE, 'bench')
COMMON = os.path.join(TOP, 'contrib', 'vtpm-pci', 'common')

GUEST_PASS = 33         # isa-debug-exit: (0x10 << 1) | 1, see guest-init

WORKLOADS = [
    # name, label, what one operation is
    ('getrandom', 'GetRandom(32)', 'cmd'),
    ('pcr', 'PCR_Extend + PCR_Read', 'pair'),
    ('large', 'Hash 1 KB + NV_Read 1 KB', 'pair'),
    ('session', 'Load + HMAC session + Unseal', 'op'),
]
# A long command back to back, through /dev/tpm0 alone (see guest-init)
KEYS = ('createprimary', 'CreatePrimary RSA 2048 + FlushContext', 'key')
# Single commands with a pause before each: gap, label
ONESHOTS = [('oneshot-1ms', '1 ms apart'), ('oneshot-100ms', '100 ms apart')]
# What the guest measures between marks, on each device
MEASURED = [w[0] for w in WORKLOADS] + [KEYS[0]] + [o[0] for o in ONESHOTS]
DEVICES = ['tpm0', 'tpmrm0']
TPM0_ONLY = (KEYS[0],)
# TPM commands the benchmark sends per operation
COMMANDS_PER_OP = {'getrandom': 1, 'pcr': 2, 'large': 2, 'session': 4,
                   KEYS[0]: 2, 'oneshot-1ms': 1, 'oneshot-100ms': 1}


def measured(dev):
    """The workloads the guest measures on DEV"""
    return [w for w in MEASURED if dev == 'tpm0' or w not in TPM0_ONLY]


# A full run boots each configuration this many times
BOOTS = 3
# Seconds of the TPM at rest, measured before the workloads
IDLE, IDLE_QUICK = 20, 2
# A measurement where the card executed more (or fewer) commands than
# the benchmark sent, by more than this share, is disturbed: no number
DISTURBED = 0.01
# A boot the host disturbed, running other work on the CPUs QEMU needed,
# is left out of the medians: one whose port accesses (tpm2bench -p, at
# the start of the boot) cost more than PORT_SLOWER above the run's median
# for the same port, or, in a workload that keeps QEMU flat out (FLAT_OUT
# cores or more in the configuration's best boot: the vCPU never halts,
# and the TPM thread polls beside it; a driver that sleeps, as tpm-crb's,
# leaves QEMU at 0.4-0.7), one where QEMU (+ swtpm) had less than
# CORES_LOWER of the cores that best boot had: other work can only take
# CPU time away from QEMU.  Clean boots of vtpm-pci + libtpms showed
# 1.74-1.94 cores flat out, disturbed ones 1.1-1.6.  Where every boot of
# a configuration is disturbed, they are kept, and its rows flagged.
PORT_SLOWER = 0.20
CORES_LOWER = 0.85
FLAT_OUT = 0.9
# The fewest boots whose median port access cost is a reference
PORT_BOOTS = 3
REFERENCE = 'crb-swtpm'

# The card, with an id for qom-get of its command count
CARD_ID = 'card'
CARD = 'vtpm-pci,id=' + CARD_ID
SWTPM_ARGS = ['-chardev', 'socket,id=chrtpm,path={sock}',
              '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm']
LIBTPMS_ARGS = ['-tpmdev', 'libtpms,id=tpm0']
# Each vtpm-pci configuration runs both ways: NAME with commands in BAR 2
# (the driver's default on a card that has it), and its twin NAME-port,
# the driver loaded with port=1, commands through the DATA port; labels
# say "BAR 2" and "DATA port"
MODES = (('BAR 2', ''), ('DATA port', '-port'))
PORT = MODES[1][1]


def both_ways(name, label, qargs, swtpm, driver):
    """A vtpm-pci configuration's two ways, with commands in BAR 2 first:
    LABEL has "{mode}" where the way goes"""
    return [(name + suffix, label.format(mode=mode), qargs, swtpm,
             driver + suffix) for mode, suffix in MODES]


def port_twin(name):
    """NAME's twin with commands through the DATA port: vtpm-libtpms-port
    for vtpm-libtpms, NAME-port@LINE for NAME@LINE"""
    base, at, line = name.partition('@')
    return base + PORT + at + line


def is_vtpm(driver):
    return driver.split('-')[0] == 'vtpm'


# name, label, QEMU arguments, TPM (swtpm or None), driver in the guest
# (guest-init's bench.driver)
CONFIGS = both_ways(
    'vtpm-libtpms', 'vtpm-pci + libtpms ({mode}, MSI-X)',
    ['-device', CARD], False, 'vtpm') + both_ways(
    'vtpm-libtpms-poll', 'vtpm-pci + libtpms ({mode}, polling)',
    ['-device', CARD], False, 'vtpm-poll') + both_ways(
    'vtpm-libtpms-nopoll', 'vtpm-pci + libtpms ({mode}, poll-ns=0)',
    ['-device', CARD + ',poll-ns=0'], False, 'vtpm') + both_ways(
    'vtpm-swtpm', 'vtpm-pci + swtpm ({mode})',
    SWTPM_ARGS + ['-device', CARD + ',tpmdev=tpm0'], True, 'vtpm') + [
    ('crb-swtpm', 'tpm-crb + swtpm',
     SWTPM_ARGS + ['-device', 'tpm-crb,tpmdev=tpm0'], True, 'builtin'),
    ('tis-swtpm', 'tpm-tis + swtpm',
     SWTPM_ARGS + ['-device', 'tpm-tis,tpmdev=tpm0'], True, 'builtin'),
    ('crb-libtpms', 'tpm-crb + libtpms',
     LIBTPMS_ARGS + ['-device', 'tpm-crb,tpmdev=tpm0'], False, 'builtin'),
]
FLOOR = ('floor', 'libtpms on the host (floor)')
# The newest kernel's rows: NAME@LINE, e.g. vtpm-libtpms@7.3: a
# configuration of CONFIGS, or one of its own.  Without
# TPM_CHIP_FLAG_SYNC: the driver loaded with sync=0, on the same kernel.
# name, configuration (None: CONFIGS'), in the quick run
NEWEST = [
    ('vtpm-libtpms', None, True),
    ('vtpm-libtpms-port', None, False),
] + [(c[0], c[1:], False) for c in both_ways(
    'vtpm-libtpms-nosync', 'vtpm-pci + libtpms ({mode}, MSI-X, no SYNC)',
    ['-device', CARD], False, 'vtpm-nosync')] + [
    ('crb-swtpm', None, True),
]
# Left out of the quick run: the DATA port twins of CONFIGS but the main
# configuration's
QUICK_SKIPS = [port_twin(c[0]) for c in CONFIGS
               if c[0] != 'vtpm-libtpms' and is_vtpm(c[4])]
# TPM_CHIP_FLAG_SYNC on the newest kernel, for a GetRandom(32): time,
# from boots that reload the driver with sync=1 and sync=0 in turn, so
# that both run under the same host conditions; and port accesses,
# counted in traced boots.  MODE, driver, label.
SYNC_ALTERNATE = 5
SYNC_MODES = [
    ('sync', 'vtpm', 'SYNC, interrupt'),
    ('nosync', 'vtpm-nosync', 'no SYNC, interrupt'),
    ('poll-sync', 'vtpm-poll', 'SYNC, polling'),
    ('poll-nosync', 'vtpm-poll-nosync', 'no SYNC, polling'),
]

# The trace events of the overhead breakdown: a boot that times the
# commands (QEMU measures START to the response itself; the trace lines
# are written outside the times they report), and a short one that counts
# port accesses (an event for each) and times libtpms
TIMING_EVENTS = ['vtpm_pci_command', 'vtpm_pci_response', 'vtpm_pci_irq']
COUNTING_EVENTS = ['vtpm_pci_command', 'vtpm_pci_io_read',
                   'vtpm_pci_io_write', 'tpm_libtpms_command']
REG_DATA = 0x30
TPM2_CC_GET_RANDOM = 0x17b


def log(msg):
    print('bench: ' + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --- building --------------------------------------------------------------

def kernel_lines():
    """[(label, abi)] of the guest image's kernel lines, oldest first"""
    out = subprocess.run([KERNELS, 'lines'], check=True,
                         capture_output=True, text=True).stdout
    return [tuple(line.split()[:2]) for line in out.splitlines()]


def main_kernel_line(lines):
    """The oldest line whose kernel can unhook the TPM from its hwrng
    thread (rng_current "none", Linux 6.2)"""
    for label, _ in lines:
        if tuple(int(x) for x in label.split('.')[:2]) >= (6, 2):
            return label
    raise BenchError('no kernel line of Linux 6.2 or later: %s'
                     % ' '.join(label for label, _ in lines))


def build(lines):
    """tpm2bench for the guest and for the host, and an initramfs for each
    kernel line in LINES: the guest image's, with tpm2bench and the
    benchmark's init.  Returns {line: initrd}."""
    src = os.path.join(TOP, 'bench', 'tpm2bench.c')
    cflags = ['-O2', '-Wall', '-Wextra', '-Werror', '-I', COMMON]
    root = os.path.join(WORK, 'root')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, 'sbin'))
    # (ld warns that libcrypto's name lookups need glibc's shared
    # libraries: tpm2bench uses only its hashes)
    subprocess.run(['gcc'] + cflags + ['-static', '-o',
                    os.path.join(root, 'sbin', 'tpm2bench'), src,
                    '-lcrypto', '-Wl,--no-warnings'], check=True)
    subprocess.run(['gcc'] + cflags + ['-DHAVE_LIBTPMS',
                    '-Wno-unused-parameter', '-o',
                    os.path.join(WORK, 'tpm2bench-host'), src, '-ltpms',
                    '-lcrypto'], check=True)
    shutil.copy(os.path.join(TOP, 'bench', 'guest-init'),
                os.path.join(root, 'bench-init'))
    os.chmod(os.path.join(root, 'bench-init'), 0o755)

    # The kernel unpacks concatenated newc archives in order: the image's
    # own, then ours on top of it.
    files = subprocess.run(['find', '.'], cwd=root, check=True,
                           capture_output=True, text=True).stdout
    files = ''.join(sorted(files.splitlines(True)))
    extra = subprocess.run(['cpio', '-o', '-H', 'newc', '-R', '0:0',
                            '--quiet'], cwd=root, input=files.encode(),
                           check=True, capture_output=True).stdout
    initrds = {}
    for line in lines:
        initrd = os.path.join(WORK, 'initrd-%s.cpio' % line)
        with open(initrd + '.new', 'wb') as out:
            with open(os.path.join(IMAGES, line, 'initrd.cpio'), 'rb') as f:
                shutil.copyfileobj(f, out)
            out.write(extra)
        os.replace(initrd + '.new', initrd)
        initrds[line] = initrd
    return initrds


# --- running ---------------------------------------------------------------

def rss_kib(pid):
    """VmRSS of a process, in KiB, or None"""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def start_swtpm(tmp):
    """Start swtpm for one boot: returns (socket path, pid)"""
    sock = os.path.join(tmp, 'swtpm.sock')
    pidfile = os.path.join(tmp, 'swtpm.pid')
    # --daemon returns once the socket listens; --terminate ends swtpm
    # when QEMU disconnects
    subprocess.run(['swtpm', 'socket', '--tpm2', '--daemon', '--terminate',
                    '--tpmstate', 'dir=' + tmp, '--pid', 'file=' + pidfile,
                    '--ctrl', 'type=unixio,path=' + sock,
                    '--log', 'file=' + os.path.join(tmp, 'swtpm.log')],
                   check=True)
    with open(pidfile) as f:
        return sock, int(f.read().strip())


def cpu_seconds(pid):
    """User and system time of a process and all its threads, dead or
    alive, in seconds; None once it is gone"""
    try:
        with open('/proc/%d/stat' % pid) as f:
            # after "(comm)": state is field 3, utime 14 and stime 15
            fields = f.read().rpartition(')')[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return None


class Qmp:
    """Just enough of QMP for qom-get, over a socket QEMU connected to"""

    def __init__(self, sock):
        self.file = sock.makefile('rw', encoding='utf-8')
        self.reply()                            # the greeting
        self.command('qmp_capabilities')

    def reply(self):
        while True:
            line = self.file.readline()
            if not line:
                raise BenchError('QMP: QEMU closed the connection')
            msg = json.loads(line)
            if 'event' not in msg:
                return msg

    def command(self, name, **arguments):
        self.file.write(json.dumps({'execute': name,
                                    'arguments': arguments}) + '\n')
        self.file.flush()
        msg = self.reply()
        if 'error' in msg:
            raise BenchError('QMP %s: %s' % (name, msg['error']['desc']))
        return msg['return']


def listen(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    return sock


def accept(sock, qemu, deadline):
    """The connection QEMU makes at startup to a socket we listen on"""
    sock.settimeout(max(deadline - time.monotonic(), 1))
    try:
        conn, _ = sock.accept()
    except socket.timeout:
        raise BenchError('QEMU did not connect (exit status %s)'
                         % qemu.poll())
    conn.settimeout(None)
    return conn


class Sampler:
    """What the host reads at each of the guest's marks: the card's
    command count, the CPU time of QEMU and swtpm, the time (and the time
    of day, to find the measurement in a trace's timestamps)"""

    def __init__(self, qmp, qemu_pid, swtpm_pid, card):
        self.qmp, self.pids, self.card = qmp, (qemu_pid, swtpm_pid), card

    def sample(self):
        commands = None
        if self.card:
            commands = self.qmp.command(
                'qom-get', path='/machine/peripheral/' + CARD_ID,
                property='commands')
        qemu, swtpm = (cpu_seconds(p) if p else None for p in self.pids)
        return {'t': time.monotonic(), 'wall': time.time(),
                'commands': commands, 'qemu_cpu': qemu, 'swtpm_cpu': swtpm}


def interval(begin, end, sent):
    """A measurement between two marks"""
    m = {'seconds': end['t'] - begin['t'], 'sent': sent,
         'wall': (begin['wall'], end['wall'])}
    if begin['commands'] is not None:
        m['card'] = end['commands'] - begin['commands']
    cpu = 0.0
    for k in ('qemu_cpu', 'swtpm_cpu'):
        if begin[k] is not None and end[k] is not None:
            m[k] = end[k] - begin[k]
            cpu += m[k]
    m['cores'] = cpu / m['seconds'] if m['seconds'] > 0 else 0.0
    m['cpu_us_per_cmd'] = cpu * 1e6 / sent if sent else None
    return m


def boot(name, line, initrd, qemu_args, uses_swtpm, driver, params,
         timeout, trace=None, events=()):
    """Boot the image with the benchmark's init, and answer its marks.
    Returns the guest's console lines, the RSS of QEMU and swtpm (KiB)
    once the guest had finished its work, and the measurements between
    marks: {(workload, target): {seconds, sent, card, cores, ...}}."""
    os.makedirs(os.path.join(WORK, 'logs'), exist_ok=True)
    console = os.path.join(WORK, 'logs', name + '.log')
    if os.path.exists(console):
        os.unlink(console)      # its BENCH-DONE is not this boot's
    with tempfile.TemporaryDirectory(prefix='vtpm-bench-') as tmp:
        swtpm_pid = None
        args = list(qemu_args)
        if uses_swtpm:
            sock, swtpm_pid = start_swtpm(tmp)
            args = [a.replace('{sock}', sock) for a in args]
        # no_timer_check: as in contrib/vtpm-pci/guest/e2e.sh
        append = ('console=ttyS0 quiet no_timer_check panic=-1 '
                  'rdinit=/bench-init '
                  'rng_core.default_quality=0 bench.driver=%s %s'
                  % (driver, params))
        # QEMU connects to both at startup: the guest's marks on its
        # second serial port, and QMP
        sync_path = os.path.join(tmp, 'sync.sock')
        qmp_path = os.path.join(tmp, 'qmp.sock')
        sync_listener, qmp_listener = listen(sync_path), listen(qmp_path)
        cmd = [QEMU, '-M', 'q35', '-nodefaults', '-m', '256M', '-smp', '1',
               '-display', 'none', '-serial', 'file:' + console,
               '-chardev', 'socket,id=sync,path=' + sync_path,
               '-serial', 'chardev:sync',
               '-chardev', 'socket,id=qmp,path=' + qmp_path,
               '-mon', 'chardev=qmp,mode=control',
               '-no-reboot',
               '-kernel', os.path.join(IMAGES, line, 'bzImage'),
               '-initrd', initrd, '-append', append,
               '-device', 'isa-debug-exit,iobase=0xf4,iosize=4'] + args
        if trace:
            cmd += ['-msg', 'timestamp=on', '-D', trace]
            for ev in events:
                cmd += ['-trace', ev]
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        mem, marks, open_marks, conns = None, {}, {}, []
        deadline = time.monotonic() + timeout
        try:
            conns += [accept(sync_listener, qemu, deadline),
                      accept(qmp_listener, qemu, deadline)]
            sync = conns[0].makefile('rw', encoding='ascii', newline='\n')
            sampler = Sampler(Qmp(conns[1]), qemu.pid, swtpm_pid,
                              has_card(args))
            while True:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([conns[0]], [], [], max(left, 0))
                if not ready:
                    raise BenchError('%s: no result in %d s' % (name,
                                                                timeout))
                msg = sync.readline()
                if not msg:
                    break               # QEMU is gone
                f = msg.split()
                if f[:2] == ['MARK', 'begin'] and len(f) == 4:
                    open_marks[tuple(f[2:4])] = sampler.sample()
                elif f[:2] == ['MARK', 'end'] and len(f) == 5:
                    key = tuple(f[2:4])
                    marks[key] = interval(open_marks.pop(key),
                                          sampler.sample(), int(f[4]))
                elif f == ['MARK', 'done']:
                    mem = {'qemu': rss_kib(qemu.pid),
                           'swtpm': swtpm_pid and rss_kib(swtpm_pid)}
                else:
                    raise BenchError('%s: the guest marked %r' % (name, msg))
                sync.write('ok\n')
                sync.flush()
            qemu.wait(max(deadline - time.monotonic(), 1))
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            raise BenchError('%s: %s' % (name, e))
        finally:
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
            if swtpm_pid and rss_kib(swtpm_pid) is not None:
                os.kill(swtpm_pid, 15)
            for c in conns:
                c.close()
            sync_listener.close()
            qmp_listener.close()
        lines = read_console(console).splitlines()
        if qemu.returncode != GUEST_PASS or 'BENCH-DONE' not in lines:
            tail = '\n'.join('#   ' + line for line in lines[-30:])
            raise BenchError('%s: QEMU exited with %d; the end of %s:\n%s'
                             % (name, qemu.returncode, console, tail))
        if is_vtpm(driver):
            check_driver(name, driver, lines)
    return lines, mem, marks


def check_driver(name, driver, lines):
    """The driver moved commands the way the configuration says (BAR 2,
    or the DATA port with port=1), and polled or took interrupts as it
    says: its probe message, after each load (guest-init's BENCH-DRIVER
    lines)"""
    opts = driver.split('-')[1:]
    want = ['commands through DATA' if PORT[1:] in opts
            else 'commands in BAR 2',
            'polling' if 'poll' in opts else 'interrupt driven']
    said = [line[len('BENCH-DRIVER '):] for line in lines
            if line.startswith('BENCH-DRIVER ')]
    if not said:
        raise BenchError('%s: the driver did not say how it moves commands'
                         % name)
    for line in said:
        for w in want:
            if not re.search(r', %s(,|$)' % w, line):
                raise BenchError('%s: the driver says "%s": not %s, as '
                                 'bench.driver=%s wants' % (name, line, w,
                                                            driver))


def read_console(path):
    try:
        with open(path, errors='replace') as f:
            return f.read().replace('\r', '')
    except FileNotFoundError:
        return ''


def parse_bench(lines, default_target=None):
    """{target: {workload: {us, ops, min, max, runs, iters}}} (one-shot
    workloads: {median_us, p99_us, min, max, commands}) and the port
    access cost (µs) from tpm2bench's lines"""
    res, port = {}, None
    for line in lines:
        f = line.split()
        if len(f) == 9 and f[0] == 'BENCH':
            target = default_target or f[2].replace('/dev/', '')
            res.setdefault(target, {})[f[1]] = {
                'us': float(f[3]), 'ops': float(f[4]), 'min': float(f[5]),
                'max': float(f[6]), 'runs': int(f[7]), 'iters': int(f[8])}
        elif len(f) == 8 and f[0] == 'ONESHOT':
            target = default_target or f[2].replace('/dev/', '')
            res.setdefault(target, {})[f[1]] = {
                'median_us': float(f[3]), 'p99_us': float(f[4]),
                'min': float(f[5]), 'max': float(f[6]),
                'commands': int(f[7])}
        elif len(f) == 4 and f[0] == 'PORTCOST':
            port = float(f[2])
    return res, port


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def expect_commands(mark, once):
    """The commands the card should execute in a measurement: those the
    benchmark sent, or, where it marked one operation alone first (a
    resource manager adds context saves and loads), as many operations'
    worth as that one cost"""
    mark['expected'] = mark['sent']
    if once and once.get('card') is not None and 'card' in mark:
        mark['per_op'] = once['card']
        mark['expected'] = mark['sent'] // once['sent'] * once['card']


def disturbed(mark):
    """The card executed other commands than the benchmark's, or fewer"""
    expected = mark.get('expected', mark.get('sent', 0))
    return 'card' in mark and abs(mark['card'] - expected) > \
        DISTURBED * expected


def summarise(a, keys, results):
    """Into a: for each key the results have, their median as KEY, and
    their range as KEY_lo and KEY_hi"""
    for k in keys:
        vals = [r[k] for r in results if r.get(k) is not None]
        if vals:
            a[k] = statistics.median(vals)
            a[k + '_lo'], a[k + '_hi'] = min(vals), max(vals)
    return a


def aggregate_marks(marks):
    """The measurements of several boots between the same marks: the
    median and the range of the host's CPU use"""
    if not marks:
        return None
    return summarise({'boots': len(marks)},
                     ('cores', 'cpu_us_per_cmd', 'qemu_cpu', 'swtpm_cpu',
                      'seconds'), marks)


def aggregate(boots):
    """One configuration's boots as one result, {target: {workload: r}}:
    the median over the boots whose measurement nothing disturbed of each
    boot's own median, the range of those, and the card's command counts
    against the benchmark's, boot by boot"""
    out = {}
    keys = set((d, w) for res in boots for d in res for w in res[d])
    for dev, w in sorted(keys):
        rs = [res[dev][w] for res in boots if w in res.get(dev, {})]
        quiet = [r for r in rs if not disturbed(r.get('mark', {}))]
        a = {'boots': len(quiet), 'disturbed': len(rs) - len(quiet),
             'counts': [(r['mark'].get('card'), r['mark']['expected'],
                         r['mark'].get('per_op'))
                        for r in rs if 'mark' in r]}
        summarise(a, ('ops', 'us', 'median_us', 'p99_us'), quiet)
        host = aggregate_marks([r['mark'] for r in quiet if 'mark' in r])
        if host:
            a['host'] = host
        out.setdefault(dev, {})[w] = a
    return out


def has_card(qemu_args):
    return any(CARD_ID in a for a in qemu_args)


def port_kind(qemu_args):
    """The port whose accesses guest-init times in a boot (PORTCOST): the
    card's ID register, or without a card isa-debug-exit's"""
    return 'card' if has_card(qemu_args) else 'isa-debug-exit'


def flat_out_cores(boot):
    """{(device, workload): QEMU's (+ swtpm's) cores} of a boot's
    measurements that run commands back to back (WORKLOADS)"""
    out = {}
    for dev in DEVICES:
        for w, _, _ in WORKLOADS:
            mark = boot['results'].get(dev, {}).get(w, {}).get('mark', {})
            if mark.get('cores') is not None:
                out[(dev, w)] = mark['cores']
    return out


def judge_boots(boots):
    """Mark the boots the host disturbed (see PORT_SLOWER): each boot's
    'disturbed' is a list of reasons, empty for a clean one, and its
    'port_vs_median' and 'cores_vs_best' (the lowest, flat out) say how
    far it was from the rest.  Returns the run's median port access cost
    for each port timed in PORT_BOOTS boots or more."""
    medians = {}
    for kind in set(b['port_kind'] for bs in boots.values() for b in bs):
        costs = [b['port'] for bs in boots.values() for b in bs
                 if b['port_kind'] == kind and b['port']]
        if len(costs) >= PORT_BOOTS:
            medians[kind] = statistics.median(costs)
    for bs in boots.values():
        best = {}
        for b in bs:
            for k, cores in flat_out_cores(b).items():
                best[k] = max(best.get(k, 0.0), cores)
        for b in bs:
            b['disturbed'] = []
            med = medians.get(b['port_kind'])
            b['port_vs_median'] = b['port'] / med - 1 \
                if b['port'] and med else None
            if b['port_vs_median'] is not None and \
                    b['port_vs_median'] > PORT_SLOWER:
                b['disturbed'].append('port accesses %+.0f%%'
                                      % (100 * b['port_vs_median']))
            low = sorted((cores / best[k], k)
                         for k, cores in flat_out_cores(b).items()
                         if best[k] >= FLAT_OUT)
            b['cores_vs_best'] = low[0][0] if low else None
            if low and low[0][0] < CORES_LOWER:
                ratio, (dev, w) = low[0]
                b['disturbed'].append('%s on /dev/%s: %.0f%% of the best '
                                      'boot\'s cores' % (w, dev, 100 * ratio))
    return medians


def run_floor(seconds, runs):
    out = subprocess.run([os.path.join(WORK, 'tpm2bench-host'), '-t',
                          str(seconds), '-r', str(runs), 'libtpms'] +
                         [w[0] for w in WORKLOADS] + [KEYS[0]], check=True,
                         capture_output=True, text=True).stdout
    return parse_bench(out.splitlines(), 'host')[0]


# --- the overhead breakdown ------------------------------------------------

# A trace line with -msg timestamp=on: "PID@SECONDS.MICROSECONDS:EVENT
# ARGS" up to QEMU 10.0, "YYYY-MM-DDTHH:MM:SS.MICROSECONDSZ EVENT ARGS"
# since 10.1
TRACE_LINE = re.compile(r'^\d+@(\d+)\.(\d+):(\w+) (.*)$')
TRACE_LINE_ISO = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})Z '
                            r'(\w+) (.*)$')


def read_trace(path):
    """[(time in s, event, arguments)] of a trace with timestamps"""
    events = []
    with open(path, errors='replace') as f:
        for line in f:
            line = line.strip()
            m = TRACE_LINE.match(line)
            if m:
                t = int(m.group(1)) + int(m.group(2)) * 1e-6
            else:
                m = TRACE_LINE_ISO.match(line)
                if not m:
                    continue
                t = (calendar.timegm(time.strptime(m.group(1),
                                                   '%Y-%m-%dT%H:%M:%S')) +
                     int(m.group(2)) * 1e-6)
            events.append((t, m.group(3), m.group(4)))
    return events


def loop_window(events, path):
    """The benchmark's loop in a trace: the longest streak of GetRandom
    commands with no other command, and no pause of more than 50 ms, in
    between (the kernel sends a GetRandom of its own when the TPM
    registers).  Returns the indexes of its first and last START, and the
    number of whole cycles between them: each cycle reads the previous
    response and writes the next command."""
    streaks, cur, last_t = [], [], None
    for i, (t, name, args) in enumerate(events):
        if name != 'vtpm_pci_command':
            continue
        getrandom = int(args.split()[1], 16) == TPM2_CC_GET_RANDOM
        if not getrandom or (last_t is not None and t - last_t > 0.05):
            streaks.append(cur)
            cur = []
        if getrandom:
            cur.append(i)
        last_t = t
    starts = max(streaks + [cur], key=len)
    if len(starts) < 100:
        raise BenchError('trace: only %d GetRandom commands in a row in %s'
                         % (len(starts), path))
    return starts[0], starts[-1], len(starts) - 1


def parse_timing(path):
    """Per GetRandom(32) command through vtpm-pci + libtpms, from a boot
    whose trace lines are all outside the times measured: START to the
    response (measured inside QEMU), how many completed within the START
    access, and the interrupts: how many, and the time from the response
    to the guest's handler clearing INT_STATUS"""
    events = read_trace(path)
    first, last, ncmd = loop_window(events, path)
    resp_us, irq_us = [], []
    within = irqs = 0
    t_resp = None
    for t, name, args in events[first:last]:
        if name == 'vtpm_pci_response':
            resp_us.append(int(re.search(r', (-?\d+) ns after START',
                                         args).group(1)) / 1000)
            within += args.endswith('within START')
            t_resp = t
        elif name == 'vtpm_pci_irq' and args == 'level 1':
            irqs += 1
        elif name == 'vtpm_pci_irq' and args == 'level 0' and t_resp:
            # Timestamps are in us: the median of many evens that out
            irq_us.append((t - t_resp) * 1e6)
            t_resp = None
    return {
        'commands': ncmd,
        'response_us': statistics.median(resp_us),
        'within_start': within / ncmd,
        'irqs': irqs / ncmd,
        'irq_latency_us': statistics.median(irq_us) if irq_us else 0.0,
        'traced_us': (events[last][0] - events[first][0]) * 1e6 / ncmd,
    }


def parse_counts(path, marks):
    """The card's trapped accesses in each measurement of a traced boot
    (its events between the host's readings of the time of day at the
    guest's marks, which bracket the measurement's commands and nothing
    else of the TPM's): {device: {workload: c}}, where c has, per command
    the card executed, the register and DATA port accesses and all of
    them, and per operation of the workload all of them, the commands,
    and the median time libtpms took for one (TPMLIB_Process)"""
    events = read_trace(path)
    windows = sorted((m['wall'][0], m['wall'][1], key)
                     for key, m in marks.items()
                     if key[0] in COMMANDS_PER_OP)
    counts = dict((key, {'reg': 0, 'data': 0, 'commands': 0, 'lib': []})
                  for _, _, key in windows)
    begins = [w[0] for w in windows]
    for t, name, args in events:
        i = bisect.bisect_right(begins, t) - 1
        if i < 0 or t > windows[i][1]:
            continue
        c = counts[windows[i][2]]
        if name in ('vtpm_pci_io_read', 'vtpm_pci_io_write'):
            c['data' if int(args.split()[1], 16) == REG_DATA
              else 'reg'] += 1
        elif name == 'vtpm_pci_command':
            c['commands'] += 1
        elif name == 'tpm_libtpms_command':
            c['lib'].append(int(re.search(r', (-?\d+) ns in libtpms',
                                          args).group(1)) / 1000)
    out = {}
    for (w, target), c in counts.items():
        ncmd, sent = c['commands'], marks[(w, target)]['sent']
        if not ncmd or not sent:
            raise BenchError('trace: no command of %s on %s in %s'
                             % (w, target, path))
        out.setdefault(target.replace('/dev/', ''), {})[w] = {
            'reg_accesses': c['reg'] / ncmd,
            'data_accesses': c['data'] / ncmd,
            'accesses': (c['reg'] + c['data']) / ncmd,
            'per_op': (c['reg'] + c['data']) * COMMANDS_PER_OP[w] / sent,
            'commands': ncmd,
            'libtpms_us': median_of(c['lib'])}
    return out


def breakdown(timing, counts, port_us, untraced_us):
    b = dict(counts)
    b.update(timing)
    b['port_us'] = port_us
    b['ports_us'] = (b['reg_accesses'] + b['data_accesses']) * port_us
    b['handoff_us'] = b['response_us'] - b['libtpms_us']
    b['irq_us'] = b['irqs'] * b['irq_latency_us']
    b['qemu_us'] = b['ports_us'] + b['handoff_us'] + b['irq_us']
    b['ratio'] = b['qemu_us'] / b['libtpms_us']
    b['untraced_us'] = untraced_us
    b['rest_us'] = untraced_us - b['qemu_us'] - b['libtpms_us']
    return b


def format_breakdown(b, label):
    r = ['Device overhead: %s, GetRandom(32) through /dev/tpm0, per '
         'command' % label,
         '  (medians over %d commands, timed inside QEMU and reported by '
         'trace events outside the times they measure;'
         % b['commands'],
         '   libtpms timed and port accesses counted in a second traced '
         'boot; their cost timed in the guest by reads of the ID register)']
    rows = [
        ('libtpms itself (TPMLIB_Process, in the TPM thread)',
         b['libtpms_us']),
        ('hand-off: START to the response, minus libtpms (%.0f%% within '
         'START)' % (100 * b['within_start']),
         b['handoff_us']),
        ('port accesses: %.1f register + %.1f DATA, %.3f us each'
         % (b['reg_accesses'], b['data_accesses'], b['port_us']),
         b['ports_us']),
        ('interrupt: %.2f per command, %.1f us from the response to the '
         'handler' % (b['irqs'], b['irq_latency_us']), b['irq_us']),
    ]
    for label, us in rows:
        r.append('  %-74s %8.1f us' % (label, us))
    r.append('  %-74s %8.1f us = %.1fx libtpms' %
             ('QEMU outside libtpms (hand-off + ports + interrupt)',
              b['qemu_us'], b['ratio']))
    r.append('  %-74s %8.1f us' %
             ('the whole command in the benchmark (no trace events)',
              b['untraced_us']))
    if b['rest_us'] >= 0:
        r.append('  %-74s %8.1f us' %
                 ('  of which the guest (syscall, TPM core, driver) under TCG',
                  b['rest_us']))
    else:
        # The traced boots and the timed one went different ways (more
        # commands took the interrupt, say): no share is left to tell
        r.append('  %-74s %8s' %
                 ('  of which the guest: not known, the traced boots\' '
                  'parts add up to more', 'n/a'))
    return '\n'.join(r)


# --- reporting --------------------------------------------------------------

def reference(name):
    """The row a row's ratio is to: tpm-crb + swtpm on the same kernel"""
    line = name.partition('@')[2]
    return REFERENCE + ('@' + line if line else '')


# The longest label, and room for a flag (" !": every boot disturbed)
LABEL_WIDTH = 59
# Workloads whose table has a column of BAR 2 against the DATA port
VS_PORT = ('getrandom', 'large')


def spread(r, key, fmt):
    """'lo-hi' of a median over boots, or '' for one boot"""
    if r.get('boots', 1) < 2 or key + '_lo' not in r:
        return ''
    return (fmt + '-' + fmt) % (r[key + '_lo'], r[key + '_hi'])


def format_table(results, labels, seconds, runs, nboots):
    head1 = '%-*s %-11s' % (LABEL_WIDTH, '', '')
    head2 = '%-*s %-11s' % (LABEL_WIDTH, 'configuration', 'device')
    for w, label, unit in WORKLOADS:
        head1 += ' | %-*s' % (42 if w in VS_PORT else 33, label)
        head2 += ' | %9s %14s %8s' % (unit + 's/s', 'range', 'ratio')
        if w in VS_PORT:
            head2 += ' %8s' % 'vs port'
    lines = ['%s/s: the median over the boots (%d a configuration, less '
             'those the host disturbed: see "Boots") of each boot\'s median '
             'of %d runs of ~%g s; range: the boots\' lowest and highest; '
             'ratio: to tpm-crb + swtpm, same device, same run, same '
             'kernel;' % ('ops', nboots, runs, seconds),
             'vs port: vtpm-pci with commands in BAR 2 against the same '
             'configuration with commands through the DATA port (port=1); '
             '"disturbed": the card executed commands the benchmark did not '
             'send, in every boot', head1, head2, '-' * len(head2)]
    for name, label in labels:
        ref = results.get(reference(name), {})
        twin = results.get(port_twin(name), {})
        for dev, res in sorted(results.get(name, {}).items()):
            row = '%-*s %-11s' % (LABEL_WIDTH, label, dev if dev == 'host'
                                  else '/dev/' + dev)
            for w, _, _ in WORKLOADS:
                r = res.get(w)
                base = ref.get('tpm0' if dev == 'host' else dev, {}).get(w)
                other = twin.get(dev, {}).get(w)
                if not r:
                    row += ' | %9s %14s %8s' % ('-', '', '-')
                elif 'ops' not in r:
                    row += ' | %24s %8s' % ('disturbed', '-')
                else:
                    ratio = ('%7.1fx' % (r['ops'] / base['ops'])) \
                        if base and 'ops' in base else '%8s' % '-'
                    row += ' | %9.0f %14s %8s' % (r['ops'],
                                                  spread(r, 'ops', '%.0f'),
                                                  ratio)
                if w in VS_PORT:
                    row += (' %7.2fx' % (r['ops'] / other['ops'])) \
                        if r and 'ops' in r and other and 'ops' in other \
                        else ' %8s' % '-'
            lines.append(row)
    return '\n'.join(lines)


def format_host(results, labels):
    """For each measurement: the card's commands against the benchmark's,
    and the CPU time QEMU and swtpm spent"""
    lines = ['Host CPU during the measured runs (QEMU + swtpm, from '
             '/proc/PID/stat between the guest\'s marks; medians over the '
             'boots) and,',
             'for vtpm-pci, the commands the card executed against those '
             'the benchmark sent (qom-get "commands"), boot by boot; for '
             'the session',
             'workload through /dev/tpmrm0, against what one operation '
             'alone cost the card, resource manager included, times the '
             'operations',
             '%-*s %-11s %-26s %7s %12s  %s' % (
                 LABEL_WIDTH, 'configuration', 'device', 'workload',
                 'cores', 'CPU us/cmd', 'card / sent')]
    for name, label in labels:
        for dev, res in sorted(results.get(name, {}).items()):
            if dev == 'host':
                continue
            for w in MEASURED:
                r = res.get(w)
                if not r:
                    continue
                h = r.get('host', {})
                counts = ', '.join(
                    '%d / %d%s%s' % (c, n, ' (%d a op)' % k if k else '',
                                     ' DISTURBED' if abs(c - n) >
                                     DISTURBED * n else '')
                    for c, n, k in r['counts'] if c is not None) or '-'
                lines.append('%-*s %-11s %-26s %7s %12s  %s' % (
                    LABEL_WIDTH, label, '/dev/' + dev, w,
                    '%.3f' % h['cores'] if 'cores' in h else '-',
                    '%.2f' % h['cpu_us_per_cmd']
                    if h.get('cpu_us_per_cmd') is not None else '-',
                    counts))
    return '\n'.join(lines)


def format_idle(idle, results, labels, seconds):
    """The TPM at rest, and with one command every 100 ms"""
    lines = ['Host CPU with the guest idle (no TPM command for %g s, '
             'before the workloads), and while it sends one GetRandom(32) '
             'every 100 ms through /dev/tpm0' % seconds,
             '(the one-shot measurement): cores busy, QEMU + swtpm; median '
             'and range over the boots',
             '%-*s %8s %17s   %8s %17s' % (LABEL_WIDTH, 'configuration',
                                          'idle', 'range', 'per 100ms',
                                          'range')]
    for name, label in labels:
        a = idle.get(name)
        h = results.get(name, {}).get('tpm0', {}).get(
            'oneshot-100ms', {}).get('host', {})
        if (not a or 'cores' not in a) and 'cores' not in h:
            continue
        row = '%-*s' % (LABEL_WIDTH, label)
        for r in (a or {}), h:
            row += ' %8s %17s  ' % (
                '%.4f' % r['cores'] if 'cores' in r else '-',
                spread(r, 'cores', '%.4f'))
        lines.append(row.rstrip())
    return '\n'.join(lines)


def format_oneshot(results, labels):
    """Latency of single commands: the median and the 99th percentile"""
    head = '%-*s %-11s' % (LABEL_WIDTH, 'configuration', 'device')
    for _, label in ONESHOTS:
        head += ' | %-40s' % ('GetRandom(32), ' + label)
    lines = ['One command at a time: latency in us, median and 99th '
             'percentile of each boot, then their medians over the boots; '
             'ratio: tpm-crb + swtpm\'s median over this one',
             '%-*s %-11s' % (LABEL_WIDTH, '', '') + (
                 ' | %9s %14s %6s %8s' % ('median', 'range', 'p99',
                                          'ratio')) * len(ONESHOTS),
             head]
    for name, label in labels:
        ref = results.get(reference(name), {})
        for dev, res in sorted(results.get(name, {}).items()):
            if dev == 'host':
                continue
            row = '%-*s %-11s' % (LABEL_WIDTH, label, '/dev/' + dev)
            for w, _ in ONESHOTS:
                r = res.get(w, {})
                base = ref.get(dev, {}).get(w, {})
                if 'median_us' not in r:
                    row += ' | %40s' % ('disturbed' if r else '-')
                    continue
                ratio = '%7.1fx' % (base['median_us'] / r['median_us']) \
                    if 'median_us' in base else '%8s' % '-'
                row += ' | %9.1f %14s %6.0f %8s' % (
                    r['median_us'], spread(r, 'median_us', '%.1f'),
                    r['p99_us'], ratio)
            lines.append(row)
    return '\n'.join(lines)


def format_keys(results, labels):
    """Back-to-back key generation: keys per second, and the host's CPU
    for each"""
    w, title, unit = KEYS
    lines = ['%s, back to back through /dev/tpm0, a new key each time: '
             '%ss/s (median over the boots, and range), host CPU while '
             'they ran (QEMU + swtpm): cores busy, and ms per key' % (
                 title, unit),
             '(the floor: libtpms on the host, one thread, whose time per '
             'key is its CPU per key)',
             '%-*s %9s %14s %7s %11s' % (LABEL_WIDTH, 'configuration',
                                         unit + 's/s', 'range', 'cores',
                                         'CPU ms/' + unit)]
    for name, label in labels:
        floor = name == FLOOR[0]
        r = results.get(name, {}).get('host' if floor else 'tpm0', {}).get(w)
        if not r:
            continue
        if 'ops' not in r:
            lines.append('%-*s %24s' % (LABEL_WIDTH, label, 'disturbed'))
            continue
        h = r.get('host', {})
        if floor:
            cores, ms = '-', '%.2f' % (r['us'] / 1000)
        else:
            cores = '%.3f' % h['cores'] if 'cores' in h else '-'
            ms = '%.2f' % (h['cpu_us_per_cmd'] * COMMANDS_PER_OP[w] / 1000) \
                if h.get('cpu_us_per_cmd') is not None else '-'
        lines.append('%-*s %9.1f %14s %7s %11s' % (
            LABEL_WIDTH, label, r['ops'], spread(r, 'ops', '%.1f'), cores,
            ms))
    return '\n'.join(lines)


def format_accesses(accesses, labels):
    """The card's trapped accesses per command and per operation, in each
    workload"""
    head1 = '%-*s %-11s' % (LABEL_WIDTH, '', '')
    head2 = '%-*s %-11s' % (LABEL_WIDTH, 'configuration', 'device')
    units = dict((w, unit) for w, _, unit in WORKLOADS + [KEYS])
    for w in MEASURED:
        head1 += ' | %-15s' % w
        head2 += ' | %6s %8s' % ('/cmd', '/' + units.get(w, 'cmd'))
    lines = ['Trapped accesses: the card\'s port accesses (register and '
             'DATA; BAR 2 is memory and does not trap), per command the card '
             'executed and per operation',
             'the benchmark sent, counted by trace events in a boot of each '
             'configuration of its own (the trace slows the commands, not '
             'their accesses)', head1, head2, '-' * len(head2)]
    for name, label in labels:
        for dev, res in sorted(accesses.get(name, {}).items()):
            row = '%-*s %-11s' % (LABEL_WIDTH, label, '/dev/' + dev)
            for w in MEASURED:
                c = res.get(w)
                row += ' | %6.2f %8.2f' % (c['accesses'], c['per_op']) \
                    if c else ' | %6s %8s' % ('-', '-')
            lines.append(row)
    return '\n'.join(lines)


def format_boots(ran, labels, medians, left_out, every):
    """Each boot's port access cost and QEMU's cores flat out, in the
    order the boots ran, and which the host disturbed"""
    label = dict(labels)
    head = '%5s %-*s %8s %7s' % ('round', LABEL_WIDTH, 'configuration',
                                 'port us', 'vs med')
    for w, _, _ in WORKLOADS:
        head += ' %11s' % w
    head += ' %7s  %s' % ('lowest', 'disturbed')
    lines = ['Boots, in the order they ran: the cost of a port access '
             '(tpm2bench -p: the card\'s ID register, or isa-debug-exit\'s '
             'port without a card; the run\'s medians, of %d boots or more: '
             '%s),' % (PORT_BOOTS, ', '.join(
                 '%s %.3f us' % kv for kv in sorted(medians.items()))
                       or 'none'),
             'QEMU\'s (+ swtpm\'s) cores in the workloads that run commands '
             'back to back, /dev/tpm0 and /dev/tpmrm0, and the lowest of '
             'those against the configuration\'s best boot',
             '(where that boot had %.1f cores or more). Disturbed, and left '
             'out of the medians: a port access more than %.0f%% above the '
             'median, or less than %.0f%% of the best boot\'s cores'
             % (FLAT_OUT, 100 * PORT_SLOWER, 100 * CORES_LOWER), head]
    for b in ran:
        cores = flat_out_cores(b)
        row = '%5d %-*s %8s %7s' % (
            b['round'], LABEL_WIDTH, label.get(b['name'], b['name']),
            '%.3f' % b['port'] if b['port'] else '-',
            '%+.0f%%' % (100 * b['port_vs_median'])
            if b['port_vs_median'] is not None else '-')
        for w, _, _ in WORKLOADS:
            row += ' %11s' % ' '.join(
                '%.2f' % cores[(d, w)] if (d, w) in cores else '-'
                for d in DEVICES)
        row += ' %7s  %s' % ('%.0f%%' % (100 * b['cores_vs_best'])
                             if b['cores_vs_best'] is not None else '-',
                             '; '.join(b['disturbed']))
        if b['disturbed'] and b['name'] in every:
            row += ' (kept: every boot of it is)'
        lines.append(row.rstrip())
    total = sum(left_out.values())
    lines.append('Left out of the medians: %d disturbed boot%s of %d%s' % (
        total, '' if total == 1 else 's', len(ran),
        ' (%s)' % ', '.join('%s: %d' % (n, k) for n, k in
                            sorted(left_out.items()) if k)
        if total else ''))
    if every:
        lines.append('Every boot disturbed, all kept, rows flagged "!": '
                     + ', '.join(sorted(every)))
    return '\n'.join(lines)


def format_memory(mem, labels):
    lines = ['Host memory after the run (VmRSS, MiB): QEMU, swtpm, total',
             '%-*s %8s %8s %8s' % (LABEL_WIDTH, 'configuration', 'QEMU',
                                   'swtpm', 'total')]
    for name, label in labels:
        m = mem.get(name)
        if not m or m.get('qemu') is None:
            continue
        q = m['qemu'] / 1024
        s = (m.get('swtpm') or 0) / 1024
        lines.append('%-*s %8.1f %8s %8.1f' % (
            LABEL_WIDTH, label, q, ('%.1f' % s) if m.get('swtpm') else '-', q + s))
    return '\n'.join(lines)


def format_sync(sync, line, runs):
    """The port accesses and time of a GetRandom(32) with and without
    TPM_CHIP_FLAG_SYNC"""
    r = ['TPM_CHIP_FLAG_SYNC on Linux %s: vtpm-pci + libtpms, GetRandom(32) '
         'through /dev/tpm0, per command' % line,
         '  (port accesses: counted by trace events over %s commands; '
         'time: one boot each for interrupt and polling, loading the driver'
         % '/'.join(str(sync[m]['commands']) for m, _, _ in SYNC_MODES),
         '   with sync=1 and sync=0 in turn, %d times each, %d runs after '
         'each load: the median, lowest and highest of the loads\' medians)'
         % (SYNC_ALTERNATE, runs),
         '  %-20s %9s %6s %6s %9s %9s %9s' % ('driver', 'register', 'DATA',
                                             'all', 'us/cmd', 'lowest',
                                             'highest')]
    for mode, _, label in SYNC_MODES:
        m = sync[mode]
        r.append('  %-20s %9.2f %6.2f %6.2f %9.1f %9.1f %9.1f' % (
            label, m['reg_accesses'], m['data_accesses'],
            m['reg_accesses'] + m['data_accesses'],
            statistics.median(m['us']), min(m['us']), max(m['us'])))
    return '\n'.join(r)


def targets(results, idle, brk, accesses, quick):
    """The issues' targets, each met or missed; the quick run only prints
    the figures"""
    def get(name, dev, w, key):
        return results.get(name, {}).get(dev, {}).get(w, {}).get(key)

    def verdict(ok):
        return '(quick: not judged)' if quick else 'met' if ok else 'missed'

    out = []
    for dev, want in (('tpm0', 100), ('tpmrm0', 30)):
        ours = get('vtpm-libtpms', dev, 'getrandom', 'ops')
        ref = get(REFERENCE, dev, 'getrandom', 'ops')
        if ours and ref:
            out.append('Target: vtpm-pci + libtpms >= %dx tpm-crb + swtpm '
                       '(GetRandom, /dev/%s): %.1fx: %s'
                       % (want, dev, ours / ref, verdict(ours >= want * ref)))
    if brk.get('vtpm-libtpms'):
        r = brk['vtpm-libtpms']['ratio']
        out.append('Target: QEMU outside libtpms <= 2x libtpms (GetRandom): '
                   '%.1fx: %s' % (r, verdict(r <= 2)))
    ours = get('vtpm-libtpms', 'tpm0', 'getrandom', 'host')
    ref = get(REFERENCE, 'tpm0', 'getrandom', 'host')
    if ours and ref and ours.get('cpu_us_per_cmd') and \
            ref.get('cpu_us_per_cmd'):
        x, y = ours['cpu_us_per_cmd'], ref['cpu_us_per_cmd']
        out.append('Target: host CPU per command <= 1/10 of tpm-crb + '
                   'swtpm\'s (GetRandom, /dev/tpm0): %.2f us against %.1f '
                   'us, 1/%.0f: %s' % (x, y, y / x, verdict(x * 10 <= y)))
    for name in ('vtpm-libtpms', port_twin('vtpm-libtpms')):
        ours, ref = idle.get(name), idle.get(REFERENCE)
        if ours and ref and 'cores' in ours and 'cores' in ref:
            out.append('Target: idle cost <= tpm-crb + swtpm\'s + 0.01 '
                       'cores (%s): %.4f against %.4f: %s' % (
                           name, ours['cores'], ref['cores'],
                           verdict(ours['cores'] <= ref['cores'] + 0.01)))
    # Issue 28: BAR 2
    for w, what, want in (('getrandom', 'a GetRandom(32)', 2),
                          ('large', 'a Hash 1 KB + NV_Read 1 KB pair', 6)):
        c = accesses.get('vtpm-libtpms', {}).get('tpm0', {}).get(w)
        port = accesses.get(port_twin('vtpm-libtpms'), {}).get(
            'tpm0', {}).get(w)
        if c:
            out.append('Target: trapped accesses <= %d for %s, commands in '
                       'BAR 2 (/dev/tpm0): %.2f%s: %s' % (
                           want, what, c['per_op'],
                           ' (%.2f through the DATA port)' % port['per_op']
                           if port else '',
                           # an average over thousands of commands: to the
                           # two decimals shown, as a few miss the START
                           # poll in a traced boot and take the interrupt
                           verdict(round(c['per_op'], 2) <= want)))
    ours = get('vtpm-libtpms', 'tpm0', 'oneshot-100ms', 'median_us')
    ref = get(REFERENCE, 'tpm0', 'oneshot-100ms', 'median_us')
    if ours and ref:
        out.append('Target: one-shot latency (100 ms apart, /dev/tpm0), '
                   'median <= 1/5 of tpm-crb + swtpm\'s: %.1f us against '
                   '%.1f us, 1/%.1f: %s' % (ours, ref, ref / ours,
                                            verdict(ours * 5 <= ref)))
    return out


def machine(lines):
    cpu = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass

    def first_line(argv):
        try:
            return subprocess.run(argv, capture_output=True,
                                  text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return '?'
    libtpms = first_line(['dpkg-query', '-W', '-f', '${Version}',
                          'libtpms0'])
    return [
        'host: %s, %d CPUs, Linux %s, load average %.2f at the end'
        % (cpu, os.cpu_count(), platform.release(), os.getloadavg()[0]),
        'QEMU: %s (TCG, -smp 1, -m 256M, q35)' % first_line([QEMU,
                                                            '--version']),
        'guest: Debian kernel %s; rows marked "Linux %s": %s'
        % (dict(lines)[main_kernel_line(lines)], lines[-1][0],
           lines[-1][1]),
        'swtpm: %s; libtpms %s' % (first_line(['swtpm', '--version']),
                                   libtpms),
    ]


def plot(results, labels, out):
    """A bar chart of ops/s (log scale), one group per configuration"""
    if not shutil.which('gnuplot'):
        log('no gnuplot: no plot (apt-get install gnuplot-nox)')
        return None
    dat = os.path.join(out, 'plot.dat')
    cols = [(w, dev) for w, _, _ in WORKLOADS for dev in DEVICES]
    rows = 0
    with open(dat, 'w') as f:
        f.write('# config ' + ' '.join('%s/%s' % c for c in cols) + '\n')
        for name, label in labels:
            res = results.get(name)
            if not res:
                continue
            rows += 1
            vals = []
            for w, dev in cols:
                r = res.get('host' if name == FLOOR[0] else dev, {}).get(w)
                vals.append('%.1f' % r['ops'] if r and 'ops' in r else '-')
            f.write('"%s" %s\n' % (label.replace(' (', '\\n('), ' '.join(vals)))
    if not rows:            # e.g. --only sync: nothing to plot
        os.unlink(dat)
        return None
    png = os.path.join(out, 'plot.png')
    titles = {w: label for w, label, _ in WORKLOADS}
    series = ', '.join(
        "'%s' using %d:xtic(1) title '%s, /dev/%s'" %
        (dat, i + 2, titles[w], dev) for i, (w, dev) in enumerate(cols))
    script = '\n'.join([
        "set terminal png size 1400,700 font ',10' noenhanced",
        "set output '%s'" % png,
        "set bmargin 8",
        "set title 'TPM 2.0 operations per second in a TCG guest "
        "(log scale; pairs count as one operation)'",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set logscale y",
        "set yrange [100:*]",
        "set ylabel 'operations/s'",
        "set grid ytics",
        "set key outside bottom center horizontal maxrows 2",
        "set datafile missing '-'",
        "set xtics font ',9'",
        "plot " + series, ''])
    subprocess.run(['gnuplot'], input=script, text=True, check=True)
    os.unlink(dat)
    return png


def round_order(plan, r):
    """The configurations of PLAN in the order of round R: row R of a
    balanced Latin square (Williams': 0, 1, n-1, 2, n-2, ... plus R), in
    whose first n rows, for an even n, no configuration follows the same
    one twice"""
    n = len(plan)
    first = [0] + [(k + 1) // 2 if k % 2 else n - k // 2
                   for k in range(1, n)]
    return [plan[(i + r) % n] for i in first]


# --- main ---------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='short runs, for CI: a few minutes in all')
    ap.add_argument('--out', default=os.path.join(WORK, 'out'),
                    help='where to write results.txt, results.json, '
                    'plot.png')
    ap.add_argument('--only', help='comma-separated configurations (and '
                    '"floor", "trace", "sync"; NAME-port for a vtpm-pci '
                    'configuration with commands through the DATA port; '
                    'NAME@LINE for the newest kernel\'s rows); default: all')
    args = ap.parse_args()

    seconds, runs = (0.25, 3) if args.quick else (1.0, 5)
    timeout = 300 if args.quick else 900
    if not os.access(QEMU, os.X_OK):
        raise BenchError('no QEMU at %s: run "make build"' % QEMU)
    t0 = time.monotonic()
    subprocess.run([os.path.join(TOP, 'contrib', 'vtpm-pci', 'guest',
                                 'build-image.sh')], check=True)
    lines = kernel_lines()
    main_line, newest = main_kernel_line(lines), lines[-1][0]

    # name, label, QEMU arguments, swtpm, driver, kernel line
    plan = [c + (main_line,) for c in CONFIGS
            if not (args.quick and c[0] in QUICK_SKIPS)]
    by_name = dict((c[0], c) for c in CONFIGS)
    for name, config, quick in NEWEST:
        if args.quick and not quick:
            continue        # the quick run has the rows the README needs
        c = by_name[name] if not config else (name,) + config
        plan.append(('%s@%s' % (name, newest), '%s, Linux %s' %
                     (c[1], newest)) + tuple(c[2:]) + (newest,))
    planned = dict((p[0], p) for p in plan)
    names = [p[0] for p in plan] + [FLOOR[0], 'trace']
    if not args.quick:
        names.append('sync')
    only = args.only.split(',') if args.only else names
    for n in only:
        if n not in names:
            ap.error('unknown configuration %s (know: %s)'
                     % (n, ', '.join(names)))
    initrds = build([main_line, newest])
    idle_seconds = IDLE_QUICK if args.quick else IDLE
    params = 'bench.time=%g bench.runs=%d bench.idle=%g' % (
        seconds, runs, idle_seconds)

    results, mem, ports, idle, failed = {}, {}, {}, {}, []
    labels = [(p[0], p[1]) for p in plan] + [FLOOR]
    # Boot after boot, each configuration in turn, so that a change in
    # the host's conditions falls on all of them alike; in another order
    # each round, so that no configuration always runs after the same one
    nboots = 1 if args.quick else BOOTS
    boots, ran = {}, []
    for b in range(nboots):
        for name, label, qargs, swtpm, driver, line in round_order(
                [p for p in plan if p[0] in only], b):
            if name in failed:
                continue
            log('%s: boot %d of %d (%s)' % (name, b + 1, nboots, label))
            t = time.monotonic()
            try:
                out, m, marks = boot(name, line, initrds[line], qargs, swtpm,
                                     driver, params, timeout)
            except (BenchError, subprocess.CalledProcessError) as e:
                log(str(e))
                failed.append(name)
                continue
            res, port = parse_bench(out)
            for (w, target), mark in marks.items():
                dev = target.replace('/dev/', '')
                if w in res.get(dev, {}):
                    res[dev][w]['mark'] = mark
                    expect_commands(mark, marks.get((w + '-once', target)))
            ran.append({'name': name, 'round': b + 1, 'results': res,
                        'port': port, 'port_kind': port_kind(qargs),
                        'memory': m, 'idle': marks.get(('idle', '-'))})
            boots.setdefault(name, []).append(ran[-1])
            missing = [(d, w) for d in DEVICES for w in measured(d)
                       if 'mark' not in res.get(d, {}).get(w, {})]
            if missing:
                log('%s: no result for %s' % (name, missing))
                failed.append(name)
            log('%s: %.0f s' % (name, time.monotonic() - t))
    # The boots the host disturbed stay out of the medians, unless every
    # boot of the configuration is
    port_medians = judge_boots(boots)
    left_out, every = {}, []
    for name, bs in boots.items():
        kept = [b for b in bs if not b['disturbed']]
        if not kept:
            kept = bs
            every.append(name)
        left_out[name] = len(bs) - len(kept)
        results[name] = aggregate([b['results'] for b in kept])
        idle[name] = aggregate_marks([b['idle'] for b in kept if b['idle']])
        if bs[0]['port_kind'] == 'card':
            ports[name] = median_of([b['port'] for b in kept])
        mem[name] = kept[-1]['memory']
    if FLOOR[0] in only:
        results[FLOOR[0]] = run_floor(seconds, runs)

    brk, accesses = {}, {}
    if 'trace' in only:
        # The card's trapped accesses in each workload: a traced boot of
        # each vtpm-pci configuration run (the quick run: the main one's
        # two ways), short runs; then the main configuration's commands
        # timed by QEMU, with the trace events outside the times they
        # report (the quick run: BAR 2 alone)
        main = ('vtpm-libtpms', port_twin('vtpm-libtpms'))
        counted = [p for p in plan if is_vtpm(p[4]) and (
            p[0] in main or (not args.quick and p[0] in only))]
        timed = main[:1] if args.quick else main
        log('trace: %d boots with trace events, counting port accesses '
            '(%s), and %d timing commands'
            % (len(counted), ', '.join(p[0] for p in counted), len(timed)))
        for name, _, qargs, swtpm, driver, line in counted:
            path = os.path.join(WORK, 'logs', 'trace-count-%s.trace' % name)
            try:
                if os.path.exists(path):
                    os.unlink(path)
                _, _, marks = boot(
                    'trace-count-' + name, line, initrds[line], qargs, swtpm,
                    driver, 'bench.time=0.05 bench.runs=2 bench.portcost=0',
                    timeout, trace=path, events=COUNTING_EVENTS)
                accesses[name] = parse_counts(path, marks)
            except (BenchError, subprocess.CalledProcessError) as e:
                log(str(e))
                failed.append('trace-count-' + name)
        gr = 'bench.devices=tpm0 bench.workloads=getrandom bench.portcost=0'
        for name in timed:
            _, label, qargs, swtpm, driver, line = planned[name]
            path = os.path.join(WORK, 'logs', 'trace-timing-%s.trace' % name)
            try:
                if os.path.exists(path):
                    os.unlink(path)
                boot('trace-timing-' + name, line, initrds[line], qargs,
                     swtpm, driver, 'bench.time=%g bench.runs=3 %s'
                     % (seconds, gr), timeout, trace=path,
                     events=TIMING_EVENTS)
                timing = parse_timing(path)
                counts = accesses.get(name, {}).get('tpm0', {}).get(
                    'getrandom')
                guest = results.get(name, {}).get('tpm0', {})
                if counts and ports.get(name) and guest.get('getrandom'):
                    brk[name] = breakdown(timing, counts, ports[name],
                                          guest['getrandom']['us'])
                else:
                    log('trace: the breakdown of %s needs its run and its '
                        'counts' % name)
            except (BenchError, subprocess.CalledProcessError) as e:
                log(str(e))
                failed.append('trace-timing-' + name)

    sync = {}
    if 'sync' in only:
        log('sync: vtpm-pci + libtpms on Linux %s, the driver reloaded with '
            'and without TPM_CHIP_FLAG_SYNC %d times, and port accesses '
            'counted' % (newest, SYNC_ALTERNATE))
        gr = 'bench.devices=tpm0 bench.workloads=getrandom bench.portcost=0'
        try:
            for prefix, driver in (('', 'vtpm'), ('poll-', 'vtpm-poll')):
                out, _, _ = boot('sync-%salternate' % prefix, newest,
                                 initrds[newest], CONFIGS[0][2], False,
                                 driver, '%s %s bench.alternate=%d' % (
                                     params, gr, SYNC_ALTERNATE), timeout)
                mode = None
                for line in out:
                    if line.startswith('BENCH-MODE '):
                        mode = prefix + ('sync' if line.endswith('sync=1')
                                         else 'nosync')
                    elif line.startswith('BENCH getrandom ') and mode:
                        r = parse_bench([line])[0]['tpm0']['getrandom']
                        sync.setdefault(mode, {'us': []})['us'].append(
                            r['us'])
            for mode, driver, _ in SYNC_MODES:
                if len(sync.get(mode, {}).get('us', [])) != SYNC_ALTERNATE:
                    raise BenchError('%s: %s results' % (
                        mode, len(sync.get(mode, {}).get('us', []))))
                name = 'sync-%s-counting' % mode
                path = os.path.join(WORK, 'logs', name + '.trace')
                if os.path.exists(path):
                    os.unlink(path)
                _, _, marks = boot(
                    name, newest, initrds[newest], CONFIGS[0][2], False,
                    driver, 'bench.time=0.1 bench.runs=3 %s' % gr, timeout,
                    trace=path, events=COUNTING_EVENTS)
                sync[mode].update(
                    parse_counts(path, marks)['tpm0']['getrandom'])
        except (BenchError, subprocess.CalledProcessError, KeyError) as e:
            log('sync: %s' % e)
            failed.append('sync')
            sync = {}

    # Rows of a configuration whose every boot was disturbed: flagged
    shown = [(n, label + (' !' if n in every else '')) for n, label in labels]
    report = ['vtpm-pci benchmark%s, %s' %
              (' (quick)' if args.quick else '',
               time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))]
    report += machine(lines)
    report += ['', format_table(results, shown, seconds, runs, nboots), '']
    if ran:
        report += [format_boots(ran, labels, port_medians, left_out,
                                every), '']
    report += [format_oneshot(results, shown), '']
    report += [format_keys(results, shown), '']
    report += [format_host(results, shown), '']
    report += [format_idle(idle, results, shown, idle_seconds), '']
    report += [format_memory(mem, shown), '']
    if accesses:
        report += [format_accesses(accesses, shown), '']
    for name, b in brk.items():
        report += [format_breakdown(b, dict(labels)[name]), '']
    if sync:
        report += [format_sync(sync, newest, runs), '']
    report += targets(results, idle, brk, accesses, args.quick)
    report.append('(%.0f s in all)' % (time.monotonic() - t0))
    text = '\n'.join(report)
    print(text)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'results.txt'), 'w') as f:
        f.write(text + '\n')
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump({'quick': args.quick, 'machine': machine(lines),
                   'results': results, 'memory_kib': mem,
                   'port_us': ports, 'idle': idle, 'breakdown': brk,
                   'accesses': accesses, 'sync': sync, 'boots': boots,
                   'port_medians': port_medians, 'left_out': left_out,
                   'every_boot_disturbed': every, 'failed': failed},
                  f, indent=1, sort_keys=True)
    png = plot(results, shown, args.out)
    if png:
        log('plot: %s' % png)
    if failed:
        log('failed: ' + ', '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except BenchError as e:
        log(str(e))
        sys.exit(1)
