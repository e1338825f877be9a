# SPDX-License-Identifier: GPL-2.0-or-later
# The qtests "make check" builds and runs, by their meson names
# (qtest-x86_64/NAME): the series' own, and QEMU's that the series can
# break (the TPM tests that share its helpers, and the generic device
# and QOM tests).

QTESTS=(
    vtpm-pci-test
    vtpm-pci-buffer-test
    pci-bridge-io-pin-test
    vtpm-pci-swtpm-test
    tpm-libtpms-test
    tpm-libtpms-state-test
    fuzz-vtpm-pci-test
    tpm-crb-test
    tpm-crb-swtpm-test
    tpm-tis-test
    tpm-tis-swtpm-test
    device-introspect-test
    qom-test
)

# The qtests of the build without libtpms (check-nolibtpms.sh): the card
# with swtpm, and QEMU's own that the series can break there
QTESTS_NOLIBTPMS=(
    vtpm-pci-swtpm-test
    pci-bridge-io-pin-test
    tpm-crb-swtpm-test
    tpm-tis-swtpm-test
    device-introspect-test
    qom-test
)

# A swtpm newer than Debian 12's, whose state tpm-libtpms-state-test opens
# too (/tpm-libtpms/swtpm-newer/), once swtpm-sid.sh prepare made it
if [ -z "${QTEST_SWTPM_NEWER:-}" ] &&
   [ -x "$VTPM_CACHE/swtpm-newer/swtpm" ]; then
    QTEST_SWTPM_NEWER=$VTPM_CACHE/swtpm-newer/swtpm
fi
export QTEST_SWTPM_NEWER
