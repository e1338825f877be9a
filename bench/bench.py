#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vtpm-pci against the virtual TPMs users run today.

Boots the guest test image of contrib/vtpm-pci once per configuration,
runs bench/tpm2bench in it through /dev/tpm0 and /dev/tpmrm0, runs the
same workloads against libtpms called directly on the host (the floor),
and prints one table: operations per second and microseconds per
operation (the median of several runs), each with its ratio to tpm-crb +
swtpm measured in the same run on the same kernel.  Every configuration
runs on the guest image's oldest kernel line (Debian 12's 6.1); the
newest (7.x) adds its rows for vtpm-pci + libtpms, with and without
TPM_CHIP_FLAG_SYNC, and tpm-crb + swtpm.  Then host memory (QEMU's and
swtpm's RSS), and the device overhead of vtpm-pci + libtpms for
GetRandom(32): where QEMU spends its time per command outside libtpms,
from a run with trace events on; and, on the newest kernel, the port
accesses per GetRandom(32) with and without TPM_CHIP_FLAG_SYNC.

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
import shutil
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
]
DEVICES = ['tpm0', 'tpmrm0']
REFERENCE = 'crb-swtpm'

# name, label, QEMU arguments, TPM (swtpm or None), driver in the guest
SWTPM_ARGS = ['-chardev', 'socket,id=chrtpm,path={sock}',
              '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm']
LIBTPMS_ARGS = ['-tpmdev', 'libtpms,id=tpm0']
CONFIGS = [
    ('vtpm-libtpms', 'vtpm-pci + libtpms (MSI-X)',
     ['-device', 'vtpm-pci'], False, 'vtpm'),
    ('vtpm-libtpms-poll', 'vtpm-pci + libtpms (polling)',
     ['-device', 'vtpm-pci'], False, 'vtpm-poll'),
    ('vtpm-libtpms-nopoll', 'vtpm-pci + libtpms (poll-ns=0)',
     ['-device', 'vtpm-pci,poll-ns=0'], False, 'vtpm'),
    ('vtpm-swtpm', 'vtpm-pci + swtpm',
     SWTPM_ARGS + ['-device', 'vtpm-pci,tpmdev=tpm0'], True, 'vtpm'),
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
                             ['-device', 'vtpm-pci'], False, 'vtpm-nosync')),
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


def build(lines):
    """tpm2bench for the guest and for the host, and an initramfs for each
    kernel line in LINES: the guest image's, with tpm2bench and the
    benchmark's init.  Returns {line: initrd}."""
    src = os.path.join(TOP, 'bench', 'tpm2bench.c')
    cflags = ['-O2', '-Wall', '-Wextra', '-Werror', '-I', COMMON]
    root = os.path.join(WORK, 'root')
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, 'sbin'))
    subprocess.run(['gcc'] + cflags + ['-static', '-o',
                    os.path.join(root, 'sbin', 'tpm2bench'), src],
                   check=True)
    subprocess.run(['gcc'] + cflags + ['-DHAVE_LIBTPMS',
                    '-Wno-unused-parameter', '-o',
                    os.path.join(WORK, 'tpm2bench-host'), src, '-ltpms'],
                   check=True)
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


def boot(name, line, initrd, qemu_args, uses_swtpm, driver, params,
         timeout, trace=None, events=()):
    """Boot the image with the benchmark's init.  Returns the guest's
    console lines and the RSS of QEMU and swtpm (KiB) once the guest had
    finished its work."""
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
        append = ('console=ttyS0 quiet panic=-1 rdinit=/bench-init '
                  'bench.driver=%s %s' % (driver, params))
        cmd = [QEMU, '-M', 'q35', '-nodefaults', '-m', '256M', '-smp', '1',
               '-display', 'none', '-serial', 'file:' + console,
               '-no-reboot',
               '-kernel', os.path.join(IMAGES, line, 'bzImage'),
               '-initrd', initrd, '-append', append,
               '-device', 'isa-debug-exit,iobase=0xf4,iosize=4'] + args
        if trace:
            cmd += ['-msg', 'timestamp=on', '-D', trace]
            for ev in events:
                cmd += ['-trace', ev]
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        mem = None
        deadline = time.monotonic() + timeout
        try:
            while qemu.poll() is None:
                if time.monotonic() > deadline:
                    qemu.kill()
                    qemu.wait()
                    raise BenchError('%s: no result in %d s' % (name,
                                                                timeout))
                if mem is None and 'BENCH-DONE' in read_console(console):
                    mem = {'qemu': rss_kib(qemu.pid),
                           'swtpm': swtpm_pid and rss_kib(swtpm_pid)}
                time.sleep(0.1)
        finally:
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
            if swtpm_pid and rss_kib(swtpm_pid) is not None:
                os.kill(swtpm_pid, 15)
        lines = read_console(console).splitlines()
        if qemu.returncode != GUEST_PASS or 'BENCH-DONE' not in lines:
            tail = '\n'.join('#   ' + line for line in lines[-30:])
            raise BenchError('%s: QEMU exited with %d; the end of %s:\n%s'
                             % (name, qemu.returncode, console, tail))
    return lines, mem


def read_console(path):
    try:
        with open(path, errors='replace') as f:
            return f.read().replace('\r', '')
    except FileNotFoundError:
        return ''


