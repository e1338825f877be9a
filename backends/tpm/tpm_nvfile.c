/*
 * A TPM's non-volatile state in a file or a directory, written atomically
 *
 * Three layouts hold the same named blobs (see tpm_nvfile.h):
 *
 * QEMU's file (TPM_NVFILE_QEMU):
 *
 *   offset  size  field
 *        0     8  magic, "QEMUTPMS"
 *        8     4  format version, 1
 *       12     4  TPM family: 1 for TPM 1.2, 2 for TPM 2.0
 *       16     4  payload length in bytes
 *       20    32  SHA-256 of the payload
 *       52     -  payload: blobs sorted by name, each a name length (2),
 *                 the name, a blob length (4), the blob
 *
 *   Numbers are big-endian.
 *
 * swtpm's blobs, as both of swtpm's layouts store them: a header of 10
 * bytes (version 2, the oldest reader version 1, the header size 10,
 * flags, the blob's total size; big-endian) and a tag-length-value
 * stream of which tag 1 holds the blob as libtpms gave it.  Flags mark
 * an encrypted blob (swtpm --key or --pwdfile) and swtpm's migration
 * blobs; neither is a state this file reads.
 *
 * swtpm's linear file (TPM_NVFILE_SWTPM, swtpm --tpmstate
 * backend-uri=file://PATH):
 *
 *   offset  size  field
 *        0     8  magic, 0x737774706d6c696e ("swtpmlin")
 *        8     1  format version, 1
 *        9     1  zero
 *       10     2  header size, 192
 *       12   180  15 slots, each an offset (4), a blob size (4) and a
 *                 section size (4); offset 0 is an unused slot
 *      192     -  sections: slot 0 is "permall", 1 "volatilestate",
 *                 2 "savestate"; each holds an swtpm blob and is a
 *                 power of two long
 *
 *   Numbers are little-endian.  swtpm writes this file in place; this
 *   file writes it whole, as QEMU's own.
 *
 * swtpm's directory (TPM_NVFILE_SWTPM_DIR, swtpm --tpmstate dir=DIR):
 * one file of one swtpm blob each, "tpm2-00.<name>" for a TPM 2.0 and
 * "tpm-00.<name>" for a TPM 1.2, and the lock ".lock".
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "tpm_nvfile.h"
#include "trace.h"

#define TPM_NVFILE_MAGIC        "QEMUTPMS"
#define TPM_NVFILE_FORMAT       1
#define TPM_NVFILE_HEADER_SIZE  52
#define TPM_NVFILE_DIGEST_SIZE  32
/* Far more than libtpms' state needs, but bounded */
#define TPM_NVFILE_MAX_SIZE     (16 * MiB)

#define SWTPM_BLOB_VERSION              2
#define SWTPM_BLOB_MIN_VERSION          1
#define SWTPM_BLOB_HEADER_SIZE          10
#define SWTPM_BLOB_FLAG_ENCRYPTED       0x01
#define SWTPM_BLOB_FLAG_MIGRATION_ENC   0x02
#define SWTPM_BLOB_FLAG_MIGRATION_DATA  0x04
#define SWTPM_BLOB_FLAG_ENCRYPTED_256   0x08
#define SWTPM_BLOB_FLAG_MIGRATION_256   0x10
#define SWTPM_TLV_HEADER_SIZE           6
#define SWTPM_TAG_DATA                  1

#define SWTPM_LINEAR_MAGIC              0x737774706d6c696eULL
#define SWTPM_LINEAR_VERSION            1
#define SWTPM_LINEAR_HEADER_SIZE        192
#define SWTPM_LINEAR_SLOTS              15
#define SWTPM_LINEAR_SLOT_OFFSET        12
#define SWTPM_LINEAR_SLOT_SIZE          12

/* The blobs swtpm's layouts store, in the order of the linear file's slots */
static const char *const tpm_nvfile_swtpm_names[] = {
    "permall", "volatilestate", "savestate",
};

struct TPMNVFile {
    char *path;                 /* NULL: in memory only */
    TPMNVFormat format;         /* never TPM_NVFILE_AUTO once open */
    uint32_t tpm_family;
    int lock_fd;                /* <path>.lock, or swtpm's <dir>/.lock */
    int file_fd;                /* a state file, locked too, or -1 */
    GHashTable *blobs;          /* name -> GBytes */
    GHashTable *on_disk;        /* swtpm's directory: its files, or NULL */
    GHashTable *held;           /* the blobs before tpm_nvfile_hold() */
    bool dirty;                 /* changed since tpm_nvfile_hold() */
};

static const char *tpm_nvfile_format_name(TPMNVFormat format)
{
    switch (format) {
    case TPM_NVFILE_QEMU:
        return "qemu";
    case TPM_NVFILE_SWTPM:
        return "swtpm";
    case TPM_NVFILE_SWTPM_DIR:
        return "swtpm-dir";
    default:
        return "auto";
    }
}

static GHashTable *tpm_nvfile_new_blobs(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                 (GDestroyNotify)g_bytes_unref);
}

