# SPDX-License-Identifier: GPL-2.0-or-later
#
# The x86_64 device set of the builds that test the TPM devices alone
# (--without-default-devices --with-devices-x86_64=vtpm-pci; env.sh's
# QEMU_CONFIGURE_ARGS_SMALL: the fuzz and TSan builds, and each commit of
# the series): the pc and q35 boards, the TPMs, and what the tests and a
# serial-console guest need (pci-bridge: the card behind a bridge).  The
# QEMU that "make run" starts has QEMU's default device set.  Not part of
# the patch series.

CONFIG_I440FX=y
CONFIG_Q35=y
CONFIG_ISA_DEBUG=y
CONFIG_SERIAL_ISA=y
CONFIG_PCI_BRIDGE=y
# pci-bridge-io-pin-test: a device behind a pinned bridge window
CONFIG_PCI_TESTDEV=y
# e2e: an I/O BAR beside a pinned card, the NIC guests have
CONFIG_E1000_PCI=y
# e2e pxb: a pinned root port behind a PCI expander bridge.  The PXB's
# code holds pxb-cxl, which links only with CXL (and CXL needs its
# memory devices).  The build without libtpms goes without all three,
# and so links with patch 1's stub of cxl_fmws_get_all_sorted().
CONFIG_PXB=y
CONFIG_CXL=y
CONFIG_CXL_MEM_DEVICE=y
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
