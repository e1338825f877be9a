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

/*
 * PCI identity: PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_VTPM
 * ("hw/pci/pci.h"), class PCI_CLASS_CRYPT_OTHER, and this revision
 */
#define VTPM_PCI_REVISION           0x01

/* BAR 0: I/O space, the registers below */
#define VTPM_PCI_BAR                0
#define VTPM_PCI_BAR_SIZE           0x40

/* BAR 1: memory space, the MSI-X table and pending bits (one vector) */
#define VTPM_PCI_MSIX_BAR           1

/*
 * BAR 2 (unless buffer-bar=off): memory space, plain RAM holding a command
 * for CONTROL.START_BUFFER, then its response; VTPM_PCI_BUFFER_MAX bytes
 */
#define VTPM_PCI_BUFFER_BAR         2

/*
 * Largest command or response the card buffers: room for the post-quantum
 * TPMs that need 8 KiB (libtpms 0.11); BUF_SIZE is the smaller of this and
 * the backend's buffer
 */
#define VTPM_PCI_BUFFER_MAX         8192

/* Identification block */
REG32(VTPM_ID, 0x00)
REG32(VTPM_VERSION, 0x04)
    FIELD(VTPM_VERSION, MINOR, 0, 16)
    FIELD(VTPM_VERSION, MAJOR, 16, 16)
REG32(VTPM_SCRATCH, 0x08)

/* Command interface */
REG32(VTPM_STATUS, 0x0c)
    FIELD(VTPM_STATUS, STATE, 0, 3)
    FIELD(VTPM_STATUS, ERROR, 3, 1)
    FIELD(VTPM_STATUS, FAMILY, 8, 2)
    FIELD(VTPM_STATUS, FLAGS_VALID, 12, 1)
    FIELD(VTPM_STATUS, ENABLED, 13, 1)
    FIELD(VTPM_STATUS, ACTIVATED, 14, 1)
    FIELD(VTPM_STATUS, OWNED, 15, 1)
REG32(VTPM_CONTROL, 0x10)
    FIELD(VTPM_CONTROL, START, 0, 1)
    FIELD(VTPM_CONTROL, CANCEL, 1, 1)
    FIELD(VTPM_CONTROL, ABORT, 2, 1)
    FIELD(VTPM_CONTROL, QUERY, 3, 1)
    FIELD(VTPM_CONTROL, START_BUFFER, 4, 1)     /* interface 1.1 */
REG32(VTPM_CMD_SIZE, 0x14)
REG32(VTPM_RSP_SIZE, 0x18)
REG32(VTPM_BUF_SIZE, 0x1c)
REG32(VTPM_LOCALITY, 0x20)
REG32(VTPM_INT_ENABLE, 0x24)
    FIELD(VTPM_INT_ENABLE, COMPLETE, 0, 1)
REG32(VTPM_INT_STATUS, 0x28)
    FIELD(VTPM_INT_STATUS, COMPLETE, 0, 1)
REG32(VTPM_ERROR, 0x2c)
REG32(VTPM_DATA, 0x30)
REG32(VTPM_FEATURES, 0x34)                      /* interface 1.1 */
    FIELD(VTPM_FEATURES, BUFFER, 0, 1)

/* VTPM_ID reads as the bytes 'V' 'T' 'P' 'M' from the lowest port up */
#define VTPM_PCI_ID_MAGIC           0x4d505456
#define VTPM_PCI_VERSION_MAJOR      1
#define VTPM_PCI_VERSION_MINOR      1

/* VTPM_STATUS.STATE */
enum VTPMCmdState {
    VTPM_STATE_IDLE = 0,            /* ready for a command */
    VTPM_STATE_RECEIVING = 1,       /* command bytes arriving on DATA */
    VTPM_STATE_EXECUTING = 2,       /* the TPM is processing the command */
    VTPM_STATE_COMPLETE = 3,        /* the response is readable on DATA */
};

/* VTPM_STATUS.FAMILY */
#define VTPM_FAMILY_TPM12           1
#define VTPM_FAMILY_TPM20           2

/* VTPM_ERROR: why the last operation was refused */
enum VTPMError {
    VTPM_ERR_NONE = 0,
    VTPM_ERR_STATE = 1,             /* not allowed in the current state */
    VTPM_ERR_OVERFLOW = 2,          /* command longer than BUF_SIZE */
    VTPM_ERR_LENGTH = 3,            /* bad command header length */
    VTPM_ERR_UNDERRUN = 4,          /* read past the end of the response */
    VTPM_ERR_ACCESS = 5,            /* bad register, offset or width */
    VTPM_ERR_VALUE = 6,             /* value out of range */
};

/* VTPM_LOCALITY: localities a guest may select */
#define VTPM_PCI_LOCALITY_MAX       3

#endif /* HW_TPM_VTPM_PCI_H */
