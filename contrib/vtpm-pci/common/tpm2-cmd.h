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

#define TPM2_CC_NV_DEFINE_SPACE 0x012a
#define TPM2_CC_CREATE_PRIMARY  0x0131
#define TPM2_CC_NV_WRITE        0x0137
#define TPM2_CC_STARTUP         0x0144
#define TPM2_CC_NV_READ         0x014e
#define TPM2_CC_CREATE          0x0153
#define TPM2_CC_LOAD            0x0157
#define TPM2_CC_UNSEAL          0x015e
#define TPM2_CC_FLUSH_CONTEXT   0x0165
#define TPM2_CC_START_AUTH_SESSION 0x0176
#define TPM2_CC_GET_RANDOM      0x017b
#define TPM2_CC_HASH            0x017d
#define TPM2_CC_PCR_READ        0x017e
#define TPM2_CC_PCR_EXTEND      0x0182

#define TPM2_SU_CLEAR           0x0000
#define TPM2_RC_NV_DEFINED      0x014c      /* NV_DefineSpace: index exists */
#define TPM2_RC_RETRY           0x0922
#define TPM2_RH_OWNER           0x40000001
#define TPM2_RH_NULL            0x40000007
#define TPM2_RS_PW              0x40000009  /* the password session */
#define TPM2_NV_BUFFER_MAX      1024        /* MAX_NV_BUFFER_SIZE, libtpms */
#define TPM2_DIGEST_BUFFER_MAX  1024        /* MAX_DIGEST_BUFFER, libtpms */
/* TPMA_NV: an ordinary index, read and written with its auth value */
#define TPMA_NV_AUTHWRITE       (1u << 2)
#define TPMA_NV_AUTHREAD        (1u << 18)
#define TPMA_NV_NO_DA           (1u << 25)
#define TPMA_SESSION_CONTINUESESSION 0x01
#define TPM2_ALG_RSA            0x0001
#define TPM2_ALG_AES            0x0006
#define TPM2_ALG_SHA256         0x000b
#define TPM2_ALG_KEYEDHASH      0x0008
#define TPM2_ALG_NULL           0x0010
#define TPM2_ALG_ECC            0x0023
#define TPM2_ECC_NIST_P256      0x0003
#define TPM2_SE_HMAC            0x00
#define TPM2_ALG_CFB            0x0043
/*
 * fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted,
 * decrypt
 */
#define TPMA_OBJECT_STORAGE_KEY 0x00030072
/* fixedTPM, fixedParent, userWithAuth, noDA: a sealed data object */
#define TPMA_OBJECT_SEALED      0x00000452
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

