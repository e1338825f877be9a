/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libtpms TPM backend: a TPM 1.2 or 2.0 emulated inside QEMU
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#ifndef SYSTEM_TPM_LIBTPMS_H
#define SYSTEM_TPM_LIBTPMS_H

#include "system/tpm_backend.h"

/*
 * The libtpms backend's QOM type.  It exists only in a QEMU built with
 * libtpms: a frontend that wants a TPM of its own looks the class up by
 * this name (object_class_by_name()) and calls its create_own.  libtpms
 * holds the TPM's state in global variables, so there can be only one
 * libtpms backend per QEMU process.
 */
#define TYPE_TPM_LIBTPMS "tpm-libtpms"

#endif /* SYSTEM_TPM_LIBTPMS_H */
