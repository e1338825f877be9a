/*
 * TPM command tests shared by TPM frontends: real TPM 1.2 and TPM 2.0
 * commands, checked against the TCG specifications, sent through any
 * interface that has a transfer function (tx_func, tpm-util.h).
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_TPM_CMD_TESTS_H
#define TESTS_TPM_CMD_TESTS_H

#include "system/tpm_util.h"
#include "tpm-util.h"

#define TPM_RSP_HDR_SIZE        sizeof(struct tpm_resp_hdr)

/* TPM 2.0 constants only the tests use */
#define TPM_RC_CANCELED         0x909
#define TPM_RC_RETRY            0x922
#define TPM2_TRANSIENT_FIRST    0x80000000

size_t tpm_cmd_transfer(QTestState *s, tx_func *tx,
                        const void *req, size_t req_len,
                        uint8_t *rsp, size_t rsp_size,
                        uint16_t tag, uint32_t rc);

void tpm_cmd_test_pcr_read_before_startup(QTestState *s, tx_func *tx);
void tpm_cmd_get_random(QTestState *s, tx_func *tx, uint8_t *buf,
                        uint16_t len);
void tpm_cmd_test_get_random(QTestState *s, tx_func *tx);
uint32_t tpm_cmd_get_property(QTestState *s, tx_func *tx, uint32_t property);
void tpm_cmd_test_get_capability(QTestState *s, tx_func *tx);
void tpm_cmd_test_pcr_extend(QTestState *s, tx_func *tx);
/* PCR 10 is what one tpm_util_pcrextend() of a reset PCR made it */
void tpm_cmd_assert_pcr10_extended(QTestState *s, tx_func *tx);
void tpm_cmd_test_reset(QTestState *s, tx_func *tx);
void tpm_cmd_test_tpm12(QTestState *s, tx_func *tx);

/* The TPM 2.0 checks above, by the names tests register them under */
typedef struct TPMCmdTest {
    const char *name;
    void (*check)(QTestState *s, tx_func *tx);
} TPMCmdTest;

extern const TPMCmdTest tpm_cmd_tests[];
extern const size_t tpm_cmd_tests_count;

void tpm_cmd_assert_query_tpm(QTestState *s, const char *id,
                              const char *model, const char *type,
                              const char *version);
void tpm_cmd_assert_query_tpm_none(QTestState *s);
void tpm_cmd_assert_qemu_refuses(const char *args, const char *message);

/* TPM_Startup(TPM_ST_CLEAR) and TPM2_Startup(TPM_SU_CLEAR) */
#define TPM_STARTUP_SIZE 12
extern const uint8_t tpm12_startup_clear[TPM_STARTUP_SIZE];
extern const uint8_t tpm2_startup_clear[TPM_STARTUP_SIZE];

/* TPM2_CreatePrimary of an RSA-2048 storage key: a command that is slow */
extern const uint8_t tpm2_create_primary_rsa2048[];
extern const size_t tpm2_create_primary_rsa2048_size;
/* The same for a key of @bits, another for each @salt, into @cmd */
#define TPM_CMD_CREATE_PRIMARY_SALTED_SIZE 0x47
size_t tpm_cmd_create_primary_salted(uint8_t *cmd, uint32_t salt,
                                     uint16_t bits);
/* TPM2_FlushContext of @handle, which must succeed */
void tpm_cmd_flush(QTestState *s, tx_func *tx, uint32_t handle);
/* TPM_CreateEndorsementKeyPair: on a new TPM 1.2, a key it cannot cancel */
extern const uint8_t tpm12_create_ek[];
extern const size_t tpm12_create_ek_size;

/*
 * The longest a guest access to a TPM interface may take while a command
 * runs (all but the slowest percent of them: tpm_cmd_test_no_wait()).
 * An access that waited for the command would hold the BQL, and stall
 * every vCPU and the monitor, for as long as the command runs: for an
 * RSA key's generation, a tenth of a second to over a second.  One that
 * does not wait takes the qtest round trip and the access itself, tens
 * of microseconds, plus the frontend's poll time where it polls
 * (vtpm-pci's poll-ns: 200 us by default, 1 ms at most), plus what the
 * host's scheduler adds to the test's and QEMU's turns on a busy 2-CPU
 * machine, up to a scheduling period (12 to 24 ms) for each.
 */
#define TPM_CMD_ACCESS_MAX_US   50000

/* How many accesses tpm_cmd_test_no_wait() times, at least */
#define TPM_CMD_ACCESS_SAMPLES  300

/*
 * The longest a system reset may take from the monitor while a command
 * runs: the machine's reset, and twice the turns of an access (the
 * command and its RESET event).
 */
#define TPM_CMD_RESET_MAX_US    (2 * TPM_CMD_ACCESS_MAX_US)

/*
 * A test times a reset in this many rounds, each with a new command in
 * flight, and takes the shortest (tpm_cmd_shortest_us()).  A reset that
 * waited for the command would take what is left of it every time, tens
 * of milliseconds to a second for an RSA key; the host's scheduler holds
 * up a round now and then (by up to 600 ms, measured with the tests run
 * two at a time and fuzzers beside them), with QEMU's reset itself under
 * 10 ms all along.
 */
#define TPM_CMD_RESET_ROUNDS    3

gint64 tpm_cmd_shortest_us(const gint64 *us, size_t n);

/*
 * A guest access of a TPM interface's, by name; one that takes or drops
 * a response (a read of the FIFO, an abort) when the command has just
 * completed consumes it
 */
typedef struct TPMCmdAccess {
    const char *name;
    void (*access)(QTestState *s);
    bool consumes;
} TPMCmdAccess;

/* How to drive a TPM interface one register access at a time */
typedef struct TPMCmdNoWait {
    tx_func *tx;
    /* Start a command, and return while it executes */
    void (*start)(QTestState *s, const uint8_t *cmd, size_t len);
    bool (*executing)(QTestState *s);
    /* Wait for the response and read what is left of it, into @rsp */
    void (*finish)(QTestState *s, uint8_t *rsp, size_t size);
    const TPMCmdAccess *accesses;
    size_t n_accesses;
} TPMCmdNoWait;

void tpm_cmd_test_no_wait(QTestState *s, const TPMCmdNoWait *nw);

#endif /* TESTS_TPM_CMD_TESTS_H */
