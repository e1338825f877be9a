/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libtpms TPM backend: a TPM 1.2 or 2.0 emulated inside QEMU
 *
 * libtpms is the TPM implementation that swtpm is built on.  This
 * backend links it into QEMU, so that a TPM needs no external process.
 * Commands run in the TPM backend's thread pool worker, never in a vCPU
 * thread or under the BQL.  The TPM's non-volatile state is kept in
 * memory for now, and is lost when QEMU exits.
 *
 * libtpms keeps the TPM's state in global variables and calls back
 * into us through functions that take no context pointer, so there
 * can be only one instance of this backend per process.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qapi/error.h"
#include "qapi/qapi-types-tpm.h"
#include "block/aio-wait.h"
#include "block/thread-pool.h"
#include "migration/blocker.h"
#include "system/tpm_backend.h"
#include "system/tpm_libtpms.h"
#include "system/tpm_util.h"
#include "tpm_int.h"
#include "trace.h"

/*
 * Not <libtpms/tpm_error.h>: its TPM 1.2 result codes clash with the
 * ones tpm_int.h defines.
 */
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_memory.h>
#include <libtpms/tpm_tis.h>

/* libtpms result codes */
#define TPMLIB_SUCCESS          0
#define TPMLIB_RETRY            0x800   /* NV callbacks: no such data */

/* Ordinals that start and shut down the TPM, and TPM_SU_STATE */
#define TPM_ORD_SaveState       0x98
#define TPM_ORD_Startup         0x99
#define TPM2_CC_Startup         0x144
#define TPM2_CC_Shutdown        0x145
#define TPM2_SU_STATE           0x0001

#define TPM2_RC_COMMAND_SIZE    0x142

OBJECT_DECLARE_SIMPLE_TYPE(TPMLibtpms, TPM_LIBTPMS)

/*
 * The TPM's non-volatile state: a few named blobs ("permall",
 * "volatilestate", "savestate") that libtpms loads, stores and deletes
 * whole.
 */
typedef struct TPMLibtpmsNV {
    GHashTable *blobs;          /* name -> GBytes */
} TPMLibtpmsNV;

struct TPMLibtpms {
    TPMBackend parent;

    TPMVersion version;
    uint32_t buffer_size;
    Error *migration_blocker;

    /*
     * Serialises the calls into libtpms (and its calls back into us),
     * which come from the main thread and from thread pool workers.
     * Protects the fields below.
     */
    QemuMutex lock;
    bool running;               /* between MainInit and Terminate */
    bool needs_shutdown;        /* started up, not shut down since */
    uint8_t locty;              /* of the command being processed */
    unsigned char *rsp;         /* libtpms' response buffer */
    uint32_t rsp_size;
    TPMLibtpmsNV nv;

    /* Read without the lock */
    bool processing;            /* a command is in TPMLIB_Process */
    bool established;           /* cached TPM_IO_TpmEstablished_Get */
    bool stopping;              /* stop request running in a worker */
};

/* The one instance libtpms' callbacks work on */
static TPMLibtpms *tpm_libtpms;

static const char *tpm_libtpms_version_str(TPMVersion version)
{
    return version == TPM_VERSION_1_2 ? "1.2" : "2.0";
}

/* The non-volatile state store */

static void tpm_libtpms_nv_init(TPMLibtpmsNV *nv)
{
    nv->blobs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify)g_bytes_unref);
}

static void tpm_libtpms_nv_cleanup(TPMLibtpmsNV *nv)
{
    g_clear_pointer(&nv->blobs, g_hash_table_destroy);
}

/* Returns a new reference to the blob @name, or NULL if there is none */
static GBytes *tpm_libtpms_nv_load(TPMLibtpmsNV *nv, const char *name)
{
    GBytes *blob = g_hash_table_lookup(nv->blobs, name);

    return blob ? g_bytes_ref(blob) : NULL;
}

static bool tpm_libtpms_nv_store(TPMLibtpmsNV *nv, const char *name,
                                 const void *data, size_t len)
{
    g_hash_table_insert(nv->blobs, g_strdup(name), g_bytes_new(data, len));
    return true;
}

