#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Configure (once, or when the configuration changes) and build the QEMU
# binary and the test programs the suite runs.

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

# With seccomp: the product runs under -sandbox on (the sanitizer builds
# go without, and the sandbox qtest skips there)
configure_qemu "$QEMU_BUILD" "$VTPM_CACHE/configure.log" \
    "${QEMU_CONFIGURE_ARGS[@]}" --enable-seccomp

targets=(qemu-system-x86_64)
for t in "${QTESTS[@]}"; do
    targets+=("tests/qtest/$t")
done
ninja -C "$QEMU_BUILD" "${targets[@]}"

link_firmware "$QEMU_BUILD"
