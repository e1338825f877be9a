#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Run QEMU with a time limit, as timeout(1) does, and when it runs out,
record where the machine stood before stopping QEMU.

    run-limited.py SECONDS RECORD QEMU [ARG...]

QEMU gets a QMP socket of its own.  If it is still running after
SECONDS, the answers of a few monitor commands go to RECORD: whether the
VM runs, the vCPU's registers (less the FPU's and the vector registers),
the TPM QEMU has, and the control area of a tpm-crb (a command the guest
started and the TPM never answered leaves CTRL_START set).  QEMU is
then stopped with SIGTERM, and this exits with 124.  Otherwise it exits
with QEMU's status.  The monitor is reached through QEMU's own Python
QMP package, from the QEMU source tree ($QEMU_SRC).
"""

import os
import signal
import subprocess
import sys
import tempfile

# The monitor's commands, in the order of the record
RECORD = [
    'info status',
    'info registers',
    'info tpm',
    # tpm-crb: CTRL_REQ, CTRL_STS, CTRL_CANCEL, CTRL_START
    'xp/4wx 0xfed40040',
]
# Lines of "info registers" left out
LEFT_OUT = ('FCW=', 'FPR', 'XMM', 'YMM', 'ZMM', 'DR')
TIMED_OUT = 124         # timeout(1)'s status


def record(qmp_path, path):
    sys.path.insert(0, os.path.join(os.environ['QEMU_SRC'], 'python'))
    # pylint: disable=import-outside-toplevel
    from qemu.qmp.legacy import QEMUMonitorProtocol

    with open(path, 'w', encoding='utf-8') as out:
        try:
            with QEMUMonitorProtocol(qmp_path) as mon:
                mon.settimeout(10)
                mon.connect()
                for cmd in RECORD:
                    answer = mon.cmd('human-monitor-command',
                                     **{'command-line': cmd})
                    lines = [line for line in answer.splitlines(True)
                             if not line.startswith(LEFT_OUT)]
                    out.write('(qemu) %s\n%s' % (cmd, ''.join(lines)))
        except Exception as e:      # pylint: disable=broad-except
            out.write('the monitor did not answer: %r\n' % e)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    seconds, record_path, qemu = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix='vtpm-e2e-qmp-') as tmp:
        qmp_path = os.path.join(tmp, 'qmp.sock')
        proc = subprocess.Popen(qemu + ['-qmp', 'unix:%s,server=on,wait=off'
                                        % qmp_path])
        # Stopped itself, this stops QEMU, as timeout(1) does
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, _: proc.send_signal(signum))
        try:
            status = proc.wait(seconds)
            # Killed by a signal: the status of a shell's child
            sys.exit(status if status >= 0 else 128 - status)
        except subprocess.TimeoutExpired:
            record(qmp_path, record_path)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            sys.exit(TIMED_OUT)


if __name__ == '__main__':
    main()
