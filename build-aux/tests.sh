# SPDX-License-Identifier: GPL-2.0-or-later
# The qtests "make check" builds and runs, by their meson names
# (qtest-x86_64/NAME).

QTESTS=(
    vtpm-pci-test
    vtpm-pci-swtpm-test
    tpm-libtpms-test
    tpm-libtpms-state-test
    device-introspect-test
    qom-test
)
