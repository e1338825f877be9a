#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Configure (once, or when the configuration changes) and build the QEMU
# binary and the test programs the suite runs.

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

stamp=$QEMU_BUILD/.vtpm-configure-args
want=$(printf '%s\n' "${QEMU_CONFIGURE_ARGS[@]}")
if [ ! -f "$QEMU_BUILD/build.ninja" ] ||
   [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "build: configuring QEMU in $QEMU_BUILD"
    rm -rf "$QEMU_BUILD"
    mkdir -p "$QEMU_BUILD"
    (cd "$QEMU_BUILD" &&
     "$QEMU_SRC/configure" "${QEMU_CONFIGURE_ARGS[@]}") \
        > "$VTPM_CACHE/configure.log" 2>&1 || {
        tail -n 30 "$VTPM_CACHE/configure.log" >&2
        echo "build: configure failed; see $VTPM_CACHE/configure.log" >&2
        exit 1
    }
    echo "$want" > "$stamp"
fi

targets=(qemu-system-x86_64)
for t in "${QTESTS[@]}"; do
    targets+=("tests/qtest/$t")
done
ninja -C "$QEMU_BUILD" "${targets[@]}"

link_firmware "$QEMU_BUILD"
