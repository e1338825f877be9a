#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build QEMU's libFuzzer binary (qemu-fuzz-x86_64) with ASan and UBSan,
# from the same working copy as the main build, and fuzz the TPM devices:
# the series' own targets (tests/qtest/fuzz/vtpm_pci_fuzz.c and
# tpm_libtpms_fuzz.c) and QEMU's generic-fuzz with the series' configs
# for vtpm-pci, and for tpm-crb and tpm-tis with -tpmdev libtpms.
#
#   fuzz.sh [run] [TARGET...]  build, then fuzz each target (default:
#                           all) for FUZZ_SECONDS
#   fuzz.sh build           build only: the fuzzer, and the QEMU and
#                           qtests that "fuzz.sh qtests" runs
#   fuzz.sh list            print the targets
#   fuzz.sh report          the campaign so far, from campaign.tsv: CPU
#                           time, executions and crash inputs per target
#   fuzz.sh smoke           build, then replay every committed corpus and
#                           run a short fuzz of each target with a fixed
#                           seed: what CI runs
#   fuzz.sh minimize [TARGET...]
#                           build, then fold each campaign corpus into
#                           the committed one, fuzz/corpus/TARGET: its
#                           named seeds, and the fewest other inputs that
#                           reach as far as all of them (for "git add")
#   fuzz.sh qtests          build, then run the suite's qtests
#                           (build-aux/tests.sh) on this ASan and UBSan
#                           build; fails on any sanitizer report
#   fuzz.sh coverage [TARGET...]
#                           build QEMU's fuzzer with clang's source-based
#                           coverage instead (no sanitizers, in
#                           $VTPM_CACHE/build-fuzz-cov), replay the
#                           campaign corpora and report the lines reached
#                           in the card, the backend and the state file
#
# FUZZ_SECONDS (default 60; "make fuzz SECONDS=N") is the time per
# target, FUZZ_JOBS (default 1) the libFuzzer workers per target.  With
# FUZZ_FORK=1 a run goes on past a crash (libFuzzer's -fork=1
# -ignore_crashes=1), for a campaign on a target that reaches a bug
# already known, in libtpms say; every crash is still kept.  A
# target starts from its committed corpus (fuzz/corpus/TARGET, where
# there is one) and from its campaign corpus, $VTPM_CACHE/fuzz/corpus/
# TARGET, which keeps what the runs found, so that a later run goes on
# from there.  What crashes or hangs QEMU is written to
# $VTPM_CACHE/fuzz/crashes/TARGET (with the inputs that took over 10 s,
# slow-unit-*).  Each run prints its executions, the CPU time it took and
# what it added.  Exits non-zero when a target
# found a crash.

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

FUZZ_BUILD=$VTPM_CACHE/build-fuzz
COV_BUILD=$VTPM_CACHE/build-fuzz-cov
FUZZ_OUT=$VTPM_CACHE/fuzz
SEEDS=$VTPM_TOP/fuzz/corpus
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_FORK=${FUZZ_FORK:-0}
TARGETS=(
    vtpm-pci-fuzz
    vtpm-pci-tpm12-fuzz
    vtpm-pci-migration-fuzz
    vtpm-pci-hotplug-fuzz
    tpm-libtpms-state-fuzz
    generic-fuzz-vtpm-pci
    generic-fuzz-vtpm-pci-tpm12
    generic-fuzz-tpm-crb-libtpms
    generic-fuzz-tpm-tis-libtpms
    generic-fuzz-vtpm-pci-root-port
    generic-fuzz-vtpm-pci-pci-bridge
    generic-fuzz-vtpm-pci-switch
    generic-fuzz-vtpm-pci-pinned-bridges
)
# The smoke's fixed seed, and its fuzzing runs per target past the
# corpus; a TPM 1.2 restarts for every input, and generates an RSA key
# in its self-test when it does; the hotplug target starts a TPM for
# every card it plugs; the migration target's inputs edit the TPM's
# state, which the backend tries in a child process (55 inputs a second
# under ASan, against 600 before)
SMOKE_SEED=1
# The longest a guest access (a qtest command), a turn of the main loop or
# a machine reset may take under the sanitizers before the input counts
# as a stall: every corpus replays within 100 ms here under ASan (a reset
# leaves the TPM's restart to the TPM's thread; before it did, a TPM 1.2
# restart held a reset for over 500 ms, the first thing this limit
# caught).  A hang is caught as soon as it is longer; a wait for a long
# TPM command, when that command is longer (an RSA key: 10 ms to over a
# second); the no-wait qtests make sure of the rest.
ACCESS_LIMIT_MS=${ACCESS_LIMIT_MS:-500}
declare -A SMOKE_RUNS=([vtpm-pci-tpm12-fuzz]=20 [generic-fuzz-vtpm-pci-tpm12]=20
    [tpm-libtpms-state-fuzz]=100 [vtpm-pci-hotplug-fuzz]=300
    [vtpm-pci-migration-fuzz]=1000)