static GHashTable *tpm_nvfile_copy_blobs(GHashTable *blobs)
{
    GHashTable *copy = tpm_nvfile_new_blobs();
    GHashTableIter iter;
    gpointer name, blob;

    g_hash_table_iter_init(&iter, blobs);
    while (g_hash_table_iter_next(&iter, &name, &blob)) {
        g_hash_table_insert(copy, g_strdup(name), g_bytes_ref(blob));
    }
    return copy;
}

/* The slot of blob @name in swtpm's linear file, or -1 */
static int tpm_nvfile_swtpm_slot(const char *name)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(tpm_nvfile_swtpm_names); i++) {
        if (!strcmp(name, tpm_nvfile_swtpm_names[i])) {
            return i;
        }
    }
    return -1;
}

/* The file of blob @name in swtpm's directory */
static char *tpm_nvfile_swtpm_dir_file(TPMNVFile *f, uint32_t family,
                                       const char *name)
{
    return g_strdup_printf("%s/tpm%s-00.%s", f->path,
                           family == 2 ? "2" : "", name);
}

static void tpm_nvfile_digest(const uint8_t *data, size_t len,
                              uint8_t digest[TPM_NVFILE_DIGEST_SIZE])
{
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    gsize digest_len = TPM_NVFILE_DIGEST_SIZE;

    g_checksum_update(sha256, data, len);
    g_checksum_get_digest(sha256, digest, &digest_len);
}

static gint tpm_nvfile_name_cmp(gconstpointer a, gconstpointer b,
                                gpointer unused)
{
    return strcmp(a, b);
}

/* QEMU's file: its image, header and payload */
static GByteArray *tpm_nvfile_serialize(TPMNVFile *f)
{
    GByteArray *img = g_byte_array_new();
    g_autoptr(GList) names = g_hash_table_get_keys(f->blobs);
    uint8_t header[TPM_NVFILE_HEADER_SIZE] = { 0 };
    uint8_t num[4];
    GList *l;

    g_byte_array_append(img, header, sizeof(header));
    names = g_list_sort_with_data(names, tpm_nvfile_name_cmp, NULL);
    for (l = names; l; l = l->next) {
        GBytes *blob = g_hash_table_lookup(f->blobs, l->data);
        size_t name_len = strlen(l->data), len;
        const void *data = g_bytes_get_data(blob, &len);

        stw_be_p(num, name_len);
        g_byte_array_append(img, num, 2);
        g_byte_array_append(img, l->data, name_len);
        stl_be_p(num, len);
        g_byte_array_append(img, num, 4);
        g_byte_array_append(img, data, len);
    }

    memcpy(img->data, TPM_NVFILE_MAGIC, 8);
    stl_be_p(img->data + 8, TPM_NVFILE_FORMAT);
    stl_be_p(img->data + 12, f->tpm_family);
    stl_be_p(img->data + 16, img->len - TPM_NVFILE_HEADER_SIZE);
    tpm_nvfile_digest(img->data + TPM_NVFILE_HEADER_SIZE,
                      img->len - TPM_NVFILE_HEADER_SIZE, img->data + 20);
    return img;
}

/* QEMU's file: check its image, and load its blobs */
static bool tpm_nvfile_parse(TPMNVFile *f, const uint8_t *img, size_t size,
                             Error **errp)
{
    uint8_t digest[TPM_NVFILE_DIGEST_SIZE];
    const uint8_t *p, *end;
    uint32_t len;

    if (size < TPM_NVFILE_HEADER_SIZE) {
        error_setg(errp, "TPM state file '%s' is truncated: %zu bytes, "
                   "less than its header", f->path, size);
        return false;
    }
    if (ldl_be_p(img + 8) != TPM_NVFILE_FORMAT) {
        error_setg(errp, "TPM state file '%s' has format version %" PRIu32
                   "; this QEMU reads version %d", f->path, ldl_be_p(img + 8),
                   TPM_NVFILE_FORMAT);
        return false;
    }
    if (ldl_be_p(img + 12) != f->tpm_family) {
        error_setg(errp, "TPM state file '%s' holds a TPM %s, not a TPM %s",
                   f->path, ldl_be_p(img + 12) == 1 ? "1.2" : "2.0",
                   f->tpm_family == 1 ? "1.2" : "2.0");
        return false;
    }
    len = ldl_be_p(img + 16);
    if (len != size - TPM_NVFILE_HEADER_SIZE) {
        error_setg(errp, "TPM state file '%s' is %s: %zu bytes, its header "
                   "says %" PRIu32, f->path,
                   len > size - TPM_NVFILE_HEADER_SIZE ? "truncated" :
                   "longer than it should be", size,
                   len + TPM_NVFILE_HEADER_SIZE);
        return false;
    }
    tpm_nvfile_digest(img + TPM_NVFILE_HEADER_SIZE, len, digest);
    if (memcmp(digest, img + 20, sizeof(digest))) {
        error_setg(errp, "TPM state file '%s' is corrupt: its checksum does "
                   "not match", f->path);
        return false;
    }

    p = img + TPM_NVFILE_HEADER_SIZE;
    end = p + len;
    while (p < end) {
        uint16_t name_len;
        uint32_t blob_len;
        char *name;

        if (end - p < 2) {
            break;
        }
        name_len = lduw_be_p(p);
        if (name_len == 0 || end - p - 2 < name_len + 4) {
            break;
        }
        name = g_strndup((const char *)p + 2, name_len);
        p += 2 + name_len;
        blob_len = ldl_be_p(p);
        p += 4;
        if (end - p < blob_len || strlen(name) != name_len) {
            g_free(name);
            break;
        }
        g_hash_table_insert(f->blobs, name, g_bytes_new(p, blob_len));
        p += blob_len;
    }
    if (p != end) {
        /* A checksummed file this QEMU did not write */
        error_setg(errp, "TPM state file '%s' is corrupt: bad entry at "
                   "offset %td", f->path, p - img);
        return false;
    }
    return true;
}

