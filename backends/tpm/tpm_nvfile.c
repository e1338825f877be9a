/*
 * A TPM's non-volatile state in one file, written atomically
 *
 * The file:
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
 * Numbers are big-endian.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
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

struct TPMNVFile {
    char *path;                 /* NULL: in memory only */
    uint32_t tpm_family;
    int lock_fd;
    GHashTable *blobs;          /* name -> GBytes */
    GHashTable *held;           /* the blobs before tpm_nvfile_hold() */
    bool dirty;                 /* changed since tpm_nvfile_hold() */
};

static GHashTable *tpm_nvfile_new_blobs(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                 (GDestroyNotify)g_bytes_unref);
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

/* The file's image: header and payload */
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

/* Check a file's image, and load its blobs */
static bool tpm_nvfile_parse(TPMNVFile *f, const uint8_t *img, size_t size,
                             Error **errp)
{
    uint8_t digest[TPM_NVFILE_DIGEST_SIZE];
    const uint8_t *p, *end;
    uint32_t len;

    if (size == 0) {
        error_setg(errp, "TPM state file '%s' is empty", f->path);
        return false;
    }
    if (size < 8 || memcmp(img, TPM_NVFILE_MAGIC, 8)) {
        error_setg(errp, "'%s' is not a TPM state file", f->path);
        return false;
    }
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

/*
 * Open @path, never through a symbolic link, and only if it is a regular
 * file, which @st then describes: the state and its lock are the TPM's
 * secrets and its owner's, and a link or a device in their place would
 * turn QEMU's reads and writes elsewhere.  Non-blocking, so that a FIFO
 * is refused rather than waited on.  @what names the file in messages.
 * Returns -ENOENT, with no error set, when @path does not exist and
 * @flags does not create it; -1 on other errors.
 */
static int tpm_nvfile_open_regular(const char *path, int flags,
                                   const char *what, struct stat *st,
                                   Error **errp)
{
    int fd;

    fd = qemu_open_old(path, flags | O_NOFOLLOW | O_NONBLOCK, 0600);
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

static bool tpm_nvfile_lock(TPMNVFile *f, Error **errp)
{
    g_autofree char *lock_path = g_strdup_printf("%s.lock", f->path);
    struct stat st;
    int ret;

    f->lock_fd = tpm_nvfile_open_regular(lock_path, O_RDWR | O_CREAT,
                                         "TPM state lock file", &st, errp);
    if (f->lock_fd < 0) {
        error_prepend(errp, "cannot lock TPM state file '%s': ", f->path);
        return false;
    }
    ret = qemu_lock_fd(f->lock_fd, 0, 0, true);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "TPM state file '%s' is in use by "
                         "another process (lock on '%s')", f->path,
                         lock_path);
        qemu_close(f->lock_fd);
        f->lock_fd = -1;
        return false;
    }
    return true;
}

/* Load the blobs of the file at f->path, checked on the descriptor read */
static bool tpm_nvfile_load(TPMNVFile *f, Error **errp)
{
    g_autofree uint8_t *img = NULL;
    struct stat st;
    ssize_t len, n;
    bool ok = false;
    int fd;

    fd = tpm_nvfile_open_regular(f->path, O_RDONLY, "TPM state file", &st,
                                 errp);
    if (fd < 0) {
        /* None: the user asked for a new TPM, which libtpms manufactures */
        return fd == -ENOENT;
    }
    if (st.st_size > TPM_NVFILE_MAX_SIZE) {
        error_setg(errp, "TPM state file '%s' is too large to be a TPM "
                   "state: %" PRId64 " bytes", f->path, (int64_t)st.st_size);
        goto out;
    }
    /* One byte more than its size: a file that grew since is refused */
    img = g_malloc(st.st_size + 1);
    for (len = 0; len <= st.st_size; len += n) {
        n = RETRY_ON_EINTR(read(fd, img + len, st.st_size + 1 - len));
        if (n < 0) {
            error_setg_errno(errp, errno, "cannot read TPM state file '%s'",
                             f->path);
            goto out;
        }
        if (n == 0) {
            break;
        }
    }
    if (len != st.st_size) {
        error_setg(errp, "TPM state file '%s' changed while it was read",
                   f->path);
        goto out;
    }
    ok = tpm_nvfile_parse(f, img, len, errp);
out:
    qemu_close(fd);
    return ok;
}

TPMNVFile *tpm_nvfile_open(const char *path, uint32_t tpm_family,
                           bool replace, Error **errp)
{
    TPMNVFile *f = g_new0(TPMNVFile, 1);

    f->tpm_family = tpm_family;
    f->lock_fd = -1;
    f->blobs = tpm_nvfile_new_blobs();
    if (!path) {
        return f;
    }
    f->path = g_strdup(path);
    if (!tpm_nvfile_lock(f, errp) ||
        (!replace && !tpm_nvfile_load(f, errp))) {
        tpm_nvfile_close(f);
        return NULL;
    }
    trace_tpm_nvfile_open(path, g_hash_table_size(f->blobs));
    return f;
}