static inline void stl_be(uint8_t *p, uint32_t val)
{
    p[0] = val >> 24;
    p[1] = val >> 16;
    p[2] = val >> 8;
    p[3] = val;
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

/* An authorization area of one password session with the empty password */
static inline void tpm2_put_pw_session(struct tpm2_buf *b)
{
    tpm2_put(b, 9, 4);              /* authorizationSize */
    tpm2_put(b, TPM2_RS_PW, 4);
    tpm2_put(b, 0, 2);              /* nonce */
    tpm2_put(b, 0, 1);              /* session attributes */
    tpm2_put(b, 0, 2);              /* password */
}

/*
 * After the header of a response to a command with one password session,
 * tpm2_check_header having returned 0: skip parameterSize, and return the
 * parameters' size, or -1 if the response is too short for them and the
 * password session's response (no nonce, continueSession, no HMAC).
 */
static inline long tpm2_sessions_rsp_params(struct tpm2_buf *b)
{
    uint32_t n = tpm2_get(b, 4);

    if (b->error || b->pos + n + 5 != b->len) {
        return -1;
    }
    return n;
}

/*
 * TPM2_CreatePrimary of a storage key (SHA-256, AES-128-CFB, no scheme)
 * with no auth and no data, of type alg under hierarchy, whose public
 * area is public_size bytes: begin puts it up to the type's own
 * parameters, which the caller puts, with the unique field, before end.
 */
static inline void tpm2_create_primary_begin(struct tpm2_buf *b,
                                             uint32_t hierarchy,
                                             uint16_t alg,
                                             uint16_t public_size)
{
    tpm2_begin(b, TPM2_ST_SESSIONS, TPM2_CC_CREATE_PRIMARY);
    tpm2_put(b, hierarchy, 4);
    tpm2_put_pw_session(b);
    tpm2_put(b, 4, 2);                  /* inSensitive: no auth, no data */
    tpm2_put(b, 0, 2);
    tpm2_put(b, 0, 2);
    tpm2_put(b, public_size, 2);        /* inPublic */
    tpm2_put(b, alg, 2);
    tpm2_put(b, TPM2_ALG_SHA256, 2);
    tpm2_put(b, TPMA_OBJECT_STORAGE_KEY, 4);
    tpm2_put(b, 0, 2);                  /* authPolicy */
    tpm2_put(b, TPM2_ALG_AES, 2);       /* symmetric: AES-128-CFB */
    tpm2_put(b, 128, 2);
    tpm2_put(b, TPM2_ALG_CFB, 2);
    tpm2_put(b, TPM2_ALG_NULL, 2);      /* scheme */
}

static inline void tpm2_create_primary_end(struct tpm2_buf *b)
{
    tpm2_put(b, 0, 2);                  /* outsideInfo */
    tpm2_put(b, 0, 4);                  /* creationPCR */
    tpm2_end(b);
}

/* A TPML_PCR_SELECTION with one SHA-256 bank and one PCR selected */
static inline void tpm2_put_pcr_selection(struct tpm2_buf *b, unsigned pcr)
{
    unsigned i;

    tpm2_put(b, 1, 4);
    tpm2_put(b, TPM2_ALG_SHA256, 2);
    tpm2_put(b, TPM2_PCR_SELECT_SIZE, 1);
    for (i = 0; i < TPM2_PCR_SELECT_SIZE; i++) {
        tpm2_put(b, i == pcr / 8 ? 1 << pcr % 8 : 0, 1);
    }
}

static inline void tpm2_startup_cmd(struct tpm2_buf *b, uint16_t type)
{
    tpm2_begin(b, TPM2_ST_NO_SESSIONS, TPM2_CC_STARTUP);
    tpm2_put(b, type, 2);
    tpm2_end(b);
}

/* TPM2_PCR_Read of the SHA-256 bank of one PCR */
static inline void tpm2_pcr_read_cmd(struct tpm2_buf *b, unsigned pcr)
{
    tpm2_begin(b, TPM2_ST_NO_SESSIONS, TPM2_CC_PCR_READ);
    tpm2_put_pcr_selection(b, pcr);
    tpm2_end(b);
}

/* TPM2_PCR_Extend of the SHA-256 bank of a PCR with its default auth */
static inline void tpm2_pcr_extend_cmd(struct tpm2_buf *b, unsigned pcr,
                                       const uint8_t *digest)
{
    tpm2_begin(b, TPM2_ST_SESSIONS, TPM2_CC_PCR_EXTEND);
    tpm2_put(b, pcr, 4);
    tpm2_put_pw_session(b);
    /* TPML_DIGEST_VALUES: one SHA-256 digest */
    tpm2_put(b, 1, 4);
    tpm2_put(b, TPM2_ALG_SHA256, 2);
    tpm2_put_bytes(b, digest, TPM2_SHA256_SIZE);
    tpm2_end(b);
}

/* TPM2_Hash(SHA-256) of n <= TPM2_DIGEST_BUFFER_MAX bytes, no ticket */
static inline void tpm2_hash_cmd(struct tpm2_buf *b, const uint8_t *data,
                                 uint16_t n)
{
    tpm2_begin(b, TPM2_ST_NO_SESSIONS, TPM2_CC_HASH);
    tpm2_put(b, n, 2);
    tpm2_put_bytes(b, data, n);
    tpm2_put(b, TPM2_ALG_SHA256, 2);
    tpm2_put(b, TPM2_RH_NULL, 4);
    tpm2_end(b);
}

/*
 * TPM2_NV_DefineSpace of an ordinary owner index of size bytes, with the
 * empty auth value, read and written with it (no dictionary attack
 * protection)
 */
static inline void tpm2_nv_define_cmd(struct tpm2_buf *b, uint32_t index,
                                      uint16_t size)
{
    tpm2_begin(b, TPM2_ST_SESSIONS, TPM2_CC_NV_DEFINE_SPACE);
    tpm2_put(b, TPM2_RH_OWNER, 4);
    tpm2_put_pw_session(b);
    tpm2_put(b, 0, 2);              /* auth */
    tpm2_put(b, 14, 2);             /* TPM2B_NV_PUBLIC */
    tpm2_put(b, index, 4);
    tpm2_put(b, TPM2_ALG_SHA256, 2);
    tpm2_put(b, TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA, 4);
    tpm2_put(b, 0, 2);              /* authPolicy */
    tpm2_put(b, size, 2);
    tpm2_end(b);
}

/* TPM2_NV_Write of n <= TPM2_NV_BUFFER_MAX bytes, with the index's auth */
static inline void tpm2_nv_write_cmd(struct tpm2_buf *b, uint32_t index,
                                     const uint8_t *data, uint16_t n,
                                     uint16_t offset)
{
    tpm2_begin(b, TPM2_ST_SESSIONS, TPM2_CC_NV_WRITE);
    tpm2_put(b, index, 4);          /* authHandle */
    tpm2_put(b, index, 4);
    tpm2_put_pw_session(b);
    tpm2_put(b, n, 2);
    tpm2_put_bytes(b, data, n);
    tpm2_put(b, offset, 2);
    tpm2_end(b);
}

/* TPM2_NV_Read of n <= TPM2_NV_BUFFER_MAX bytes, with the index's auth */
static inline void tpm2_nv_read_cmd(struct tpm2_buf *b, uint32_t index,
                                    uint16_t n, uint16_t offset)
{
    tpm2_begin(b, TPM2_ST_SESSIONS, TPM2_CC_NV_READ);
    tpm2_put(b, index, 4);          /* authHandle */
    tpm2_put(b, index, 4);
    tpm2_put_pw_session(b);
    tpm2_put(b, n, 2);
    tpm2_put(b, offset, 2);
    tpm2_end(b);
}

#endif /* VTPM_TPM2_CMD_H */
