#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build QEMU's libFuzzer binary (qemu-fuzz-x86_64) with ASan and UBSan,
# from the same working copy as the main build, and fuzz the TPM devices
# with QEMU's generic-fuzz configs (tests/qtest/fuzz/
# generic_fuzz_configs.h; the series adds vtpm-pci's, and tpm-crb's and
# tpm-tis's with -tpmdev libtpms).
#
#   fuzz.sh                 build, then run every target
#   fuzz.sh build           build only
#   fuzz.sh qtests          build, then run the suite's qtests
#                           (build-aux/tests.sh) on this ASan and UBSan
#                           build; fails on any sanitizer report
#   fuzz.sh TARGET...       build, then run these targets
#
# FUZZ_SECONDS (default 60; "make fuzz SECONDS=N") is the time per
# target, FUZZ_JOBS (default 1) the libFuzzer workers per target.  The
# generic-fuzz targets start from an empty corpus; each keeps its corpus in
# $VTPM_CACHE/fuzz/corpus/TARGET, so that a later run goes on from it,
# and writes what crashes QEMU to $VTPM_CACHE/fuzz/crashes/TARGET.  The
# build lives in $VTPM_CACHE/build-fuzz.  Exits non-zero when a target
# found a crash.

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

FUZZ_BUILD=$VTPM_CACHE/build-fuzz
FUZZ_BIN=$FUZZ_BUILD/qemu-fuzz-x86_64
FUZZ_OUT=$VTPM_CACHE/fuzz
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
TARGETS=(vtpm-pci vtpm-pci-tpm12 tpm-crb-libtpms tpm-tis-libtpms)

# clang-14 and its libFuzzer and sanitizer runtimes, from bookworm
PACKAGES=(clang-14 libclang-rt-14-dev)

log() { printf 'fuzz: %s\n' "$*" >&2; }

install_packages() {
    local p missing=()

    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
}

build() {
    local filter ours_marker="# vtpm-pci: build-aux/fuzz-allowlist.txt"

    install_packages
    configure_qemu "$FUZZ_BUILD" "$VTPM_CACHE/configure-fuzz.log" \
        "${QEMU_CONFIGURE_ARGS[@]}" \
        --cc=clang-14 --cxx=clang++-14 --host-cc=clang-14 \
        --enable-fuzzing --enable-asan --enable-ubsan
    # QEMU's allowlist, made from scripts/oss-fuzz/instrumentation-filter-
    # template at configure time, with ours added (a second allowlist on
    # the command line breaks configure's compiler checks, which meson
    # runs with -Werror=unused-command-line-argument)
    filter=$FUZZ_BUILD/instrumentation-filter
    [ -f "$filter" ] || { log "no $filter: not a fuzzing build?"; exit 1; }
    if ! grep -qxF "$ours_marker" "$filter"; then
        { echo "$ours_marker"; grep -v '^#' "$VTPM_TOP/build-aux/fuzz-allowlist.txt"; } >> "$filter"
        # Objects compiled with the old list lose nothing by a rebuild
        ninja -C "$FUZZ_BUILD" -t clean > /dev/null
    fi
    ninja -C "$FUZZ_BUILD" qemu-fuzz-x86_64
    link_firmware "$FUZZ_BUILD"
}

# run TARGET: fuzz it for SECONDS_PER_TARGET; 0 unless it found a crash
run() {
    local target=$1 corpus=$FUZZ_OUT/corpus/$1 crashes=$FUZZ_OUT/crashes/$1
    local log=$FUZZ_OUT/$1.log status jobs=()

    mkdir -p "$corpus" "$crashes"
    # More than one: libFuzzer's worker processes, each logging to
    # fuzz-N.log in the directory it runs in, $FUZZ_OUT
    if [ "$FUZZ_JOBS" -gt 1 ]; then
        jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
    fi
    log "$target: $SECONDS_PER_TARGET s, corpus $corpus"
    # Leaks are not reported, as in QEMU's own fuzzing CI: QEMU does not
    # free everything at exit
    cd "$FUZZ_OUT"
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
        "$FUZZ_BIN" --fuzz-target="generic-fuzz-$target" \
        -max_total_time="$SECONDS_PER_TARGET" "${jobs[@]}" \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" \
        > "$log" 2>&1 && status=0 || status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|^#[0-9]+.*DONE' "$log" |
        sed "s/^/fuzz: $target: /" >&2 || true
    if [ $status -ne 0 ]; then
        log "$target: QEMU crashed or hung; see $log and $crashes"
        tail -n 40 "$log" >&2
    fi
    return $status
}

# The qtests on the sanitized QEMU: UBSan and ASan abort it on a report
# (meson's environment sets abort_on_error), which fails the test
qtests() {
    local t targets=(qemu-system-x86_64) names=()

    for t in "${QTESTS[@]}"; do
        targets+=("tests/qtest/$t")
        names+=("qtest-x86_64/$t")
    done
    ninja -C "$FUZZ_BUILD" "${targets[@]}"
    link_firmware "$FUZZ_BUILD"
    ASAN_OPTIONS=detect_leaks=0 \
        meson test -C "$FUZZ_BUILD" --no-rebuild --print-errorlogs "${names[@]}"
}

build
case ${1:-} in
build) exit 0 ;;
qtests) qtests; exit ;;
esac
[ $# -gt 0 ] && TARGETS=("$@")
failed=0
for t in "${TARGETS[@]}"; do
    run "$t" || failed=$((failed + 1))
done
log "$((${#TARGETS[@]} - failed)) of ${#TARGETS[@]} targets ran without a crash"
[ $failed -eq 0 ]
