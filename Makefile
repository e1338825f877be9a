# SPDX-License-Identifier: GPL-2.0-or-later
#
# vtpm-pci: build QEMU with the card, run it, test it.
#
#   make run      set up the host, build, start QEMU with -device vtpm-pci
#   make check    set up the host, build, run the test suite
#   make export   write the change as a patch series (patches are in
#                 $(VTPM_CACHE)/series) and check it applies
#
# Everything built or downloaded lives in $(VTPM_CACHE), outside the
# checkout, so a second run only rebuilds what changed.

VTPM_CACHE ?= $(HOME)/.cache/vtpm-pci
export VTPM_CACHE

# Extra arguments for "make run", e.g. QEMU_ARGS="-M pc -m 1G"
QEMU_ARGS ?=
export QEMU_ARGS

.PHONY: all setup fetch overlay build run check export refresh-patches clean

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

export: fetch
	@build-aux/qemu-tree.py export -o $(VTPM_CACHE)/series

# After editing QEMU's own files in $(VTPM_CACHE)/qemu: fold the edits
# back into patches/.
refresh-patches:
	@build-aux/qemu-tree.py refresh

clean:
	rm -rf $(VTPM_CACHE)/build $(VTPM_CACHE)/series
