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

#define TYPE_TPM_LIBTPMS "tpm-libtpms"

/**
 * tpm_libtpms_create:
 * @id: the id the backend is known by, e.g. in query-tpm; it must not
 *      be taken by another TPM backend
 * @version: the TPM version to emulate, TPM_VERSION_1_2 or TPM_VERSION_2_0
 * @errp: pointer to a NULL-initialized error object
 *
 * Create a libtpms backend for a TPM frontend that was given no
 * backend, and register it like a backend created with -tpmdev: it is
 * listed by query-tpm once a frontend has attached to it with
 * tpm_backend_init(), and freed by tpm_cleanup() when QEMU exits.  The
 * caller does not own a reference to it.  The TPM's state lives in
 * memory only, and is lost when QEMU exits.
 *
 * libtpms holds the TPM's state in global variables, so there can be
 * only one libtpms backend per QEMU process.
 *
 * Returns: the backend, or NULL with @errp set on failure.
 */
TPMBackend *tpm_libtpms_create(const char *id, TPMVersion version,
                               Error **errp);

#endif /* SYSTEM_TPM_LIBTPMS_H */