/* Returns whether there was a blob @name */
static bool tpm_libtpms_nv_delete(TPMLibtpmsNV *nv, const char *name)
{
    return g_hash_table_remove(nv->blobs, name);
}

/*
 * Callbacks from libtpms.  They run inside TPMLIB_MainInit,
 * TPMLIB_Process, TPMLIB_Terminate and TPM_IO_TpmEstablished_Reset,
 * which are only called with tpm_libtpms->lock held.
 */

static TPM_RESULT tpm_libtpms_cb_nvram_init(void)
{
    return TPMLIB_SUCCESS;
}

static TPM_RESULT tpm_libtpms_cb_nvram_loaddata(unsigned char **data,
                                                uint32_t *length,
                                                uint32_t tpm_number,
                                                const char *name)
{
    g_autoptr(GBytes) blob = tpm_libtpms_nv_load(&tpm_libtpms->nv, name);
    const void *src;
    size_t len;
    TPM_RESULT res;

    if (!blob) {
        return TPMLIB_RETRY;
    }
    src = g_bytes_get_data(blob, &len);
    /* libtpms frees the buffer with TPM_Free() */
    res = TPM_Malloc(data, len);
    if (res != TPMLIB_SUCCESS) {
        return res;
    }
    memcpy(*data, src, len);
    *length = len;
    return TPMLIB_SUCCESS;
}

static TPM_RESULT tpm_libtpms_cb_nvram_storedata(const unsigned char *data,
                                                 uint32_t length,
                                                 uint32_t tpm_number,
                                                 const char *name)
{
    if (!tpm_libtpms_nv_store(&tpm_libtpms->nv, name, data, length)) {
        return TPM_FAIL;
    }
    return TPMLIB_SUCCESS;
}

static TPM_RESULT tpm_libtpms_cb_nvram_deletename(uint32_t tpm_number,
                                                  const char *name,
                                                  TPM_BOOL must_exist)
{
    if (!tpm_libtpms_nv_delete(&tpm_libtpms->nv, name) && must_exist) {
        return TPM_FAIL;
    }
    return TPMLIB_SUCCESS;
}

static TPM_RESULT tpm_libtpms_cb_io_init(void)
{
    return TPMLIB_SUCCESS;
}

static TPM_RESULT tpm_libtpms_cb_io_getlocality(TPM_MODIFIER_INDICATOR *locty,
                                                uint32_t tpm_number)
{
    *locty = tpm_libtpms->locty;
    return TPMLIB_SUCCESS;
}

static TPM_RESULT tpm_libtpms_cb_io_getphysicalpresence(TPM_BOOL *present,
                                                        uint32_t tpm_number)
{
    *present = FALSE;
    return TPMLIB_SUCCESS;
}

static struct libtpms_callbacks tpm_libtpms_callbacks = {
    .sizeOfStruct = sizeof(struct libtpms_callbacks),
    .tpm_nvram_init = tpm_libtpms_cb_nvram_init,
    .tpm_nvram_loaddata = tpm_libtpms_cb_nvram_loaddata,
    .tpm_nvram_storedata = tpm_libtpms_cb_nvram_storedata,
    .tpm_nvram_deletename = tpm_libtpms_cb_nvram_deletename,
    .tpm_io_init = tpm_libtpms_cb_io_init,
    .tpm_io_getlocality = tpm_libtpms_cb_io_getlocality,
    .tpm_io_getphysicalpresence = tpm_libtpms_cb_io_getphysicalpresence,
};

/* Running the TPM */

/* Write a response with return code @rc and nothing else into @out */
static void tpm_libtpms_write_error(TPMLibtpms *s, uint8_t *out,
                                    uint32_t out_len, uint32_t rc)
{
    uint8_t rsp[sizeof(struct tpm_resp_hdr)];

    tpm_cmd_set_tag(rsp, s->version == TPM_VERSION_1_2 ?
                    TPM_TAG_RSP_COMMAND : TPM2_ST_NO_SESSIONS);
    tpm_cmd_set_size(rsp, sizeof(rsp));
    tpm_cmd_set_error(rsp, rc);
    memcpy(out, rsp, MIN(sizeof(rsp), out_len));
}