/* swtpm's blob: the libtpms blob @blob with swtpm's header */
static void tpm_nvfile_swtpm_wrap(GByteArray *out, GBytes *blob)
{
    uint8_t header[SWTPM_BLOB_HEADER_SIZE + SWTPM_TLV_HEADER_SIZE];
    size_t len;
    const void *data = g_bytes_get_data(blob, &len);

    header[0] = SWTPM_BLOB_VERSION;
    header[1] = SWTPM_BLOB_MIN_VERSION;
    stw_be_p(header + 2, SWTPM_BLOB_HEADER_SIZE);
    stw_be_p(header + 4, 0);
    stl_be_p(header + 6, sizeof(header) + len);
    stw_be_p(header + 10, SWTPM_TAG_DATA);
    stl_be_p(header + 12, len);
    g_byte_array_append(out, header, sizeof(header));
    g_byte_array_append(out, data, len);
}

/*
 * swtpm's blob: check the @len bytes at @p, which @what names, and
 * return the libtpms blob they hold
 */
static GBytes *tpm_nvfile_swtpm_unwrap(const uint8_t *p, size_t len,
                                       const char *what, Error **errp)
{
    const uint16_t known_flags = SWTPM_BLOB_FLAG_ENCRYPTED |
        SWTPM_BLOB_FLAG_MIGRATION_ENC | SWTPM_BLOB_FLAG_MIGRATION_DATA |
        SWTPM_BLOB_FLAG_ENCRYPTED_256 | SWTPM_BLOB_FLAG_MIGRATION_256;
    const uint8_t *data = NULL;
    uint32_t data_len = 0;
    uint16_t flags;
    size_t off;

    if (len < SWTPM_BLOB_HEADER_SIZE) {
        error_setg(errp, "%s is truncated: %zu bytes, less than swtpm's "
                   "header", what, len);
        return NULL;
    }
    if (ldl_be_p(p + 6) != len) {
        error_setg(errp, "%s is %s: %zu bytes, its header says %" PRIu32,
                   what, ldl_be_p(p + 6) > len ? "truncated" :
                   "longer than it should be", len, ldl_be_p(p + 6));
        return NULL;
    }
    if (p[1] > SWTPM_BLOB_VERSION) {
        error_setg(errp, "%s needs a reader of swtpm's blob version %u; "
                   "this QEMU reads version %d", what, p[1],
                   SWTPM_BLOB_VERSION);
        return NULL;
    }
    if (lduw_be_p(p + 2) != SWTPM_BLOB_HEADER_SIZE) {
        error_setg(errp, "%s has a header of %u bytes; swtpm's is %d",
                   what, lduw_be_p(p + 2), SWTPM_BLOB_HEADER_SIZE);
        return NULL;
    }
    flags = lduw_be_p(p + 4);
    if (flags & SWTPM_BLOB_FLAG_ENCRYPTED) {
        error_setg(errp, "%s is encrypted with swtpm's --key or --pwdfile "
                   "option, which -tpmdev libtpms has no equivalent of",
                   what);
        error_append_hint(errp, "Keep this TPM with -tpmdev emulator and "
                          "the swtpm option that decrypts it.\n");
        return NULL;
    }
    if (flags & ~known_flags) {
        error_setg(errp, "%s has flags 0x%x, which this QEMU does not know",
                   what, flags & ~known_flags);
        return NULL;
    }
    if (flags) {
        error_setg(errp, "%s is one of swtpm's migration blobs (flags 0x%x), "
                   "not a stored state", what, flags);
        return NULL;
    }
    if (p[0] < SWTPM_BLOB_VERSION) {
        /* Version 1 stored the blob as it is */
        return g_bytes_new(p + SWTPM_BLOB_HEADER_SIZE,
                           len - SWTPM_BLOB_HEADER_SIZE);
    }

    for (off = SWTPM_BLOB_HEADER_SIZE; off < len; ) {
        uint16_t tag;
        uint32_t tlv_len;

        if (len - off < SWTPM_TLV_HEADER_SIZE) {
            error_setg(errp, "%s is truncated at offset %zu", what, off);
            return NULL;
        }
        tag = lduw_be_p(p + off);
        tlv_len = ldl_be_p(p + off + 2);
        off += SWTPM_TLV_HEADER_SIZE;
        if (tlv_len > len - off) {
            error_setg(errp, "%s is truncated: its tag %u at offset %zu "
                       "needs %" PRIu32 " bytes, %zu are left", what, tag,
                       off - SWTPM_TLV_HEADER_SIZE, tlv_len, len - off);
            return NULL;
        }
        if (tag != SWTPM_TAG_DATA || data) {
            error_setg(errp, "%s has %s tag %u at offset %zu", what,
                       tag == SWTPM_TAG_DATA ? "a second" : "an unexpected",
                       tag, off - SWTPM_TLV_HEADER_SIZE);
            return NULL;
        }
        data = p + off;
        data_len = tlv_len;
        off += tlv_len;
    }
    if (!data) {
        error_setg(errp, "%s holds no data", what);
        return NULL;
    }
    return g_bytes_new(data, data_len);
}

