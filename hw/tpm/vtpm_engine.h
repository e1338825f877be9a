/*
 * vtpm-pci's command engine: the TPM command/response state machine
 *
 * The engine holds the card's command buffer and its state (IDLE,
 * RECEIVING, EXECUTING, COMPLETE), checks a command before the TPM
 * backend gets it, makes a response readable, and runs the card's own
 * flags query.  It knows nothing of how a guest reaches it: vtpm_pci.c
 * moves commands in and responses out through the DATA port, a byte
 * stream (vtpm_engine_write/read), or through the buffer BAR, a whole
 * command at a time (vtpm_engine_start_from).
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_TPM_VTPM_ENGINE_H
#define HW_TPM_VTPM_ENGINE_H

#include "hw/tpm/vtpm_pci.h"
#include "system/tpm_backend.h"

typedef struct VTPMEngine {
    /* Set by vtpm_engine_init() */
    TPMBackend *tpmbe;
    uint32_t buffer_size;       /* largest command/response, <= buf size */
    uint8_t *buf;               /* the command, then its response */
    /* A command or the flags query finished (the state says which) */
    void (*completed)(void *opaque);
    void *opaque;

    TPMBackendCmd cmd;

    /* Guest-visible state */
    uint32_t state;             /* enum VTPMCmdState */
    uint32_t error;             /* enum VTPMError */
    uint32_t locality;
    uint32_t cmd_len;           /* command bytes received */
    bool overflow;              /* ... and more were dropped */
    uint32_t rsp_len;           /* response bytes */
    uint32_t rsp_pos;           /* response bytes read so far */
    uint32_t flags;             /* STATUS.FLAGS_VALID to OWNED */
    /* The command came by start_from: its response goes back there */
    bool from_memory;

    /* The engine's own commands asking the TPM for its flags */
    unsigned query_step;        /* 0: none; else the command in flight */
    uint32_t query_flags;       /* flags gathered so far */
    QEMUBH *query_bh;           /* sends the next command of the query */
    int64_t start_ns;           /* when the command in flight was started */
    bool starting;              /* within the access that starts it */
    bool start_failed;          /* the TPM failed to start, and we said so */

    /*
     * The state as the migration stream has it.  A load fills these, and
     * the engine takes them only once they agree with each other (and
     * the card with the rest of its state): a refused stream leaves
     * every register and the buffer as they were.
     */
    struct {
        uint32_t state;
        uint32_t error;
        uint32_t locality;
        uint32_t cmd_len;
        bool overflow;
        uint32_t rsp_len;
        uint32_t rsp_pos;
        uint32_t flags;
        bool from_memory;
        uint32_t data_len;      /* bytes of buf in the stream */
        uint8_t *buf;           /* buf when saving, load_buf when loading */
    } mig;
    uint8_t *load_buf;
} VTPMEngine;

void vtpm_engine_init(VTPMEngine *e, DeviceState *dev, TPMBackend *tpmbe,
                      void (*completed)(void *opaque), void *opaque);
void vtpm_engine_finalize(VTPMEngine *e);
void vtpm_engine_reset(VTPMEngine *e);
void vtpm_engine_drain(VTPMEngine *e);

void vtpm_engine_refuse(VTPMEngine *e, enum VTPMError error,
                        const char *what);
uint32_t vtpm_engine_status(VTPMEngine *e);

/* The DATA port's byte stream */
void vtpm_engine_write(VTPMEngine *e, const uint8_t *bytes, unsigned len);
void vtpm_engine_read(VTPMEngine *e, uint8_t *bytes, unsigned len);

/* CONTROL */
bool vtpm_engine_start(VTPMEngine *e);
bool vtpm_engine_start_from(VTPMEngine *e, const uint8_t *cmd,
                            uint32_t avail);
void vtpm_engine_cancel(VTPMEngine *e);
void vtpm_engine_abort(VTPMEngine *e);
void vtpm_engine_query(VTPMEngine *e);

void vtpm_engine_set_locality(VTPMEngine *e, uint32_t locality);
void vtpm_engine_request_completed(VTPMEngine *e, int ret);

/*
 * Migration: the card's VMStateDescription lists the fields of mig, and
 * calls these from its own hooks
 */
void vtpm_engine_pre_save(VTPMEngine *e);
void vtpm_engine_pre_load(VTPMEngine *e);
bool vtpm_engine_data_len_valid(VTPMEngine *e);
bool vtpm_engine_load_check(VTPMEngine *e, Error **errp);
void vtpm_engine_load_commit(VTPMEngine *e);

#endif /* HW_TPM_VTPM_ENGINE_H */
