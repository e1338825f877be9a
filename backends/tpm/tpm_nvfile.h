/*
 * A TPM's non-volatile state in a file or a directory, written atomically
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TPM_NVFILE_H
#define TPM_NVFILE_H

/*
 * The state is a set of named blobs (libtpms calls them "permall",
 * "savestate", ...).  TPMNVFile keeps them in memory and, when it has a
 * path, in a file or a directory that is written on every change.  A
 * file is rewritten whole: to a temporary file in the same directory,
 * synced, renamed over the old one, and the directory synced.  A crash
 * at any moment leaves the old file or the new one.
 *
 * The file is QEMU's or swtpm's linear file; a directory is laid out as
 * swtpm's.  QEMU's file carries a SHA-256 checksum of the blobs, so that
 * a damaged file is refused rather than loaded.  In swtpm's directory
 * each blob is a file of its own, replaced as the whole file is; a
 * change to several blobs is not atomic across them, as in swtpm.
 *
 * Locks keep a second QEMU, and a swtpm, away from the same state: for
 * a file, "<path>.lock" and the file itself (which swtpm locks); for a
 * directory, swtpm's "<dir>/.lock".
 */
typedef struct TPMNVFile TPMNVFile;

typedef enum TPMNVFormat {
    TPM_NVFILE_AUTO,            /* a file: its own format; a new file: swtpm */
    TPM_NVFILE_QEMU,            /* QEMU's file ("QEMUTPMS") */
    TPM_NVFILE_SWTPM,           /* swtpm's linear file (backend-uri=file://) */
    TPM_NVFILE_SWTPM_DIR,       /* swtpm's directory (dir=) */
} TPMNVFormat;

/*
 * Open the state at @path (NULL: in memory only) for a TPM of family
 * @tpm_family (1 for TPM 1.2, 2 for TPM 2.0), and lock it.  @format is
 * the layout written: TPM_NVFILE_SWTPM_DIR for a directory, or for a
 * file one of the others; a file in the other file format is read and
 * rewritten at once in @format.  A missing file, or a directory without
 * the state's files, is an empty state: a new TPM.  A file that exists
 * but is not a valid state of that family is refused, and left as it
 * is.  With @replace, the state is not read: the caller is about to
 * replace it (with a state that arrived by migration).
 */
TPMNVFile *tpm_nvfile_open(const char *path, TPMNVFormat format,
                           uint32_t tpm_family, bool replace, Error **errp);
void tpm_nvfile_close(TPMNVFile *f);

/*
 * Let go of the lock while another QEMU takes over the state (outgoing
 * migration), and take it back if this one carries on.
 */
void tpm_nvfile_unlock(TPMNVFile *f);
bool tpm_nvfile_relock(TPMNVFile *f, Error **errp);

/* A new reference to the blob @name, or NULL */
GBytes *tpm_nvfile_get(TPMNVFile *f, const char *name);

/*
 * Set (@blob non-NULL) or delete the blob @name, and write the file.  On
 * failure the state, in memory and on disk, is as it was.
 */
bool tpm_nvfile_set(TPMNVFile *f, const char *name, GBytes *blob,
                    Error **errp);

/*
 * From tpm_nvfile_hold() on, changes stay in memory: tpm_nvfile_commit()
 * writes them to the file in one go (on failure, they are forgotten and
 * the state is as it was), tpm_nvfile_rollback() forgets them.  For what
 * libtpms writes while it starts: if it then fails to start, the file is
 * left as it was.
 */
void tpm_nvfile_hold(TPMNVFile *f);
bool tpm_nvfile_commit(TPMNVFile *f, Error **errp);
void tpm_nvfile_rollback(TPMNVFile *f);

#endif /* TPM_NVFILE_H */