/* swtpm's linear file: its image */
static GByteArray *tpm_nvfile_swtpm_serialize(TPMNVFile *f)
{
    GByteArray *img = g_byte_array_new();
    uint8_t header[SWTPM_LINEAR_HEADER_SIZE] = { 0 };
    int i;

    g_byte_array_append(img, header, sizeof(header));
    for (i = 0; i < ARRAY_SIZE(tpm_nvfile_swtpm_names); i++) {
        GBytes *blob = g_hash_table_lookup(f->blobs,
                                           tpm_nvfile_swtpm_names[i]);
        uint32_t offset = img->len, len, section;
        uint8_t *slot;

        if (!blob) {
            continue;
        }
        tpm_nvfile_swtpm_wrap(img, blob);
        len = img->len - offset;
        /* Sections are a power of two long, as swtpm makes them */
        section = pow2ceil(len);
        g_byte_array_set_size(img, offset + section);
        memset(img->data + offset + len, 0, section - len);
        slot = img->data + SWTPM_LINEAR_SLOT_OFFSET +
               i * SWTPM_LINEAR_SLOT_SIZE;
        stl_le_p(slot, offset);
        stl_le_p(slot + 4, len);
        stl_le_p(slot + 8, section);
    }
    stq_le_p(img->data, SWTPM_LINEAR_MAGIC);
    img->data[8] = SWTPM_LINEAR_VERSION;
    stw_le_p(img->data + 10, SWTPM_LINEAR_HEADER_SIZE);
    return img;
}

/* swtpm's linear file: check its image, and load its blobs */
static bool tpm_nvfile_swtpm_parse(TPMNVFile *f, const uint8_t *img,
                                   size_t size, Error **errp)
{
    int i;

    if (size < SWTPM_LINEAR_HEADER_SIZE) {
        error_setg(errp, "TPM state file '%s' is truncated: %zu bytes, "
                   "less than its header", f->path, size);
        return false;
    }
    if (img[8] != SWTPM_LINEAR_VERSION) {
        error_setg(errp, "TPM state file '%s' has swtpm's format version "
                   "%u; this QEMU reads version %d", f->path, img[8],
                   SWTPM_LINEAR_VERSION);
        return false;
    }
    if (lduw_le_p(img + 10) != SWTPM_LINEAR_HEADER_SIZE) {
        error_setg(errp, "TPM state file '%s' has a header of %u bytes; "
                   "swtpm's is %d", f->path, lduw_le_p(img + 10),
                   SWTPM_LINEAR_HEADER_SIZE);
        return false;
    }
    for (i = 0; i < SWTPM_LINEAR_SLOTS; i++) {
        const uint8_t *slot = img + SWTPM_LINEAR_SLOT_OFFSET +
                              i * SWTPM_LINEAR_SLOT_SIZE;
        uint64_t offset = ldl_le_p(slot), len = ldl_le_p(slot + 4);
        g_autofree char *what = NULL;
        GBytes *blob;

        if (!offset) {
            continue;
        }
        if (i >= ARRAY_SIZE(tpm_nvfile_swtpm_names)) {
            error_setg(errp, "TPM state file '%s' uses slot %d, which "
                       "swtpm does not", f->path, i);
            return false;
        }
        what = g_strdup_printf("TPM state file '%s': %s", f->path,
                               tpm_nvfile_swtpm_names[i]);
        if (offset < SWTPM_LINEAR_HEADER_SIZE || offset + len > size ||
            len > ldl_le_p(slot + 8)) {
            error_setg(errp, "%s is out of bounds: %" PRIu64 " bytes at "
                       "offset %" PRIu64 " in a section of %" PRIu32
                       ", in a file of %zu", what, len, offset,
                       ldl_le_p(slot + 8), size);
            return false;
        }
        blob = tpm_nvfile_swtpm_unwrap(img + offset, len, what, errp);
        if (!blob) {
            return false;
        }
        g_hash_table_insert(f->blobs, g_strdup(tpm_nvfile_swtpm_names[i]),
                            blob);
    }
    return true;
}

/*
 * Open @path, never through a symbolic link, and only if it is a regular
 * file, which @st then describes: the state and its lock are the TPM's
 * secrets and its owner's, and a link or a device in their place would
 * turn QEMU's reads and writes elsewhere.  Non-blocking, so that a FIFO
 * is refused rather than waited on.  @what names the file in messages;
 * @mode is the mode of a file that @flags creates.  Returns -ENOENT,
 * with no error set, when @path does not exist and @flags does not
 * create it; -1 on other errors.
 */
