/*
 * vtpm-pci's command engine: the TPM command/response state machine
 *
 * A command arrives in the engine's buffer from the DATA port's byte
 * stream, or is copied whole out of the buffer BAR; START checks it and
 * hands it to the TPM backend, which runs it in a worker thread (or, with
 * poll-ns, before the START access returns); the response replaces the
 * command in the buffer, and the card copies it to the buffer BAR when
 * the command came from there.
 * docs/specs/vtpm-pci.rst has the state machine as a guest sees it.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "hw/qdev-core.h"
#include "system/tpm_util.h"
#include "vtpm_engine.h"
#include "trace.h"

static const char *const vtpm_engine_state_names[] = {
    [VTPM_STATE_IDLE] = "idle",
    [VTPM_STATE_RECEIVING] = "receiving",
    [VTPM_STATE_EXECUTING] = "executing",
    [VTPM_STATE_COMPLETE] = "complete",
};

static void vtpm_engine_set_state(VTPMEngine *e, enum VTPMCmdState state)
{
    trace_vtpm_pci_state(vtpm_engine_state_names[e->state],
                         vtpm_engine_state_names[state]);
    e->state = state;
    if (state == VTPM_STATE_IDLE || state == VTPM_STATE_RECEIVING) {
        e->from_memory = false;
    }
}

/* Refuse a guest request: log it, remember why, change nothing else */
void vtpm_engine_refuse(VTPMEngine *e, enum VTPMError error,
                        const char *what)
{
    qemu_log_mask(LOG_GUEST_ERROR, "vtpm-pci: %s (state %s)\n", what,
                  vtpm_engine_state_names[e->state]);
    e->error = error;
}

uint32_t vtpm_engine_status(VTPMEngine *e)
{
    uint32_t val = e->flags;

    val = FIELD_DP32(val, VTPM_STATUS, STATE, e->state);
    val = FIELD_DP32(val, VTPM_STATUS, ERROR, e->error != VTPM_ERR_NONE);
    switch (tpm_backend_get_tpm_version(e->tpmbe)) {
    case TPM_VERSION_1_2:
        val = FIELD_DP32(val, VTPM_STATUS, FAMILY, VTPM_FAMILY_TPM12);
        break;
    case TPM_VERSION_2_0:
        val = FIELD_DP32(val, VTPM_STATUS, FAMILY, VTPM_FAMILY_TPM20);
        break;
    default:
        break;
    }
    return val;
}

static void vtpm_engine_discard(VTPMEngine *e)
{
    e->cmd_len = 0;
    e->overflow = false;
    e->rsp_len = 0;
    e->rsp_pos = 0;
    e->error = VTPM_ERR_NONE;
}

static void vtpm_engine_deliver(VTPMEngine *e, uint32_t len, uint8_t locty)
{
    trace_vtpm_pci_command(tpm_cmd_get_ordinal(e->buf), len, locty);
    e->start_ns = get_clock();
    vtpm_engine_set_state(e, VTPM_STATE_EXECUTING);
    e->cmd = (TPMBackendCmd) {
        .locty = locty,
        .in = e->buf,
        .in_len = len,
        .out = e->buf,
        .out_len = e->buffer_size,
    };
    /* With poll-ns, a short command completes before this returns */
    e->starting = true;
    tpm_backend_deliver_request(e->tpmbe, &e->cmd);
    e->starting = false;
}

/* The query is over: the engine is idle, and says it finished */
static void vtpm_engine_query_end(VTPMEngine *e)
{
    e->query_step = 0;
    vtpm_engine_set_state(e, VTPM_STATE_IDLE);
    e->completed(e->opaque);
}

/*
 * The flags query (CONTROL.QUERY).  TPM 2.0: one TPM2_GetCapability of
 * TPM_PT_PERMANENT and TPM_PT_STARTUP_CLEAR.  TPM 1.2: TPM_GetCapability
 * of the permanent flags, then of TPM_CAP_PROP_OWNER.
 */

