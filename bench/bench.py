#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vtpm-pci against the virtual TPMs users run today.

Boots the guest test image of contrib/vtpm-pci for each configuration,
three times in a full run (the configurations in turn, boot after boot),
runs bench/tpm2bench in it through /dev/tpm0 and /dev/tpmrm0, runs the
same workloads against libtpms called directly on the host (the floor),
and prints: operations per second (the median over the boots of each
boot's median of several runs, and their range), each with its ratio to
tpm-crb + swtpm measured in the same run on the same kernel; the latency
of single commands sent 1 ms and 100 ms apart; the host CPU time QEMU
and swtpm spent in each measurement and with the guest idle; and, for
vtpm-pci, the commands the card executed against those the benchmark
sent, read from the card (qom-get) at the guest's marks on its second
serial port: a measurement where they differ by more than 1% is
disturbed, and reported as such rather than as a number.

The kernel's hwrng thread would use the TPM during the measurements: the
guest boots with rng_core.default_quality=0 and unhooks the TPM from
/dev/hwrng ("none" in rng_current, Linux 6.2 and later), so the main
kernel line is the oldest one that can (6.12, Debian 13's; on 6.1 the
thread keeps reading the TPM once per reseed interval whatever its
quality).  The newest (7.x) adds its rows for vtpm-pci + libtpms, with
and without TPM_CHIP_FLAG_SYNC, and tpm-crb + swtpm.  Then host memory
(QEMU's and swtpm's RSS), and the device overhead of vtpm-pci + libtpms
for GetRandom(32): where QEMU spends its time per command outside
libtpms, from a run with trace events on; and, on the newest kernel,
the port accesses per GetRandom(32) with and without
TPM_CHIP_FLAG_SYNC.

    bench/bench.py [--quick] [--out DIR] [--only CONFIG,...]

--quick runs short, and leaves out the newest kernel's row without SYNC
and the SYNC port counts.

Run it through "make bench" (or "make bench QUICK=1"), which builds QEMU
first.  The table, a JSON file of the numbers and a gnuplot image go to
DIR (default $VTPM_CACHE/bench/out).  Exits non-zero if any configuration
fails to run; never because of a number.
"""

import argparse
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
# Single commands with a pause before each: gap, label
ONESHOTS = [('oneshot-1ms', '1 ms apart'), ('oneshot-100ms', '100 ms apart')]
# What the guest measures between marks, on each device
MEASURED = [w[0] for w in WORKLOADS] + [o[0] for o in ONESHOTS]
DEVICES = ['tpm0', 'tpmrm0']
# A full run boots each configuration this many times
BOOTS = 3
# Seconds of the TPM at rest, measured before the workloads
IDLE, IDLE_QUICK = 20, 2
# A measurement where the card executed more (or fewer) commands than
# the benchmark sent, by more than this share, is disturbed: no number
DISTURBED = 0.01
REFERENCE = 'crb-swtpm'

# name, label, QEMU arguments, TPM (swtpm or None), driver in the guest
# The card, with an id for qom-get of its command count
CARD_ID = 'card'
CARD = 'vtpm-pci,id=' + CARD_ID
SWTPM_ARGS = ['-chardev', 'socket,id=chrtpm,path={sock}',
              '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm']
LIBTPMS_ARGS = ['-tpmdev', 'libtpms,id=tpm0']
CONFIGS = [
    ('vtpm-libtpms', 'vtpm-pci + libtpms (MSI-X)',
     ['-device', CARD], False, 'vtpm'),
    ('vtpm-libtpms-poll', 'vtpm-pci + libtpms (polling)',
     ['-device', CARD], False, 'vtpm-poll'),
    ('vtpm-libtpms-nopoll', 'vtpm-pci + libtpms (poll-ns=0)',
     ['-device', CARD + ',poll-ns=0'], False, 'vtpm'),
    ('vtpm-swtpm', 'vtpm-pci + swtpm',
     SWTPM_ARGS + ['-device', CARD + ',tpmdev=tpm0'], True, 'vtpm'),
    ('crb-swtpm', 'tpm-crb + swtpm',
     SWTPM_ARGS + ['-device', 'tpm-crb,tpmdev=tpm0'], True, 'builtin'),
    ('tis-swtpm', 'tpm-tis + swtpm',
     SWTPM_ARGS + ['-device', 'tpm-tis,tpmdev=tpm0'], True, 'builtin'),
    ('crb-libtpms', 'tpm-crb + libtpms',
     LIBTPMS_ARGS + ['-device', 'tpm-crb,tpmdev=tpm0'], False, 'builtin'),
]
FLOOR = ('floor', 'libtpms on the host (floor)')
# The newest kernel's rows: NAME@LINE, e.g. vtpm-libtpms@7.3.  Without
# TPM_CHIP_FLAG_SYNC: the driver loaded with sync=0, on the same kernel.
NEWEST = [
    ('vtpm-libtpms', None),
    ('vtpm-libtpms-nosync', ('vtpm-pci + libtpms (MSI-X, no SYNC)',
                             ['-device', CARD], False, 'vtpm-nosync')),
    ('crb-swtpm', None),
]
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
    command count, the CPU time of QEMU and swtpm, the time"""

    def __init__(self, qmp, qemu_pid, swtpm_pid, card):
        self.qmp, self.pids, self.card = qmp, (qemu_pid, swtpm_pid), card

    def sample(self):
        commands = None
        if self.card:
            commands = self.qmp.command(
                'qom-get', path='/machine/peripheral/' + CARD_ID,
                property='commands')
        qemu, swtpm = (cpu_seconds(p) if p else None for p in self.pids)
        return {'t': time.monotonic(), 'commands': commands,
                'qemu_cpu': qemu, 'swtpm_cpu': swtpm}


def interval(begin, end, sent):
    """A measurement between two marks"""
    m = {'seconds': end['t'] - begin['t'], 'sent': sent}
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
                              any(CARD_ID in a for a in args))
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
    return lines, mem, marks


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