static int tpm_nvfile_open_regular(const char *path, int flags, mode_t mode,
                                   const char *what, struct stat *st,
                                   Error **errp)
{
    int fd;

    fd = qemu_open_old(path, flags | O_NOFOLLOW | O_NONBLOCK, mode);
    if (fd < 0) {
        if (errno == ENOENT && !(flags & O_CREAT)) {
            return -ENOENT;
        }
        if (errno == ELOOP) {
            error_setg(errp, "%s '%s' is a symbolic link", what, path);
        } else if (errno == EISDIR) {
            error_setg(errp, "%s '%s' is a directory", what, path);
        } else {
            error_setg_errno(errp, errno, "cannot open %s '%s'", what, path);
        }
        return -1;
    }
    if (fstat(fd, st) < 0) {
        error_setg_errno(errp, errno, "cannot stat %s '%s'", what, path);
    } else if (S_ISDIR(st->st_mode)) {
        error_setg(errp, "%s '%s' is a directory", what, path);
    } else if (!S_ISREG(st->st_mode)) {
        error_setg(errp, "%s '%s' is not a regular file", what, path);
    } else if (qemu_set_blocking(fd, true, errp)) {
        return fd;
    }
    qemu_close(fd);
    return -1;
}

/*
 * Take the lock: on "<path>.lock" for a state file, which keeps QEMUs
 * apart even before the file exists; on swtpm's "<dir>/.lock" for its
 * directory, with a mode as swtpm gives it.  QEMU's locks are open file
 * description locks where the host has them, which conflict with the
 * process-associated locks swtpm takes.
 */
static bool tpm_nvfile_lock(TPMNVFile *f, Error **errp)
{
    bool dir = f->format == TPM_NVFILE_SWTPM_DIR;
    g_autofree char *lock_path = g_strdup_printf(dir ? "%s/.lock" :
                                                 "%s.lock", f->path);
    struct stat st;
    int ret;

    f->lock_fd = tpm_nvfile_open_regular(lock_path, O_RDWR | O_CREAT,
                                         dir ? 0660 : 0600,
                                         "TPM state lock file", &st, errp);
    if (f->lock_fd < 0) {
        error_prepend(errp, "cannot lock TPM state %s '%s': ",
                      dir ? "directory" : "file", f->path);
        return false;
    }
    ret = qemu_lock_fd(f->lock_fd, 0, 0, true);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "TPM state %s '%s' is in use by "
                         "another process (lock on '%s')",
                         dir ? "directory" : "file", f->path, lock_path);
        qemu_close(f->lock_fd);
        f->lock_fd = -1;
        return false;
    }
    return true;
}

/*
 * Open the state file and lock it too, if it exists: swtpm locks its
 * linear file itself (swtpm 0.10, --tpmstate ...,lock), not a file
 * beside it.  Every file that replaces it is locked before it does.
 */
static bool tpm_nvfile_lock_file(TPMNVFile *f, struct stat *st,
                                 Error **errp)
{
    int ret;

    f->file_fd = tpm_nvfile_open_regular(f->path, O_RDWR, 0, "TPM state file",
                                         st, errp);
    if (f->file_fd == -ENOENT) {
        f->file_fd = -1;
        return true;
    }
    if (f->file_fd < 0) {
        return false;
    }
    ret = qemu_lock_fd(f->file_fd, 0, 0, true);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "TPM state file '%s' is in use by "
                         "another process (a lock on it)", f->path);
        qemu_close(f->file_fd);
        f->file_fd = -1;
        return false;
    }
    return true;
}

static void tpm_nvfile_unlock_all(TPMNVFile *f)
{
    if (f->file_fd >= 0) {
        qemu_close(f->file_fd);
        f->file_fd = -1;
    }
    if (f->lock_fd >= 0) {
        qemu_close(f->lock_fd);
        f->lock_fd = -1;
    }
}

static bool tpm_nvfile_lock_all(TPMNVFile *f, Error **errp)
{
    struct stat st;

    if (!tpm_nvfile_lock(f, errp)) {
        return false;
    }
    if (f->format != TPM_NVFILE_SWTPM_DIR &&
        !tpm_nvfile_lock_file(f, &st, errp)) {
        tpm_nvfile_unlock_all(f);
        return false;
    }
    return true;
}

/*
 * Read the file @fd, which @st describes and @what and @path name, whole:
 * NULL, with @errp set, if it is too large to be a TPM's or it changed
 * while it was read
 */
static GBytes *tpm_nvfile_read(int fd, const struct stat *st,
                               const char *what, const char *path,
                               Error **errp)
{
    g_autofree uint8_t *img = NULL;
    ssize_t len, n;

    if (st->st_size > TPM_NVFILE_MAX_SIZE) {
        error_setg(errp, "%s '%s' is too large to be a TPM state: %" PRId64
                   " bytes", what, path, (int64_t)st->st_size);
        return NULL;
    }
    /* One byte more than its size: a file that grew since is refused */
    img = g_malloc(st->st_size + 1);
    for (len = 0; len <= st->st_size; len += n) {
        n = RETRY_ON_EINTR(pread(fd, img + len, st->st_size + 1 - len, len));
        if (n < 0) {
            error_setg_errno(errp, errno, "cannot read %s '%s'", what, path);
            return NULL;
        }
        if (n == 0) {
            break;
        }
    }
    if (len != st->st_size) {
        error_setg(errp, "%s '%s' changed while it was read", what, path);
        return NULL;
    }
    return g_bytes_new_take(g_steal_pointer(&img), len);
}

