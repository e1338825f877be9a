/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Just enough TPM 2.0 marshalling for vtpm-probe and the guest's test
 * client: build a command in a buffer, check a response's header, and
 * take it apart.  All TPM integers are big-endian.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#ifndef VTPM_TPM2_CMD_H
#define VTPM_TPM2_CMD_H

#include <stddef.h>
#include <stdint.h>

#define TPM2_HEADER_SIZE        10
#define TPM2_BUFFER_MAX         4096

#define TPM2_ST_NO_SESSIONS     0x8001
#define TPM2_ST_SESSIONS        0x8002

#define TPM2_CC_PCR_EXTEND      0x0182
#define TPM2_CC_PCR_READ        0x017e
#define TPM2_CC_GET_RANDOM      0x017b

#define TPM2_RS_PW              0x40000009  /* the password session */
#define TPMA_SESSION_CONTINUESESSION 0x01
#define TPM2_ALG_SHA256         0x000b
#define TPM2_SHA256_SIZE        32
#define TPM2_PCR_SELECT_SIZE    3           /* PCRs 0 to 23 */

struct tpm2_buf {
    uint8_t data[TPM2_BUFFER_MAX];
    size_t len;         /* building: bytes so far; parsing: bytes held */
    size_t pos;         /* parsing: next byte to read */
    int error;          /* parsing: a read ran past the end */
};

static inline void tpm2_put(struct tpm2_buf *b, uint32_t val, int bytes)
{
    while (bytes--) {
        b->data[b->len++] = val >> (8 * bytes);
    }
}

static inline void tpm2_put_bytes(struct tpm2_buf *b, const uint8_t *p,
                                  size_t n)
{
    while (n--) {
        b->data[b->len++] = *p++;
    }
}

/* Start a command: tag, size (filled in by tpm2_end), command code */
static inline void tpm2_begin(struct tpm2_buf *b, uint16_t tag, uint32_t cc)
{
    b->len = 0;
    tpm2_put(b, tag, 2);
    tpm2_put(b, 0, 4);
    tpm2_put(b, cc, 4);
}

static inline void tpm2_end(struct tpm2_buf *b)
{
    size_t len = b->len;

    b->len = 2;
    tpm2_put(b, len, 4);
    b->len = len;
}

static inline uint32_t tpm2_get(struct tpm2_buf *b, int bytes)
{
    uint32_t val = 0;

    if (b->pos + bytes > b->len) {
        b->error = 1;
        return 0;
    }
    while (bytes--) {
        val = val << 8 | b->data[b->pos++];
    }
    return val;
}

/*
 * Check a response of b->len bytes: the tag of its command, and the size
 * in the header equal to the bytes received.  Returns the response code,
 * or -1 for a malformed response.  Leaves b->pos after the header.
 */
static inline long tpm2_check_header(struct tpm2_buf *b, uint16_t tag)
{
    uint32_t rsp_tag, size, rc;

    b->pos = 0;
    b->error = 0;
    rsp_tag = tpm2_get(b, 2);
    size = tpm2_get(b, 4);
    rc = tpm2_get(b, 4);
    if (b->error || size != b->len) {
        return -1;
    }
    /* An error response has no sessions, whatever the command had */
    if (rsp_tag != (rc ? TPM2_ST_NO_SESSIONS : tag)) {
        return -1;
    }
    return rc;
}

static inline void tpm2_getrandom_cmd(struct tpm2_buf *b, uint16_t count)
{
    tpm2_begin(b, TPM2_ST_NO_SESSIONS, TPM2_CC_GET_RANDOM);
    tpm2_put(b, count, 2);
    tpm2_end(b);
}

/*
 * The bytes of a TPM2_GetRandom response, after tpm2_check_header
 * returned 0: their count, or -1 if the response does not hold exactly
 * the TPM2B it announces.
 */
static inline int tpm2_getrandom_rsp(struct tpm2_buf *b, const uint8_t **bytes)
{
    uint32_t n = tpm2_get(b, 2);

    if (b->error || b->pos + n != b->len) {
        return -1;
    }
    *bytes = b->data + b->pos;
    return n;
}

#endif /* VTPM_TPM2_CMD_H */
