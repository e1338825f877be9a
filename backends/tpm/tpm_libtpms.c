/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libtpms TPM backend: a TPM 1.2 or 2.0 emulated inside QEMU
 *
 * libtpms is the TPM implementation that swtpm is built on.  This
 * backend links it into QEMU, so that a TPM needs no external process.
 * Commands run in a thread of the TPM backend's (tpm_backend.c), never
 * in a vCPU thread or under the BQL.  The TPM's non-volatile state lives
 * in a file (path=) or in swtpm's directory (dir=), written atomically
 * and locked (tpm_nvfile.c), or in memory only.  The file is swtpm's
 * linear file or QEMU's own (format=); swtpm opens the first and the
 * directory, so that a TPM moves between swtpm and QEMU as it is.  The
 * permanent and volatile state travel in the migration stream and in
 * snapshots.
 *
 * libtpms keeps the TPM's state in global variables and calls back
 * into us through functions that take no context pointer, so there
 * can be only one instance of this backend per process.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/units.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qapi/qapi-types-tpm.h"
#include "migration/misc.h"
#include "migration/vmstate.h"
#include "system/runstate.h"
#include "system/tpm_backend.h"
#include "system/tpm_libtpms.h"
#include "system/tpm_util.h"
#include "tpm_int.h"
#include "tpm_nvfile.h"
#include "trace.h"

/*
 * Not <libtpms/tpm_error.h>: its TPM 1.2 result codes clash with the
 * ones tpm_int.h defines.
 */
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_memory.h>
#include <libtpms/tpm_nvfilename.h>
#include <libtpms/tpm_tis.h>

/*
 * The start of libtpms' TPM 2.0 permanent state: a version (2), a magic
 * (4) and the oldest version that reads it (2)
 */
#define TPM_LIBTPMS_PERMANENT_MAGIC     0xab364723

/* libtpms result codes */
#define TPMLIB_SUCCESS          0
#define TPMLIB_RETRY            0x800   /* NV callbacks: no such data */

/* Bounds a migration stream's TPM state blobs */
#define TPM_LIBTPMS_STATE_MAX   (1 * MiB)
/* The SHA-256 a migration stream carries of each */
#define TPM_LIBTPMS_DIGEST_SIZE 32

OBJECT_DECLARE_SIMPLE_TYPE(TPMLibtpms, TPM_LIBTPMS)

/*
 * A TPM's state as a migration stream carries it; also the TPM before a
 * loadvm, to go back to if the load is refused
 */
typedef struct TPMLibtpmsState {
    uint32_t family;            /* 1: TPM 1.2, 2: TPM 2.0 */
    bool running;
    bool needs_shutdown;
    uint32_t permanent_size;
    uint8_t *permanent;
    uint32_t volatile_size;
    uint8_t *volatile_state;
    uint8_t permanent_digest[TPM_LIBTPMS_DIGEST_SIZE];
    uint8_t volatile_digest[TPM_LIBTPMS_DIGEST_SIZE];
} TPMLibtpmsState;

struct TPMLibtpms {
    TPMBackend parent;

    TPMVersion version;
    uint32_t buffer_size;
    char *path;                 /* the state file or directory, or NULL */
    TPMNVFormat format;
    VMChangeStateEntry *vmse;

    /*
     * An incoming migration: libtpms and the state file are left alone
     * until the state has arrived (post_load).
     */
    bool incoming;
    size_t incoming_buffer_size;

    /* The state in the migration stream, while it is saved or loaded */
    TPMLibtpmsState mig;
    bool relock;                /* gave up the file lock for a migration */
    /*
     * ... and could not take it back: the file may be another process's
     * now, and the TPM fails every command until a load gives it a state
     * and the lock again.  Read without the lock.
     */
    bool lost;
    NotifierWithReturn migration_notifier;
    /*
     * The states (their digests, tpm_libtpms_state_key()) that libtpms
     * saved or a child survived: no need to try them again
     */
    GHashTable *known_states;

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
    int64_t process_ns;         /* time the last command took in libtpms */
    TPMNVFile *nv;

    /* Read without the lock */
    bool processing;            /* a command is in TPMLIB_Process */
    bool established;           /* cached TPM_IO_TpmEstablished_Get */
    /* locality + 1 of a reset of the established flag yet to be done */
    int reset_established;
    /*
     * A restart of the TPM yet to be done (tpm_libtpms_startup_tpm()), and
     * its parameters, written before it is set; all three atomic, as the
     * next reset may write them while the TPM's thread reads them
     */
    bool restart;
    size_t restart_buffer_size;
    bool restart_no_shutdown;
    bool started;               /* the first start was made */

    /* Failures reported to the host, not to be repeated while they last */
    bool start_failing;
    bool store_failing;
};

/* The one instance libtpms' callbacks work on */
static TPMLibtpms *tpm_libtpms;

/* In a child process that tries a state (tpm_libtpms_probe()) */
static bool tpm_libtpms_probing;

/*
 * libtpms' own messages.  Some it always prints (a TPM 2.0 that enters
 * failure mode, with the command that made it), to stderr unless it is
 * given a descriptor, and a guest that makes them happen at every reset
 * would fill the host's log.  They go into a pipe instead, which
 * tpm_libtpms_log_drain() empties into trace events; the first one is
 * also reported.  Both ends are non-blocking: with the pipe full, libtpms
 * loses a message rather than waits.
 */
static int tpm_libtpms_log_fds[2] = { -1, -1 };
static bool tpm_libtpms_log_reported;

static bool tpm_libtpms_log_open(Error **errp)
{
    g_autoptr(GError) gerr = NULL;

    if (tpm_libtpms_log_fds[0] >= 0) {
        return true;
    }
    if (!g_unix_open_pipe(tpm_libtpms_log_fds, FD_CLOEXEC, &gerr)) {
        error_setg(errp, "tpm-libtpms: could not make a pipe for libtpms' "
                   "messages: %s", gerr->message);
        return false;
    }
    if (!qemu_set_blocking(tpm_libtpms_log_fds[0], false, errp) ||
        !qemu_set_blocking(tpm_libtpms_log_fds[1], false, errp)) {
        qemu_close(tpm_libtpms_log_fds[0]);
        qemu_close(tpm_libtpms_log_fds[1]);
        tpm_libtpms_log_fds[0] = tpm_libtpms_log_fds[1] = -1;
        return false;
    }
    TPMLIB_SetDebugFD(tpm_libtpms_log_fds[1]);
    return true;
}

