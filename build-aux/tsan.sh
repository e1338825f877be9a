#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build QEMU with ThreadSanitizer, from the same working copy as the main
# build, and run on it the qtests that hand TPM commands between threads:
# the thread doing the card's port I/O (under the BQL) delivers a
# request, and the backend's own thread (vtpm-pci's poll-ns,
# tpm_backend_set_poll()) or a thread pool worker (poll-ns=0, tpm-crb,
# tpm-tis) runs it and hands it back, within the access or through a
# bottom half; reset, unplug and migration drain it from the main loop.
#
#   tsan.sh                 build, then run the qtests below
#   tsan.sh build           build only
#   tsan.sh NAME...         build, then run these qtests (meson names
#                           without qtest-x86_64/, e.g. vtpm-pci-test)
#
# Any TSan report fails the run: a QEMU or test program that TSan
# reported in exits with status 66 (libqtest fails the test whose QEMU
# exits so), and the log is searched for reports as well, since a QEMU
# that a test expects to fail would hide the status.  What TSan reports
# in QEMU's own code, glib and TSan's model of coroutines, and is no
# race of the series', is suppressed in build-aux/tsan-suppressions.txt,
# each with its reason.  Lays the change over the working copy first
# (series.sh sync, as "make fuzz" does), so QEMU's source must
# have been fetched ("make overlay").  The build lives in
# $VTPM_CACHE/build-tsan.  On 2 cores the first build takes about 3.5
# minutes, the qtests about 2 (up to 6 with fuzzers running beside them;
# the commit that adds this script has the figures).
# TSAN_TIMEOUT_MULTIPLIER (default 10) stretches meson's per-test
# timeouts (60 s) for TSan's slowdown: vtpm-pci-test, 10 s without TSan,
# took 100 to 280 s with it, and over 300 s on a host running three
# fuzzers.

set -euo pipefail
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/tests.sh"

TSAN_BUILD=$VTPM_CACHE/build-tsan
SUPPRESSIONS=$VTPM_TOP/build-aux/tsan-suppressions.txt
TIMEOUT_MULTIPLIER=${TSAN_TIMEOUT_MULTIPLIER:-10}

# The qtests whose TPM commands cross threads: the card with polling
# (poll-ns, long commands that miss the poll, reset and unplug
# mid-command) and without, through DATA and through BAR 2; libtpms behind tpm-crb and tpm-tis (the
# thread pool); the state file with migration mid-command (the drain);
# swtpm behind the card, with a command in flight at migration; the fuzz
# reproducers, whose completions reset and unplug the card (and join the
# backend's polling thread) from within the access that polls.  The
# other qtests of tests.sh add no hand-off of the series': tpm-crb-test
# and tpm-tis-test (their swtpm stand-in is a glib thread of the test
# program, whose locks TSan does not see), the -swtpm tests (the thread
# pool path again, with swtpm), the QOM tests.
NAMES=(
    vtpm-pci-test
    vtpm-pci-buffer-test
    tpm-libtpms-test
    tpm-libtpms-state-test
    vtpm-pci-swtpm-test
    fuzz-vtpm-pci-test
)
# The state test's /tpm-libtpms/swtpm-newer/ runs QEMU's code of the
# /tpm-libtpms/swtpm/ tests again, against another swtpm: nothing more
# for a sanitizer to see, and minutes under TSan
unset QTEST_SWTPM_NEWER

# clang-14 and its sanitizer runtimes, from bookworm
PACKAGES=(clang-14 libclang-rt-14-dev)

log() { printf 'tsan: %s\n' "$*" >&2; }