/* Write a TPM_FAIL (1.2) or TPM_RC_FAILURE (2.0) response into @out */
static void tpm_libtpms_write_failure(TPMLibtpms *s, uint8_t *out,
                                      uint32_t out_len)
{
    tpm_libtpms_write_error(s, out, out_len,
                            s->version == TPM_VERSION_1_2 ?
                            TPM_FAIL : TPM_RC_FAILURE);
}

/*
 * Note a command's successful completion: whether the TPM now needs a
 * shutdown before it is terminated.
 */
static void tpm_libtpms_track_ordinal(TPMLibtpms *s, uint32_t ordinal)
{
    if (s->version == TPM_VERSION_1_2) {
        if (ordinal == TPM_ORD_Startup) {
            s->needs_shutdown = true;
        } else if (ordinal == TPM_ORD_SaveState) {
            s->needs_shutdown = false;
        }
    } else {
        if (ordinal == TPM2_CC_Startup) {
            s->needs_shutdown = true;
        } else if (ordinal == TPM2_CC_Shutdown) {
            s->needs_shutdown = false;
        }
    }
}

static void tpm_libtpms_update_established(TPMLibtpms *s)
{
    TPM_BOOL established = FALSE;

    if (TPM_IO_TpmEstablished_Get(&established) != TPMLIB_SUCCESS) {
        established = FALSE;
    }
    qatomic_set(&s->established, established);
}

/*
 * Run one command through libtpms and put its response into @out.
 * Returns the TPM's return code, or -1 with @errp set if libtpms could
 * not produce a response that fits; @out then holds a failure response.
 */
static int64_t tpm_libtpms_process(TPMLibtpms *s, uint8_t locty,
                                   const uint8_t *in, uint32_t in_len,
                                   uint8_t *out, uint32_t out_len,
                                   Error **errp)
{
    /* libtpms reads the command in place: keep the guest's hands off */
    g_autofree unsigned char *cmd = g_memdup2(in, in_len);
    uint32_t rsp_len = 0;
    TPM_RESULT res;

    s->locty = locty;
    qatomic_set(&s->processing, true);
    res = TPMLIB_Process(&s->rsp, &rsp_len, &s->rsp_size, cmd, in_len);
    qatomic_set(&s->processing, false);
    tpm_libtpms_update_established(s);

    if (res != TPMLIB_SUCCESS) {
        error_setg(errp, "tpm-libtpms: TPM command failed: 0x%x", res);
    } else if (rsp_len < sizeof(struct tpm_resp_hdr)) {
        error_setg(errp, "tpm-libtpms: TPM response too short: %" PRIu32
                   " bytes", rsp_len);
    } else if (rsp_len > out_len) {
        error_setg(errp, "tpm-libtpms: TPM response of %" PRIu32 " bytes "
                   "does not fit the %" PRIu32 " byte buffer",
                   rsp_len, out_len);
    } else {
        memcpy(out, s->rsp, rsp_len);
        return tpm_cmd_get_errcode(out);
    }
    tpm_libtpms_write_failure(s, out, out_len);
    return -1;
}