/* Trace what libtpms wrote to its log since the last call */
static void tpm_libtpms_log_drain(void)
{
    g_autoptr(GString) text = g_string_new(NULL);
    g_auto(GStrv) lines = NULL;
    char buf[1024];
    ssize_t n;
    size_t i;

    while ((n = read(tpm_libtpms_log_fds[0], buf, sizeof(buf))) > 0) {
        g_string_append_len(text, buf, n);
    }
    if (!text->len) {
        return;
    }
    lines = g_strsplit(text->str, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (!*lines[i]) {
            continue;
        }
        trace_tpm_libtpms_log(lines[i]);
        if (!tpm_libtpms_log_reported) {
            warn_report("tpm-libtpms: %s", lines[i]);
            error_printf("libtpms' further messages are traced "
                         "(tpm_libtpms_log), not reported.\n");
            tpm_libtpms_log_reported = true;
        }
    }
}

/* Drop what libtpms wrote to its log since the last call */
static void tpm_libtpms_log_discard(void)
{
    char buf[1024];

    while (read(tpm_libtpms_log_fds[0], buf, sizeof(buf)) > 0) {
        /* nothing */
    }
}

static const char *tpm_libtpms_version_str(TPMVersion version)
{
    return version == TPM_VERSION_1_2 ? "1.2" : "2.0";
}

static uint32_t tpm_libtpms_family(TPMVersion version)
{
    return version == TPM_VERSION_1_2 ? 1 : 2;
}

/*
 * libtpms 0.9 and 0.10 trust a 16-bit length inside their TPM 2.0 state
 * blobs: NVMarshal.c's block_skip_read() skips it without checking it
 * against the bytes left, and once past the end the parsers check no
 * length at all.  A damaged blob, from the state file or a migration
 * stream, makes them read up to 64 KiB past its end.  A blob that
 * carries this many zeros inside its length cannot be read past: a skip
 * from inside the blob lands in the zeros, and zeros skip nothing.  The
 * parsers stop at the end of the state they know, so a good blob loads
 * the same with the zeros after it.
 */
#define TPM_LIBTPMS_BLOB_PAD    (64 * KiB)
QEMU_BUILD_BUG_ON(TPM_LIBTPMS_BLOB_PAD <= UINT16_MAX);

/* A TPM 2.0 volatile state ends in the SHA-1 of the bytes before it */
#define TPM_LIBTPMS_SHA1_SIZE   20

/* The @type digest of @data into @digest, which is @size bytes long */
static void tpm_libtpms_checksum(GChecksumType type, const uint8_t *data,
                                 size_t len, uint8_t *digest, gsize size)
{
    g_autoptr(GChecksum) checksum = g_checksum_new(type);

    g_checksum_update(checksum, data, len);
    g_checksum_get_digest(checksum, digest, &size);
}

/*
 * The copy of a state blob that libtpms is given to parse, with the
 * zeros after it for a TPM 2.0.  libtpms checks a volatile state's SHA-1
 * in its last 20 bytes: the zeros go before them, and they become the
 * SHA-1 of blob and zeros if they were the blob's own, or stay as they
 * are, for libtpms to refuse, if they were not.
 */
static uint8_t *tpm_libtpms_blob_copy(TPMLibtpms *s, const uint8_t *blob,
                                      size_t len, bool is_volatile,
                                      uint32_t *copy_len)
{
    size_t body = len, padded = len + TPM_LIBTPMS_BLOB_PAD;
    uint8_t *copy, *sha1;

    if (s->version != TPM_VERSION_2_0 ||
        (is_volatile && len < TPM_LIBTPMS_SHA1_SIZE)) {
        *copy_len = len;
        return g_memdup2(blob, len);
    }
    if (is_volatile) {
        body -= TPM_LIBTPMS_SHA1_SIZE;
    }
    copy = g_malloc0(padded);
    if (body) {
        memcpy(copy, blob, body);
    }
    if (is_volatile) {
        sha1 = copy + padded - TPM_LIBTPMS_SHA1_SIZE;
        tpm_libtpms_checksum(G_CHECKSUM_SHA1, blob, body, sha1,
                             TPM_LIBTPMS_SHA1_SIZE);
        if (!memcmp(sha1, blob + body, TPM_LIBTPMS_SHA1_SIZE)) {
            tpm_libtpms_checksum(G_CHECKSUM_SHA1, copy,
                                 padded - TPM_LIBTPMS_SHA1_SIZE, sha1,
                                 TPM_LIBTPMS_SHA1_SIZE);
        } else {
            memcpy(sha1, blob + body, TPM_LIBTPMS_SHA1_SIZE);
        }
    }
    *copy_len = padded;
    return copy;
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
    g_autoptr(GBytes) blob = tpm_nvfile_get(tpm_libtpms->nv, name);
    const void *src;
    size_t len;

    if (!blob) {
        return TPMLIB_RETRY;
    }
    src = g_bytes_get_data(blob, &len);
    if (!len) {
        return TPM_FAIL;
    }
    /*
     * libtpms frees the buffer with free(), which GLib's allocator is
     * since 2.46
     */
    *data = tpm_libtpms_blob_copy(tpm_libtpms, src, len,
                                  !strcmp(name, TPM_VOLATILESTATE_NAME),
                                  length);
    return TPMLIB_SUCCESS;
}

/*
 * A failure that a guest can make happen again as often as it likes is
 * reported when a run of them starts, and when it ends (@ended), not each
 * time; the caller traces each one.
 */
static void tpm_libtpms_report_run(bool *failing, Error *err,
                                   const char *ended)
{
    if (!err) {
        if (*failing) {
            info_report("tpm-libtpms: %s", ended);
            *failing = false;
        }
        return;
    }
    if (*failing) {
        error_free(err);
        return;
    }
    error_report_err(err);
    *failing = true;
}

/*
 * A state file that cannot be written fails every guest command that
 * changes the TPM's state: tell the host when writes start failing and
 * when they work again.
 */
static void tpm_libtpms_store_result(TPMLibtpms *s, Error *err)
{
    if (err) {
        trace_tpm_libtpms_store_failed(error_get_pretty(err));
        error_append_hint(&err, "Until it is written again, the guest's "
                          "commands that change the TPM's state fail, "
                          "and the state file keeps the state it has.\n");
    }
    tpm_libtpms_report_run(&s->store_failing, err,
                           "the TPM's state is written again");
}

static TPM_RESULT tpm_libtpms_cb_nvram_storedata(const unsigned char *data,
                                                 uint32_t length,
                                                 uint32_t tpm_number,
                                                 const char *name)
{
    g_autoptr(GBytes) blob = NULL;
    Error *err = NULL;
    bool ok;

    if (tpm_libtpms_probing) {
        return TPMLIB_SUCCESS;
    }
    blob = g_bytes_new(data, length);
    /* On failure the guest gets a TPM failure; the old state stays */
    ok = tpm_nvfile_set(tpm_libtpms->nv, name, blob, &err);
    tpm_libtpms_store_result(tpm_libtpms, err);
    return ok ? TPMLIB_SUCCESS : TPM_FAIL;
}