SMOKE_RUNS_DEFAULT=3000
# The files whose coverage the campaign reports
COVERED=(hw/tpm/vtpm_pci.c backends/tpm/tpm_libtpms.c backends/tpm/tpm_nvfile.c
         backends/tpm/tpm_backend.c)

# clang-14 and its libFuzzer and sanitizer runtimes, from bookworm
PACKAGES=(clang-14 libclang-rt-14-dev)

log() { printf 'fuzz: %s\n' "$*" >&2; }

# build_fuzzer BUILD ARGS...: configure BUILD as a fuzzing build with
# ARGS, with our allowlist added to QEMU's, and build the fuzzer
build_fuzzer() {
    local build=$1 filter ours_marker="# vtpm-pci: build-aux/fuzz-allowlist.txt"
    shift

    install_debs "${PACKAGES[@]}"
    # Line tables, not full debug information (as OSS-Fuzz builds): a
    # report names every frame, inlined ones too, by file and line, and
    # the build compiles 6% faster
    configure_qemu "$build" "$build.configure.log" \
        "${QEMU_CONFIGURE_ARGS_SMALL[@]}" \
        --cc=clang-14 --cxx=clang++-14 --host-cc=clang-14 \
        --disable-debug-info --extra-cflags=-gline-tables-only \
        --enable-fuzzing "$@"
    # QEMU's allowlist, made from scripts/oss-fuzz/instrumentation-filter-
    # template at configure time, with ours added (a second allowlist on
    # the command line breaks configure's compiler checks, which meson
    # runs with -Werror=unused-command-line-argument)
    filter=$build/instrumentation-filter
    [ -f "$filter" ] || { log "no $filter: not a fuzzing build?"; exit 1; }
    if ! grep -qxF "$ours_marker" "$filter"; then
        { echo "$ours_marker"; grep -v '^#' "$VTPM_TOP/build-aux/fuzz-allowlist.txt"; } >> "$filter"
        # Objects compiled with the old list lose nothing by a rebuild
        ninja -C "$build" -t clean > /dev/null
    fi
    ninja -C "$build" qemu-fuzz-x86_64
    link_firmware "$build"
}

