#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# End-to-end tests of vtpm-pci in a booted Linux guest.  Builds the guest
# image (build-image.sh), boots it under TCG with the card in several
# configurations, and reports every check the guest made as
# "ok - NAME" or "not ok - NAME" (a skipped one as "skip - NAME"), one a
# line, for build-aux/check.sh to count.
#
#   e2e.sh [CONFIG...]     default: all of msi intx iobase swtpm tpm12
#
# Each boot has a time limit; QEMU's exit status, set by the guest through
# isa-debug-exit, says whether the guest saw every check pass.

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../../build-aux/env.sh"

image=$VTPM_CACHE/guest/image
logs=$VTPM_CACHE/guest/logs
BOOT_TIMEOUT=${VTPM_E2E_TIMEOUT:-120}
GUEST_PASS=33           # (0x10 << 1) | 1, see init

configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(msi intx iobase swtpm tpm12)

report() {          # report NAME STATUS
    if [ "$2" -eq 0 ]; then
        echo "ok - $1"
    else
        echo "not ok - $1"
    fi
}

# boot NAME "KERNEL ARGS" QEMU-ARGS...: boot the image, report its checks
boot() {
    local name=$1 append=$2 log=$logs/$1.log status t0
    shift 2
    t0=$SECONDS
    # -nodefaults: SeaBIOS would wait 30 s for q35's default empty CD-ROM
    timeout "$BOOT_TIMEOUT" "$QEMU_BIN" -M q35 -nodefaults -m 256M -smp 1 \
        -display none -serial "file:$log" -no-reboot \
        -kernel "$image/bzImage" -initrd "$image/initrd.cpio" \
        -append "console=ttyS0 quiet panic=-1 hung_task_panic=1 \
                 sysctl.kernel.hung_task_timeout_secs=30 $append" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        "$@" < /dev/null
    status=$?
    tr -d '\r' < "$log" |
        sed -n "s@^VTPM-E2E: \(not ok\|ok\) - @\1 - e2e/$name: @p"
    report "e2e/$name: the guest passed all its checks ($((SECONDS - t0)) s)" \
        $((status != GUEST_PASS))
    if [ $status -ne $GUEST_PASS ]; then
        echo "# QEMU exited with $status; the end of $log:"
        tr -d '\r' < "$log" | tail -n 60 | sed 's/^/#   /'
    fi
}

run_swtpm() {
    local dir status
    dir=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-swtpm.XXXXXX")
    # With --daemon, swtpm returns once its control socket listens;
    # --terminate ends it when QEMU disconnects.
    if ! swtpm socket --tpm2 --daemon --terminate \
            --tpmstate "dir=$dir" --pid "file=$dir/pid" \
            --ctrl "type=unixio,path=$dir/sock" --log "file=$dir/log"; then
        report "e2e/swtpm: start swtpm" 1
        rm -rf "$dir"
        return
    fi
    boot swtpm "vtpm.irq=msi" \
        -chardev "socket,id=chrtpm,path=$dir/sock" \
        -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device vtpm-pci,tpmdev=tpm0
    # Normally gone already (--terminate), with its pid file
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2> /dev/null; then
        kill "$(cat "$dir/pid")"
    fi
    rm -rf "$dir"
}

t0=$SECONDS
"$here/build-image.sh"
status=$?
report "e2e: build the guest image, the driver and the tools" $status
[ $status -eq 0 ] || exit 1
mkdir -p "$logs"

for config in "${configs[@]}"; do
    case $config in
    msi)
        boot msi "vtpm.irq=msi" -device vtpm-pci
        ;;
    intx)
        boot intx "vtpm.irq=intx pci=nomsi" -device vtpm-pci
        ;;
    iobase)
        if "$QEMU_BIN" -device vtpm-pci,help 2>&1 | grep -q '^  iobase='; then
            boot iobase "vtpm.iobase=0x2000" -device vtpm-pci,iobase=0x2000
        else
            echo "skip - e2e/iobase: this QEMU's vtpm-pci has no iobase property"
        fi
        ;;
    swtpm)
        run_swtpm
        ;;
    tpm12)
        boot tpm12 "vtpm.family=1.2" \
            -tpmdev libtpms,id=tpm0,version=1.2 -device vtpm-pci,tpmdev=tpm0
        ;;
    *)
        echo "e2e: unknown configuration $config" >&2
        exit 2
        ;;
    esac
done
echo "# e2e: $((SECONDS - t0)) s"
