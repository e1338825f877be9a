#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# vtpm-pci in a QEMU configured without libtpms ($QEMU_BUILD_NOLIBTPMS):
# it builds and links no libtpms, the card is there and works with
# -tpmdev emulator (swtpm), and "-device vtpm-pci" without tpmdev is
# refused with an error that names libtpms.  Prints "ok - NAME" and
# "not ok - NAME" lines, one per check and one per qtest program, for
# check.sh.
#
#   check-nolibtpms.sh          build, then check
#   check-nolibtpms.sh build    build only (check.sh starts it beside
#                               other stages: a second build waits for the
#                               first, then finds everything up to date)

set -uo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

build=$QEMU_BUILD_NOLIBTPMS
qemu=$build/qemu-system-x86_64

result() {          # result NAME STATUS
    if [ "$2" -eq 0 ]; then
        echo "ok - nolibtpms: $1"
    else
        echo "not ok - nolibtpms: $1"
    fi
}

build_all() {
    local t targets=(qemu-system-x86_64) lock status

    for t in "${QTESTS_NOLIBTPMS[@]}"; do
        targets+=("tests/qtest/$t")
    done
    mkdir -p "$(dirname "$build")"
    exec {lock}> "$build.lock"
    flock "$lock"
    configure_qemu "$build" "$VTPM_CACHE/configure-nolibtpms.log" \
        "${QEMU_CONFIGURE_ARGS_NOLIBTPMS[@]}" --enable-seccomp &&
        ninja -C "$build" "${targets[@]}" > "$build.log" 2>&1
    status=$?
    exec {lock}>&-
    return $status
}

if [ "${1:-}" = build ]; then
    build_all
    exit
fi
build_all
status=$?
result "QEMU and its qtests build without libtpms" $status
if [ $status -ne 0 ]; then
    tail -n 20 "$build.log" | sed 's/^/#   /'
    exit 0
fi
link_firmware "$build"

! ldd "$qemu" | grep -q libtpms
result "qemu-system-x86_64 does not link libtpms" $?
"$qemu" -device help 2>&1 | grep -q '^name "vtpm-pci", bus PCI'
result "-device help lists vtpm-pci" $?
! "$qemu" -tpmdev help 2>&1 | grep -q libtpms
result "-tpmdev help lists no libtpms backend" $?
out=$("$qemu" -M q35 -display none -nodefaults -S -device vtpm-pci 2>&1)
[ $? -ne 0 ] &&
    grep -q "'tpmdev' property is required: this QEMU was built without libtpms" <<< "$out"
result "-device vtpm-pci without tpmdev is refused, naming libtpms" $?

# Each program's cases are its own (vtpm-pci-swtpm-test: the card with
# swtpm, the refusal through device_add); here a program passes or not
for t in "${QTESTS_NOLIBTPMS[@]}"; do
    meson test -C "$build" --no-rebuild --print-errorlogs \
        "qtest-x86_64/$t" > "$build-$t.log" 2>&1
    status=$?
    result "qtest $t" $status
    [ $status -eq 0 ] || tail -n 20 "$build-$t.log" | sed 's/^/#   /'
done