static TPM_RESULT tpm_libtpms_cb_nvram_deletename(uint32_t tpm_number,
                                                  const char *name,
                                                  TPM_BOOL must_exist)
{
    g_autoptr(GBytes) blob = tpm_nvfile_get(tpm_libtpms->nv, name);
    Error *err = NULL;

    if (!blob) {
        return must_exist ? TPM_FAIL : TPMLIB_SUCCESS;
    }
    if (tpm_libtpms_probing) {
        return TPMLIB_SUCCESS;
    }
    if (!tpm_nvfile_set(tpm_libtpms->nv, name, NULL, &err)) {
        tpm_libtpms_store_result(tpm_libtpms, err);
        return TPM_FAIL;
    }
    tpm_libtpms_store_result(tpm_libtpms, NULL);
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
    /* TPMLIB_Process() takes the command as writable */
    g_autofree unsigned char *cmd = g_memdup2(in, in_len);
    uint32_t rsp_len = 0;
    TPM_RESULT res;

    s->locty = locty;
    qatomic_set(&s->processing, true);
    s->process_ns = get_clock();
    res = TPMLIB_Process(&s->rsp, &rsp_len, &s->rsp_size, cmd, in_len);
    s->process_ns = get_clock() - s->process_ns;
    qatomic_set(&s->processing, false);
    tpm_libtpms_update_established(s);
    /* libtpms has something to say when it fails a command, not before */
    if (res != TPMLIB_SUCCESS || rsp_len < sizeof(struct tpm_resp_hdr) ||
        tpm_cmd_get_errcode(s->rsp)) {
        tpm_libtpms_log_drain();
    }

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

/*
 * A TPM that cannot start (a state file that cannot be written, say)
 * fails again at every reset, which a guest can make as often as it
 * likes: report the first failure of a run, and trace the others.
 */
static void tpm_libtpms_start_result(TPMLibtpms *s, Error *err)
{
    if (err) {
        trace_tpm_libtpms_start_failed(error_get_pretty(err));
    }
    tpm_libtpms_report_run(&s->start_failing, err, "the TPM started");
}

/* Make libtpms a TPM of @s's version, which calls us back */
static TPM_RESULT tpm_libtpms_setup(TPMLibtpms *s)
{
    TPM_RESULT res;

    res = TPMLIB_ChooseTPMVersion(s->version == TPM_VERSION_1_2 ?
                                  TPMLIB_TPM_VERSION_1_2 :
                                  TPMLIB_TPM_VERSION_2);
    if (res == TPMLIB_SUCCESS) {
        res = TPMLIB_RegisterCallbacks(&tpm_libtpms_callbacks);
    }
    return res;
}

/* Start libtpms; called with s->lock held */
static int tpm_libtpms_start_locked(TPMLibtpms *s, size_t buffer_size)
{
    uint32_t min_size, max_size;
    TPM_RESULT res;
    Error *err = NULL;

    res = tpm_libtpms_setup(s);
    if (res != TPMLIB_SUCCESS) {
        error_setg(&err, "tpm-libtpms: could not set up TPM %s: 0x%x",
                   tpm_libtpms_version_str(s->version), res);
        tpm_libtpms_start_result(s, err);
        return -1;
    }

    if (buffer_size) {
        s->buffer_size = TPMLIB_SetBufferSize(MIN(buffer_size, UINT32_MAX),
                                              &min_size, &max_size);
    }

    /* What libtpms stores while it starts is kept if it starts */
    tpm_nvfile_hold(s->nv);
    res = TPMLIB_MainInit();
    tpm_libtpms_log_drain();
    trace_tpm_libtpms_init(tpm_libtpms_version_str(s->version),
                           s->buffer_size, res);
    if (res != TPMLIB_SUCCESS) {
        /*
         * Until it is terminated, libtpms keeps what it allocated and
         * refuses to be set up again, even with a state it would load
         */
        TPMLIB_Terminate();
        tpm_nvfile_rollback(s->nv);
        error_setg(&err, "tpm-libtpms: could not start TPM %s: 0x%x",
                   tpm_libtpms_version_str(s->version), res);
        tpm_libtpms_start_result(s, err);
        return -1;
    }
    if (!tpm_nvfile_commit(s->nv, &err)) {
        TPMLIB_Terminate();
        error_prepend(&err, "tpm-libtpms: could not store the state of the "
                      "TPM %s: ", tpm_libtpms_version_str(s->version));
        tpm_libtpms_start_result(s, err);
        return -1;
    }
    tpm_libtpms_start_result(s, NULL);

    s->running = true;
    s->needs_shutdown = false;
    tpm_libtpms_update_established(s);
    return 0;
}

/*
 * Shut the TPM down if the guest did not, and terminate libtpms; called
 * with s->lock held: in the TPM's thread for a restart, in the main
 * thread on the first start, loadvm and finalize.
 */
static void tpm_libtpms_stop_locked(TPMLibtpms *s)
{
    uint8_t cmd[12], rsp[sizeof(struct tpm_resp_hdr)];
    uint32_t cmd_len;
    int64_t rc;
    Error *err = NULL;

    if (!s->running) {
        return;
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
                                 &err);
        if (err) {
            warn_report_err(err);
        }
        trace_tpm_libtpms_shutdown(rc);
        s->needs_shutdown = false;
    }

    TPMLIB_Terminate();
    tpm_libtpms_log_drain();
    trace_tpm_libtpms_terminate();
    g_clear_pointer(&s->rsp, TPM_Free);
    s->rsp_size = 0;
    s->running = false;
}

/*
 * Carry out a restart tpm_libtpms_startup_tpm() left to the TPM's thread;
 * called with s->lock held, before anything else uses the TPM
 */
static void tpm_libtpms_restart_locked(TPMLibtpms *s)
{
    if (!qatomic_xchg(&s->restart, false)) {
        return;
    }
    if (qatomic_read(&s->restart_no_shutdown)) {
        s->needs_shutdown = false;
    }
    tpm_libtpms_stop_locked(s);
    tpm_libtpms_start_locked(s, qatomic_read(&s->restart_buffer_size));
}

/*
 * Stop libtpms; called in the main thread, on the first start, loadvm
 * and finalize: a command still in flight holds s->lock, and is waited
 * for
 */
static void tpm_libtpms_stop(TPMLibtpms *s)
{
    /* Stopped, the TPM will not be restarted as a reset asked */
    qatomic_set(&s->restart, false);
    QEMU_LOCK_GUARD(&s->lock);
    /*
     * Its state went out in a migration and this QEMU did not carry on:
     * the TPM is the destination's now, and shutting it down here would
     * write a state file this QEMU no longer holds
     */
    if (s->relock) {
        s->needs_shutdown = false;
    }
    tpm_libtpms_stop_locked(s);
}

/* TPMBackendClass hooks */