/* The format of a state file that starts with the @len bytes at @img */
static TPMNVFormat tpm_nvfile_detect(const uint8_t *img, size_t len)
{
    if (len >= 8 && !memcmp(img, TPM_NVFILE_MAGIC, 8)) {
        return TPM_NVFILE_QEMU;
    }
    if (len >= 8 && ldq_le_p(img) == SWTPM_LINEAR_MAGIC) {
        return TPM_NVFILE_SWTPM;
    }
    return TPM_NVFILE_AUTO;
}

/*
 * Load the blobs of the state file, from the locked descriptor; *@found
 * is the file's format, or TPM_NVFILE_AUTO for none
 */
static bool tpm_nvfile_load_file(TPMNVFile *f, TPMNVFormat *found,
                                 Error **errp)
{
    g_autoptr(GBytes) img = NULL;
    const uint8_t *data;
    struct stat st;
    size_t len;

    *found = TPM_NVFILE_AUTO;
    if (f->file_fd < 0) {
        /* None: the user asked for a new TPM, which libtpms manufactures */
        return true;
    }
    if (fstat(f->file_fd, &st) < 0) {
        error_setg_errno(errp, errno, "cannot stat TPM state file '%s'",
                         f->path);
        return false;
    }
    img = tpm_nvfile_read(f->file_fd, &st, "TPM state file", f->path, errp);
    if (!img) {
        return false;
    }
    data = g_bytes_get_data(img, &len);
    if (len == 0) {
        error_setg(errp, "TPM state file '%s' is empty", f->path);
        return false;
    }
    *found = tpm_nvfile_detect(data, len);
    switch (*found) {
    case TPM_NVFILE_QEMU:
        return tpm_nvfile_parse(f, data, len, errp);
    case TPM_NVFILE_SWTPM:
        return tpm_nvfile_swtpm_parse(f, data, len, errp);
    default:
        error_setg(errp, "'%s' is not a TPM state file: neither QEMU's nor "
                   "swtpm's linear file", f->path);
        return false;
    }
}

static bool tpm_nvfile_check_dir(TPMNVFile *f, Error **errp)
{
    struct stat st;

    if (stat(f->path, &st) < 0) {
        error_setg_errno(errp, errno, "cannot use TPM state directory '%s'",
                         f->path);
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        error_setg(errp, "TPM state directory '%s' is not a directory",
                   f->path);
        return false;
    }
    return true;
}

/* Load the blobs of swtpm's directory */
static bool tpm_nvfile_load_dir(TPMNVFile *f, Error **errp)
{
    g_autofree char *other = NULL;
    struct stat st;
    int i, fd;

    for (i = 0; i < ARRAY_SIZE(tpm_nvfile_swtpm_names); i++) {
        const char *name = tpm_nvfile_swtpm_names[i];
        g_autofree char *path = tpm_nvfile_swtpm_dir_file(f, f->tpm_family,
                                                          name);
        g_autofree char *what = NULL;
        g_autoptr(GBytes) img = NULL;
        const uint8_t *data;
        GBytes *blob;
        size_t len;

        fd = tpm_nvfile_open_regular(path, O_RDONLY, 0, "TPM state file",
                                     &st, errp);
        if (fd == -ENOENT) {
            continue;
        }
        if (fd < 0) {
            return false;
        }
        img = tpm_nvfile_read(fd, &st, "TPM state file", path, errp);
        qemu_close(fd);
        if (!img) {
            return false;
        }
        data = g_bytes_get_data(img, &len);
        what = g_strdup_printf("TPM state file '%s'", path);
        blob = tpm_nvfile_swtpm_unwrap(data, len, what, errp);
        if (!blob) {
            return false;
        }
        g_hash_table_insert(f->blobs, g_strdup(name), blob);
    }

    /* A new TPM in a directory that holds the other family's */
    other = tpm_nvfile_swtpm_dir_file(f, f->tpm_family == 2 ? 1 : 2,
                                      "permall");
    if (!g_hash_table_size(f->blobs) && !access(other, F_OK)) {
        error_setg(errp, "TPM state directory '%s' holds a TPM %s ('%s'), "
                   "not a TPM %s", f->path, f->tpm_family == 2 ? "1.2" :
                   "2.0", other, f->tpm_family == 2 ? "2.0" : "1.2");
        return false;
    }
    f->on_disk = tpm_nvfile_copy_blobs(f->blobs);
    return true;
}

static bool tpm_nvfile_store(TPMNVFile *f, Error **errp);

