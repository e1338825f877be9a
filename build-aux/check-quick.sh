#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The qtests of tests.sh on the main build, through meson: the first
# stage of "make check", and all of "make check-quick", the
# edit-build-test loop (after "make build", which the Makefile runs
# first: a minute or two when the build is warm).  "make check" stays
# the whole contract (sanitizers, fuzz smoke, e2e, bench).
#
#   check-quick.sh [TEST...]    default: every qtest of tests.sh

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

[ $# -gt 0 ] && QTESTS=("$@")
names=()
for t in "${QTESTS[@]}"; do
    names+=("qtest-x86_64/$t")
done
exec meson test -C "$QEMU_BUILD" --no-rebuild --print-errorlogs "${names[@]}"
