#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The test suite: checks of the exported patch series; QEMU's qtests for
# the card (through QEMU's meson test harness), checks of the command line
# and the run command; the end-to-end tests in Linux guests and "make run"
# on a terminal; the card in a QEMU without libtpms; the qtests under TSan
# and under ASan and UBSan, and the fuzz smoke; the benchmark's quick run.
# The builds of the last three stages go on in the background meanwhile.
# Ends with "N passed, N failed".

set -uo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

passed=0
failed=0
failures=()

result() {          # result NAME STATUS
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok - $1"
    else
        failed=$((failed + 1))
        failures+=("$1")
        echo "not ok - $1"
    fi
}

# Count the "ok - NAME" and "not ok - NAME" lines of a test program's
# output (on stdin), and pass the rest on
results() {
    local line
    while IFS= read -r line; do
        case $line in
        "ok - "*) result "${line#ok - }" 0 ;;
        "not ok - "*) result "${line#not ok - }" 1 ;;
        *) echo "$line" ;;
        esac
    done
}

# --- the build, with the guest kernels fetched beside it ---------------------
# The guest kernels, their headers and the trixie tree the newest's module
# is built in (guest/kernels.sh prepare), and sid's swtpm for the state
# tests (swtpm-sid.sh prepare), are mostly downloads and unpacking,
# minutes from an empty cache: they are fetched while QEMU builds.  The
# sanitizer builds' clang is installed first, so that apt runs alone.
install_debs clang-14 libclang-rt-14-dev
kernels=$VTPM_TOP/contrib/vtpm-pci/guest/kernels.sh
kernels_log=$VTPM_CACHE/kernels-prepare.log
"$kernels" prepare > "$kernels_log" 2>&1 < /dev/null &
prepare=$!
swtpm_log=$VTPM_CACHE/swtpm-sid-prepare.log
"$(dirname "$0")/swtpm-sid.sh" prepare > "$swtpm_log" 2>&1 < /dev/null &
swtpm_prepare=$!
# (an interrupted run stops them, and the builds below)
trap 'kill $prepare $swtpm_prepare 2> /dev/null' EXIT
if ! "$(dirname "$0")/build.sh"; then
    echo "check: the build failed"
    exit 1
fi

# --- the patch series ---------------------------------------------------------
echo "== patch series"
"$(dirname "$0")/series.sh" check
result "series: patches/ applies with git am and ends with the checkout" $?

