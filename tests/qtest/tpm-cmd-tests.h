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

#include "tpm-util.h"

#define TPM_RSP_HDR_SIZE        10

#define TPM2_ST_NO_SESSIONS     0x8001
#define TPM2_RC_SUCCESS         0x000
#define TPM2_RC_INITIALIZE      0x100
#define TPM2_RC_CANCELED        0x909
#define TPM_TAG_RSP_COMMAND     0x00c4

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

/* TPM2_CreatePrimary of an RSA-2048 storage key: a command that is slow */
extern const uint8_t tpm2_create_primary_rsa2048[];
extern const size_t tpm2_create_primary_rsa2048_size;

#endif /* TESTS_TPM_CMD_TESTS_H */
