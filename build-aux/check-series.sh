#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Check that every commit of the series builds on its own, and that the
# qtests it has so far pass: apply patches/ one at a time with "git am"
# to Debian's pristine QEMU (the series repository's base), and after
# each one build QEMU and the qtests of the test suite that exist by
# then.  A maintainer's check before sending the series (git bisect must
# never land on a commit that does not build); slow (an hour or more),
# so not part of "make check".
#
# A commit passes for its tree and the build's setup: the list of qtests
# (tests.sh), the configure arguments and the device list (env.sh).
# Passes are kept in $VTPM_CACHE/series-check.passed, and a commit whose
# tree passed with the same setup before is not built or tested again.
# So a run after an edit to patch N checks patches N and on, and a run
# cut short (CHECK_SERIES_MINUTES=M stops starting commits after M
# minutes) goes on where it stopped.
#
# The tree and its build live in $VTPM_CACHE/series-check, laid out like
# series.sh verify's (qemu/, build/) and configured with the same
# arguments, so that ccache serves the compiles verify has done; the
# tree's repository is beside it, not in it, as for the main tree (a
# .git makes QEMU's configure turn on -Werror).

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

work=$VTPM_CACHE/series-check
src=$work/qemu
build=$work/build
passed=$VTPM_CACHE/series-check.passed
export CCACHE_BASEDIR=$VTPM_CACHE
export CCACHE_NOHASHDIR=1
ident=(-c user.name=vtpm-pci -c user.email=vtpm-pci@localhost)
budget=${CHECK_SERIES_MINUTES:-0}
setup=$( { printf '%s\n' "${QTESTS[@]}" "${QEMU_CONFIGURE_ARGS_SMALL[@]}"
          cat "$VTPM_TOP/build-aux/devices-x86_64.mak"; } |
        sha1sum | cut -c1-12)

mapfile -t patches < <(ls "$VTPM_TOP"/patches/*.patch)
touch "$passed"

echo "check-series: checking out the base"
# The tree and its build are kept from one run to the next: a checkout
# rewrites only the files that differ, so the first commit a run builds
# is an incremental build too
if [ ! -d "$work/repo.git" ]; then
    rm -rf "$work"
    mkdir -p "$src"
    git clone -q --bare --shared "$SERIES_GIT" "$work/repo.git"
    git --git-dir="$work/repo.git" config core.bare false
fi
export GIT_DIR=$work/repo.git GIT_WORK_TREE=$src
git fetch -q "$SERIES_GIT" "+refs/tags/base:refs/tags/base"
git am --abort > /dev/null 2>&1 || true
git checkout -q -f --detach base
git clean -q -f -d

n=0
failed=0
left=0
for patch in "${patches[@]}"; do
    n=$((n + 1))
    name=${patch##*/}
    git "${ident[@]}" am -q "$patch"
    tree=$(git rev-parse 'HEAD^{tree}')
    if grep -qx "$tree $setup" "$passed"; then
        echo "ok $n - $name (passed before: tree ${tree:0:12})"
        continue
    fi
    if [ "$budget" -gt 0 ] && [ $SECONDS -ge $((budget * 60)) ]; then
        left=$((left + 1))
        continue
    fi
    series_devices "$src"
    # Configured anew only where the arguments change (libtpms' option)
    series_configure_args "$src"
    QEMU_SRC=$src configure_qemu "$build" "$work/configure.log" \
        "${series_args[@]}" --enable-seccomp || {
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
    start=$SECONDS
    # QEMU builds without -Werror unless asked, and asking would change
    # every compile command (and miss ccache): a warning fails the commit
    # here instead.
    if ninja -C "$build" "${targets[@]}" > "$log" 2>&1 &&
       ! grep -q 'warning:' "$log" &&
       meson test -C "$build" --no-rebuild "${tests[@]}" >> "$log" 2>&1; then
        echo "$tree $setup" >> "$passed"
        echo "ok $n - $name builds; ${#tests[@]} qtest programs pass" \
             "($((SECONDS - start)) s)"
    else
        grep 'warning:' "$log" | sed 's/^/#   /' || true
        echo "not ok $n - $name: see $log"
        tail -n 20 "$log" | sed 's/^/#   /'
        failed=$((failed + 1))
    fi
done
if [ $left -gt 0 ]; then
    echo "check-series: stopped after $budget minutes; $left commits not" \
         "checked yet (run it again to go on)"
fi
echo "check-series: $((n - failed - left)) of $n commits build and pass"
[ $failed -eq 0 ] && [ $left -eq 0 ]