def run_floor(seconds, runs):
    out = subprocess.run([os.path.join(WORK, 'tpm2bench-host'), '-t',
                          str(seconds), '-r', str(runs), 'libtpms'] +
                         [w[0] for w in WORKLOADS], check=True,
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


def parse_counts(path):
    """Per GetRandom(32) command: port accesses, registers and DATA, and
    the time libtpms takes (measured around TPMLIB_Process)"""
    events = read_trace(path)
    first, last, ncmd = loop_window(events, path)
    reg = data = 0
    lib_us = []
    for _, name, args in events[first:last]:
        if name in ('vtpm_pci_io_read', 'vtpm_pci_io_write'):
            if int(args.split()[1], 16) == REG_DATA:
                data += 1
            else:
                reg += 1
        elif name == 'tpm_libtpms_command':
            lib_us.append(int(re.search(r', (-?\d+) ns in libtpms',
                                        args).group(1)) / 1000)
    return {'reg_accesses': reg / ncmd, 'data_accesses': data / ncmd,
            'libtpms_us': statistics.median(lib_us)}


def breakdown(timing, counts, port_us, untraced_us):
    b = dict(timing, **counts)
    b['port_us'] = port_us
    b['ports_us'] = (b['reg_accesses'] + b['data_accesses']) * port_us
    b['handoff_us'] = b['response_us'] - b['libtpms_us']
    b['irq_us'] = b['irqs'] * b['irq_latency_us']
    b['qemu_us'] = b['ports_us'] + b['handoff_us'] + b['irq_us']
    b['ratio'] = b['qemu_us'] / b['libtpms_us']
    b['untraced_us'] = untraced_us
    b['rest_us'] = untraced_us - b['qemu_us'] - b['libtpms_us']
    return b


def format_breakdown(b):
    r = ['Device overhead: vtpm-pci + libtpms (MSI-X), GetRandom(32) '
         'through /dev/tpm0, per command',
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


LABEL_WIDTH = 43


def spread(r, key, fmt):
    """'lo-hi' of a median over boots, or '' for one boot"""
    if r.get('boots', 1) < 2 or key + '_lo' not in r:
        return ''
    return (fmt + '-' + fmt) % (r[key + '_lo'], r[key + '_hi'])


def format_table(results, labels, seconds, runs, nboots):
    head1 = '%-*s %-11s' % (LABEL_WIDTH, '', '')
    head2 = '%-*s %-11s' % (LABEL_WIDTH, 'configuration', 'device')
    for _, label, unit in WORKLOADS:
        head1 += ' | %-33s' % label
        head2 += ' | %9s %14s %8s' % (unit + 's/s', 'range', 'ratio')
    lines = ['%s/s: the median over %d boots of each boot\'s median of %d '
             'runs of ~%g s; range: the boots\' lowest and highest; ratio: '
             'to tpm-crb + swtpm, same device, same run, same kernel; '
             '"disturbed": the card executed commands the benchmark did not '
             'send, in every boot' % ('ops', nboots, runs, seconds),
             head1, head2, '-' * len(head2)]
    for name, label in labels:
        ref = results.get(reference(name), {})
        for dev, res in sorted(results.get(name, {}).items()):
            row = '%-*s %-11s' % (LABEL_WIDTH, label, dev if dev == 'host'
                                  else '/dev/' + dev)
            for w, _, _ in WORKLOADS:
                r = res.get(w)
                base = ref.get('tpm0' if dev == 'host' else dev, {}).get(w)
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


def format_idle(idle, labels, seconds):
    lines = ['Host CPU with the guest idle (no TPM command for %g s, '
             'before the workloads): cores busy, QEMU + swtpm; median and '
             'range over the boots' % seconds,
             '%-*s %8s %17s' % (LABEL_WIDTH, 'configuration', 'cores',
                                'range')]
    for name, label in labels:
        a = idle.get(name)
        if not a or 'cores' not in a:
            continue
        lines.append('%-*s %8.4f %17s' % (LABEL_WIDTH, label, a['cores'],
                                          spread(a, 'cores', '%.4f')))
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


def targets(results, idle, brk, quick):
    """The issue's targets, each met or missed; the quick run only prints
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
    if brk:
        out.append('Target: QEMU outside libtpms <= 2x libtpms (GetRandom): '
                   '%.1fx: %s' % (brk['ratio'], verdict(brk['ratio'] <= 2)))
    ours = get('vtpm-libtpms', 'tpm0', 'getrandom', 'host')
    ref = get(REFERENCE, 'tpm0', 'getrandom', 'host')
    if ours and ref and ours.get('cpu_us_per_cmd') and \
            ref.get('cpu_us_per_cmd'):
        x, y = ours['cpu_us_per_cmd'], ref['cpu_us_per_cmd']
        out.append('Target: host CPU per command <= 1/10 of tpm-crb + '
                   'swtpm\'s (GetRandom, /dev/tpm0): %.2f us against %.1f '
                   'us, 1/%.0f: %s' % (x, y, y / x, verdict(x * 10 <= y)))
    ours, ref = idle.get('vtpm-libtpms'), idle.get(REFERENCE)
    if ours and ref and 'cores' in ours and 'cores' in ref:
        out.append('Target: idle cost <= tpm-crb + swtpm\'s + 0.01 cores: '
                   '%.4f against %.4f: %s' % (
                       ours['cores'], ref['cores'],
                       verdict(ours['cores'] <= ref['cores'] + 0.01)))
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


# --- main ---------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='short runs, for CI: a few minutes in all')
    ap.add_argument('--out', default=os.path.join(WORK, 'out'),
                    help='where to write results.txt, results.json, '
                    'plot.png')
    ap.add_argument('--only', help='comma-separated configurations (and '
                    '"floor", "trace", "sync"; NAME@LINE for the newest '
                    'kernel\'s rows); default: all')
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
    plan = [c + (main_line,) for c in CONFIGS]
    by_name = dict((c[0], c) for c in CONFIGS)
    for name, config in NEWEST:
        if args.quick and config:
            continue        # the quick run has the rows the README needs
        c = by_name[name] if not config else (name,) + config
        plan.append(('%s@%s' % (name, newest), '%s, Linux %s' %
                     (c[1], newest)) + tuple(c[2:]) + (newest,))
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
    # the host's conditions falls on all of them alike
    nboots = 1 if args.quick else BOOTS
    boots = {}
    for b in range(nboots):
        for name, label, qargs, swtpm, driver, line in plan:
            if name not in only or name in failed:
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
            boots.setdefault(name, []).append(
                {'results': res, 'port': port, 'memory': m,
                 'idle': marks.get(('idle', '-'))})
            missing = [(d, w) for d in DEVICES for w in MEASURED
                       if 'mark' not in res.get(d, {}).get(w, {})]
            if missing:
                log('%s: no result for %s' % (name, missing))
                failed.append(name)
            log('%s: %.0f s' % (name, time.monotonic() - t))
    for name, bs in boots.items():
        results[name] = aggregate([b['results'] for b in bs])
        idle[name] = aggregate_marks([b['idle'] for b in bs if b['idle']])
        ports[name] = median_of([b['port'] for b in bs])
        mem[name] = bs[-1]['memory']
    if FLOOR[0] in only:
        results[FLOOR[0]] = run_floor(seconds, runs)

    brk = None
    if 'trace' in only:
        log('trace: booting vtpm-pci + libtpms twice, with trace events')
        # Not NAME.log: that is the boot's console log
        trace = os.path.join(WORK, 'logs', 'trace-timing.trace')
        counting = os.path.join(WORK, 'logs', 'trace-counting.trace')
        gr = 'bench.devices=tpm0 bench.workloads=getrandom bench.portcost=0'
        try:
            for path, events, t in ((trace, TIMING_EVENTS, seconds),
                                    (counting, COUNTING_EVENTS, 0.1)):
                if os.path.exists(path):
                    os.unlink(path)
                boot(os.path.splitext(os.path.basename(path))[0], main_line,
                     initrds[main_line], CONFIGS[0][2], False, 'vtpm',
                     'bench.time=%g bench.runs=3 %s' % (t, gr), timeout,
                     trace=path, events=events)
            timing, counts = parse_timing(trace), parse_counts(counting)
            guest = results.get('vtpm-libtpms', {}).get('tpm0', {})
            if ports.get('vtpm-libtpms') and guest.get('getrandom'):
                brk = breakdown(timing, counts, ports['vtpm-libtpms'],
                                guest['getrandom']['us'])
            else:
                log('trace: the breakdown needs the vtpm-libtpms run')
        except (BenchError, subprocess.CalledProcessError) as e:
            log(str(e))
            failed.append('trace')

    sync = {}
    if 'sync' in only:
        log('sync: vtpm-pci + libtpms on Linux %s, the driver reloaded with '
            'and without TPM_CHIP_FLAG_SYNC %d times, and port accesses '
            'counted' % (newest, SYNC_ALTERNATE))
        gr = 'bench.devices=tpm0 bench.workloads=getrandom bench.portcost=0'
        try:
            for prefix, driver in (('', 'vtpm'), ('poll-', 'vtpm-poll')):
                out, _, _ = boot('sync-%salternate' % prefix, newest,
                              initrds[newest], CONFIGS[0][2], False, driver,
                              '%s %s bench.alternate=%d' % (
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
                boot(name, newest, initrds[newest], CONFIGS[0][2], False,
                     driver, 'bench.time=0.1 bench.runs=3 %s' % gr, timeout,
                     trace=path, events=COUNTING_EVENTS)
                sync[mode].update(parse_counts(path))
                sync[mode]['commands'] = loop_window(read_trace(path),
                                                     path)[2]
        except (BenchError, subprocess.CalledProcessError, KeyError) as e:
            log('sync: %s' % e)
            failed.append('sync')
            sync = {}

    report = ['vtpm-pci benchmark%s, %s' %
              (' (quick)' if args.quick else '',
               time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))]
    report += machine(lines)
    report += ['', format_table(results, labels, seconds, runs, nboots), '']
    report += [format_oneshot(results, labels), '']
    report += [format_host(results, labels), '']
    report += [format_idle(idle, labels, idle_seconds), '']
    report += [format_memory(mem, labels), '']
    if brk:
        report += [format_breakdown(brk), '']
    if sync:
        report += [format_sync(sync, newest, runs), '']
    report += targets(results, idle, brk, args.quick)
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
                   'sync': sync, 'boots': boots,
                   'failed': failed},
                  f, indent=1, sort_keys=True)
    png = plot(results, labels, args.out)
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
