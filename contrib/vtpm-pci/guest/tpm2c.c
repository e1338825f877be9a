/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tpm2c: a minimal TPM 2.0 client for the guest's tests.  It sends raw
 * TPM2 commands through a TPM character device (/dev/tpmrm0 by default),
 * checks every field of the responses it gets, and prints their payload
 * in hex.  It knows nothing of vtpm-pci: it exercises the kernel's TPM
 * stack, and the card through it.
 *
 *   tpm2c [-d DEVICE] getrandom COUNT       COUNT random bytes (1 to 32)
 *   tpm2c [-d DEVICE] pcrread PCR           the PCR's SHA-256 bank value
 *   tpm2c [-d DEVICE] pcrextend PCR DIGEST  extend its SHA-256 bank with
 *                                           DIGEST (64 hex digits)
 *
 * Exits 0 on success, 1 on a TPM error or a malformed response, 2 on a
 * usage error.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#define _GNU_SOURCE    /* program_invocation_short_name */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "tpm2-cmd.h"

static const char *device = "/dev/tpmrm0";

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr,
            "usage: tpm2c [-d DEVICE] getrandom COUNT\n"
            "       tpm2c [-d DEVICE] pcrread PCR\n"
            "       tpm2c [-d DEVICE] pcrextend PCR DIGEST\n"
            "       tpm2c [-d DEVICE] createprimary\n");
    exit(2);
}

static void print_hex(const uint8_t *p, size_t n)
{
    while (n--) {
        printf("%02x", *p++);
    }
    printf("\n");
}

/*
 * Send the command in b, receive the response into b, and check its
 * header against the command's tag.  A TPM character device takes a
 * whole command per write() and gives the whole response to one read().
 */
static void transact(struct tpm2_buf *b, uint16_t tag)
{
    ssize_t n;
    long rc;
    int fd;

    fd = open(device, O_RDWR);
    if (fd < 0) {
        die("cannot open %s", device);
    }
    n = write(fd, b->data, b->len);
    if (n != (ssize_t)b->len) {
        die("write: %s", n < 0 ? strerror(errno) : "short");
    }
    n = read(fd, b->data, sizeof(b->data));
    if (n < 0) {
        die("read: %s", strerror(errno));
    }
    close(fd);

    b->len = n;
    rc = tpm2_check_header(b, tag);
    if (rc < 0) {
        die("malformed response header");
    }
    if (rc) {
        die("TPM error 0x%03lx", rc);
    }
}

static unsigned long parse_number(const char *s, unsigned long min,
                                  unsigned long max)
{
    char *end;
    unsigned long val;

    errno = 0;
    val = strtoul(s, &end, 0);
    if (errno || !*s || *end || val < min || val > max) {
        usage();
    }
    return val;
}

static void parse_digest(const char *hex, uint8_t *digest)
{
    int i;

    if (strlen(hex) != 2 * TPM2_SHA256_SIZE) {
        usage();
    }
    for (i = 0; i < TPM2_SHA256_SIZE; i++) {
        char byte[3] = { hex[2 * i], hex[2 * i + 1], 0 };
        char *end;

        digest[i] = strtoul(byte, &end, 16);
        if (*end) {
            usage();
        }
    }
}

static void getrandom(unsigned count)
{
    struct tpm2_buf b;
    const uint8_t *bytes = NULL;

    tpm2_getrandom_cmd(&b, count);
    transact(&b, TPM2_ST_NO_SESSIONS);
    if (tpm2_getrandom_rsp(&b, &bytes) != (int)count) {
        die("GetRandom returned another count of bytes");
    }
    print_hex(bytes, count);
}

static void pcrread(unsigned pcr)
{
    struct tpm2_buf b, sel;

    tpm2_pcr_read_cmd(&b, pcr);
    transact(&b, TPM2_ST_NO_SESSIONS);

    /* pcrUpdateCounter, then the selection read, as it was asked */
    tpm2_get(&b, 4);
    sel.len = 0;
    tpm2_put_pcr_selection(&sel, pcr);
    if (b.pos + sel.len > b.len ||
        memcmp(b.data + b.pos, sel.data, sel.len)) {
        die("PCR_Read answered another selection");
    }
    b.pos += sel.len;
    /* TPML_DIGEST with one TPM2B_DIGEST of SHA-256's size, and no more */
    if (tpm2_get(&b, 4) != 1 || tpm2_get(&b, 2) != TPM2_SHA256_SIZE ||
        b.error || b.pos + TPM2_SHA256_SIZE != b.len) {
        die("PCR_Read returned a malformed digest list");
    }
    print_hex(b.data + b.pos, TPM2_SHA256_SIZE);
}