TPMNVFile *tpm_nvfile_open(const char *path, TPMNVFormat format,
                           uint32_t tpm_family, bool replace, Error **errp)
{
    TPMNVFile *f = g_new0(TPMNVFile, 1);
    TPMNVFormat found = TPM_NVFILE_AUTO;

    f->format = format;
    f->tpm_family = tpm_family;
    f->lock_fd = -1;
    f->file_fd = -1;
    f->blobs = tpm_nvfile_new_blobs();
    if (!path) {
        f->format = TPM_NVFILE_QEMU;
        return f;
    }
    f->path = g_strdup(path);
    if ((format == TPM_NVFILE_SWTPM_DIR && !tpm_nvfile_check_dir(f, errp)) ||
        !tpm_nvfile_lock_all(f, errp)) {
        goto fail;
    }

    if (format == TPM_NVFILE_SWTPM_DIR) {
        /* With @replace, every file is written or removed at the first store */
        if (!replace && !tpm_nvfile_load_dir(f, errp)) {
            goto fail;
        }
    } else if (replace) {
        uint8_t magic[8];

        if (f->file_fd >= 0 &&
            pread(f->file_fd, magic, sizeof(magic), 0) == sizeof(magic)) {
            found = tpm_nvfile_detect(magic, sizeof(magic));
        }
    } else if (!tpm_nvfile_load_file(f, &found, errp)) {
        goto fail;
    }

    if (f->format == TPM_NVFILE_AUTO) {
        /* A file keeps its format; a new one gets swtpm's */
        f->format = found == TPM_NVFILE_AUTO ? TPM_NVFILE_SWTPM : found;
    } else if (!replace && found != TPM_NVFILE_AUTO && found != f->format) {
        /* The user asked for the file in the other format: now */
        if (!tpm_nvfile_store(f, errp)) {
            error_prepend(errp, "cannot convert TPM state file '%s' to %s's "
                          "format: ", path, f->format == TPM_NVFILE_QEMU ?
                          "QEMU" : "swtpm");
            goto fail;
        }
    }
    trace_tpm_nvfile_open(path, tpm_nvfile_format_name(f->format),
                          g_hash_table_size(f->blobs));
    return f;

fail:
    tpm_nvfile_close(f);
    return NULL;
}

void tpm_nvfile_close(TPMNVFile *f)
{
    if (!f) {
        return;
    }
    tpm_nvfile_unlock_all(f);
    g_hash_table_destroy(f->blobs);
    if (f->on_disk) {
        g_hash_table_destroy(f->on_disk);
    }
    if (f->held) {
        g_hash_table_destroy(f->held);
    }
    g_free(f->path);
    g_free(f);
}

void tpm_nvfile_unlock(TPMNVFile *f)
{
    tpm_nvfile_unlock_all(f);
}

bool tpm_nvfile_relock(TPMNVFile *f, Error **errp)
{
    return !f->path || f->lock_fd >= 0 || tpm_nvfile_lock_all(f, errp);
}

GBytes *tpm_nvfile_get(TPMNVFile *f, const char *name)
{
    GBytes *blob = g_hash_table_lookup(f->blobs, name);

    return blob ? g_bytes_ref(blob) : NULL;
}

/*
 * Give the new file @fd the owner, group and mode of the file @path it
 * is to replace, if there is one: an administrator's choice survives
 * rewrites
 */
static bool tpm_nvfile_keep_attrs(const char *path, int fd, Error **errp)
{
    struct stat old, new;

    if (lstat(path, &old) < 0) {
        if (errno == ENOENT) {
            return true;
        }
        error_setg_errno(errp, errno, "cannot stat TPM state file '%s'",
                         path);
        return false;
    }
    if (fstat(fd, &new) < 0) {
        error_setg_errno(errp, errno, "cannot stat a new TPM state file");
        return false;
    }
    if (!S_ISREG(old.st_mode)) {
        error_setg(errp, "TPM state file '%s' is no longer a regular file; "
                   "not replacing it", path);
        return false;
    }
    if ((old.st_uid != new.st_uid || old.st_gid != new.st_gid) &&
        fchown(fd, old.st_uid, old.st_gid) < 0) {
        error_setg_errno(errp, errno, "cannot give the new TPM state file "
                         "the owner and group of '%s'", path);
        return false;
    }
    if (fchmod(fd, old.st_mode & 0777) < 0) {
        error_setg_errno(errp, errno, "cannot give the new TPM state file "
                         "the mode of '%s'", path);
        return false;
    }
    return true;
}

/* Make the renames in @path's directory durable */
static void tpm_nvfile_sync_dir(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int dir_fd = qemu_open(dir, O_RDONLY | O_DIRECTORY, NULL);

    if (dir_fd >= 0) {
        qemu_fdatasync(dir_fd);
        qemu_close(dir_fd);
    }
}

/*
 * Replace the file @path with the @len bytes at @data, atomically; its
 * directory is for the caller to sync.  With @locked, the new file is
 * locked before it replaces the old one, and *@locked is its descriptor.
 */
static bool tpm_nvfile_write(const char *path, const void *data, size_t len,
                             int *locked, Error **errp)
{
    g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
    int fd, ret;

    fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create a file beside TPM "
                         "state file '%s'", path);
        return false;
    }
    if (!tpm_nvfile_keep_attrs(path, fd, errp)) {
        goto fail;
    }
    if (qemu_write_full(fd, data, len) != len || qemu_fdatasync(fd) < 0) {
        error_setg_errno(errp, errno, "cannot write TPM state to '%s'", tmp);
        goto fail;
    }
    if (locked) {
        ret = qemu_lock_fd(fd, 0, 0, true);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "cannot lock '%s'", tmp);
            goto fail;
        }
    }
    if (rename(tmp, path) < 0) {
        error_setg_errno(errp, errno, "cannot replace TPM state file '%s'",
                         path);
        goto fail;
    }
    trace_tpm_nvfile_write(path, len);
    if (locked) {
        *locked = fd;
    } else {
        qemu_close(fd);
    }
    return true;