void tpm_nvfile_close(TPMNVFile *f)
{
    if (!f) {
        return;
    }
    if (f->lock_fd >= 0) {
        qemu_close(f->lock_fd);
    }
    g_hash_table_destroy(f->blobs);
    if (f->held) {
        g_hash_table_destroy(f->held);
    }
    g_free(f->path);
    g_free(f);
}

void tpm_nvfile_unlock(TPMNVFile *f)
{
    if (f->lock_fd >= 0) {
        qemu_close(f->lock_fd);
        f->lock_fd = -1;
    }
}

bool tpm_nvfile_relock(TPMNVFile *f, Error **errp)
{
    return !f->path || f->lock_fd >= 0 || tpm_nvfile_lock(f, errp);
}

GBytes *tpm_nvfile_get(TPMNVFile *f, const char *name)
{
    GBytes *blob = g_hash_table_lookup(f->blobs, name);

    return blob ? g_bytes_ref(blob) : NULL;
}

/*
 * Give the new file @fd the owner, group and mode of the file it is to
 * replace, if there is one: an administrator's choice survives rewrites
 */
static bool tpm_nvfile_keep_attrs(TPMNVFile *f, int fd, Error **errp)
{
    struct stat old, new;

    if (lstat(f->path, &old) < 0) {
        if (errno == ENOENT) {
            return true;
        }
        error_setg_errno(errp, errno, "cannot stat TPM state file '%s'",
                         f->path);
        return false;
    }
    if (fstat(fd, &new) < 0) {
        error_setg_errno(errp, errno, "cannot stat a new TPM state file");
        return false;
    }
    if (!S_ISREG(old.st_mode)) {
        error_setg(errp, "TPM state file '%s' is no longer a regular file; "
                   "not replacing it", f->path);
        return false;
    }
    if ((old.st_uid != new.st_uid || old.st_gid != new.st_gid) &&
        fchown(fd, old.st_uid, old.st_gid) < 0) {
        error_setg_errno(errp, errno, "cannot give the new TPM state file "
                         "the owner and group of '%s'", f->path);
        return false;
    }
    if (fchmod(fd, old.st_mode & 0777) < 0) {
        error_setg_errno(errp, errno, "cannot give the new TPM state file "
                         "the mode of '%s'", f->path);
        return false;
    }
    return true;
}

/* Replace the file with @img, atomically and durably */
static bool tpm_nvfile_write(TPMNVFile *f, GByteArray *img, Error **errp)
{
    g_autofree char *dir = g_path_get_dirname(f->path);
    g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", f->path);
    int fd, dir_fd;

    fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create a file beside TPM "
                         "state file '%s'", f->path);
        return false;
    }
    if (!tpm_nvfile_keep_attrs(f, fd, errp)) {
        qemu_close(fd);
        unlink(tmp);
        return false;
    }
    if (qemu_write_full(fd, img->data, img->len) != img->len ||
        qemu_fdatasync(fd) < 0) {
        error_setg_errno(errp, errno, "cannot write TPM state to '%s'", tmp);
        qemu_close(fd);
        unlink(tmp);
        return false;
    }
    qemu_close(fd);
    if (rename(tmp, f->path) < 0) {
        error_setg_errno(errp, errno, "cannot replace TPM state file '%s'",
                         f->path);
        unlink(tmp);
        return false;
    }
    /* Make the rename itself durable */
    dir_fd = qemu_open(dir, O_RDONLY | O_DIRECTORY, NULL);
    if (dir_fd >= 0) {
        qemu_fdatasync(dir_fd);
        qemu_close(dir_fd);
    }
    trace_tpm_nvfile_write(f->path, img->len);
    return true;
}

/* Write the blobs in memory to the file */
static bool tpm_nvfile_store(TPMNVFile *f, Error **errp)
{
    g_autoptr(GByteArray) img = NULL;

    /*
     * Without the lock, the file may be another QEMU's: one this QEMU
     * migrated to, if this one was resumed by hand after the migration
     */
    if (f->lock_fd < 0) {
        error_setg(errp, "TPM state file '%s' is not locked by this QEMU; "
                   "not writing it", f->path);
        return false;
    }
    img = tpm_nvfile_serialize(f);
    return tpm_nvfile_write(f, img, errp);
}

bool tpm_nvfile_set(TPMNVFile *f, const char *name, GBytes *blob,
                    Error **errp)
{
    g_autoptr(GBytes) old = tpm_nvfile_get(f, name);

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
    GHashTableIter iter;
    gpointer name, blob;

    assert(!f->held);
    f->held = tpm_nvfile_new_blobs();
    f->dirty = false;
    g_hash_table_iter_init(&iter, f->blobs);
    while (g_hash_table_iter_next(&iter, &name, &blob)) {
        g_hash_table_insert(f->held, g_strdup(name), g_bytes_ref(blob));
    }
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