static int tpm_libtpms_startup_tpm(TPMBackend *tb, size_t buffer_size)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    if (s->incoming) {
        /* post_load starts the TPM with the state that arrives */
        s->incoming_buffer_size = buffer_size;
        return 0;
    }

    if (s->started) {
        /*
         * A reset, which a guest can make as often as it likes: stopping
         * and starting libtpms takes up to a second for a TPM 1.2, too
         * long to hold the BQL.  The TPM's thread does it before the
         * next command (or a migration, before the state is saved).  A
         * TPM that fails to start then fails that command.
         */
        qatomic_set(&s->restart_buffer_size, buffer_size);
        qatomic_set(&s->restart_no_shutdown, s->relock);
        qatomic_store_release(&s->restart, true);
        return 0;
    }

    /*
     * The first start, as the machine is made: at once, so that a TPM
     * that cannot start is known before the guest runs
     */
    s->started = true;
    tpm_libtpms_stop(s);
    QEMU_LOCK_GUARD(&s->lock);
    return tpm_libtpms_start_locked(s, buffer_size);
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

static void tpm_libtpms_reset(TPMBackend *tb)
{
    /*
     * The command in flight runs on past the reset (reset_abandons), its
     * response unread, and holds up the guest's next command and the
     * TPM's restart: have libtpms give up on it early
     */
    tpm_libtpms_cancel_cmd(tb);
}

/* Run a request; called with s->lock held */
static void tpm_libtpms_run_request(TPMLibtpms *s, TPMBackendCmd *cmd,
                                    Error **errp)
{
    bool is_selftest = tpm_util_is_selftest(cmd->in, cmd->in_len);
    uint32_t ordinal = 0;
    int64_t rc;

    if (cmd->in_len >= sizeof(struct tpm_req_hdr)) {
        ordinal = tpm_cmd_get_ordinal(cmd->in);
    }
    cmd->selftest_done = false;

    if (!s->running) {
        error_setg(errp, "tpm-libtpms: TPM is not running");
        tpm_libtpms_write_failure(s, cmd->out, cmd->out_len);
        return;
    }
    if (qatomic_read(&s->lost)) {
        /* Said once, when the lock was lost */
        trace_tpm_libtpms_command_lost(ordinal);
        tpm_libtpms_write_failure(s, cmd->out, cmd->out_len);
        return;
    }

    if (cmd->in_len < sizeof(struct tpm_req_hdr)) {
        /* Not even a header: no need to bother libtpms */
        rc = s->version == TPM_VERSION_1_2 ?
             TPM_BAD_PARAM_SIZE : TPM_RC_COMMAND_SIZE;
        tpm_libtpms_write_error(s, cmd->out, cmd->out_len, rc);
        s->process_ns = 0;
    } else {
        rc = tpm_libtpms_process(s, cmd->locty, cmd->in, cmd->in_len,
                                 cmd->out, cmd->out_len, errp);
    }
    trace_tpm_libtpms_command(cmd->locty, ordinal, cmd->in_len,
                              cmd->out_len, rc, s->process_ns);
    if (rc == 0) {
        tpm_libtpms_track_ordinal(s, ordinal);
        cmd->selftest_done = is_selftest;
    }
}

/* Reset the established flag, for locality @locty; with s->lock held */
static void tpm_libtpms_reset_established_locked(TPMLibtpms *s,
                                                 uint8_t locty)
{
    TPM_RESULT res;

    if (!s->running) {
        return;
    }
    /* libtpms checks that the reset comes from locality 3 or 4 */
    s->locty = locty;
    res = TPM_IO_TpmEstablished_Reset();
    tpm_libtpms_update_established(s);
    trace_tpm_libtpms_reset_established(locty, res);
}

/*
 * Carry out a reset of the established flag asked for while a command
 * held s->lock.  Both the register write that asks for it and the thread
 * that ran the command call this, each after its own store (the request;
 * the unlock): with the barrier, one of them sees the other's, and
 * whichever finds the lock free last does the reset.
 */
static void tpm_libtpms_reset_established_pending(TPMLibtpms *s)
{
    int locty_plus_1;

    /* Order our store (request or unlock) before the load of the other's */
    smp_mb();
    /* Not with a restart to do first: the TPM's thread does both */
    while (qatomic_read(&s->reset_established) &&
           !qatomic_read(&s->restart) &&
           qemu_mutex_trylock(&s->lock) == 0) {
        locty_plus_1 = qatomic_xchg(&s->reset_established, 0);
        if (locty_plus_1) {
            tpm_libtpms_reset_established_locked(s, locty_plus_1 - 1);
        }
        qemu_mutex_unlock(&s->lock);
        /* As above: the unlock, before the next look at a request */
        smp_mb();
    }
}

/*
 * Do what register writes and resets left to the TPM's thread, in the
 * order they came: a restart, then a reset of the established flag
 */
static void tpm_libtpms_catch_up_locked(TPMLibtpms *s)
{
    int locty_plus_1;

    tpm_libtpms_restart_locked(s);
    locty_plus_1 = qatomic_xchg(&s->reset_established, 0);
    if (locty_plus_1) {
        tpm_libtpms_reset_established_locked(s, locty_plus_1 - 1);
    }
}

static void tpm_libtpms_handle_request(TPMBackend *tb, TPMBackendCmd *cmd,
                                       Error **errp)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        tpm_libtpms_catch_up_locked(s);
        tpm_libtpms_run_request(s, cmd, errp);
    }
    /* Before the next command, as the guest asked for it before */
    tpm_libtpms_reset_established_pending(s);
}

static bool tpm_libtpms_get_tpm_established_flag(TPMBackend *tb)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    /* Called by register reads, which must not wait for a command */
    return qatomic_read(&s->established);
}

/*
 * From a register write, in a vCPU thread with the BQL held: it must not
 * wait for a command, which may run for a second (an RSA key's
 * generation).  If one runs, the reset comes right after it, before the
 * next one: the order the guest asked for them in.
 */
static int tpm_libtpms_reset_tpm_established_flag(TPMBackend *tb,
                                                  uint8_t locty)
{
    TPMLibtpms *s = TPM_LIBTPMS(tb);

    qatomic_set(&s->reset_established, locty + 1);
    tpm_libtpms_reset_established_pending(s);
    return 0;
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
    options->u.libtpms.data->version = s->version == TPM_VERSION_1_2 ?
        TPM_LIBTPMS_VERSION_V1_2 : TPM_LIBTPMS_VERSION_V2_0;

    return options;
}

/* Migration and snapshots */

/*
 * The digest a stream carries of a state blob.  libtpms' parsers of its
 * own state do not take every damaged blob well (see
 * TPM_LIBTPMS_BLOB_PAD); the digest keeps a stream damaged on its way
 * from reaching them.
 */
static void tpm_libtpms_digest(const uint8_t *data, uint32_t len,
                               uint8_t digest[TPM_LIBTPMS_DIGEST_SIZE])
{
    tpm_libtpms_checksum(G_CHECKSUM_SHA256, data, len, digest,
                         TPM_LIBTPMS_DIGEST_SIZE);
}