def parse_bench(lines, default_target=None):
    """{target: {workload: {us, ops, min, max, runs, iters}}} and the
    port access cost (µs) from tpm2bench's lines"""
    res, port = {}, None
    for line in lines:
        f = line.split()
        if len(f) == 9 and f[0] == 'BENCH':
            target = default_target or f[2].replace('/dev/', '')
            res.setdefault(target, {})[f[1]] = {
                'us': float(f[3]), 'ops': float(f[4]), 'min': float(f[5]),
                'max': float(f[6]), 'runs': int(f[7]), 'iters': int(f[8])}
        elif len(f) == 4 and f[0] == 'PORTCOST':
            port = float(f[2])
    return res, port


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
    r.append('  %-74s %8.1f us' %
             ('  of which the guest (syscall, TPM core, driver) under TCG',
              b['rest_us']))
    return '\n'.join(r)


# --- reporting --------------------------------------------------------------

def reference(name):
    """The row a row's ratio is to: tpm-crb + swtpm on the same kernel"""
    line = name.partition('@')[2]
    return REFERENCE + ('@' + line if line else '')


LABEL_WIDTH = 43


def format_table(results, labels, seconds, runs):
    head1 = '%-*s %-11s' % (LABEL_WIDTH, '', '')
    head2 = '%-*s %-11s' % (LABEL_WIDTH, 'configuration', 'device')
    for _, label, unit in WORKLOADS:
        head1 += ' | %-28s' % label
        head2 += ' | %9s %8s %9s' % (unit + 's/s', 'us/' + unit, 'ratio')
    lines = ['ops/s and us/op: the median of %d runs of ~%g s each; ratio: '
             'ops/s over those of tpm-crb + swtpm, same device, same run, '
             'same kernel' % (runs, seconds), head1, head2,
             '-' * len(head2)]
    for name, label in labels:
        ref = results.get(reference(name), {})
        for dev, res in sorted(results.get(name, {}).items()):
            row = '%-*s %-11s' % (LABEL_WIDTH, label, dev if dev == 'host'
                                  else '/dev/' + dev)
            for w, _, _ in WORKLOADS:
                r = res.get(w)
                base = ref.get('tpm0' if dev == 'host' else dev, {}).get(w)
                if not r:
                    row += ' | %9s %8s %9s' % ('-', '-', '-')
                    continue
                ratio = ('%8.1fx' % (r['ops'] / base['ops'])) if base else \
                    '%9s' % '-'
                row += ' | %9.0f %8.1f %9s' % (r['ops'], r['us'], ratio)
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
        % (lines[0][1], lines[-1][0], lines[-1][1]),
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
                vals.append('%.1f' % r['ops'] if r else '-')
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
    main_line, newest = lines[0][0], lines[-1][0]

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
    params = 'bench.time=%g bench.runs=%d' % (seconds, runs)

    results, mem, ports, failed = {}, {}, {}, []
    labels = [(p[0], p[1]) for p in plan] + [FLOOR]
    for name, label, qargs, swtpm, driver, line in plan:
        if name not in only:
            continue
        log('%s: booting (%s)' % (name, label))
        t = time.monotonic()
        try:
            out, m = boot(name, line, initrds[line], qargs, swtpm, driver,
                          params, timeout)
        except (BenchError, subprocess.CalledProcessError) as e:
            log(str(e))
            failed.append(name)
            continue
        results[name], ports[name] = parse_bench(out)
        mem[name] = m
        missing = [(d, w) for d in DEVICES for w, _, _ in WORKLOADS
                   if w not in results[name].get(d, {})]
        if missing:
            log('%s: no result for %s' % (name, missing))
            failed.append(name)
        log('%s: %.0f s' % (name, time.monotonic() - t))
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
                out, _ = boot('sync-%salternate' % prefix, newest,
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
    report += ['', format_table(results, labels, seconds, runs), '']
    report += [format_memory(mem, labels), '']
    if brk:
        report += [format_breakdown(brk), '']
    if sync:
        report += [format_sync(sync, newest, runs), '']
    ref = results.get(REFERENCE, {}).get('tpm0', {}).get('getrandom')
    ours = results.get('vtpm-libtpms', {}).get('tpm0', {}).get('getrandom')
    if ref and ours:
        report.append('Target 1, vtpm-pci + libtpms >= 20x tpm-crb + swtpm '
                      '(GetRandom, /dev/tpm0): %.1fx: %s'
                      % (ours['ops'] / ref['ops'],
                         'met' if ours['ops'] >= 20 * ref['ops'] else
                         'missed'))
    if brk:
        report.append('Target 2, QEMU outside libtpms <= 3x libtpms '
                      '(GetRandom): %.1fx: %s'
                      % (brk['ratio'], 'met' if brk['ratio'] <= 3 else
                         'missed'))
    report.append('(%.0f s in all)' % (time.monotonic() - t0))
    text = '\n'.join(report)
    print(text)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'results.txt'), 'w') as f:
        f.write(text + '\n')
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump({'quick': args.quick, 'machine': machine(lines),
                   'results': results, 'memory_kib': mem,
                   'port_us': ports, 'breakdown': brk, 'sync': sync,
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
