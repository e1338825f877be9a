/*
 * libtpms TPM backend fuzzing target: the state file
 *
 * tpm-libtpms-state-fuzz writes each input as the state file of a new
 * -tpmdev libtpms,path=... and starts that TPM, as QEMU does at startup.
 * The file must be refused with an error or loaded, and a refused file
 * is never written to.  A TPM that loaded it must answer TPM_Startup;
 * when it has written the file in turn (the state it saves when it shuts
 * down), that file must load again.
 *
 * The input is a flags byte, then the file.  With VTPM_STATE_BLOBS the
 * file is built from a list of named blobs, with a valid header and
 * checksum, so that what the fuzzer changes reaches libtpms' own state
 * parsers rather than the file's checksum test.
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

/* The state file's header (backends/tpm/tpm_nvfile.c) */
#define STATE_MAGIC             "QEMUTPMS"
#define STATE_FORMAT            1
#define STATE_HEADER_SIZE       52

/* What libtpms names its blobs; a blob's name is picked by index */
static const char *const state_blob_names[] = {
    "permall", "volatilestate", "savestate",
};

#define TYPE_TPM_FUZZ_FRONTEND  "tpm-fuzz-frontend"

static char *state_dir;
static char *state_path;

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

/* Build the file from flags and blobs (name index, length (2), data) */
static GByteArray *state_from_blobs(uint32_t family, const uint8_t *p,
                                    size_t left)
{
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    GByteArray *img = g_byte_array_new();
    uint8_t header[STATE_HEADER_SIZE] = { 0 };
    gsize digest_len = 32;
    bool seen[ARRAY_SIZE(state_blob_names)] = { false };

    g_byte_array_append(img, header, sizeof(header));
    while (left >= 3) {
        unsigned i = p[0] % ARRAY_SIZE(state_blob_names);
        const char *name = state_blob_names[i];
        size_t len = MIN(lduw_be_p(p + 1), left - 3);
        uint8_t num[4];

        p += 3;
        left -= 3;
        /* The file keeps each name once, in order; so does the input */
        if (!seen[i]) {
            seen[i] = true;
            stw_be_p(num, strlen(name));
            g_byte_array_append(img, num, 2);
            g_byte_array_append(img, (const uint8_t *)name, strlen(name));
            stl_be_p(num, len);
            g_byte_array_append(img, num, 4);
            g_byte_array_append(img, p, len);
        }
        p += len;
        left -= len;
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

static GBytes *state_read(void)
{
    g_autofree char *data = NULL;
    gsize len;

    if (!g_file_get_contents(state_path, &data, &len, NULL)) {
        return NULL;
    }
    return g_bytes_new_take(g_steal_pointer(&data), len);
}

/* Nothing but the file and its lock: no temporary file left behind */
static void state_check_dir(void)
{
    g_autoptr(GDir) dir = g_dir_open(state_dir, 0, NULL);
    const char *name;

    g_assert(dir);
    while ((name = g_dir_read_name(dir))) {
        if (strcmp(name, "tpm.state") && strcmp(name, "tpm.state.lock")) {
            fprintf(stderr, "tpm-libtpms: '%s' left in the state's "
                    "directory\n", name);
            abort();
        }
    }
}

/* Start a TPM on the file; NULL if it was refused */
static TPMBackend *state_start(bool tpm12)
{
    TPMBackendClass *k =
        TPM_BACKEND_CLASS(object_class_by_name(TYPE_TPM_LIBTPMS));
    QemuOpts *opts = qemu_opts_create(qemu_find_opts("tpmdev"), NULL, 0,
                                      &error_abort);
    TPMBackend *tb;

    qemu_opt_set(opts, "path", state_path, &error_abort);
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
    g_autoptr(GByteArray) img = NULL;
    g_autoptr(GBytes) before = NULL;
    g_autoptr(GBytes) after = NULL;
    TPMBackend *tb;
    bool tpm12;

    if (size < 1) {
        return;
    }
    tpm12 = data[0] & VTPM_STATE_TPM12;
    if (data[0] & VTPM_STATE_BLOBS) {
        img = state_from_blobs(tpm12 ? 1 : 2, data + 1, size - 1);
    } else {
        img = g_byte_array_new();
        g_byte_array_append(img, data + 1, size - 1);
    }
    g_assert(g_file_set_contents(state_path, (const char *)img->data,
                                 img->len, NULL));
    before = g_bytes_new(img->data, img->len);

    tb = state_start(tpm12);
    if (!tb) {
        /* Refused: the file is as it was */
        after = state_read();
        if (!after || !g_bytes_equal(before, after)) {
            fprintf(stderr, "tpm-libtpms: a refused state file changed\n");
            abort();
        }
        state_check_dir();
        return;
    }

    state_startup(tb, tpm12);
    /* Shuts the TPM down: it may save its state */
    object_unref(OBJECT(tb));
    state_check_dir();
    after = state_read();
    if (!after) {
        fprintf(stderr, "tpm-libtpms: the state file is gone\n");
        abort();
    }
    if (!g_bytes_equal(before, after)) {
        /* What the TPM wrote, it loads again */
        tb = state_start(tpm12);
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
}

static void register_tpm_libtpms_fuzz_targets(void)
{
    fuzz_add_target(&(FuzzTarget){
        .name = "tpm-libtpms-state-fuzz",
        .description = "Fuzz the libtpms backend's state file: the file, "
                       "and the TPM state blobs in it",
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