# build [TARGET...]: the fuzzer, and these targets of its build.  Two
# campaigns at once (one a core) share the build, as do check.sh's
# background build and its stages: the second waits for the first's
# ninja, then finds everything up to date
build() {
    local lock

    mkdir -p "$(dirname "$FUZZ_BUILD")"
    exec {lock}> "$FUZZ_BUILD.lock"
    flock "$lock"
    build_fuzzer "$FUZZ_BUILD" --enable-asan --enable-ubsan
    [ $# -eq 0 ] || ninja -C "$FUZZ_BUILD" "$@"
    exec {lock}>&-
}

# The QEMU and the qtest programs of tests.sh, in the fuzzer's build
qtest_targets() {
    local t

    echo qemu-system-x86_64
    for t in "${QTESTS[@]}"; do
        echo "tests/qtest/$t"
    done
}

# fuzzer TARGET LOG ARGS...: run the sanitized fuzzer on TARGET, its
# output to LOG; the CPU time it took (user + system, all threads and
# workers) goes to stdout
fuzzer() {
    local target=$1 log=$2 status
    local TIMEFORMAT='%U %S'
    shift 2

    # Leaks are not reported, as in QEMU's own fuzzing CI: QEMU does not
    # free everything at exit.  A stall is a guest access (a qtest
    # command) or a turn of the main loop that takes more than
    # ACCESS_LIMIT_MS; a hang, an input that takes a minute.  Inputs up
    # to 16 KiB: a command longer than the card's 4 KiB buffer takes more
    # than libFuzzer's default of 4 KiB.
    { time (cd "$FUZZ_OUT" &&
        QEMU_FUZZ_ACCESS_LIMIT_MS=$ACCESS_LIMIT_MS \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
            "$FUZZ_BUILD/qemu-fuzz-x86_64" --fuzz-target="$target" \
            -timeout=60 -max_len=16384 -print_final_stats=1 "$@" \
            > "$log" 2>&1) ; } 2>&1 |
        awk 'END { printf "%.1f\n", $1 + $2 }'
    status=${PIPESTATUS[0]}
    return "$status"
}

# The inputs a run executed, from its log: libFuzzer's final statistics,
# or in fork mode its last status line
executions() {
    grep -oP '^stat::number_of_executed_units:\s*\K[0-9]+' "$1" ||
        grep -oP '^#\K[0-9]+(?=: cov:)' "$1" | tail -n 1 || echo 0
}

# The corpora a target reads: the campaign's first (where libFuzzer
# writes what it adds), then the committed one
corpora() {
    local target=$1

    mkdir -p "$FUZZ_OUT/corpus/$target"
    echo "$FUZZ_OUT/corpus/$target"
    [ -d "$SEEDS/$target" ] && echo "$SEEDS/$target"
    return 0
}

report() {
    local target=$1 log=$2 cpu=$3

    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" |
        sed "s/^stat::/fuzz: $target: /" >&2 || true
    log "$target: $cpu CPU seconds"
}

# run TARGET: fuzz it for SECONDS_PER_TARGET; 0 unless it found a crash
run() {
    local target=$1 crashes=$FUZZ_OUT/crashes/$1 log=$FUZZ_OUT/$1.log
    local cpu status=0 jobs=() dirs

    mkdir -p "$crashes"
    mapfile -t dirs < <(corpora "$target")
    # More than one: libFuzzer's worker processes, each logging to
    # fuzz-N.log in the directory it runs in, $FUZZ_OUT
    if [ "$FUZZ_FORK" = 1 ]; then
        jobs=(-fork="$FUZZ_JOBS" -ignore_crashes=1)
    elif [ "$FUZZ_JOBS" -gt 1 ]; then
        jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
    fi
    log "$target: $SECONDS_PER_TARGET s, corpus ${dirs[*]}"
    cpu=$(fuzzer "$target" "$log" -max_total_time="$SECONDS_PER_TARGET" \
          "${jobs[@]}" -artifact_prefix="$crashes/" "${dirs[@]}") || status=$?
    report "$target" "$log" "$cpu"
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$cpu" \
        "$(executions "$log")" "$(find "$crashes" -type f ! -name 'slow-unit-*' | wc -l)" \
        >> "$FUZZ_OUT/campaign.tsv"
    if [ $status -ne 0 ]; then
        log "$target: QEMU crashed or hung; see $log and $crashes"
        tail -n 40 "$log" >&2
    fi
    return $status
}

# smoke TARGET: the committed corpus, then a few fuzzing runs with a
# fixed seed; nothing is written to the corpora
smoke() {
    local target=$1 tmp log=$FUZZ_OUT/smoke-$1.log cpu status=0
    local runs=${SMOKE_RUNS[$1]:-$SMOKE_RUNS_DEFAULT} dirs=()

    tmp=$(mktemp -d)
    [ -d "$SEEDS/$target" ] && dirs=("$SEEDS/$target")
    cpu=$(fuzzer "$target" "$log" -seed="$SMOKE_SEED" -runs="$runs" \
          -artifact_prefix="$tmp/" "$tmp" "${dirs[@]}") || status=$?
    report "$target" "$log" "$cpu"
    if [ $status -ne 0 ]; then
        log "$target: QEMU crashed or hung; see $log"
        tail -n 40 "$log" >&2
    fi
    rm -rf "$tmp"
    return $status
}

# minimize TARGET: the committed corpus becomes its named inputs (the
# seeds of seeds.py, the crash reproducers) and the fewest campaign and
# committed inputs that reach what the rest reach beyond them
# (libFuzzer's -merge=1); the campaign corpus is left as it is
minimize() {
    local target=$1 tmp log=$FUZZ_OUT/minimize-$1.log dirs cpu f
    local before=0 status=0

    tmp=$(mktemp -d)
    mapfile -t dirs < <(corpora "$target")
    if [ -d "$SEEDS/$target" ]; then
        before=$(find "$SEEDS/$target" -type f | wc -l)
        for f in "$SEEDS/$target"/*; do
            basename "$f" | grep -qE '^[0-9a-f]{40}$' || cp "$f" "$tmp/"
        done
    fi
    cpu=$(fuzzer "$target" "$log" -merge=1 "$tmp" "${dirs[@]}") ||
        status=$?
    if [ $status -ne 0 ]; then
        log "$target: the merge failed; see $log"
        rm -rf "$tmp"
        return $status
    fi
    rm -rf "${SEEDS:?}/$target"
    mkdir -p "$SEEDS/$target"
    cp "$tmp"/* "$SEEDS/$target/"
    rm -rf "$tmp"
    log "$target: $(find "$SEEDS/$target" -type f | wc -l) inputs" \
        "committed (were $before), $cpu CPU seconds"
}

# The qtests on the sanitized QEMU: UBSan and ASan abort it on a report
# (meson's environment sets abort_on_error), which fails the test.  (The
# state test's swtpm-newer tests run no QEMU code the others do not.)
qtests() {
    local t names=()
    local -x QTEST_SWTPM_NEWER=

    for t in "${QTESTS[@]}"; do
        names+=("qtest-x86_64/$t")
    done
    ASAN_OPTIONS=detect_leaks=0 \
        meson test -C "$FUZZ_BUILD" --no-rebuild --print-errorlogs "${names[@]}"
}

# Replay the campaign corpora on a coverage build; report the lines of
# COVERED that they reach
coverage() {
    local t profiles=$FUZZ_OUT/coverage dirs f

    install_debs llvm-14
    build_fuzzer "$COV_BUILD" \
        --extra-cflags="-fprofile-instr-generate -fcoverage-mapping" \
        --extra-ldflags="-fprofile-instr-generate"
    rm -rf "$profiles"
    mkdir -p "$profiles"
    for t in "$@"; do
        mapfile -t dirs < <(corpora "$t")
        log "$t: replaying ${dirs[*]}"
        (cd "$FUZZ_OUT" && LLVM_PROFILE_FILE="$profiles/$t.profraw" \
            "$COV_BUILD/qemu-fuzz-x86_64" --fuzz-target="$t" -runs=0 \
            "${dirs[@]}" > "$FUZZ_OUT/coverage-$t.log" 2>&1) ||
            log "$t: the replay failed; see $FUZZ_OUT/coverage-$t.log"
    done
    llvm-profdata-14 merge -sparse -o "$profiles/all.profdata" \
        "$profiles"/*.profraw
    # The files by the paths the build saw, the working copy's symlinks
    llvm-cov-14 report "$COV_BUILD/qemu-fuzz-x86_64" \
        -instr-profile="$profiles/all.profdata" > "$profiles/report.txt"
    head -n 1 "$profiles/report.txt"
    for f in "${COVERED[@]}"; do
        grep -F "qemu/$f " "$profiles/report.txt"
    done
    llvm-cov-14 show "$COV_BUILD/qemu-fuzz-x86_64" \
        -instr-profile="$profiles/all.profdata" > "$profiles/show.txt"
    for f in "${COVERED[@]}"; do
        awk -v want="$QEMU_SRC/$f:" '
            /^\/.*:$/ { keep = ($0 == want) }
            keep' "$profiles/show.txt" > "$profiles/$(basename "$f").txt"
    done
    rm -f "$profiles/show.txt"
    log "line by line: $profiles/*.c.txt"
}

# The campaign log's runs, summed per target
report_campaign() {
    awk -F'\t' '
        { cpu[$2] += $3; n[$2] += $4; runs[$2]++; crashes[$2] = $5; total += $3 }
        END {
            printf "%-30s %5s %9s %11s %8s %7s\n", "target", "runs",
                   "CPU h", "executions", "exec/CPU-s", "crashes"
            for (t in cpu)
                printf "%-30s %5d %9.2f %11d %8.1f %7d\n", t, runs[t],
                       cpu[t] / 3600, n[t], cpu[t] ? n[t] / cpu[t] : 0,
                       crashes[t]
            printf "%-30s %5s %9.2f\n", "all", "", total / 3600
        }' "$FUZZ_OUT/campaign.tsv"
}

mkdir -p "$FUZZ_OUT"
cmd=run
case ${1:-} in
list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
report) report_campaign; exit 0 ;;
build|run|smoke|minimize|qtests|coverage) cmd=$1; shift ;;
esac
[ $# -gt 0 ] && TARGETS=("$@")
if [ "$cmd" = coverage ]; then
    coverage "${TARGETS[@]}"
    exit
fi
case $cmd in
build|qtests) mapfile -t extra < <(qtest_targets)
              build "${extra[@]}" ;;
*) build ;;
esac
case $cmd in
build) exit 0 ;;
qtests) qtests; exit ;;
esac
failed=0
for t in "${TARGETS[@]}"; do
    "$cmd" "$t" || failed=$((failed + 1))
done
log "$((${#TARGETS[@]} - failed)) of ${#TARGETS[@]} targets ran without a crash"
[ $failed -eq 0 ]
