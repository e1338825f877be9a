/*
 * vtpm-pci: a PCI TPM card with an I/O port register interface
 *
 * Register map shared by the device model and its tests.  The guest-visible
 * interface is specified in docs/specs/vtpm-pci.rst.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_TPM_VTPM_PCI_H
#define HW_TPM_VTPM_PCI_H

#include "hw/registerfields.h"

#define TYPE_VTPM_PCI "vtpm-pci"

/* PCI identity; 1af4:10f0-10ff is free for experimental use */
#define VTPM_PCI_VENDOR_ID          0x1af4
#define VTPM_PCI_DEVICE_ID          0x10f2
#define VTPM_PCI_REVISION           0x01
#define VTPM_PCI_CLASS_CODE         0x1080  /* PCI_CLASS_CRYPT_OTHER */

/* BAR 0: I/O space, VTPM_PCI_BAR_SIZE ports */
#define VTPM_PCI_BAR                0
#define VTPM_PCI_BAR_SIZE           0x40

/* Identification block */
REG32(VTPM_ID, 0x00)
REG32(VTPM_VERSION, 0x04)
    FIELD(VTPM_VERSION, MINOR, 0, 16)
    FIELD(VTPM_VERSION, MAJOR, 16, 16)
REG32(VTPM_SCRATCH, 0x08)

/* VTPM_ID reads as the bytes 'V' 'T' 'P' 'M' from the lowest port up */
#define VTPM_PCI_ID_MAGIC           0x4d505456
#define VTPM_PCI_VERSION_MAJOR      1
#define VTPM_PCI_VERSION_MINOR      0

#endif /* HW_TPM_VTPM_PCI_H */