fail:
    qemu_close(fd);
    unlink(tmp);
    return false;
}

/* swtpm's directory: write the files whose blobs changed */
static bool tpm_nvfile_store_dir(TPMNVFile *f, Error **errp)
{
    bool known = f->on_disk, ok = true;
    int i;

    if (!known) {
        f->on_disk = tpm_nvfile_new_blobs();
    }
    for (i = 0; ok && i < ARRAY_SIZE(tpm_nvfile_swtpm_names); i++) {
        const char *name = tpm_nvfile_swtpm_names[i];
        GBytes *blob = g_hash_table_lookup(f->blobs, name);
        GBytes *old = g_hash_table_lookup(f->on_disk, name);
        g_autofree char *path = NULL;

        if (known &&
            (blob == old || (blob && old && g_bytes_equal(blob, old)))) {
            continue;
        }
        path = tpm_nvfile_swtpm_dir_file(f, f->tpm_family, name);
        if (blob) {
            g_autoptr(GByteArray) img = g_byte_array_new();

            tpm_nvfile_swtpm_wrap(img, blob);
            ok = tpm_nvfile_write(path, img->data, img->len, NULL, errp);
        } else if (unlink(path) < 0 && errno != ENOENT) {
            error_setg_errno(errp, errno, "cannot remove TPM state file "
                             "'%s'", path);
            ok = false;
        }
        if (!ok) {
            /* What the files hold is for the next store to find out */
            g_clear_pointer(&f->on_disk, g_hash_table_destroy);
        } else if (blob) {
            g_hash_table_insert(f->on_disk, g_strdup(name),
                                g_bytes_ref(blob));
        } else {
            g_hash_table_remove(f->on_disk, name);
        }
    }
    tpm_nvfile_sync_dir(f->path);
    return ok;
}

/* Write the blobs in memory to the file or directory */
static bool tpm_nvfile_store(TPMNVFile *f, Error **errp)
{
    g_autoptr(GByteArray) img = NULL;
    int fd;

    /*
     * Without the lock, the file may be another QEMU's: one this QEMU
     * migrated to, if this one was resumed by hand after the migration
     */
    if (f->lock_fd < 0) {
        error_setg(errp, "TPM state %s '%s' is not locked by this QEMU; "
                   "not writing it", f->format == TPM_NVFILE_SWTPM_DIR ?
                   "directory" : "file", f->path);
        return false;
    }
    if (f->format == TPM_NVFILE_SWTPM_DIR) {
        return tpm_nvfile_store_dir(f, errp);
    }
    img = f->format == TPM_NVFILE_QEMU ? tpm_nvfile_serialize(f) :
          tpm_nvfile_swtpm_serialize(f);
    if (!tpm_nvfile_write(f->path, img->data, img->len, &fd, errp)) {
        return false;
    }
    /* The old file's lock goes with it: no one can open it any more */
    if (f->file_fd >= 0) {
        qemu_close(f->file_fd);
    }
    f->file_fd = fd;
    tpm_nvfile_sync_dir(f->path);
    return true;
}

bool tpm_nvfile_set(TPMNVFile *f, const char *name, GBytes *blob,
                    Error **errp)
{
    g_autoptr(GBytes) old = tpm_nvfile_get(f, name);

    if (f->format != TPM_NVFILE_QEMU && tpm_nvfile_swtpm_slot(name) < 0) {
        error_setg(errp, "swtpm's state has no place for a blob named '%s'",
                   name);
        return false;
    }
    if (blob) {
        g_hash_table_insert(f->blobs, g_strdup(name), g_bytes_ref(blob));
    } else if (!g_hash_table_remove(f->blobs, name)) {
        return true;
    }
    if (!f->path) {
        return true;
    }
    if (f->held) {
        f->dirty = true;
        return true;
    }
    if (!tpm_nvfile_store(f, errp)) {
        /* The file is as it was: so is the state in memory */
        if (old) {
            g_hash_table_insert(f->blobs, g_strdup(name), g_bytes_ref(old));
        } else {
            g_hash_table_remove(f->blobs, name);
        }
        return false;
    }
    return true;
}

void tpm_nvfile_hold(TPMNVFile *f)
{
    assert(!f->held);
    f->held = tpm_nvfile_copy_blobs(f->blobs);
    f->dirty = false;
}

void tpm_nvfile_rollback(TPMNVFile *f)
{
    assert(f->held);
    g_hash_table_destroy(f->blobs);
    f->blobs = g_steal_pointer(&f->held);
    f->dirty = false;
}

bool tpm_nvfile_commit(TPMNVFile *f, Error **errp)
{
    assert(f->held);
    if (f->dirty && !tpm_nvfile_store(f, errp)) {
        tpm_nvfile_rollback(f);
        return false;
    }
    g_clear_pointer(&f->held, g_hash_table_destroy);
    f->dirty = false;
    return true;
}
