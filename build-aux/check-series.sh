#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Check that every commit of the series builds on its own, and that the
# qtests it has so far pass: apply patches/ one at a time with "git am"
# to Debian's pristine QEMU (the series repository's base), and after
# each one
# build QEMU and the qtests of the test suite that exist by then.  A
# maintainer's check before sending the series (git bisect must never
# land on a commit that does not build); slow, so not part of "make
# check".
#
# The tree and its build live in $VTPM_CACHE/series-check, laid out like
# the main ones (qemu/, build/) so that ccache serves most of the
# compiles from the main build; the tree's repository is beside it, not
# in it, as for the main tree (a .git makes QEMU's configure turn on
# -Werror, and every compile command would differ from the main
# build's).

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

work=$VTPM_CACHE/series-check
src=$work/qemu
build=$work/build
export CCACHE_BASEDIR=$VTPM_CACHE
export CCACHE_NOHASHDIR=1
ident=(-c user.name=vtpm-pci -c user.email=vtpm-pci@localhost)

mapfile -t patches < <(ls "$VTPM_TOP"/patches/*.patch)

echo "check-series: checking out the base"
rm -rf "$work"
mkdir -p "$src"
git clone -q --bare --shared "$SERIES_GIT" "$work/repo.git"
export GIT_DIR=$work/repo.git GIT_WORK_TREE=$src
git config core.bare false
git checkout -q --detach base

n=0
failed=0
for patch in "${patches[@]}"; do
    n=$((n + 1))
    name=${patch##*/}
    git "${ident[@]}" am -q "$patch"
    series_devices "$src"
    # Configured anew only where the arguments change (libtpms' option)
    series_configure_args "$src"
    QEMU_SRC=$src configure_qemu "$build" "$work/configure.log" \
        "${series_args[@]}" || {
        echo "check-series: configure failed after $name" >&2
        exit 1
    }
    link_firmware "$build"

    targets=(qemu-system-x86_64)
    tests=()
    for t in "${QTESTS[@]}"; do
        if [ -f "$src/tests/qtest/$t.c" ]; then
            targets+=("tests/qtest/$t")
            tests+=("qtest-x86_64/$t")
        fi
    done
    log=$work/$n.log
    # QEMU builds without -Werror unless asked, and asking would change
    # every compile command (and miss ccache): a warning fails the commit
    # here instead.
    if ninja -C "$build" "${targets[@]}" > "$log" 2>&1 &&
       ! grep -q 'warning:' "$log" &&
       meson test -C "$build" --no-rebuild "${tests[@]}" >> "$log" 2>&1; then
        echo "ok $n - $name builds; ${#tests[@]} qtest programs pass"
    else
        grep 'warning:' "$log" | sed 's/^/#   /' || true
        echo "not ok $n - $name: see $log"
        tail -n 20 "$log" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
done
echo "check-series: $((n - failed)) of $n commits build and pass"
[ $failed -eq 0 ]
