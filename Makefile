# SPDX-License-Identifier: GPL-2.0-or-later
#
# vtpm-pci: build QEMU with the card, run it, test it.
#
#   make run      set up the host, build, and boot a Linux guest with
#                 -device vtpm-pci, its driver and tpm2-tools, to a shell
#                 on this terminal (GUEST=none: QEMU with no guest)
#   make check    set up the host, build, run the test suite
#   make check-quick
#                 build, and run the qtests only (TESTS="vtpm-pci-test
#                 ...": those only): the edit-build-test loop
#   make bench    set up the host, build, and benchmark vtpm-pci against
#                 tpm-crb and tpm-tis with swtpm (QUICK=1: the short run
#                 that make check does)
#   make export   write the change as a patch series (patches are in
#                 $(VTPM_CACHE)/series) and check it applies
#   make check-series
#                 build each commit of the series on its own and run its
#                 qtests (slow: a maintainer's check before sending)
#   make fuzz     build QEMU's libFuzzer binary with ASan and UBSan and
#                 fuzz the TPM devices, SECONDS=N per target (default 60)
#
# Everything built or downloaded lives in $(VTPM_CACHE), outside the
# checkout, so a second run only rebuilds what changed.

VTPM_CACHE ?= $(HOME)/.cache/vtpm-pci
export VTPM_CACHE

# Extra arguments for "make run", e.g. QEMU_ARGS="-M pc -m 1G"
QEMU_ARGS ?=
export QEMU_ARGS

# "make run GUEST=none": the machine and the card, no guest
GUEST ?= linux
export GUEST

# "make bench QUICK=1": short runs, a few minutes in all
QUICK ?=

.PHONY: all setup fetch overlay build run check check-quick bench export \
	check-series fuzz refresh-patches clean

all: build

setup:
	@build-aux/setup-host.sh

fetch: setup
	@build-aux/fetch-qemu.sh

overlay: fetch
	@build-aux/qemu-tree.py overlay

build: overlay
	@build-aux/build.sh

run: build
	@build-aux/run.sh $(QEMU_ARGS)

check: build
	@build-aux/check.sh

# "make check-quick TESTS=vtpm-pci-test": the qtests named only
TESTS ?=
check-quick: build
	@build-aux/check-quick.sh $(TESTS)

bench: build
	@bench/bench.py $(if $(QUICK),--quick)

export: fetch
	@build-aux/qemu-tree.py export -o $(VTPM_CACHE)/series

check-series: fetch
	@build-aux/check-series.sh

# "make fuzz SECONDS=600 FUZZ_TARGETS=vtpm-pci": the time per target, and
# which targets (default: all of build-aux/fuzz.sh's)
FUZZ_TARGETS ?=
fuzz: overlay
	@FUZZ_SECONDS=$(or $(SECONDS),60) build-aux/fuzz.sh $(FUZZ_TARGETS)

# After editing QEMU's own files in $(VTPM_CACHE)/qemu: fold the edits
# back into patches/.
refresh-patches:
	@build-aux/qemu-tree.py refresh

clean:
	rm -rf $(VTPM_CACHE)/build $(VTPM_CACHE)/series