/* Write the query's next command to buf; returns its length, 0 if done */
static uint32_t vtpm_engine_query_command(VTPMEngine *e)
{
    uint8_t *b = e->buf;

    if (tpm_backend_get_tpm_version(e->tpmbe) == TPM_VERSION_2_0) {
        if (e->query_step > 1) {
            return 0;
        }
        stw_be_p(b, TPM2_ST_NO_SESSIONS);
        stl_be_p(b + 2, 22);
        stl_be_p(b + 6, TPM2_CC_GetCapability);
        stl_be_p(b + 10, TPM2_CAP_TPM_PROPERTIES);
        stl_be_p(b + 14, TPM2_PT_PERMANENT);
        stl_be_p(b + 18, 2);                    /* and STARTUP_CLEAR */
        return 22;
    }
    if (e->query_step > 2) {
        return 0;
    }
    stw_be_p(b, TPM_TAG_RQU_COMMAND);
    stl_be_p(b + 2, 22);
    stl_be_p(b + 6, TPM_ORD_GetCapability);
    stl_be_p(b + 10, e->query_step == 1 ? TPM_CAP_FLAG : TPM_CAP_PROPERTY);
    stl_be_p(b + 14, 4);                        /* subCapSize */
    stl_be_p(b + 18, e->query_step == 1 ? TPM_CAP_FLAG_PERMANENT :
                                          TPM_CAP_PROP_OWNER);
    return 22;
}

/* Fold the response in buf (@len bytes) into query_flags */
static bool vtpm_engine_query_parse(VTPMEngine *e, uint32_t len)
{
    const uint8_t *b = e->buf;
    uint32_t *f = &e->query_flags;

    if (tpm_cmd_get_errcode(b) != 0) {
        return false;
    }
    if (tpm_backend_get_tpm_version(e->tpmbe) == TPM_VERSION_2_0) {
        /* moreData, capability, count, then (property, value) pairs */
        uint32_t count, i;
        uint8_t found = 0;

        if (len < 19 || ldl_be_p(b + 11) != TPM2_CAP_TPM_PROPERTIES) {
            return false;
        }
        count = ldl_be_p(b + 15);
        for (i = 0; i < count && 19 + 8 * i + 8 <= len; i++) {
            uint32_t prop = ldl_be_p(b + 19 + 8 * i);
            uint32_t value = ldl_be_p(b + 23 + 8 * i);

            if (prop == TPM2_PT_PERMANENT) {
                *f = FIELD_DP32(*f, VTPM_STATUS, OWNED,
                                !!(value & TPMA_PERMANENT_OWNERAUTHSET));
                found |= 1;
            } else if (prop == TPM2_PT_STARTUP_CLEAR) {
                *f = FIELD_DP32(*f, VTPM_STATUS, ENABLED,
                                !!(value & TPMA_STARTUP_CLEAR_SHENABLE));
                *f = FIELD_DP32(*f, VTPM_STATUS, ACTIVATED,
                                !!(value & TPMA_STARTUP_CLEAR_EHENABLE));
                found |= 2;
            }
        }
        return found == 3;
    }
    /* respSize, then TPM_PERMANENT_FLAGS or a BOOL */
    if (e->query_step == 1) {
        /* tag, disable, ownership, deactivated, ... */
        if (len < 19 || lduw_be_p(b + 14) != TPM_TAG_PERMANENT_FLAGS) {
            return false;
        }
        *f = FIELD_DP32(*f, VTPM_STATUS, ENABLED, !b[16]);
        *f = FIELD_DP32(*f, VTPM_STATUS, ACTIVATED, !b[18]);
        return true;
    }
    if (len < 15 || ldl_be_p(b + 10) != 1) {
        return false;
    }
    *f = FIELD_DP32(*f, VTPM_STATUS, OWNED, !!b[14]);
    return true;
}

/*
 * Send the query's next command, or publish what it found.  Not from the
 * backend's completion callback, which may not start another request.
 */
static void vtpm_engine_query_next(void *opaque)
{
    VTPMEngine *e = opaque;
    uint32_t len;

    e->query_step++;
    len = vtpm_engine_query_command(e);
    if (len) {
        vtpm_engine_deliver(e, len, 0);
        return;
    }
    e->flags = FIELD_DP32(e->query_flags, VTPM_STATUS, FLAGS_VALID, 1);
    trace_vtpm_pci_flags(e->flags);
    vtpm_engine_query_end(e);
}

/* The backend finished the command: make its response readable */
void vtpm_engine_request_completed(VTPMEngine *e, int ret)
{
    uint32_t len = tpm_cmd_get_size(e->buf);

    if (ret != 0 || len < sizeof(struct tpm_resp_hdr) ||
        len > e->buffer_size) {
        /* No usable response: give the guest a well-formed TPM failure */
        tpm_util_write_fatal_error_response(e->buf, e->buffer_size);
        len = tpm_cmd_get_size(e->buf);
    }
    trace_vtpm_pci_response(tpm_cmd_get_errcode(e->buf), len,
                            get_clock() - e->start_ns,
                            e->starting ? "within START" : "later");

    if (e->query_step) {
        if (vtpm_engine_query_parse(e, len)) {
            qemu_bh_schedule(e->query_bh);
        } else {
            trace_vtpm_pci_flags(0);
            vtpm_engine_query_end(e);
        }
        return;
    }

    e->rsp_len = len;
    e->rsp_pos = 0;
    vtpm_engine_set_state(e, VTPM_STATE_COMPLETE);
    e->completed(e->opaque);
}