# build NAME...: configure, then build QEMU and these qtests.  A second
# build at once (check.sh's in the background, and its stage) waits for
# the first, then finds everything up to date.
build() {
    local t targets=(qemu-system-x86_64) lock

    mkdir -p "$(dirname "$TSAN_BUILD")"
    exec {lock}> "$TSAN_BUILD.lock"
    flock "$lock"
    install_debs "${PACKAGES[@]}"
    "$VTPM_TOP/build-aux/series.sh" sync
    # --enable-tsan with clang-14, as QEMU's docs/devel/testing/main.rst
    # says.  --with-coroutine=ucontext: the backend that tells TSan about
    # its stack switches (util/coroutine-ucontext.c switches TSan fibers);
    # "auto" picks it on Linux, named so that it cannot become
    # sigaltstack, whose switches TSan would not follow.  Not the docs'
    # --disable-werror: werror is already off in a tree that is not a git
    # checkout, and clang has no -Wtsan to silence.  Not their
    # --extra-cflags=-O0: the default -O2 -g names inlined frames in the
    # reports too, and -O0 only slows TSan's run.  Not their TSan-built
    # glib (a git clone of glib): QEMU's threads, mutexes, conditions,
    # semaphores, events and thread pool are its own, on pthreads and
    # atomics, which TSan sees; the reports glib's own locks cause are
    # in the suppressions.
    configure_qemu "$TSAN_BUILD" "$VTPM_CACHE/configure-tsan.log" \
        "${QEMU_CONFIGURE_ARGS_SMALL[@]}" \
        --cc=clang-14 --cxx=clang++-14 --host-cc=clang-14 \
        --enable-tsan --with-coroutine=ucontext
    for t in "$@"; do
        targets+=("tests/qtest/$t")
    done
    ninja -C "$TSAN_BUILD" "${targets[@]}"
    link_firmware "$TSAN_BUILD"
    exec {lock}>&-
}

# qtests NAME...: run them; non-zero on a failure or any TSan report
qtests() {
    local t names=() opts status=0 reports setarch=()

    for t in "$@"; do
        names+=("qtest-x86_64/$t")
    done
    # exitcode=66: a report makes the process fail at exit, after the
    # others it finds (halt_on_error=0), so one run shows them all
    opts=exitcode=66:halt_on_error=0:second_deadlock_stack=1:history_size=7
    # die_after_fork=0: libqtest forks the test program to start QEMU, and
    # the child, before it execs /bin/sh, starts a thread: util/rcu.c's
    # atfork handler makes a new call_rcu thread there (the test program
    # has RCU's thread from the start).  The thread dies with the exec;
    # QEMU itself does not fork in these tests.
    opts+=:die_after_fork=0
    opts+=:external_symbolizer_path=/usr/lib/llvm-14/bin/llvm-symbolizer
    [ -f "$SUPPRESSIONS" ] && opts+=:suppressions=$SUPPRESSIONS
    # TSan of LLVM 14 cannot map its shadow memory beside more than 28
    # bits of mmap randomization (newer kernels' default may be 32)
    if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ]; then
        setarch=(setarch "$(uname -m)" -R)
    fi
    rm -f "$TSAN_BUILD"/meson-logs/testlog.*
    # G_SLICE=always-malloc: bookworm's glib (2.74) hands g_slice memory
    # from thread to thread through magazines under its own lock, which
    # TSan does not see, so a block the monitor's I/O thread freed looks
    # unordered when the main loop gets it back; malloc TSan sees.
    G_SLICE=always-malloc TSAN_OPTIONS=$opts "${setarch[@]}" \
        meson test -C "$TSAN_BUILD" --no-rebuild --print-errorlogs \
        --timeout-multiplier "$TIMEOUT_MULTIPLIER" "${names[@]}" ||
        status=$?
    reports=$(grep -c '^WARNING: ThreadSanitizer:' \
        "$TSAN_BUILD/meson-logs/testlog.txt" 2>/dev/null || true)
    if [ "${reports:-0}" -gt 0 ]; then
        log "$reports TSan reports; see $TSAN_BUILD/meson-logs/testlog.txt"
        grep -A3 '^WARNING: ThreadSanitizer:' \
            "$TSAN_BUILD/meson-logs/testlog.txt" >&2 || true
        [ $status -ne 0 ] || status=1
    fi
    return $status
}

case ${1:-} in
build) build "${NAMES[@]}"; exit 0 ;;
esac
[ $# -gt 0 ] && NAMES=("$@")
build "${NAMES[@]}"
start=$(date +%s)
qtests "${NAMES[@]}" && status=0 || status=$?
log "qtests took $(($(date +%s) - start)) s"
exit "$status"