static bool tpm_libtpms_digest_ok(const uint8_t *data, uint32_t len,
                                  const uint8_t *digest)
{
    uint8_t actual[TPM_LIBTPMS_DIGEST_SIZE];

    tpm_libtpms_digest(data, len, actual);
    return !memcmp(actual, digest, sizeof(actual));
}

/* Free @st's blobs */
static void tpm_libtpms_state_clear(TPMLibtpmsState *st)
{
    g_clear_pointer(&st->permanent, g_free);
    g_clear_pointer(&st->volatile_state, g_free);
    st->permanent_size = st->volatile_size = 0;
}

/*
 * Take the TPM's running state, its permanent and volatile blobs
 * included, into @st; called with s->lock held
 */
static TPM_RESULT tpm_libtpms_get_state_locked(TPMLibtpms *s,
                                               TPMLibtpmsState *st)
{
    unsigned char *buf = NULL;
    uint32_t len = 0;
    TPM_RESULT res;

    st->family = tpm_libtpms_family(s->version);
    st->running = s->running;
    st->needs_shutdown = s->needs_shutdown;
    if (!s->running) {
        return TPMLIB_SUCCESS;
    }
    res = TPMLIB_GetState(TPMLIB_STATE_PERMANENT, &buf, &len);
    if (res != TPMLIB_SUCCESS) {
        return res;
    }
    st->permanent = g_memdup2(buf, len);
    st->permanent_size = len;
    TPM_Free(buf);
    res = TPMLIB_GetState(TPMLIB_STATE_VOLATILE, &buf, &len);
    if (res != TPMLIB_SUCCESS) {
        tpm_libtpms_state_clear(st);
        return res;
    }
    st->volatile_state = g_memdup2(buf, len);
    st->volatile_size = len;
    TPM_Free(buf);
    return TPMLIB_SUCCESS;
}

/* Give the stopped TPM the blobs in @st, for it to start from */
static TPM_RESULT tpm_libtpms_set_blobs(TPMLibtpms *s,
                                        const TPMLibtpmsState *st)
{
    g_autofree uint8_t *permanent = NULL, *volatile_state = NULL;
    uint32_t permanent_len, volatile_len;
    TPM_RESULT res;

    permanent = tpm_libtpms_blob_copy(s, st->permanent, st->permanent_size,
                                      false, &permanent_len);
    volatile_state = tpm_libtpms_blob_copy(s, st->volatile_state,
                                           st->volatile_size, true,
                                           &volatile_len);
    res = TPMLIB_SetState(TPMLIB_STATE_PERMANENT, permanent, permanent_len);
    if (res == TPMLIB_SUCCESS) {
        res = TPMLIB_SetState(TPMLIB_STATE_VOLATILE, volatile_state,
                              volatile_len);
    }
    return res;
}

/*
 * libtpms takes a state it is given to be one it wrote.  Some crafted
 * ones crash it: libtpms 0.9 and 0.10 meet them with a failed assertion,
 * which longjmp()s to a jump buffer that only a command in progress
 * sets (fuzz/libtpms/README.md).  A state from outside QEMU (the state
 * file as the TPM is created, a migration stream's or a snapshot's) is
 * therefore first loaded by a child process, and QEMU loads it only if
 * the child lived to answer.  The child reads the state from memory and
 * writes nothing (tpm_libtpms_probing drops what libtpms stores); one
 * that takes longer than this is killed, as the state would hang QEMU.
 * A stream's state that this QEMU saved, or has tried before, is not
 * tried again (known_states).
 */
#define TPM_LIBTPMS_PROBE_SECONDS 30

static G_NORETURN void tpm_libtpms_probe_child(TPMLibtpms *s,
                                               const TPMLibtpmsState *st,
                                               int answer_fd)
{
    static const int fatal[] = {
        SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGALRM,
    };
    TPM_RESULT res;
    sigset_t set;
    size_t i;
    int fd;

    tpm_libtpms_probing = true;
    tpm_libtpms = s;
    /*
     * A crash ends the child there and then: none of the handlers it
     * inherited (QEMU's, a sanitizer's or a fuzzer's, which would report
     * the parent's input as a crash) runs, and what it would print goes
     * nowhere
     */
    sigemptyset(&set);
    for (i = 0; i < ARRAY_SIZE(fatal); i++) {
        signal(fatal[i], SIG_DFL);
        sigaddset(&set, fatal[i]);
    }
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
    }
    alarm(TPM_LIBTPMS_PROBE_SECONDS);

    if (s->running) {
        TPMLIB_Terminate();
    }
    if (!s->nv) {
        /* An incoming migration's TPM, which has no state yet */
        s->nv = tpm_nvfile_open(NULL, TPM_NVFILE_AUTO,
                                tpm_libtpms_family(s->version), false,
                                &error_abort);
    }
    res = tpm_libtpms_setup(s);
    if (res == TPMLIB_SUCCESS && st) {
        res = tpm_libtpms_set_blobs(s, st);
    }
    if (res == TPMLIB_SUCCESS) {
        res = TPMLIB_MainInit();
    }
    _exit(write(answer_fd, &res, sizeof(res)) == sizeof(res) ? 0 : 1);
}

/*
 * Try the state in @st, or with @st NULL the one in s->nv, in a child
 * process; called with s->lock held, so that the child's libtpms is
 * between calls.  False, with @errp set, if libtpms does not survive
 * the state; true if it does, whether it takes the state or refuses it.
 */
static bool tpm_libtpms_probe(TPMLibtpms *s, const TPMLibtpmsState *st,
                              Error **errp)
{
    static bool warned;
    g_autoptr(GError) gerr = NULL;
    int fds[2], status = 0, fork_errno;
    TPM_RESULT res;
    ssize_t n;
    pid_t pid;

    if (!g_unix_open_pipe(fds, FD_CLOEXEC, &gerr)) {
        error_setg(errp, "no pipe to try it with: %s", gerr->message);
        return false;
    }
    pid = fork();
    fork_errno = errno;
    if (pid == 0) {
        /* Not qemu_close(): the child must not take the monitor's lock */
        close(fds[0]);
        tpm_libtpms_probe_child(s, st, fds[1]);
    }
    qemu_close(fds[1]);
    if (pid < 0) {
        qemu_close(fds[0]);
        /* -sandbox on,spawn=deny among others */
        if (!warned) {
            warn_report("tpm-libtpms: cannot try TPM states in a child "
                        "process: %s; a state crafted to crash libtpms "
                        "would crash QEMU", strerror(fork_errno));
            warned = true;
        }
        return true;
    }
    n = RETRY_ON_EINTR(read(fds[0], &res, sizeof(res)));
    qemu_close(fds[0]);
    RETRY_ON_EINTR(waitpid(pid, &status, 0));
    if (n == sizeof(res)) {
        /* The load in QEMU says the same */
        tpm_libtpms_log_discard();
        return true;
    }
    tpm_libtpms_log_drain();
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        error_setg(errp, "libtpms does not survive loading it (it did not "
                   "finish in %d s)", TPM_LIBTPMS_PROBE_SECONDS);
    } else if (WIFSIGNALED(status)) {
        error_setg(errp, "libtpms does not survive loading it (%s)",
                   strsignal(WTERMSIG(status)));
    } else {
        error_setg(errp, "libtpms does not survive loading it (exit "
                   "status %d)", WEXITSTATUS(status));
    }
    return false;
}