/* Start libtpms; called with s->lock held */
static int tpm_libtpms_start_locked(TPMLibtpms *s, size_t buffer_size)
{
    uint32_t min_size, max_size;
    TPM_RESULT res;

    res = TPMLIB_ChooseTPMVersion(s->version == TPM_VERSION_1_2 ?
                                  TPMLIB_TPM_VERSION_1_2 :
                                  TPMLIB_TPM_VERSION_2);
    if (res == TPMLIB_SUCCESS) {
        res = TPMLIB_RegisterCallbacks(&tpm_libtpms_callbacks);
    }
    if (res != TPMLIB_SUCCESS) {
        error_report("tpm-libtpms: could not set up TPM %s: 0x%x",
                     tpm_libtpms_version_str(s->version), res);
        return -1;
    }

    if (buffer_size) {
        s->buffer_size = TPMLIB_SetBufferSize(MIN(buffer_size, UINT32_MAX),
                                              &min_size, &max_size);
    }

    res = TPMLIB_MainInit();
    trace_tpm_libtpms_init(tpm_libtpms_version_str(s->version),
                           s->buffer_size, res);
    if (res != TPMLIB_SUCCESS) {
        error_report("tpm-libtpms: could not start TPM %s: 0x%x",
                     tpm_libtpms_version_str(s->version), res);
        return -1;
    }

    s->running = true;
    s->needs_shutdown = false;
    tpm_libtpms_update_established(s);
    return 0;
}

/*
 * Shut the TPM down if the guest did not, and terminate libtpms.  Runs
 * in a thread pool worker, as it may send a command.
 */
static int tpm_libtpms_stop_worker(void *opaque)
{
    TPMLibtpms *s = opaque;
    uint8_t cmd[12], rsp[sizeof(struct tpm_resp_hdr)];
    uint32_t cmd_len;
    int64_t rc;

    QEMU_LOCK_GUARD(&s->lock);

    if (!s->running) {
        return 0;
    }

    if (s->needs_shutdown) {
        if (s->version == TPM_VERSION_1_2) {
            tpm_cmd_set_tag(cmd, TPM_TAG_RQU_COMMAND);
            stl_be_p(&cmd[6], TPM_ORD_SaveState);
            cmd_len = 10;
        } else {
            tpm_cmd_set_tag(cmd, TPM2_ST_NO_SESSIONS);
            stl_be_p(&cmd[6], TPM2_CC_Shutdown);
            stw_be_p(&cmd[10], TPM2_SU_STATE);
            cmd_len = 12;
        }
        tpm_cmd_set_size(cmd, cmd_len);

        rc = tpm_libtpms_process(s, 0, cmd, cmd_len, rsp, sizeof(rsp),
                                 &error_warn);
        trace_tpm_libtpms_shutdown(rc);
        s->needs_shutdown = false;
    }

    TPMLIB_Terminate();
    trace_tpm_libtpms_terminate();
    g_clear_pointer(&s->rsp, TPM_Free);
    s->rsp_size = 0;
    s->running = false;
    return 0;
}

static void tpm_libtpms_stop_done(void *opaque, int ret)
{
    TPMLibtpms *s = opaque;

    qatomic_set(&s->stopping, false);
}

/* Stop libtpms and wait for it; called in the main thread */
static void tpm_libtpms_stop(TPMLibtpms *s)
{
    bool running;

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        running = s->running;
    }
    if (!running) {
        return;
    }

    qatomic_set(&s->stopping, true);
    thread_pool_submit_aio(tpm_libtpms_stop_worker, s,
                           tpm_libtpms_stop_done, s);
    AIO_WAIT_WHILE(NULL, qatomic_read(&s->stopping));
}

/* TPMBackendClass hooks */

static int tpm_libtpms_startup_tpm(TPMBackend *tb, size_t buffer_size)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    /* Start from a fresh TPM even if the frontend did not reset us */
    tpm_libtpms_stop(s);

    QEMU_LOCK_GUARD(&s->lock);
    return tpm_libtpms_start_locked(s, buffer_size);
}

static void tpm_libtpms_reset(TPMBackend *tb)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    tpm_backend_finish_sync(tb);
    tpm_libtpms_stop(s);
}