/* START: send the command written on DATA.  True if the TPM has it. */
bool vtpm_engine_start(VTPMEngine *e)
{
    switch (e->state) {
    case VTPM_STATE_IDLE:
        vtpm_engine_refuse(e, VTPM_ERR_LENGTH, "START with no command written");
        return false;
    case VTPM_STATE_RECEIVING:
        break;
    default:
        vtpm_engine_refuse(e, VTPM_ERR_STATE, "START while busy");
        return false;
    }

    if (e->overflow || e->cmd_len > e->buffer_size) {
        vtpm_engine_refuse(e, VTPM_ERR_OVERFLOW,
                           "START of a command longer than the buffer");
    } else if (e->cmd_len < sizeof(struct tpm_req_hdr)) {
        vtpm_engine_refuse(e, VTPM_ERR_LENGTH,
                           "START of a command shorter than its header");
    } else if (tpm_cmd_get_size(e->buf) != e->cmd_len) {
        vtpm_engine_refuse(e, VTPM_ERR_LENGTH,
                           "START of a command whose header size differs "
                           "from the bytes written");
    } else {
        vtpm_engine_deliver(e, e->cmd_len, e->locality);
        return true;
    }
    /* The command is dropped; the error stays visible until the next one */
    e->cmd_len = 0;
    e->overflow = false;
    vtpm_engine_set_state(e, VTPM_STATE_IDLE);
    return false;
}

/*
 * START_BUFFER: send the command at @cmd, in memory the guest can write
 * at any time, of which @avail bytes may be read.  Its length is the
 * size in its header.  The engine works on a copy from here on, and
 * checks the copy: the guest may change the buffer while it is read.
 * True if the TPM has it.
 */
bool vtpm_engine_start_from(VTPMEngine *e, const uint8_t *cmd,
                            uint32_t avail)
{
    uint32_t len;

    switch (e->state) {
    case VTPM_STATE_IDLE:
    case VTPM_STATE_COMPLETE:
        break;
    case VTPM_STATE_RECEIVING:
        vtpm_engine_refuse(e, VTPM_ERR_STATE, "START_BUFFER while a "
                           "command is being written on DATA");
        return false;
    default:
        vtpm_engine_refuse(e, VTPM_ERR_STATE, "START_BUFFER while busy");
        return false;
    }

    /* A response still there, read or not, goes */
    vtpm_engine_discard(e);
    assert(avail >= sizeof(struct tpm_req_hdr));
    len = tpm_cmd_get_size(cmd);
    if (len > MIN(e->buffer_size, avail)) {
        vtpm_engine_refuse(e, VTPM_ERR_OVERFLOW,
                           "START_BUFFER of a command longer than the "
                           "buffer");
    } else if (len < sizeof(struct tpm_req_hdr)) {
        vtpm_engine_refuse(e, VTPM_ERR_LENGTH,
                           "START_BUFFER of a command shorter than its "
                           "header");
    } else {
        memcpy(e->buf, cmd, len);
        if (tpm_cmd_get_size(e->buf) == len) {
            e->cmd_len = len;
            e->from_memory = true;
            vtpm_engine_deliver(e, len, e->locality);
            return true;
        }
        vtpm_engine_refuse(e, VTPM_ERR_LENGTH,
                           "START_BUFFER of a command whose header size "
                           "changed while the card read it");
    }
    vtpm_engine_set_state(e, VTPM_STATE_IDLE);
    return false;
}

void vtpm_engine_cancel(VTPMEngine *e)
{
    if (e->state != VTPM_STATE_EXECUTING) {
        vtpm_engine_refuse(e, VTPM_ERR_STATE,
                           "CANCEL with no command executing");
        return;
    }
    trace_vtpm_pci_cancel();
    tpm_backend_cancel_cmd(e->tpmbe);
}

void vtpm_engine_abort(VTPMEngine *e)
{
    if (e->state == VTPM_STATE_EXECUTING) {
        vtpm_engine_refuse(e, VTPM_ERR_STATE,
                           "ABORT while executing (CANCEL first)");
        return;
    }
    vtpm_engine_discard(e);
    vtpm_engine_set_state(e, VTPM_STATE_IDLE);
}