/*
 * Start the stopped TPM from the blobs in @st; called with s->lock held.
 * It needs a shutdown before it stops if @st's did.
 */
static TPM_RESULT tpm_libtpms_set_state_locked(TPMLibtpms *s,
                                               const TPMLibtpmsState *st,
                                               size_t buffer_size)
{
    TPM_RESULT res;

    res = tpm_libtpms_set_blobs(s, st);
    if (res == TPMLIB_SUCCESS &&
        tpm_libtpms_start_locked(s, buffer_size) < 0) {
        res = TPM_FAIL;
    }
    s->needs_shutdown = st->needs_shutdown;
    return res;
}

/*
 * What identifies a stream's state: the digests of its blobs, which
 * post_load checks before anything else
 */
static GBytes *tpm_libtpms_state_key(const TPMLibtpmsState *st)
{
    uint8_t key[2 * TPM_LIBTPMS_DIGEST_SIZE];

    memcpy(key, st->permanent_digest, TPM_LIBTPMS_DIGEST_SIZE);
    memcpy(key + TPM_LIBTPMS_DIGEST_SIZE, st->volatile_digest,
           TPM_LIBTPMS_DIGEST_SIZE);
    return g_bytes_new(key, sizeof(key));
}

static bool tpm_libtpms_pre_save(void *opaque, Error **errp)
{
    TPMLibtpms *s = opaque;
    TPM_RESULT res = TPMLIB_SUCCESS;

    /* A command in flight finishes here, and its response migrates */
    tpm_backend_finish_sync(TPM_BACKEND(s));

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        /* The state saved is the one the next command would see */
        tpm_libtpms_catch_up_locked(s);
        res = tpm_libtpms_get_state_locked(s, &s->mig);
    }
    if (res != TPMLIB_SUCCESS) {
        error_setg(errp, "tpm-libtpms: cannot get the TPM's state: 0x%x",
                   res);
        return false;
    }
    tpm_libtpms_digest(s->mig.permanent, s->mig.permanent_size,
                       s->mig.permanent_digest);
    tpm_libtpms_digest(s->mig.volatile_state, s->mig.volatile_size,
                       s->mig.volatile_digest);
    if (s->mig.running) {
        /* A snapshot of it loaded back needs no try */
        g_hash_table_add(s->known_states, tpm_libtpms_state_key(&s->mig));
    }

    /*
     * Another QEMU may load this state, and take the file over: the lock
     * goes with an outgoing migration, which saves the devices in its
     * own thread, and not with savevm or snapshot-save (in the main
     * loop's) or a background snapshot, which leave the TPM here
     */
    if (s->nv && migration_thread_is_self() && !migration_in_bg_snapshot()) {
        tpm_nvfile_unlock(s->nv);
        s->relock = true;
    }
    trace_tpm_libtpms_save(s->mig.permanent_size, s->mig.volatile_size);
    return true;
}

static int tpm_libtpms_post_save(void *opaque)
{
    TPMLibtpms *s = opaque;

    tpm_libtpms_state_clear(&s->mig);
    return 0;
}

/*
 * Take the lock back after an outgoing migration that failed, or when
 * the source runs again after one.  If another process holds it now,
 * the TPM can no longer save its state: it fails every command, so that
 * the guest knows, rather than run on and lose what it writes.
 */
static void tpm_libtpms_relock(TPMLibtpms *s)
{
    Error *err = NULL;

    if (!s->relock || qatomic_read(&s->lost)) {
        return;
    }
    if (tpm_nvfile_relock(s->nv, &err)) {
        s->relock = false;
        return;
    }
    qatomic_set(&s->lost, true);
    error_prepend(&err, "tpm-libtpms: the TPM cannot save its state, and "
                  "fails every command: ");
    error_report_err(err);
}

static int tpm_libtpms_migration_event(NotifierWithReturn *notifier,
                                       MigrationEvent *e, Error **errp)
{
    TPMLibtpms *s = container_of(notifier, TPMLibtpms, migration_notifier);

    if (e->type == MIG_EVENT_PRECOPY_FAILED) {
        tpm_libtpms_relock(s);
    }
    return 0;
}

static void tpm_libtpms_vm_state_change(void *opaque, bool running,
                                        RunState state)
{
    TPMLibtpms *s = opaque;

    if (running) {
        tpm_libtpms_relock(s);
    }
}

static bool tpm_libtpms_state_fits(void *opaque, int version_id)
{
    TPMLibtpms *s = opaque;

    /* libtpms' state is a few KiB; refuse anything absurd */
    return s->mig.permanent_size <= TPM_LIBTPMS_STATE_MAX &&
           s->mig.volatile_size <= TPM_LIBTPMS_STATE_MAX;
}

/* Make the state file hold the TPM's permanent state, and nothing older */
static bool tpm_libtpms_persist(TPMLibtpms *s, Error **errp)
{
    g_autoptr(GBytes) permanent = NULL;
    unsigned char *buf = NULL;
    uint32_t len = 0;
    TPM_RESULT res;

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        res = TPMLIB_GetState(TPMLIB_STATE_PERMANENT, &buf, &len);
    }
    if (res != TPMLIB_SUCCESS) {
        error_setg(errp, "cannot get the TPM's permanent state: 0x%x", res);
        return false;
    }
    permanent = g_bytes_new(buf, len);
    TPM_Free(buf);
    return tpm_nvfile_set(s->nv, "savestate", NULL, errp) &&
           tpm_nvfile_set(s->nv, "volatilestate", NULL, errp) &&
           tpm_nvfile_set(s->nv, "permall", permanent, errp);
}

/* Keep the TPM as it is before a loadvm, in @old */
static bool tpm_libtpms_fallback_save(TPMLibtpms *s, TPMLibtpmsState *old,
                                      Error **errp)
{
    TPM_RESULT res;

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        tpm_libtpms_catch_up_locked(s);
        res = tpm_libtpms_get_state_locked(s, old);
    }
    if (res != TPMLIB_SUCCESS) {
        error_setg(errp, "tpm-libtpms: cannot keep the TPM's state to fall "
                   "back to: 0x%x", res);
        return false;
    }
    return true;
}