static void tpm_libtpms_handle_request(TPMBackend *tb, TPMBackendCmd *cmd,
                                       Error **errp)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);
    bool is_selftest = tpm_util_is_selftest(cmd->in, cmd->in_len);
    uint32_t ordinal = 0;
    int64_t rc;

    if (cmd->in_len >= sizeof(struct tpm_req_hdr)) {
        ordinal = tpm_cmd_get_ordinal(cmd->in);
    }
    cmd->selftest_done = false;

    QEMU_LOCK_GUARD(&s->lock);

    if (!s->running) {
        error_setg(errp, "tpm-libtpms: TPM is not running");
        tpm_libtpms_write_failure(s, cmd->out, cmd->out_len);
        return;
    }

    if (cmd->in_len < sizeof(struct tpm_req_hdr)) {
        /* Not even a header: no need to bother libtpms */
        rc = s->version == TPM_VERSION_1_2 ?
             TPM_BAD_PARAM_SIZE : TPM2_RC_COMMAND_SIZE;
        tpm_libtpms_write_error(s, cmd->out, cmd->out_len, rc);
    } else {
        rc = tpm_libtpms_process(s, cmd->locty, cmd->in, cmd->in_len,
                                 cmd->out, cmd->out_len, errp);
    }
    trace_tpm_libtpms_command(cmd->locty, ordinal, cmd->in_len,
                              cmd->out_len, rc);
    if (rc == 0) {
        tpm_libtpms_track_ordinal(s, ordinal);
        cmd->selftest_done = is_selftest;
    }
}

static void tpm_libtpms_cancel_cmd(TPMBackend *tb)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    /*
     * Cancelling sets a flag that libtpms polls during long operations
     * such as key generation.  Leave it alone when no command runs, so
     * that it does not cancel the next one.
     */
    if (qatomic_read(&s->processing)) {
        trace_tpm_libtpms_cancel();
        TPMLIB_CancelCommand();
    }
}

static bool tpm_libtpms_get_tpm_established_flag(TPMBackend *tb)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    /* Called by register reads, which must not wait for a command */
    return qatomic_read(&s->established);
}

static int tpm_libtpms_reset_tpm_established_flag(TPMBackend *tb,
                                                  uint8_t locty)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);
    TPM_RESULT res;

    QEMU_LOCK_GUARD(&s->lock);

    if (!s->running) {
        return -1;
    }

    /* libtpms checks that the reset comes from locality 3 or 4 */
    s->locty = locty;
    res = TPM_IO_TpmEstablished_Reset();
    tpm_libtpms_update_established(s);

    return res == TPMLIB_SUCCESS ? 0 : -1;
}

static TPMVersion tpm_libtpms_get_tpm_version(TPMBackend *tb)
{
    return TPM_LIBTPMS(tb)->version;
}

static size_t tpm_libtpms_get_buffer_size(TPMBackend *tb)
{
    return TPM_LIBTPMS(tb)->buffer_size;
}

static TpmTypeOptions *tpm_libtpms_get_tpm_options(TPMBackend *tb)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);
    TpmTypeOptions *options = g_new0(TpmTypeOptions, 1);

    options->type = TPM_TYPE_LIBTPMS;
    options->u.libtpms.data = g_new0(TPMLibtpmsOptions, 1);
    options->u.libtpms.data->version =
        g_strdup(tpm_libtpms_version_str(s->version));

    return options;
}

/* Creation */

static TPMBackend *tpm_libtpms_new(TPMVersion version, Error **errp)
{
    TPMLibtpms *s;
    uint32_t min_size, max_size;
    TPM_RESULT res;

    if (tpm_libtpms) {
        error_setg(errp, "only one libtpms TPM can exist per QEMU process");
        error_append_hint(errp, "Use -tpmdev emulator (swtpm) for more "
                          "TPMs.\n");
        return NULL;
    }

    res = TPMLIB_ChooseTPMVersion(version == TPM_VERSION_1_2 ?
                                  TPMLIB_TPM_VERSION_1_2 :
                                  TPMLIB_TPM_VERSION_2);
    if (res != TPMLIB_SUCCESS) {
        error_setg(errp, "libtpms does not support TPM %s: 0x%x",
                   tpm_libtpms_version_str(version), res);
        return NULL;
    }

    s = TPM_LIBTPMS(object_new(TYPE_TPM_LIBTPMS));
    s->version = version;

    /* The TPM's state is not part of the migration stream yet */
    error_setg(&s->migration_blocker,
               "the libtpms TPM backend does not support migration");
    if (migrate_add_blocker(&s->migration_blocker, errp) < 0) {
        object_unref(OBJECT(s));
        return NULL;
    }
    s->buffer_size = TPMLIB_SetBufferSize(0, &min_size, &max_size);
    tpm_libtpms = s;

    return TPM_BACKEND(s);
}