void vtpm_engine_query(VTPMEngine *e)
{
    if (e->state != VTPM_STATE_IDLE) {
        vtpm_engine_refuse(e, VTPM_ERR_STATE, "QUERY while busy");
        return;
    }
    vtpm_engine_discard(e);
    e->flags = 0;
    e->query_flags = 0;
    e->query_step = 0;
    vtpm_engine_query_next(e);
}

void vtpm_engine_set_locality(VTPMEngine *e, uint32_t locality)
{
    if (e->state != VTPM_STATE_IDLE) {
        vtpm_engine_refuse(e, VTPM_ERR_STATE,
                           "LOCALITY change during a command");
    } else if (locality > VTPM_PCI_LOCALITY_MAX) {
        vtpm_engine_refuse(e, VTPM_ERR_VALUE, "LOCALITY out of range");
    } else {
        e->locality = locality;
    }
}

/* DATA read: the next @len bytes of the response, 0xff past its end */
void vtpm_engine_read(VTPMEngine *e, uint8_t *bytes, unsigned len)
{
    unsigned i;

    if (e->state != VTPM_STATE_COMPLETE) {
        vtpm_engine_refuse(e, VTPM_ERR_STATE, "DATA read with no response");
        memset(bytes, 0xff, len);
        return;
    }
    for (i = 0; i < len; i++) {
        bytes[i] = 0xff;
        if (e->rsp_pos < MIN(e->rsp_len, e->buffer_size)) {
            bytes[i] = e->buf[e->rsp_pos++];
        } else if (e->error != VTPM_ERR_UNDERRUN) {
            vtpm_engine_refuse(e, VTPM_ERR_UNDERRUN,
                               "DATA read past the end of the response");
        }
    }
    if (e->rsp_pos >= e->rsp_len) {
        /* All of it read: ready for the next command */
        vtpm_engine_set_state(e, VTPM_STATE_IDLE);
    }
}

/* DATA write: @len more bytes of the command */
void vtpm_engine_write(VTPMEngine *e, const uint8_t *bytes, unsigned len)
{
    unsigned i;

    switch (e->state) {
    case VTPM_STATE_IDLE:
        vtpm_engine_discard(e);
        vtpm_engine_set_state(e, VTPM_STATE_RECEIVING);
        break;
    case VTPM_STATE_RECEIVING:
        break;
    default:
        vtpm_engine_refuse(e, VTPM_ERR_STATE, "DATA write while busy");
        return;
    }
    for (i = 0; i < len; i++) {
        if (e->cmd_len < e->buffer_size) {
            e->buf[e->cmd_len++] = bytes[i];
        } else if (!e->overflow) {
            e->overflow = true;
            vtpm_engine_refuse(e, VTPM_ERR_OVERFLOW,
                               "DATA write past the end of the buffer");
        }
    }
}

void vtpm_engine_init(VTPMEngine *e, DeviceState *dev, TPMBackend *tpmbe,
                      void (*completed)(void *opaque), void *opaque)
{
    e->tpmbe = tpmbe;
    e->completed = completed;
    e->opaque = opaque;
    e->query_bh = aio_bh_new_guarded(qemu_get_aio_context(),
                                     vtpm_engine_query_next, e,
                                     &dev->mem_reentrancy_guard);
    e->buffer_size = MIN(tpm_backend_get_buffer_size(tpmbe),
                         VTPM_PCI_BUFFER_MAX);
    e->buf = g_malloc0(VTPM_PCI_BUFFER_MAX);
    e->load_buf = g_malloc(VTPM_PCI_BUFFER_MAX);
}

/* After vtpm_engine_drain() */
void vtpm_engine_finalize(VTPMEngine *e)
{
    qemu_bh_delete(e->query_bh);
    e->query_bh = NULL;
    g_free(e->buf);
    g_free(e->load_buf);
    e->buf = e->load_buf = NULL;
}

/* Wait until neither a guest command nor a flags query is in flight */
void vtpm_engine_drain(VTPMEngine *e)
{
    tpm_backend_finish_sync(e->tpmbe);
    while (e->query_step) {
        aio_poll(qemu_get_aio_context(), true);
        tpm_backend_finish_sync(e->tpmbe);
    }
}

