/*
 * libtpms TPM backend fuzzing target: the state file
 *
 * tpm-libtpms-state-fuzz writes each input as the state file of a new
 * -tpmdev libtpms,path=... (QEMU's format or swtpm's linear file), or as
 * swtpm's state directory of a -tpmdev libtpms,dir=..., and starts that
 * TPM, as QEMU does at startup.  The state must be refused with an error
 * or loaded, and a refused state is never written to.  A TPM that loaded
 * it must answer TPM_Startup; when it has written the state in turn (what
 * it saves when it shuts down), that state must load again.
 *
 * The input is a flags byte, then the file, or with VTPM_STATE_DIR the
 * directory's files as a list of named blobs (a name index, a length
 * (2), the data), each the whole file.  With VTPM_STATE_BLOBS the file
 * or files are built from such a list with valid headers and checksums,
 * so that what the fuzzer changes reaches libtpms' own state parsers
 * rather than the formats' checks: QEMU's file, or with VTPM_STATE_SWTPM
 * swtpm's linear file; in the directory, swtpm's header on each blob.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/config-file.h"
#include "qemu/option.h"
#include "qapi/error.h"
#include "qom/object.h"
#include "system/tpm.h"
#include "system/tpm_backend.h"
#include "system/tpm_libtpms.h"
#include "tests/qtest/libqtest.h"
#include "fuzz.h"

/* Flags, the input's first byte */
#define VTPM_STATE_TPM12        0x01    /* a TPM 1.2, not 2.0 */
#define VTPM_STATE_BLOBS        0x02    /* blobs to make a valid file of */
#define VTPM_STATE_SWTPM        0x04    /* ... as swtpm's linear file */
#define VTPM_STATE_DIR          0x08    /* swtpm's directory */

/* The state files' headers (backends/tpm/tpm_nvfile.c) */
#define STATE_MAGIC             "QEMUTPMS"
#define STATE_FORMAT            1
#define STATE_HEADER_SIZE       52
#define SWTPM_LINEAR_MAGIC      0x737774706d6c696eULL
#define SWTPM_LINEAR_HEADER     192
#define SWTPM_BLOB_HEADER       16      /* swtpm's header and a data tag */

/* What libtpms names its blobs; a blob's name is picked by index */
static const char *const state_blob_names[] = {
    "permall", "volatilestate", "savestate",
};

#define TYPE_TPM_FUZZ_FRONTEND  "tpm-fuzz-frontend"

static char *state_dir;
static char *state_path;
static char *swtpm_dir;

/* A frontend, for the backend to complete commands to */

static void tpm_fuzz_request_completed(TPMIf *ti, int ret)
{
}

static void tpm_fuzz_frontend_class_init(ObjectClass *klass,
                                         const void *data)
{
    TPMIfClass *tc = TPM_IF_CLASS(klass);

    tc->request_completed = tpm_fuzz_request_completed;
}

static const TypeInfo tpm_fuzz_frontend_info = {
    .name = TYPE_TPM_FUZZ_FRONTEND,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(Object),
    .class_init = tpm_fuzz_frontend_class_init,
    .interfaces = (const InterfaceInfo[]) {
        { TYPE_TPM_IF },
        { }
    },
};

/*
 * The blobs of a list (name index, length (2), data), by name index;
 * each name is taken once, the first time, as the formats hold it
 */
static void state_blobs(const uint8_t *p, size_t left,
                        GBytes *blobs[ARRAY_SIZE(state_blob_names)])
{
    while (left >= 3) {
        unsigned i = p[0] % ARRAY_SIZE(state_blob_names);
        size_t len = MIN(lduw_be_p(p + 1), left - 3);

        p += 3;
        left -= 3;
        if (!blobs[i]) {
            blobs[i] = g_bytes_new(p, len);
        }
        p += len;
        left -= len;
    }
}