TPMBackend *tpm_libtpms_create(const char *id, TPMVersion version,
                               Error **errp)
{
    TPMBackend *tb = tpm_libtpms_new(version, errp);

    if (tb && !tpm_backend_register(tb, id, errp)) {
        object_unref(OBJECT(tb));
        return NULL;
    }
    return tb;
}

static TPMBackend *tpm_libtpms_create_from_opts(QemuOpts *opts)
{
    const char *value = qemu_opt_get(opts, "version");
    TPMVersion version;
    TPMBackend *tb;
    Error *err = NULL;

    if (!value || !strcmp(value, "2.0")) {
        version = TPM_VERSION_2_0;
    } else if (!strcmp(value, "1.2")) {
        version = TPM_VERSION_1_2;
    } else {
        error_report("tpm-libtpms: invalid version '%s': "
                     "must be '1.2' or '2.0'", value);
        return NULL;
    }

    tb = tpm_libtpms_new(version, &err);
    if (!tb) {
        error_report_err(err);
    }
    return tb;
}

static void tpm_libtpms_inst_init(Object *obj)
{
    TPMLibtpms *s = TPM_LIBTPMS(obj);

    s->version = TPM_VERSION_2_0;
    qemu_mutex_init(&s->lock);
    tpm_libtpms_nv_init(&s->nv);
}

static void tpm_libtpms_inst_finalize(Object *obj)
{
    TPMLibtpms *s = TPM_LIBTPMS(obj);

    tpm_libtpms_stop(s);
    migrate_del_blocker(&s->migration_blocker);
    if (tpm_libtpms == s) {
        tpm_libtpms = NULL;
    }
    tpm_libtpms_nv_cleanup(&s->nv);
    qemu_mutex_destroy(&s->lock);
}

static const QemuOptDesc tpm_libtpms_cmdline_opts[] = {
    TPM_STANDARD_CMDLINE_OPTS,
    {
        .name = "version",
        .type = QEMU_OPT_STRING,
        .help = "TPM version to emulate: 2.0 (default) or 1.2",
    },
    { /* end of list */ },
};

static void tpm_libtpms_class_init(ObjectClass *klass, void *data)
{
    TPMBackendClass *tbc = TPM_BACKEND_CLASS(klass);

    tbc->type = TPM_TYPE_LIBTPMS;
    tbc->opts = tpm_libtpms_cmdline_opts;
    tbc->desc = "TPM emulated in QEMU by libtpms";
    tbc->create = tpm_libtpms_create_from_opts;
    tbc->startup_tpm = tpm_libtpms_startup_tpm;
    tbc->reset = tpm_libtpms_reset;
    tbc->cancel_cmd = tpm_libtpms_cancel_cmd;
    tbc->get_tpm_established_flag = tpm_libtpms_get_tpm_established_flag;
    tbc->reset_tpm_established_flag = tpm_libtpms_reset_tpm_established_flag;
    tbc->get_tpm_version = tpm_libtpms_get_tpm_version;
    tbc->get_buffer_size = tpm_libtpms_get_buffer_size;
    tbc->get_tpm_options = tpm_libtpms_get_tpm_options;
    tbc->handle_request = tpm_libtpms_handle_request;
}

static const TypeInfo tpm_libtpms_info = {
    .name = TYPE_TPM_LIBTPMS,
    .parent = TYPE_TPM_BACKEND,
    .instance_size = sizeof(TPMLibtpms),
    .class_init = tpm_libtpms_class_init,
    .instance_init = tpm_libtpms_inst_init,
    .instance_finalize = tpm_libtpms_inst_finalize,
};

static void tpm_libtpms_register(void)
{
    type_register_static(&tpm_libtpms_info);
}

type_init(tpm_libtpms_register)
