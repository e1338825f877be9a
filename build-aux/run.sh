#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Start the QEMU built here with a vtpm-pci card: a q35 machine with no
# disk, on this terminal.  Arguments are passed on to QEMU (a disk or a
# kernel to boot, another machine type, more devices).
#
# On a terminal: -nographic, the guest's serial console and QEMU's monitor
# share it.  Ctrl-a c switches between them; in the monitor, "info pci"
# shows the card and "quit" ends QEMU (so does Ctrl-a x).
#
# Otherwise (a pipe or a file on standard input), QEMU's monitor reads
# its commands from standard input, so a script can do:
#     printf 'info pci\nquit\n' | make run

set -euo pipefail
. "$(dirname "$0")/env.sh"

# -nodefaults: no empty CD-ROM for SeaBIOS to wait 30 s on, no NIC
args=(-M q35 -m 512M -nodefaults -device vtpm-pci)
if [ -t 0 ]; then
    echo "vtpm-pci: starting QEMU; Ctrl-a c for the monitor" \
         "('info pci', 'quit'), Ctrl-a x to quit" >&2
    args+=(-display none -serial mon:stdio)
else
    args+=(-display none -serial none -monitor stdio)
fi
exec "$QEMU_BIN" "${args[@]}" "$@"
