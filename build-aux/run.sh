#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Start the QEMU built here with a vtpm-pci card on a q35 machine, on this
# terminal.  Arguments are passed on to QEMU (more devices, another
# machine type, ...).
#
# GUEST=linux (the default) boots the guest image of the newest kernel
# line (contrib/vtpm-pci/guest, built here from Debian's packages) to a
# shell: Debian's kernel with the tpm_vtpm_pci driver loaded, lspci,
# Debian's tpm2-tools and vtpm-probe.  "exit" powers the guest off, and
# QEMU exits.  GUEST=none starts the machine alone, with no disk.
#
# On a terminal: -nographic, the guest's serial console and QEMU's monitor
# share it.  Ctrl-a c switches between them; in the monitor, "info pci"
# shows the card and "quit" ends QEMU (so does Ctrl-a x).
#
# Otherwise (a pipe or a file on standard input), QEMU's monitor reads
# its commands from standard input, so a script can do:
#     printf 'info pci\nquit\n' | make run GUEST=none

set -euo pipefail
. "$(dirname "$0")/env.sh"

GUEST=${GUEST:-linux}
guest=$VTPM_TOP/contrib/vtpm-pci/guest

# -nodefaults: no empty CD-ROM for SeaBIOS to wait 30 s on, no NIC
args=(-M q35 -m 512M -nodefaults -device vtpm-pci)
case $GUEST in
none)
    what="QEMU" ;;
linux)
    "$guest/kernels.sh" prepare
    line=$("$guest/kernels.sh" lines | tail -n 1 | cut -d' ' -f1)
    "$guest/build-image.sh" "$line"
    image=$VTPM_CACHE/guest/image/$line
    args+=(-kernel "$image/bzImage" -initrd "$image/initrd.cpio"
           -append "console=ttyS0 quiet no_timer_check vtpm.shell=1")
    what="a Linux $(cat "$image/abi") guest" ;;
*)
    echo "run: GUEST=$GUEST: 'linux' or 'none'" >&2
    exit 2 ;;
esac

if [ -t 0 ]; then
    echo "vtpm-pci: starting $what; Ctrl-a c for QEMU's monitor" \
         "('info pci', 'quit'), Ctrl-a x to quit" >&2
    args+=(-display none -serial mon:stdio)
else
    args+=(-display none -serial none -monitor stdio)
fi
exec "$QEMU_BIN" "${args[@]}" "$@"