/* QEMU's file of @blobs */
static GByteArray *state_qemu_file(uint32_t family, GBytes **blobs)
{
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    GByteArray *img = g_byte_array_new();
    uint8_t header[STATE_HEADER_SIZE] = { 0 };
    gsize digest_len = 32;
    int i;

    g_byte_array_append(img, header, sizeof(header));
    for (i = 0; i < ARRAY_SIZE(state_blob_names); i++) {
        const char *name = state_blob_names[i];
        uint8_t num[4];

        if (!blobs[i]) {
            continue;
        }
        stw_be_p(num, strlen(name));
        g_byte_array_append(img, num, 2);
        g_byte_array_append(img, (const uint8_t *)name, strlen(name));
        stl_be_p(num, g_bytes_get_size(blobs[i]));
        g_byte_array_append(img, num, 4);
        g_byte_array_append(img, g_bytes_get_data(blobs[i], NULL),
                            g_bytes_get_size(blobs[i]));
    }

    memcpy(img->data, STATE_MAGIC, 8);
    stl_be_p(img->data + 8, STATE_FORMAT);
    stl_be_p(img->data + 12, family);
    stl_be_p(img->data + 16, img->len - STATE_HEADER_SIZE);
    g_checksum_update(sha256, img->data + STATE_HEADER_SIZE,
                      img->len - STATE_HEADER_SIZE);
    g_checksum_get_digest(sha256, img->data + 20, &digest_len);
    return img;
}

/* @blob with swtpm's header: version 2, oldest reader 1, the data tag */
static void state_swtpm_blob(GByteArray *img, GBytes *blob)
{
    uint8_t header[SWTPM_BLOB_HEADER] = { 2, 1, 0, 10 };

    stl_be_p(header + 6, sizeof(header) + g_bytes_get_size(blob));
    stw_be_p(header + 10, 1);
    stl_be_p(header + 12, g_bytes_get_size(blob));
    g_byte_array_append(img, header, sizeof(header));
    g_byte_array_append(img, g_bytes_get_data(blob, NULL),
                        g_bytes_get_size(blob));
}

/* swtpm's linear file of @blobs, each in its slot */
static GByteArray *state_swtpm_file(GBytes **blobs)
{
    GByteArray *img = g_byte_array_new();
    uint8_t header[SWTPM_LINEAR_HEADER] = { 0 };
    int i;

    g_byte_array_append(img, header, sizeof(header));
    for (i = 0; i < ARRAY_SIZE(state_blob_names); i++) {
        uint32_t offset = img->len;

        if (!blobs[i]) {
            continue;
        }
        state_swtpm_blob(img, blobs[i]);
        stl_le_p(img->data + 12 + 12 * i, offset);
        stl_le_p(img->data + 16 + 12 * i, img->len - offset);
        stl_le_p(img->data + 20 + 12 * i, img->len - offset);
    }
    stq_le_p(img->data, SWTPM_LINEAR_MAGIC);
    img->data[8] = 1;
    stw_le_p(img->data + 10, SWTPM_LINEAR_HEADER);
    return img;
}

/* The file of blob @i in swtpm's directory */
static char *state_dir_file(bool tpm12, int i)
{
    return g_strdup_printf("%s/tpm%s-00.%s", swtpm_dir, tpm12 ? "" : "2",
                           state_blob_names[i]);
}

/*
 * The state as it is: the file, or the directory's files, each a name
 * index, present or not (1), and its contents
 */
static GBytes *state_read(uint8_t flags)
{
    g_autoptr(GByteArray) all = g_byte_array_new();
    g_autofree char *data = NULL;
    gsize len;
    int i;

    if (!(flags & VTPM_STATE_DIR)) {
        if (!g_file_get_contents(state_path, &data, &len, NULL)) {
            return NULL;
        }
        return g_bytes_new_take(g_steal_pointer(&data), len);
    }
    for (i = 0; i < ARRAY_SIZE(state_blob_names); i++) {
        g_autofree char *path = state_dir_file(flags & VTPM_STATE_TPM12, i);
        uint8_t present;

        g_clear_pointer(&data, g_free);
        present = g_file_get_contents(path, &data, &len, NULL);
        g_byte_array_append(all, (const uint8_t *)&i, 1);
        g_byte_array_append(all, &present, 1);
        if (present) {
            g_byte_array_append(all, (const uint8_t *)data, len);
        }
    }
    return g_byte_array_free_to_bytes(g_steal_pointer(&all));
}