/* Put the TPM back as it was before a refused loadvm */
static void tpm_libtpms_fallback_restore(TPMLibtpms *s,
                                         const TPMLibtpmsState *old)
{
    TPM_RESULT res = TPMLIB_SUCCESS;

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        s->needs_shutdown = false;
    }
    tpm_libtpms_stop(s);
    if (!old->running) {
        return;
    }
    WITH_QEMU_LOCK_GUARD(&s->lock) {
        res = tpm_libtpms_set_state_locked(s, old, 0);
    }
    if (res != TPMLIB_SUCCESS) {
        /* libtpms refused a state it gave: commands fail, QEMU stays up */
        error_report("tpm-libtpms: the TPM could not go back to its state "
                     "before the refused load: 0x%x", res);
    }
}

static bool tpm_libtpms_post_load(void *opaque, int version_id,
                                  Error **errp)
{
    TPMLibtpms *s = opaque;
    TPMLibtpmsState old = { 0 };
    TPM_RESULT res = TPMLIB_SUCCESS;
    bool incoming = s->incoming;
    size_t buffer_size = incoming ? s->incoming_buffer_size : 0;
    bool ok = false;

    if (s->mig.family != 1 && s->mig.family != 2) {
        error_setg(errp, "tpm-libtpms: the incoming state is of an unknown "
                   "TPM family, %" PRIu32, s->mig.family);
        goto out;
    }
    if (s->mig.family != tpm_libtpms_family(s->version)) {
        error_setg(errp, "tpm-libtpms: the incoming state is of a TPM %s, "
                   "this one is a TPM %s",
                   s->mig.family == 1 ? "1.2" : "2.0",
                   tpm_libtpms_version_str(s->version));
        goto out;
    }

    if (s->mig.running &&
        (!tpm_libtpms_digest_ok(s->mig.permanent, s->mig.permanent_size,
                                s->mig.permanent_digest) ||
         !tpm_libtpms_digest_ok(s->mig.volatile_state, s->mig.volatile_size,
                                s->mig.volatile_digest))) {
        error_setg(errp, "tpm-libtpms: the incoming TPM state is damaged: "
                   "its checksum does not match");
        goto out;
    }
    if (s->mig.running) {
        g_autoptr(GBytes) key = tpm_libtpms_state_key(&s->mig);
        bool survived = true;

        if (!g_hash_table_contains(s->known_states, key)) {
            WITH_QEMU_LOCK_GUARD(&s->lock) {
                survived = tpm_libtpms_probe(s, &s->mig, errp);
            }
        }
        if (!survived) {
            error_prepend(errp, "tpm-libtpms: the incoming TPM state is "
                          "refused: ");
            goto out;
        }
        g_hash_table_add(s->known_states, g_steal_pointer(&key));
    }

    /* loadvm: the TPM as it is, should the stream's be refused */
    if (!incoming && !tpm_libtpms_fallback_save(s, &old, errp)) {
        goto out;
    }

    /* loadvm: the running TPM's state is discarded, not shut down */
    WITH_QEMU_LOCK_GUARD(&s->lock) {
        s->needs_shutdown = false;
    }
    tpm_libtpms_stop(s);

    if (incoming) {
        /* Until the state is accepted, the file is left alone */
        s->nv = tpm_nvfile_open(NULL, TPM_NVFILE_AUTO, s->mig.family, false,
                                &error_abort);
    }
    if (s->mig.running) {
        WITH_QEMU_LOCK_GUARD(&s->lock) {
            res = tpm_libtpms_set_state_locked(s, &s->mig, buffer_size);
        }
        if (res != TPMLIB_SUCCESS) {
            error_setg(errp, "tpm-libtpms: libtpms refused the incoming TPM "
                       "state: 0x%x", res);
            goto refused;
        }
    }

    if (incoming && s->path) {
        TPMNVFile *mem = s->nv;

        s->nv = tpm_nvfile_open(s->path, s->format, s->mig.family, true,
                                errp);
        if (!s->nv) {
            s->nv = mem;
            goto refused;
        }
        tpm_nvfile_close(mem);
    }
    if (s->relock) {
        /* loadvm after an outgoing migration, with the VM not resumed */
        if (!tpm_nvfile_relock(s->nv, errp)) {
            goto refused;
        }
        s->relock = false;
    }
    if (s->mig.running && !tpm_libtpms_persist(s, errp)) {
        goto refused;
    }
    s->incoming = false;
    s->started = true;
    qatomic_set(&s->lost, false);
    trace_tpm_libtpms_load(s->mig.permanent_size, s->mig.volatile_size);
    ok = true;
    goto out;

refused:
    if (!incoming) {
        tpm_libtpms_fallback_restore(s, &old);
    }
out:
    tpm_libtpms_state_clear(&old);
    tpm_libtpms_post_save(s);
    return ok;
}

static const VMStateDescription vmstate_tpm_libtpms = {
    .name = "tpm-libtpms",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save_errp = tpm_libtpms_pre_save,
    .post_save = tpm_libtpms_post_save,
    .post_load_errp = tpm_libtpms_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(mig.family, TPMLibtpms),
        VMSTATE_BOOL(mig.running, TPMLibtpms),
        VMSTATE_BOOL(mig.needs_shutdown, TPMLibtpms),
        VMSTATE_UINT32(mig.permanent_size, TPMLibtpms),
        VMSTATE_UINT32(mig.volatile_size, TPMLibtpms),
        VMSTATE_VALIDATE("state sizes", tpm_libtpms_state_fits),
        VMSTATE_BUFFER(mig.permanent_digest, TPMLibtpms),
        VMSTATE_BUFFER(mig.volatile_digest, TPMLibtpms),
        VMSTATE_VBUFFER_ALLOC_UINT32(mig.permanent, TPMLibtpms, 1, NULL,
                                     mig.permanent_size),
        VMSTATE_VBUFFER_ALLOC_UINT32(mig.volatile_state, TPMLibtpms, 1, NULL,
                                     mig.volatile_size),
        VMSTATE_END_OF_LIST()
    },
};

/* Creation */

/*
 * The newest TPM 2.0 permanent state this QEMU's libtpms reads: version
 * 3 up to libtpms 0.9, 4 (a state with a profile) from 0.10 on; 0 for a
 * libtpms newer than this QEMU knows, which judges for itself
 */
static unsigned tpm_libtpms_permanent_max(void)
{
    uint32_t version = TPMLIB_GetVersion();

    if (version < 0x000a00) {
        return 3;
    }
    return version < 0x000b00 ? 4 : 0;
}

/*
 * Check that the permanent state @permanent is not the other family's
 * (swtpm's state does not say which it holds), and that a TPM 2.0's is
 * one this QEMU's libtpms reads.  Anything else is for libtpms to judge.
 */