static void pcrextend(unsigned pcr, const uint8_t *digest)
{
    struct tpm2_buf b;

    tpm2_pcr_extend_cmd(&b, pcr, digest);
    transact(&b, TPM2_ST_SESSIONS);

    /*
     * No parameters, and the password session's response: no nonce, the
     * attributes with continueSession set, no HMAC
     */
    if (tpm2_get(&b, 4) != 0 || tpm2_get(&b, 2) != 0 ||
        tpm2_get(&b, 1) != TPMA_SESSION_CONTINUESESSION ||
        tpm2_get(&b, 2) != 0 ||
        b.error || b.pos != b.len) {
        die("PCR_Extend returned a malformed response");
    }
}

/*
 * TPM2_CreatePrimary of an RSA-2048 storage key in the null hierarchy, a
 * command that takes the TPM long (it searches for two primes); prints
 * the modulus' size in bits, and flushes the key.  Use it through
 * /dev/tpm0: Linux 6.1's resource manager (/dev/tpmrm0) fails the
 * sequence with EINVAL, behind tpm-crb as behind this card.
 */
static void createprimary(void)
{
    struct tpm2_buf b;
    uint32_t handle;
    unsigned bits;

    tpm2_create_primary_begin(&b, TPM2_RH_NULL, TPM2_ALG_RSA, 26);
    tpm2_put(&b, 2048, 2);              /* keyBits */
    tpm2_put(&b, 0, 4);                 /* exponent: the default */
    tpm2_put(&b, 0, 2);                 /* unique */
    tpm2_create_primary_end(&b);
    transact(&b, TPM2_ST_SESSIONS);

    /* objectHandle, then outPublic up to the modulus */
    handle = tpm2_get(&b, 4);
    if (tpm2_sessions_rsp_params(&b) < 0) {
        die("CreatePrimary returned a malformed response");
    }
    tpm2_get(&b, 2);
    if (tpm2_get(&b, 2) != TPM2_ALG_RSA) {
        die("CreatePrimary returned a key that is not RSA");
    }
    b.pos += 2 + 4;                     /* nameAlg, objectAttributes */
    b.pos += tpm2_get(&b, 2);           /* authPolicy */
    b.pos += 6 + 2;                     /* symmetric, scheme */
    bits = tpm2_get(&b, 2);
    tpm2_get(&b, 4);
    if (b.error || tpm2_get(&b, 2) * 8 != bits) {
        die("CreatePrimary returned a modulus of another size");
    }

    tpm2_begin(&b, TPM2_ST_NO_SESSIONS, TPM2_CC_FLUSH_CONTEXT);
    tpm2_put(&b, handle, 4);
    tpm2_end(&b);
    transact(&b, TPM2_ST_NO_SESSIONS);
    printf("%u\n", bits);
}

int main(int argc, char **argv)
{
    uint8_t digest[TPM2_SHA256_SIZE];
    int opt;

    while ((opt = getopt(argc, argv, "d:")) != -1) {
        if (opt != 'd') {
            usage();
        }
        device = optarg;
    }
    argv += optind;
    argc -= optind;
    if (argc < 1) {
        usage();
    }

    if (!strcmp(argv[0], "getrandom") && argc == 2) {
        getrandom(parse_number(argv[1], 1, 32));
    } else if (!strcmp(argv[0], "pcrread") && argc == 2) {
        pcrread(parse_number(argv[1], 0, 23));
    } else if (!strcmp(argv[0], "createprimary") && argc == 1) {
        createprimary();
    } else if (!strcmp(argv[0], "pcrextend") && argc == 3) {
        parse_digest(argv[2], digest);
        pcrextend(parse_number(argv[1], 0, 23), digest);
    } else {
        usage();
    }
    return 0;
}