/*
 * Write the input's state; return what the TPM must leave as it is if
 * it refuses it: the file, or the directory's files
 */
static GBytes *state_write(const uint8_t *data, size_t size)
{
    g_autoptr(GByteArray) img = NULL;
    bool tpm12 = data[0] & VTPM_STATE_TPM12;
    GBytes *blobs[ARRAY_SIZE(state_blob_names)] = { NULL };
    int i;

    if (!(data[0] & (VTPM_STATE_BLOBS | VTPM_STATE_DIR))) {
        img = g_byte_array_new();
        g_byte_array_append(img, data + 1, size - 1);
    } else {
        state_blobs(data + 1, size - 1, blobs);
    }
    if (data[0] & VTPM_STATE_DIR) {
        for (i = 0; i < ARRAY_SIZE(state_blob_names); i++) {
            g_autofree char *path = state_dir_file(tpm12, i);
            g_autoptr(GByteArray) file = g_byte_array_new();

            if (blobs[i] && (data[0] & VTPM_STATE_BLOBS)) {
                state_swtpm_blob(file, blobs[i]);
            } else if (blobs[i]) {
                g_byte_array_append(file, g_bytes_get_data(blobs[i], NULL),
                                    g_bytes_get_size(blobs[i]));
            }
            if (blobs[i]) {
                g_assert(g_file_set_contents(path, (const char *)file->data,
                                             file->len, NULL));
            }
        }
    } else if (!img) {
        img = data[0] & VTPM_STATE_SWTPM ? state_swtpm_file(blobs) :
              state_qemu_file(tpm12 ? 1 : 2, blobs);
    }
    for (i = 0; i < ARRAY_SIZE(state_blob_names); i++) {
        g_clear_pointer(&blobs[i], g_bytes_unref);
    }
    if (img) {
        g_assert(g_file_set_contents(state_path, (const char *)img->data,
                                     img->len, NULL));
    }
    return state_read(data[0]);
}

/* No state from the last input */
static void state_clear(void)
{
    int i;

    unlink(state_path);
    for (i = 0; i < ARRAY_SIZE(state_blob_names); i++) {
        g_autofree char *tpm2 = state_dir_file(false, i);
        g_autofree char *tpm12 = state_dir_file(true, i);

        unlink(tpm2);
        unlink(tpm12);
    }
}

/* Nothing but the state's files and their locks: no temporary file */
static void state_check_dir(const char *dir, const char *const *names)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    g_assert(d);
    while ((name = g_dir_read_name(d))) {
        if (!g_strv_contains(names, name)) {
            fprintf(stderr, "tpm-libtpms: '%s' left in '%s'\n", name, dir);
            abort();
        }
    }
}

static void state_check_dirs(void)
{
    static const char *const top[] = {
        "tpm.state", "tpm.state.lock", "swtpm", NULL,
    };
    static const char *const swtpm[] = {
        ".lock", "tpm2-00.permall", "tpm2-00.volatilestate",
        "tpm2-00.savestate", "tpm-00.permall", "tpm-00.volatilestate",
        "tpm-00.savestate", NULL,
    };

    state_check_dir(state_dir, top);
    state_check_dir(swtpm_dir, swtpm);
}

/* Start a TPM on the state; NULL if it was refused */
static TPMBackend *state_start(uint8_t flags)
{
    bool tpm12 = flags & VTPM_STATE_TPM12;
    TPMBackendClass *k =
        TPM_BACKEND_CLASS(object_class_by_name(TYPE_TPM_LIBTPMS));
    QemuOpts *opts = qemu_opts_create(qemu_find_opts("tpmdev"), NULL, 0,
                                      &error_abort);
    TPMBackend *tb;

    if (flags & VTPM_STATE_DIR) {
        qemu_opt_set(opts, "dir", swtpm_dir, &error_abort);
    } else {
        qemu_opt_set(opts, "path", state_path, &error_abort);
    }
    qemu_opt_set(opts, "version", tpm12 ? "1.2" : "2.0", &error_abort);
    tb = k->create(opts);
    qemu_opts_del(opts);
    if (tb && tpm_backend_startup_tpm(tb, 0) < 0) {
        object_unref(OBJECT(tb));
        tb = NULL;
    }
    return tb;
}