cp_out=$(cd "$VTPM_CACHE/qemu-pristine" &&
         perl scripts/checkpatch.pl --no-color "$VTPM_TOP"/patches/*.patch 2>&1)
cp_status=$?
echo "$cp_out" | grep -E '^(ERROR|WARNING|total:)|has no obvious' || true
result "checkpatch: no errors in patches/" $cp_status

# --- the other builds, in the background -------------------------------------
# The builds without libtpms, with TSan and with ASan and UBSan (the
# fuzzer's) go on from here in the background, in the order the stages
# below take them, at idle priority (SCHED_IDLE): they get the CPU that the
# stages on the main build leave (a guest under TCG keeps one core of two
# busy, a qtest waits on QEMU), never the tests' share of it.  A stage
# that gets to its build first waits for it (each build holds a lock) and
# finds it up to date; a build that failed fails again in its stage, which
# reports it.
idle=(nice -n 19)
chrt --idle 0 true 2> /dev/null && idle=(chrt --idle 0)
builds_log=$VTPM_CACHE/check-builds.log
# shellcheck disable=SC2016
setsid "${idle[@]}" bash -c 'for s; do
        t=$SECONDS
        "$s" build || echo "build: $s failed"
        echo "build: $s: $((SECONDS - t)) s"
    done' _ "$VTPM_TOP/build-aux/check-nolibtpms.sh" \
    "$VTPM_TOP/build-aux/tsan.sh" "$VTPM_TOP/build-aux/fuzz.sh" \
    > "$builds_log" 2>&1 < /dev/null &
builds=$!
trap 'kill $prepare 2> /dev/null; kill -- -$builds 2> /dev/null' EXIT

# The state tests run sid's swtpm too (tests.sh finds it)
wait $swtpm_prepare
status=$?
cat "$swtpm_log"
result "sid's swtpm for the state tests (swtpm-sid.sh prepare)" $status
QTEST_SWTPM_NEWER=$("$(dirname "$0")/swtpm-sid.sh" path) || true

# --- qtests, through meson -------------------------------------------------
echo "== qtests: ${QTESTS[*]}"
rm -f "$QEMU_BUILD/meson-logs/testlog.json"
"$(dirname "$0")/check-quick.sh"
counts=$(python3 - "$QEMU_BUILD/meson-logs/testlog.json" <<'EOF'
import json, re, sys

passed = failed = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get('stdout') or ''
    ok = len(re.findall(r'^ok ', out, re.M))
    bad = len(re.findall(r'^not ok ', out, re.M))
    skipped = len(re.findall(r'^ok .*# SKIP', out, re.M))
    passed += ok - skipped
    failed += bad
    if t['result'] not in ('OK', 'SKIP', 'EXPECTEDFAIL') and bad == 0:
        failed += 1     # died, or timed out, outside a test case
print(passed, failed)
EOF
)
read -r qp qf <<< "${counts:-0 1}"   # no log: meson itself failed
passed=$((passed + qp))
failed=$((failed + qf))
[ "$qf" -eq 0 ] || failures+=("qtests ($qf)")

# --- the command line -------------------------------------------------------
echo "== command line"
"$QEMU_BIN" -device help 2>&1 | grep -q '^name "vtpm-pci", bus PCI'
result "-device help lists vtpm-pci" $?

help=$("$QEMU_BIN" -device vtpm-pci,help 2>&1)
grep -q '^  addr=<str>' <<< "$help" &&
    grep -q '^  iobase=<uint32> *- pin BAR 0 at this I/O port' <<< "$help" &&
    grep -q '^  poll-ns=<uint32> *- how long a START write waits' <<< "$help" &&
    grep -q '^  tpmdev=<str> *- ID of the -tpmdev behind the card' <<< "$help"
result "-device vtpm-pci,help lists its properties, with descriptions" $?

for bridge in pci-bridge pcie-root-port; do
    help=$("$QEMU_BIN" -device $bridge,help 2>&1)
    grep -q '^  io-base=<uint32> *- pin the bridge.s I/O window' <<< "$help" &&
        grep -q '^  io-size=<size> *- size of the pinned I/O window' <<< "$help"
    result "-device $bridge,help describes io-base and io-size" $?
done

# The sandbox qtest skips on a QEMU without seccomp (the sanitizer
# builds); the product must have it
"$QEMU_BIN" -M q35 -display none -nodefaults -S \
    -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny \
    -device vtpm-pci -qmp stdio <<< '{"execute": "qmp_capabilities"}
{"execute": "quit"}' 2>&1 | grep -q '"return": {}'
result "-sandbox on, everything denied: QEMU starts with the card" $?

# --- the README's run command, fed monitor commands --------------------------
echo "== run"
out=$(printf 'info pci\ninfo qtree\ninfo tpm\nquit\n' |
      GUEST=none timeout 60 "$(dirname "$0")/run.sh" 2>&1)
status=$?
grep -q 'PCI device 1b36:0015' <<< "$out" &&
    grep -q 'dev: vtpm-pci, id ""' <<< "$out" &&
    grep -q 'vtpm-pci-tpm: type=libtpms,version=2.0' <<< "$out" &&
    [ $status -eq 0 ]
result "run: QEMU starts with the card and quits on request" $?

# --- end to end: Linux guests with the driver (contrib/vtpm-pci) ----------
# One guest kernel of each line Debian serves (guest/kernels.sh): every
# configuration on the newest, msi and intx on the others (guest/e2e.sh)
echo "== e2e: Linux guests, one per kernel line"
e2e_start=$SECONDS
wait $prepare
status=$?
cat "$kernels_log"
result "e2e: each kernel line's kernel and headers are in the cache" $status
# Resolved once for this run: e2e.sh and bench.py need not again
[ $status -ne 0 ] || export VTPM_KERNELS_PREPARED=1
for line in $("$kernels" lines 2> /dev/null | cut -d' ' -f1); do
    "$VTPM_TOP/contrib/vtpm-pci/linux/checkpatch.sh" "$line"
    result "checkpatch ($line): the Linux driver is clean" $?
done
results < <("$VTPM_TOP/contrib/vtpm-pci/guest/e2e.sh" 2>&1)
echo "e2e stage: $((SECONDS - e2e_start)) s"

# --- make run, on a terminal, as a user types it ----------------------------
echo "== make run: the guest's shell, tpm2-tools"
before=$failed
out=$("$VTPM_TOP/build-aux/run-test.exp" 2>&1)
status=$?
results <<< "$out"
# expect itself may fail before its first step
[ $status -eq 0 ] || [ $failed -ne $before ] ||
    result "run: run-test.exp ends normally (it exited with $status)" 1
if [ $failed -ne $before ]; then
    echo "# the end of $VTPM_CACHE/run-test.log:"
    tr -d '\r' < "$VTPM_CACHE/run-test.log" | tail -n 40 | sed 's/^/#   /'
fi

# --- the card in a QEMU built without libtpms --------------------------------
echo "== without libtpms"
nolib_start=$SECONDS
"$(dirname "$0")/check-nolibtpms.sh" | results
echo "without libtpms: $((SECONDS - nolib_start)) s"

# --- sanitizers: TSan, then the qtests under ASan and UBSan, the fuzz smoke -
# build-aux/tsan.sh and fuzz.sh build QEMU with clang-14 in builds of their
# own; any sanitizer report fails a test
echo "== sanitizers: TSan, qtests under ASan and UBSan, fuzz smoke"
san_start=$SECONDS
"$VTPM_TOP/build-aux/tsan.sh"
result "tsan: the qtests that hand commands between threads, no report" $?
fuzz=$VTPM_TOP/build-aux/fuzz.sh
"$fuzz" qtests
result "asan, ubsan: the qtests of tests.sh, with no sanitizer report" $?
# The background builds are over (each stage above waited for its own):
# the fuzz smoke and the benchmark run alone
wait $builds 2> /dev/null
grep '^build: ' "$builds_log"
# One target a core at a time (a fuzzer is one process, whose TPM thread
# works while it waits): each one's output is kept and printed in order
smoke=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-smoke.XXXXXX")
mapfile -t targets < <("$fuzz" list)
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do
        wait -n
    done
    ("$fuzz" smoke "$target" > "$smoke/$target.log" 2>&1
     echo $? > "$smoke/$target.status") &
done
wait
for target in "${targets[@]}"; do
    cat "$smoke/$target.log"
    result "fuzz smoke: $target replays its corpus and fuzzes, seed 1" \
        "$(cat "$smoke/$target.status" 2>/dev/null || echo 1)"
done
rm -rf "$smoke"
echo "sanitizer stage: $((SECONDS - san_start)) s"

# --- the benchmark, quick: passes while every configuration runs ------------
# Its table goes into the log; its numbers are never judged here.
echo "== bench: vtpm-pci against tpm-crb and tpm-tis with swtpm (quick)"
bench_start=$SECONDS
"$VTPM_TOP/bench/bench.py" --quick
result "bench --quick: every configuration boots and runs every workload" $?
echo "bench stage: $((SECONDS - bench_start)) s"

echo
if [ $failed -ne 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
