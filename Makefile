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
#   make absorb   fold the edits made to the series' files (in the
#                 checkout, and QEMU's in $(VTPM_CACHE)/qemu) into the
#                 commits they belong to, and rewrite patches/ (COMMIT=N:
#                 what git absorb cannot place goes into patch N;
#                 FILES="...": those files' edits only)
#   make export   rewrite patches/ from the series' git branch, after
#                 editing it with git (build-aux/series.sh git ...)
#   make format-series
#                 the series as it is sent, numbered, with the cover
#                 letter, in $(VTPM_CACHE)/series
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

.PHONY: all setup fetch overlay build run check check-quick bench absorb \
	export format-series check-series fuzz clean

all: build

setup:
	@build-aux/setup-host.sh

fetch: setup
	@build-aux/fetch-qemu.sh

overlay: fetch
	@build-aux/series.sh sync

build: overlay
	@build-aux/build.sh

run: build
	@build-aux/run.sh $(QEMU_ARGS)

# (check.sh builds, and meanwhile fetches the guest kernels)
check: overlay
	@build-aux/check.sh

# "make check-quick TESTS=vtpm-pci-test": the qtests named only
TESTS ?=
check-quick: build
	@build-aux/check-quick.sh $(TESTS)

bench: build
	@bench/bench.py $(if $(QUICK),--quick)

# "make absorb COMMIT=43": edits git absorb cannot place go into patch
# 43; FILES="hw/pci/pci.c ...": the edits to those files only
COMMIT ?=
FILES ?=
absorb: fetch
	@build-aux/series.sh absorb $(COMMIT) $(if $(FILES),-- $(FILES))

export: fetch
	@build-aux/series.sh export

format-series: fetch
	@build-aux/series.sh format $(VTPM_CACHE)/series

check-series: fetch
	@build-aux/check-series.sh

# "make fuzz SECONDS=600 FUZZ_TARGETS=vtpm-pci": the time per target, and
# which targets (default: all of build-aux/fuzz.sh's)
FUZZ_TARGETS ?=
fuzz: overlay
	@FUZZ_SECONDS=$(or $(SECONDS),60) build-aux/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(VTPM_CACHE)/build $(VTPM_CACHE)/series