/* TPM_Startup(ST_CLEAR) or TPM2_Startup(TPM_SU_CLEAR), and its answer */
static void state_startup(TPMBackend *tb, bool tpm12)
{
    static const uint8_t startup12[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99,
        0x00, 0x01,
    };
    static const uint8_t startup20[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44,
        0x00, 0x00,
    };
    uint8_t rsp[4096];
    Object *frontend = object_new(TYPE_TPM_FUZZ_FRONTEND);
    TPMBackendCmd cmd = {
        .in = tpm12 ? startup12 : startup20,
        .in_len = sizeof(startup20),
        .out = rsp,
        .out_len = sizeof(rsp),
    };

    if (tpm_backend_init(tb, TPM_IF(frontend), &error_abort) == 0) {
        memset(rsp, 0, sizeof(rsp));
        tpm_backend_deliver_request(tb, &cmd);
        tpm_backend_finish_sync(tb);
        if (ldl_be_p(rsp + 2) < 10 || ldl_be_p(rsp + 2) > sizeof(rsp)) {
            fprintf(stderr, "tpm-libtpms: a loaded TPM answered TPM_Startup "
                    "with a response of %u bytes\n", ldl_be_p(rsp + 2));
            abort();
        }
    }
    object_unref(frontend);
}

static void tpm_libtpms_state_fuzz(QTestState *s, const unsigned char *data,
                                   size_t size)
{
    g_autoptr(GBytes) before = NULL;
    g_autoptr(GBytes) after = NULL;
    TPMBackend *tb;
    uint8_t flags;

    if (size < 1) {
        return;
    }
    flags = data[0];
    state_clear();
    before = state_write(data, size);

    tb = state_start(flags);
    if (!tb) {
        /* Refused: the state is as it was */
        after = state_read(flags);
        if (!after || !g_bytes_equal(before, after)) {
            fprintf(stderr, "tpm-libtpms: a refused state changed\n");
            abort();
        }
        state_check_dirs();
        return;
    }

    state_startup(tb, flags & VTPM_STATE_TPM12);
    /* Shuts the TPM down: it may save its state */
    object_unref(OBJECT(tb));
    state_check_dirs();
    after = state_read(flags);
    if (!after) {
        fprintf(stderr, "tpm-libtpms: the state file is gone\n");
        abort();
    }
    if (!g_bytes_equal(before, after)) {
        /* What the TPM wrote, it loads again */
        tb = state_start(flags);
        if (!tb) {
            fprintf(stderr, "tpm-libtpms: the TPM does not load the state "
                    "it wrote\n");
            abort();
        }
        object_unref(OBJECT(tb));
    }
}

static GString *tpm_libtpms_state_cmdline(FuzzTarget *t)
{
    return g_string_new(TARGET_NAME " -machine q35,accel=qtest -nodefaults "
                        "-display none");
}

static void tpm_libtpms_state_pre_fuzz(QTestState *s)
{
    state_dir = g_dir_make_tmp("tpm-libtpms-fuzz-XXXXXX", NULL);
    g_assert(state_dir);
    state_path = g_build_filename(state_dir, "tpm.state", NULL);
    swtpm_dir = g_build_filename(state_dir, "swtpm", NULL);
    g_assert(mkdir(swtpm_dir, 0700) == 0);
}

static void register_tpm_libtpms_fuzz_targets(void)
{
    fuzz_add_target(&(FuzzTarget){
        .name = "tpm-libtpms-state-fuzz",
        .description = "Fuzz the libtpms backend's state: QEMU's file, "
                       "swtpm's linear file and directory, and the TPM "
                       "state blobs in them",
        .get_init_cmdline = tpm_libtpms_state_cmdline,
        .pre_fuzz = tpm_libtpms_state_pre_fuzz,
        .fuzz = tpm_libtpms_state_fuzz,
    });
}

static void tpm_fuzz_register_types(void)
{
    type_register_static(&tpm_fuzz_frontend_info);
}

type_init(tpm_fuzz_register_types);
fuzz_target_init(register_tpm_libtpms_fuzz_targets);
