# SPDX-License-Identifier: GPL-2.0-or-later
#
# The x86_64 device set of the builds that test the TPM devices alone
# (--without-default-devices --with-devices-x86_64=vtpm-pci; env.sh's
# QEMU_CONFIGURE_ARGS_SMALL: the fuzz and TSan builds, the build without
# libtpms, and each commit of the series): the pc and q35 boards, the
# TPMs, and what the qtests and fuzz targets put beside them.  There is
# no CXL in it, so that all of those builds link x86 without CXL, which
# needs patch 1.  The QEMU that "make run" starts, and that the e2e tests
# boot, has QEMU's default device set.  Not part of the patch series.

CONFIG_I440FX=y
CONFIG_Q35=y
CONFIG_SERIAL_ISA=y
CONFIG_PCI_BRIDGE=y
# pci-bridge-io-pin-test: a device behind a pinned bridge window
CONFIG_PCI_TESTDEV=y
# PCIe root ports: the card behind one (vtpm-pci-test, the fuzz targets)
CONFIG_PCIE_PORT=y
# generic-fuzz-vtpm-pci-switch: the card behind a PCIe switch
CONFIG_XIO3130=y
CONFIG_TPM_CRB=y
CONFIG_TPM_TIS_ISA=y
CONFIG_VTPM_PCI=y
CONFIG_TPM_EMULATOR=y
CONFIG_TPM_PASSTHROUGH=y
CONFIG_TPM_LIBTPMS=y