static bool tpm_libtpms_check_permanent(TPMLibtpms *s, GBytes *permanent,
                                        Error **errp)
{
    uint32_t libtpms = TPMLIB_GetVersion();
    unsigned max = tpm_libtpms_permanent_max(), min_version;
    size_t len;
    const uint8_t *p = g_bytes_get_data(permanent, &len);
    bool tpm2 = len >= 8 && ldl_be_p(p + 2) == TPM_LIBTPMS_PERMANENT_MAGIC;
    /* A TPM 1.2's starts with the tag TPM_TAG_NVSTATE_V1 */
    bool tpm12 = !tpm2 && len >= 2 && lduw_be_p(p) == 1;

    if (s->version == TPM_VERSION_1_2 ? tpm2 : tpm12) {
        error_setg(errp, "it holds a TPM %s, not a TPM %s",
                   tpm2 ? "2.0" : "1.2", tpm2 ? "1.2" : "2.0");
        return false;
    }
    if (!tpm2) {
        return true;
    }
    min_version = lduw_be_p(p + 6);
    if (max && min_version > max) {
        error_setg(errp, "it was written by a newer libtpms than this "
                   "QEMU's (%u.%u.%u): its TPM 2.0 state has version %u, "
                   "and this libtpms reads up to version %u",
                   (libtpms >> 16) & 0xff, (libtpms >> 8) & 0xff,
                   libtpms & 0xff, min_version, max);
        if (min_version == 4) {
            error_append_hint(errp, "libtpms 0.10 writes version 4 for a "
                              "TPM made with a profile (swtpm --profile, "
                              "and swtpm_setup 0.10's default).\n");
        }
        return false;
    }
    return true;
}

/* Try the state that s->nv read from the state file, if any */
static bool tpm_libtpms_probe_file(TPMLibtpms *s, Error **errp)
{
    g_autoptr(GBytes) permanent = tpm_nvfile_get(s->nv,
                                                 TPM_PERMANENT_ALL_NAME);

    QEMU_LOCK_GUARD(&s->lock);
    if (permanent && (!tpm_libtpms_check_permanent(s, permanent, errp) ||
                      !tpm_libtpms_probe(s, NULL, errp))) {
        error_prepend(errp, "TPM state %s '%s' is refused: ",
                      s->format == TPM_NVFILE_SWTPM_DIR ? "directory" :
                      "file", s->path);
        return false;
    }
    return true;
}

static TPMBackend *tpm_libtpms_new(TPMVersion version, const char *path,
                                   TPMNVFormat format, Error **errp)
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
    if (!tpm_libtpms_log_open(errp)) {
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
    s->path = g_strdup(path);
    s->format = format;
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        /* The state is on its way: do not touch the file before it is */
        s->incoming = true;
    } else {
        s->nv = tpm_nvfile_open(path, format, tpm_libtpms_family(version),
                                false, errp);
        if (!s->nv || !tpm_libtpms_probe_file(s, errp)) {
            object_unref(OBJECT(s));
            return NULL;
        }
    }
    s->buffer_size = TPMLIB_SetBufferSize(0, &min_size, &max_size);
    vmstate_register_any(NULL, &vmstate_tpm_libtpms, s);
    s->vmse = qemu_add_vm_change_state_handler(tpm_libtpms_vm_state_change,
                                               s);
    migration_add_notifier(&s->migration_notifier,
                           tpm_libtpms_migration_event);
    tpm_libtpms = s;

    return TPM_BACKEND(s);
}

static TPMBackend *tpm_libtpms_create_own(TPMVersion version, Error **errp)
{
    return tpm_libtpms_new(version, NULL, TPM_NVFILE_AUTO, errp);
}

static TPMBackend *tpm_libtpms_create_from_opts(QemuOpts *opts)
{
    const char *value = qemu_opt_get(opts, "version");
    const char *path = qemu_opt_get(opts, "path");
    const char *dir = qemu_opt_get(opts, "dir");
    const char *format = qemu_opt_get(opts, "format");
    TPMNVFormat nv_format = TPM_NVFILE_AUTO;
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

    if (path && dir) {
        error_report("tpm-libtpms: 'path' and 'dir' cannot be used "
                     "together");
        return NULL;
    }
    if (dir) {
        if (format) {
            error_report("tpm-libtpms: 'format' is for 'path': 'dir' is "
                         "swtpm's directory");
            return NULL;
        }
        path = dir;
        nv_format = TPM_NVFILE_SWTPM_DIR;
    } else if (format && !path) {
        error_report("tpm-libtpms: 'format' needs 'path'");
        return NULL;
    } else if (format && !strcmp(format, "swtpm")) {
        nv_format = TPM_NVFILE_SWTPM;
    } else if (format && !strcmp(format, "qemu")) {
        nv_format = TPM_NVFILE_QEMU;
    } else if (format) {
        error_report("tpm-libtpms: invalid format '%s': must be 'swtpm' "
                     "or 'qemu'", format);
        return NULL;
    }

    tb = tpm_libtpms_new(version, path, nv_format, &err);
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
    s->known_states = g_hash_table_new_full(g_bytes_hash, g_bytes_equal,
                                            (GDestroyNotify)g_bytes_unref,
                                            NULL);
}

static void tpm_libtpms_inst_finalize(Object *obj)
{
    TPMLibtpms *s = TPM_LIBTPMS(obj);

    tpm_libtpms_stop(s);
    if (tpm_libtpms == s) {
        tpm_libtpms = NULL;
        vmstate_unregister(NULL, &vmstate_tpm_libtpms, s);
        qemu_del_vm_change_state_handler(s->vmse);
        migration_remove_notifier(&s->migration_notifier);
    }
    tpm_nvfile_close(s->nv);
    tpm_libtpms_post_save(s);
    g_free(s->path);
    g_hash_table_unref(s->known_states);
    qemu_mutex_destroy(&s->lock);
}

static const QemuOptDesc tpm_libtpms_cmdline_opts[] = {
    TPM_STANDARD_CMDLINE_OPTS,
    {
        .name = "version",
        .type = QEMU_OPT_STRING,
        .help = "TPM version to emulate: 2.0 (default) or 1.2",
    },
    {
        .name = "path",
        .type = QEMU_OPT_STRING,
        .help = "file that keeps the TPM's state (default: in memory)",
    },
    {
        .name = "format",
        .type = QEMU_OPT_STRING,
        .help = "format path= is written in: swtpm (swtpm's linear "
                "file, the default for a new file) or qemu; default: "
                "the file's own",
    },
    {
        .name = "dir",
        .type = QEMU_OPT_STRING,
        .help = "swtpm's state directory (swtpm --tpmstate dir=) that "
                "keeps the TPM's state",
    },
    { /* end of list */ },
};

static void tpm_libtpms_class_init(ObjectClass *klass, const void *data)
{
    TPMBackendClass *tbc = TPM_BACKEND_CLASS(klass);

    tbc->type = TPM_TYPE_LIBTPMS;
    tbc->opts = tpm_libtpms_cmdline_opts;
    tbc->desc = "TPM emulated in QEMU by libtpms";
    tbc->create = tpm_libtpms_create_from_opts;
    tbc->create_own = tpm_libtpms_create_own;
    tbc->startup_tpm = tpm_libtpms_startup_tpm;
    tbc->reset = tpm_libtpms_reset;
    tbc->reset_abandons = true;
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