void vtpm_engine_reset(VTPMEngine *e)
{
    /*
     * No completion comes after this for a command in flight: the backend
     * waits for it, or leaves it to the TPM and drops the response
     */
    tpm_backend_reset(e->tpmbe);
    qemu_bh_cancel(e->query_bh);

    vtpm_engine_discard(e);
    e->state = VTPM_STATE_IDLE;
    e->from_memory = false;
    e->flags = 0;
    e->query_step = 0;
    e->locality = 0;

    /*
     * On failure, commands get a TPM failure response and QEMU stays up.
     * A guest can reset the card as often as it likes: say it once for a
     * run of failed starts.
     */
    if (tpm_backend_startup_tpm(e->tpmbe, e->buffer_size) < 0) {
        if (!e->start_failed) {
            error_report("vtpm-pci: the TPM backend failed to start; "
                         "commands fail until a reset starts it");
        }
        e->start_failed = true;
    } else {
        e->start_failed = false;
    }
}

/* Before the card's state is saved */
void vtpm_engine_pre_save(VTPMEngine *e)
{
    /* Let a command in flight finish: its response migrates instead */
    vtpm_engine_drain(e);
    e->mig.state = e->state;
    e->mig.error = e->error;
    e->mig.locality = e->locality;
    e->mig.cmd_len = e->cmd_len;
    e->mig.overflow = e->overflow;
    e->mig.rsp_len = e->rsp_len;
    e->mig.rsp_pos = e->rsp_pos;
    e->mig.flags = e->flags;
    e->mig.from_memory = e->from_memory;
    e->mig.data_len = e->state == VTPM_STATE_RECEIVING ? e->cmd_len :
                      e->state == VTPM_STATE_COMPLETE ? e->rsp_len : 0;
    e->mig.data_len = MIN(e->mig.data_len, e->buffer_size);
    e->mig.buf = e->buf;
}

/* Before the card's state is loaded */
void vtpm_engine_pre_load(VTPMEngine *e)
{
    /*
     * loadvm over a running card: the command in flight ends before the
     * stream arrives, so that its response cannot land on top of it
     */
    vtpm_engine_drain(e);
    e->mig.buf = e->load_buf;
    /* Only a stream that has the card's buffer subsection sets it */
    e->mig.from_memory = false;
}

/* Is the stream's buffer length one the buffer can take? */
bool vtpm_engine_data_len_valid(VTPMEngine *e)
{
    return e->mig.data_len <= e->buffer_size;
}

/* Does the stream's engine, staged in e->mig, make sense as a whole? */
bool vtpm_engine_load_check(VTPMEngine *e, Error **errp)
{
    if (e->mig.state > VTPM_STATE_COMPLETE ||
        e->mig.state == VTPM_STATE_EXECUTING ||
        e->mig.cmd_len > e->buffer_size || e->mig.rsp_len > e->buffer_size ||
        e->mig.rsp_pos > e->mig.rsp_len ||
        e->mig.locality > VTPM_PCI_LOCALITY_MAX ||
        (e->mig.flags & ~(R_VTPM_STATUS_FLAGS_VALID_MASK |
                          R_VTPM_STATUS_ENABLED_MASK |
                          R_VTPM_STATUS_ACTIVATED_MASK |
                          R_VTPM_STATUS_OWNED_MASK)) ||
        e->mig.error > VTPM_ERR_VALUE) {
        error_setg(errp, "vtpm-pci: inconsistent state in the migration "
                   "stream");
        return false;
    }
    /* The buffer holds what the state says: the command, or a response */
    if ((e->mig.state == VTPM_STATE_RECEIVING &&
         e->mig.data_len != e->mig.cmd_len) ||
        (e->mig.state == VTPM_STATE_COMPLETE &&
         (e->mig.data_len != e->mig.rsp_len ||
          e->mig.rsp_len < sizeof(struct tpm_resp_hdr) ||
          tpm_cmd_get_size(e->mig.buf) != e->mig.rsp_len)) ||
        (e->mig.state == VTPM_STATE_IDLE && e->mig.data_len) ||
        (e->mig.from_memory && e->mig.state != VTPM_STATE_COMPLETE)) {
        error_setg(errp, "vtpm-pci: the migration stream's buffer does not "
                   "match the card's state");
        return false;
    }
    return true;
}

/* Take the staged state, once it and the rest of the card passed */
void vtpm_engine_load_commit(VTPMEngine *e)
{
    e->state = e->mig.state;
    e->error = e->mig.error;
    e->locality = e->mig.locality;
    e->cmd_len = e->mig.cmd_len;
    e->overflow = e->mig.overflow;
    e->rsp_len = e->mig.rsp_len;
    e->rsp_pos = e->mig.rsp_pos;
    e->flags = e->mig.flags;
    e->from_memory = e->mig.from_memory;
    memcpy(e->buf, e->mig.buf, e->mig.data_len);
}
