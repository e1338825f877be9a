/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tpm2bench: how many TPM 2.0 commands a TPM answers per second.
 *
 * The same workloads run through a TPM character device in the guest
 * (/dev/tpm0, /dev/tpmrm0), or, built with -DHAVE_LIBTPMS, through
 * libtpms called directly on the host: the floor no virtual TPM can go
 * below.
 *
 *   tpm2bench [-t SECONDS] [-r RUNS] [-m TTY] DEVICE|libtpms WORKLOAD...
 *   tpm2bench [-m TTY] -i SECONDS
 *   tpm2bench -m TTY -s TEXT
 *   tpm2bench -p PORT [-n COUNT]
 *
 * Workloads:
 *   getrandom   TPM2_GetRandom(32)
 *   pcr         TPM2_PCR_Extend(16) then TPM2_PCR_Read(16): one pair
 *   large       TPM2_Hash of 1 KB, then TPM2_NV_Read of 1 KB: one pair,
 *               1 KB through the interface each way
 *   session     an unseal as tpm2-tools does it: TPM2_Load of a sealed
 *               object, TPM2_StartAuthSession (HMAC), TPM2_Unseal through
 *               the session, TPM2_FlushContext: one operation, four
 *               commands (and the resource manager's, through tpmrm0)
 *   createprimary
 *               TPM2_CreatePrimary of an RSA 2048 storage key in the null
 *               hierarchy, a new key each time, then TPM2_FlushContext of
 *               it: one operation (a key), two commands; a long command,
 *               which the TPM takes a prime search to answer
 *
 * Each workload runs RUNS times for about SECONDS each (after a short
 * warm-up that also sizes the runs), every response is checked, and one
 * line is printed per workload:
 *
 *   BENCH WORKLOAD TARGET median_us ops_per_s min_us max_us runs iterations
 *
 * where an operation is one command, or one pair.
 *
 *   oneshot-1ms, oneshot-100ms
 *               single TPM2_GetRandom(32) commands, 1 ms or 100 ms apart,
 *               as users send them (an unseal at boot, a quote): each
 *               command's latency, and one line
 *
 *   ONESHOT WORKLOAD TARGET median_us p99_us min_us max_us commands
 *
 * With -m, tpm2bench marks the start and the end of each workload's
 * timed runs on TTY (a serial port the host listens on), and waits for
 * the host to answer each mark, so that the host can read its own
 * counters (the card's commands, QEMU's CPU time) at exactly those
 * points:
 *
 *   MARK begin WORKLOAD TARGET
 *   MARK end WORKLOAD TARGET COMMANDS
 *
 * where COMMANDS is the number of TPM commands tpm2bench sent between
 * the two.  Before the session workload's runs, one operation alone is
 * marked the same way, as WORKLOAD-once.  -i marks an idle interval of
 * SECONDS instead (no command sent): "MARK begin idle -", "MARK end idle
 * - 0"; -s sends "MARK TEXT" and waits for the answer, for a step of the
 * guest's own.
 *
 * -p times COUNT 32-bit reads at I/O port PORT: of the read-only ID
 * register of a vtpm-pci card's BAR 0, the cost of one port access, as
 * the guest sees it; of any port that reads without side effects (the
 * isa-debug-exit device's), how fast the host runs the guest.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#define _GNU_SOURCE    /* program_invocation_short_name */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/hmac.h>
#include <openssl/sha.h>

#ifdef HAVE_LIBTPMS
#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_memory.h>
#include <libtpms/tpm_nvfilename.h>
#else
#include <sys/io.h>
#endif

#include "die.h"
#include "tpm2-cmd.h"

#define PCR             16          /* the debug PCR */
#define NV_INDEX        0x01000b0e  /* an owner index for the large pair */
#define LARGE           1024        /* bytes each way in the large pair */

/* Send the command in b, replace it with the response; 0 or -1 */
typedef int (*transact_fn)(struct tpm2_buf *b);

static transact_fn transact;

/* --- through a TPM character device --------------------------------------- */

static int tpm_fd = -1;

static int dev_transact(struct tpm2_buf *b)
{
    ssize_t n;

    n = write(tpm_fd, b->data, b->len);
    if (n != (ssize_t)b->len) {
        return -1;
    }
    n = read(tpm_fd, b->data, sizeof(b->data));
    if (n < 0) {
        return -1;
    }
    b->len = n;
    return 0;
}

/* --- through libtpms, on the host ----------------------------------------- */

#ifdef HAVE_LIBTPMS
/* NV state in memory, one blob per name, as QEMU's backend keeps it */
static struct {
    char name[64];
    unsigned char *data;
    uint32_t len;
} nv[8];

static int nv_slot(const char *name, int create)
{
    int i;

    for (i = 0; i < 8; i++) {
        if (nv[i].data && !strcmp(nv[i].name, name)) {
            return i;
        }
    }
    for (i = 0; create && i < 8; i++) {
        if (!nv[i].data) {
            snprintf(nv[i].name, sizeof(nv[i].name), "%s", name);
            return i;
        }
    }
    return -1;
}

static TPM_RESULT cb_nvram_init(void)
{
    return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_loaddata(unsigned char **data, uint32_t *length,
                                    uint32_t tpm_number, const char *name)
{
    int i = nv_slot(name, 0);

    if (i < 0) {
        return TPM_RETRY;
    }
    if (TPM_Malloc(data, nv[i].len) != TPM_SUCCESS) {
        return TPM_FAIL;
    }
    memcpy(*data, nv[i].data, nv[i].len);
    *length = nv[i].len;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_storedata(const unsigned char *data,
                                     uint32_t length, uint32_t tpm_number,
                                     const char *name)
{
    int i = nv_slot(name, 1);
    unsigned char *copy = malloc(length ? length : 1);

    if (i < 0 || !copy) {
        free(copy);
        return TPM_FAIL;
    }
    memcpy(copy, data, length);
    free(nv[i].data);
    nv[i].data = copy;
    nv[i].len = length;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_deletename(uint32_t tpm_number, const char *name,
                                      TPM_BOOL must_exist)
{
    int i = nv_slot(name, 0);

    if (i < 0) {
        return must_exist ? TPM_FAIL : TPM_SUCCESS;
    }
    free(nv[i].data);
    nv[i].data = NULL;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_io_init(void)
{
    return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getlocality(TPM_MODIFIER_INDICATOR *locty,
                                    uint32_t tpm_number)
{
    *locty = 0;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getphysicalpresence(TPM_BOOL *present,
                                            uint32_t tpm_number)
{
    *present = FALSE;
    return TPM_SUCCESS;
}

static struct libtpms_callbacks callbacks = {
    .sizeOfStruct = sizeof(struct libtpms_callbacks),
    .tpm_nvram_init = cb_nvram_init,
    .tpm_nvram_loaddata = cb_nvram_loaddata,
    .tpm_nvram_storedata = cb_nvram_storedata,
    .tpm_nvram_deletename = cb_nvram_deletename,
    .tpm_io_init = cb_io_init,
    .tpm_io_getlocality = cb_io_getlocality,
    .tpm_io_getphysicalpresence = cb_io_getphysicalpresence,
};

static unsigned char *lib_rsp;
static uint32_t lib_rsp_size;

/*
 * What QEMU's backend does around TPMLIB_Process for each command: a copy
 * of the command, and a copy of the response into the device's buffer
 */
static int lib_transact(struct tpm2_buf *b)
{
    unsigned char cmd[TPM2_BUFFER_MAX];
    uint32_t len = 0;

    memcpy(cmd, b->data, b->len);
    if (TPMLIB_Process(&lib_rsp, &len, &lib_rsp_size, cmd, b->len) !=
        TPM_SUCCESS || len > sizeof(b->data)) {
        return -1;
    }
    memcpy(b->data, lib_rsp, len);
    b->len = len;
    return 0;
}

static void lib_open(void)
{
    struct tpm2_buf b;

    if (TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2) != TPM_SUCCESS ||
        TPMLIB_RegisterCallbacks(&callbacks) != TPM_SUCCESS ||
        TPMLIB_MainInit() != TPM_SUCCESS) {
        die("cannot start libtpms");
    }
    transact = lib_transact;
    tpm2_startup_cmd(&b, TPM2_SU_CLEAR);
    if (transact(&b) || tpm2_check_header(&b, TPM2_ST_NO_SESSIONS)) {
        die("TPM2_Startup failed");
    }
}
#endif

/* --- the workloads -------------------------------------------------------- */

/*
 * Run the command in b, and check its response header; dies on an error.
 * TPM_RC_RETRY asks for the same command again (the TPM answers it, for
 * one, to a command that needs an algorithm it has not tested yet).
 */
static void run(struct tpm2_buf *b, uint16_t tag, const char *what)
{
    struct tpm2_buf cmd = *b;
    int tries = 0;
    long rc;

    for (;;) {
        if (transact(b)) {
            die("%s: %s", what, strerror(errno));
        }
        rc = tpm2_check_header(b, tag);
        if (rc != TPM2_RC_RETRY || ++tries == 3) {
            break;
        }
        *b = cmd;
    }
    if (rc) {
        die("%s: %s 0x%03lx", what,
            rc < 0 ? "malformed response" : "TPM error", rc);
    }
}

static void op_getrandom(void)
{
    struct tpm2_buf b;
    const uint8_t *bytes;

    tpm2_getrandom_cmd(&b, 32);
    run(&b, TPM2_ST_NO_SESSIONS, "GetRandom");
    if (tpm2_getrandom_rsp(&b, &bytes) != 32) {
        die("GetRandom: not 32 bytes");
    }
}

static void op_pcr(void)
{
    static const uint8_t digest[TPM2_SHA256_SIZE] = { 0x76, 0x54 };
    struct tpm2_buf b;

    tpm2_pcr_extend_cmd(&b, PCR, digest);
    run(&b, TPM2_ST_SESSIONS, "PCR_Extend");
    tpm2_pcr_read_cmd(&b, PCR);
    run(&b, TPM2_ST_NO_SESSIONS, "PCR_Read");
    /* counter, selection (10 bytes), one digest */
    if (b.len != TPM2_HEADER_SIZE + 4 + 10 + 4 + 2 + TPM2_SHA256_SIZE) {
        die("PCR_Read: %zu bytes", b.len);
    }
}

static uint8_t large_data[LARGE];

static void op_large(void)
{
    struct tpm2_buf b;

    tpm2_hash_cmd(&b, large_data, LARGE);
    run(&b, TPM2_ST_NO_SESSIONS, "Hash");
    if (tpm2_get(&b, 2) != TPM2_SHA256_SIZE) {
        die("Hash: no SHA-256 digest");
    }
    tpm2_nv_read_cmd(&b, NV_INDEX, LARGE, 0);
    run(&b, TPM2_ST_SESSIONS, "NV_Read");
    if (tpm2_sessions_rsp_params(&b) != 2 + LARGE ||
        tpm2_get(&b, 2) != LARGE ||
        memcmp(b.data + b.pos, large_data, LARGE)) {
        die("NV_Read: not the %d bytes written", LARGE);
    }
}

/* The index op_large reads, defined and written once per TPM */
static void setup_large(void)
{
    struct tpm2_buf b;
    long rc;
    int i;

    for (i = 0; i < LARGE; i++) {
        large_data[i] = i * 7 + 1;
    }
    tpm2_nv_define_cmd(&b, NV_INDEX, LARGE);
    if (transact(&b)) {
        die("NV_DefineSpace: %s", strerror(errno));
    }
    rc = tpm2_check_header(&b, TPM2_ST_SESSIONS);
    if (rc && (rc & 0xfff) != TPM2_RC_NV_DEFINED) {
        die("NV_DefineSpace: %s 0x%03lx",
            rc < 0 ? "malformed response" : "TPM error", rc);
    }
    tpm2_nv_write_cmd(&b, NV_INDEX, large_data, LARGE, 0);
    run(&b, TPM2_ST_SESSIONS, "NV_Write");
}

/*
 * What tpm2-tools does to unseal a secret with an HMAC session: load the
 * sealed object under its parent, start an HMAC session (unbound,
 * unsalted), unseal through it with the object's password, and flush the
 * object; four commands, and through /dev/tpmrm0, the resource manager's
 * own context saves and loads of the parent, the object and the session
 * around each.  The parent (an ECC storage key) and the sealed object
 * are made once.
 */
#define SEAL_AUTH       "tpm2-pw1"      /* the object's password: 8 bytes */
#define SEAL_AUTH_LEN   8
#define NONCE_SIZE      TPM2_SHA256_SIZE

static const uint8_t seal_data[] = "unsealed by tpm2bench";
static uint32_t seal_parent;
/* TPM2B_PRIVATE and TPM2B_PUBLIC of the sealed object, size included */
static uint8_t seal_priv[512], seal_pub[512];
static size_t seal_priv_len, seal_pub_len;
static uint8_t nonce_caller[NONCE_SIZE];

/* A TPM2B at b->pos, copied whole (size included) to out */
static size_t take_tpm2b(struct tpm2_buf *b, uint8_t *out, size_t size)
{
    size_t start = b->pos, n = tpm2_get(b, 2) + 2;

    if (b->error || n > size || start + n > b->len) {
        die("a response's TPM2B does not fit");
    }
    memcpy(out, b->data + start, n);
    b->pos = start + n;
    return n;
}

static void setup_session(void)
{
    struct tpm2_buf b;

    /* TPM2_CreatePrimary: an ECC P-256 storage key of the owner */
    tpm2_create_primary_begin(&b, TPM2_RH_OWNER, TPM2_ALG_ECC, 26);
    tpm2_put(&b, TPM2_ECC_NIST_P256, 2);
    tpm2_put(&b, TPM2_ALG_NULL, 2);     /* kdf */
    tpm2_put(&b, 0, 2);                 /* unique: x, y */
    tpm2_put(&b, 0, 2);
    tpm2_create_primary_end(&b);
    run(&b, TPM2_ST_SESSIONS, "CreatePrimary");
    seal_parent = tpm2_get(&b, 4);

    /* TPM2_Create: a sealed data object with a password */
    tpm2_begin(&b, TPM2_ST_SESSIONS, TPM2_CC_CREATE);
    tpm2_put(&b, seal_parent, 4);
    tpm2_put_pw_session(&b);
    tpm2_put(&b, 2 + SEAL_AUTH_LEN + 2 + sizeof(seal_data), 2);
    tpm2_put(&b, SEAL_AUTH_LEN, 2);
    tpm2_put_bytes(&b, (const uint8_t *)SEAL_AUTH, SEAL_AUTH_LEN);
    tpm2_put(&b, sizeof(seal_data), 2);
    tpm2_put_bytes(&b, seal_data, sizeof(seal_data));
    tpm2_put(&b, 14, 2);                /* inPublic */
    tpm2_put(&b, TPM2_ALG_KEYEDHASH, 2);
    tpm2_put(&b, TPM2_ALG_SHA256, 2);
    tpm2_put(&b, TPMA_OBJECT_SEALED, 4);
    tpm2_put(&b, 0, 2);                 /* authPolicy */
    tpm2_put(&b, TPM2_ALG_NULL, 2);     /* scheme */
    tpm2_put(&b, 0, 2);                 /* unique */
    tpm2_put(&b, 0, 2);                 /* outsideInfo */
    tpm2_put(&b, 0, 4);                 /* creationPCR */
    tpm2_end(&b);
    run(&b, TPM2_ST_SESSIONS, "Create");
    tpm2_get(&b, 4);                    /* parameterSize */
    seal_priv_len = take_tpm2b(&b, seal_priv, sizeof(seal_priv));
    seal_pub_len = take_tpm2b(&b, seal_pub, sizeof(seal_pub));
}

/* HMAC-SHA256 keyed with the object's password (no session key) */
static void session_hmac(const uint8_t *hash, const uint8_t *nonce_newer,
                         const uint8_t *nonce_older, uint8_t attrs,
                         uint8_t *out)
{
    uint8_t msg[TPM2_SHA256_SIZE + 2 * NONCE_SIZE + 1];
    unsigned len = TPM2_SHA256_SIZE;

    memcpy(msg, hash, TPM2_SHA256_SIZE);
    memcpy(msg + TPM2_SHA256_SIZE, nonce_newer, NONCE_SIZE);
    memcpy(msg + TPM2_SHA256_SIZE + NONCE_SIZE, nonce_older, NONCE_SIZE);
    msg[sizeof(msg) - 1] = attrs;
    if (!HMAC(EVP_sha256(), SEAL_AUTH, SEAL_AUTH_LEN, msg, sizeof(msg), out,
              &len) || len != TPM2_SHA256_SIZE) {
        die("HMAC-SHA256 failed");
    }
}

static void op_session(void)
{
    uint8_t name[2 + TPM2_SHA256_SIZE], nonce_tpm[NONCE_SIZE];
    uint8_t hash_in[4 + sizeof(name)], hash[TPM2_SHA256_SIZE];
    uint8_t hmac[TPM2_SHA256_SIZE], rp[8 + 2 + sizeof(seal_data)];
    struct tpm2_buf b;
    uint32_t object, session;
    size_t start;
    long params;
    int i;

    /* TPM2_Load of the sealed object: its handle and name */
    tpm2_begin(&b, TPM2_ST_SESSIONS, TPM2_CC_LOAD);
    tpm2_put(&b, seal_parent, 4);
    tpm2_put_pw_session(&b);
    tpm2_put_bytes(&b, seal_priv, seal_priv_len);
    tpm2_put_bytes(&b, seal_pub, seal_pub_len);
    tpm2_end(&b);
    run(&b, TPM2_ST_SESSIONS, "Load");
    object = tpm2_get(&b, 4);
    if (tpm2_sessions_rsp_params(&b) != 2 + (long)sizeof(name) ||
        tpm2_get(&b, 2) != sizeof(name)) {
        die("Load: no SHA-256 name");
    }
    memcpy(name, b.data + b.pos, sizeof(name));

    /* TPM2_StartAuthSession: HMAC, SHA-256, unbound, unsalted */
    for (i = 0; i < NONCE_SIZE; i++) {
        nonce_caller[i]++;
        if (nonce_caller[i]) {
            break;
        }
    }
    tpm2_begin(&b, TPM2_ST_NO_SESSIONS, TPM2_CC_START_AUTH_SESSION);
    tpm2_put(&b, TPM2_RH_NULL, 4);      /* tpmKey */
    tpm2_put(&b, TPM2_RH_NULL, 4);      /* bind */
    tpm2_put(&b, NONCE_SIZE, 2);
    tpm2_put_bytes(&b, nonce_caller, NONCE_SIZE);
    tpm2_put(&b, 0, 2);                 /* encryptedSalt */
    tpm2_put(&b, TPM2_SE_HMAC, 1);
    tpm2_put(&b, TPM2_ALG_NULL, 2);     /* symmetric */
    tpm2_put(&b, TPM2_ALG_SHA256, 2);
    tpm2_end(&b);
    run(&b, TPM2_ST_NO_SESSIONS, "StartAuthSession");
    session = tpm2_get(&b, 4);
    if (tpm2_get(&b, 2) != NONCE_SIZE || b.pos + NONCE_SIZE != b.len) {
        die("StartAuthSession: no %d-byte nonce", NONCE_SIZE);
    }
    memcpy(nonce_tpm, b.data + b.pos, NONCE_SIZE);

    /*
     * TPM2_Unseal through the session, which ends with it: the HMAC of
     * cpHash = SHA-256(commandCode || name), keyed with the password
     */
    nonce_caller[NONCE_SIZE - 1] ^= 0x5a;
    stl_be(hash_in, TPM2_CC_UNSEAL);
    memcpy(hash_in + 4, name, sizeof(name));
    SHA256(hash_in, sizeof(hash_in), hash);
    session_hmac(hash, nonce_caller, nonce_tpm, 0, hmac);
    tpm2_begin(&b, TPM2_ST_SESSIONS, TPM2_CC_UNSEAL);
    tpm2_put(&b, object, 4);
    tpm2_put(&b, 4 + 2 + NONCE_SIZE + 1 + 2 + TPM2_SHA256_SIZE, 4);
    tpm2_put(&b, session, 4);
    tpm2_put(&b, NONCE_SIZE, 2);
    tpm2_put_bytes(&b, nonce_caller, NONCE_SIZE);
    tpm2_put(&b, 0, 1);                 /* not continueSession */
    tpm2_put(&b, TPM2_SHA256_SIZE, 2);
    tpm2_put_bytes(&b, hmac, TPM2_SHA256_SIZE);
    tpm2_end(&b);
    run(&b, TPM2_ST_SESSIONS, "Unseal");

    /* outData is the secret; the TPM's HMAC covers it (rpHash) */
    params = tpm2_get(&b, 4);
    start = b.pos;
    if (params != 2 + (long)sizeof(seal_data) ||
        tpm2_get(&b, 2) != sizeof(seal_data) ||
        memcmp(b.data + b.pos, seal_data, sizeof(seal_data))) {
        die("Unseal: not the secret sealed");
    }
    stl_be(rp, 0);                      /* responseCode */
    stl_be(rp + 4, TPM2_CC_UNSEAL);
    memcpy(rp + 8, b.data + start, params);
    SHA256(rp, sizeof(rp), hash);
    b.pos = start + params;
    if (tpm2_get(&b, 2) != NONCE_SIZE || b.pos + NONCE_SIZE + 1 + 2 +
        TPM2_SHA256_SIZE != b.len) {
        die("Unseal: a malformed session in the response");
    }
    memcpy(nonce_tpm, b.data + b.pos, NONCE_SIZE);
    b.pos += NONCE_SIZE;
    session_hmac(hash, nonce_tpm, nonce_caller, b.data[b.pos], hmac);
    b.pos += 1 + 2;
    if (memcmp(b.data + b.pos, hmac, TPM2_SHA256_SIZE)) {
        die("Unseal: the response's HMAC is wrong");
    }

    /* TPM2_FlushContext of the object */
    tpm2_begin(&b, TPM2_ST_NO_SESSIONS, TPM2_CC_FLUSH_CONTEXT);
    tpm2_put(&b, object, 4);
    tpm2_end(&b);
    run(&b, TPM2_ST_NO_SESSIONS, "FlushContext");
}

/*
 * TPM2_CreatePrimary of an RSA 2048 storage key, back to back: the key
 * is new each time (the unique field, which the key is derived from,
 * counts the keys), so that the TPM searches for its primes each time
 * rather than derive a key it made before; the response must hold a
 * 2048-bit RSA key, and the key is flushed.
 */
static void op_createprimary(void)
{
    static uint32_t keys;
    struct tpm2_buf b;
    uint32_t handle;
    unsigned bits;

    tpm2_create_primary_begin(&b, TPM2_RH_NULL, TPM2_ALG_RSA, 26 + 4);
    tpm2_put(&b, 2048, 2);              /* keyBits */
    tpm2_put(&b, 0, 4);                 /* exponent: the default */
    tpm2_put(&b, 4, 2);                 /* unique: the key's number */
    tpm2_put(&b, ++keys, 4);
    tpm2_create_primary_end(&b);
    run(&b, TPM2_ST_SESSIONS, "CreatePrimary");

    /* objectHandle, then outPublic up to the modulus */
    handle = tpm2_get(&b, 4);
    if (tpm2_sessions_rsp_params(&b) < 0) {
        die("CreatePrimary: a malformed response");
    }
    tpm2_get(&b, 2);                    /* outPublic's size */
    if (tpm2_get(&b, 2) != TPM2_ALG_RSA) {
        die("CreatePrimary: a key that is not RSA");
    }
    b.pos += 2 + 4;                     /* nameAlg, objectAttributes */
    b.pos += tpm2_get(&b, 2);           /* authPolicy */
    b.pos += 6 + 2;                     /* symmetric, scheme */
    bits = tpm2_get(&b, 2);
    tpm2_get(&b, 4);                    /* exponent */
    if (b.error || bits != 2048 || tpm2_get(&b, 2) * 8 != bits) {
        die("CreatePrimary: not a 2048-bit modulus");
    }

    tpm2_begin(&b, TPM2_ST_NO_SESSIONS, TPM2_CC_FLUSH_CONTEXT);
    tpm2_put(&b, handle, 4);
    tpm2_end(&b);
    run(&b, TPM2_ST_NO_SESSIONS, "FlushContext");
}

/*
 * The parent goes, so that it leaves nothing in a resource manager's
 * space for the resource manager to load and save around the next
 * workload's commands
 */
static void teardown_session(void)
{
    struct tpm2_buf b;

    tpm2_begin(&b, TPM2_ST_NO_SESSIONS, TPM2_CC_FLUSH_CONTEXT);
    tpm2_put(&b, seal_parent, 4);
    tpm2_end(&b);
    run(&b, TPM2_ST_NO_SESSIONS, "FlushContext");
}

static const struct workload {
    const char *name;
    void (*setup)(void);
    void (*teardown)(void);
    void (*op)(void);
    unsigned commands;          /* per operation */
    unsigned gap_us;            /* one-shot: the pause before each command */
    int once;                   /* mark one operation alone, first */
} workloads[] = {
    { "getrandom", NULL, NULL, op_getrandom, 1, 0, 0 },
    { "pcr", NULL, NULL, op_pcr, 2, 0, 0 },
    { "large", setup_large, NULL, op_large, 2, 0, 0 },
    { "session", setup_session, teardown_session, op_session, 4, 0, 1 },
    { "createprimary", NULL, NULL, op_createprimary, 2, 0, 0 },
    { "oneshot-1ms", NULL, NULL, op_getrandom, 1, 1000, 0 },
    { "oneshot-100ms", NULL, NULL, op_getrandom, 1, 100000, 0 },
};

/* --- marks for the host --------------------------------------------------- */

static int mark_fd = -1;

/* Open the serial port the host listens on, raw: no echo, no line editing */
static void mark_open(const char *path)
{
    struct termios t;

    mark_fd = open(path, O_RDWR | O_NOCTTY);
    if (mark_fd < 0 || tcgetattr(mark_fd, &t)) {
        die("%s: %s", path, strerror(errno));
    }
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(mark_fd, TCSANOW, &t)) {
        die("%s: %s", path, strerror(errno));
    }
}

/* Tell the host, and wait for its answer, a line */
static void __attribute__((format(printf, 1, 2))) mark(const char *fmt, ...)
{
    char line[128], c;
    va_list ap;
    int len;

    if (mark_fd < 0) {
        return;
    }
    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (len < 0 || len >= (int)sizeof(line) - 1) {
        die("mark: too long");
    }
    line[len++] = '\n';
    if (write(mark_fd, line, len) != len) {
        die("mark: %s", strerror(errno));
    }
    do {
        if (read(mark_fd, &c, 1) != 1) {
            die("mark: no answer: %s", strerror(errno));
        }
    } while (c != '\n');
}

/* --- timing --------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds for n operations */
static double time_ops(void (*op)(void), unsigned long n)
{
    double t0 = now();

    while (n--) {
        op();
    }
    return now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

#define MAX_RUNS 64

static void bench(const struct workload *w, const char *target,
                  double seconds, int runs)
{
    double us[MAX_RUNS], t, median;
    unsigned long n = 1;
    int i;

    if (w->setup) {
        w->setup();
    }
    /*
     * Through a resource manager, an operation with objects and sessions
     * costs the TPM more commands than it sends: one operation alone
     * shows the host how many
     */
    if (w->once) {
        mark("MARK begin %s-once %s", w->name, target);
        w->op();
        mark("MARK end %s-once %s %u", w->name, target, w->commands);
    }
    /* Warm up for about a tenth of a run, and size the runs */
    for (t = 0; t < seconds / 10 && n < 1UL << 30; n *= 2) {
        t = time_ops(w->op, n);
    }
    n = (unsigned long)(n / 2 * seconds / (t > 0 ? t : 0.000001)) + 1;

    mark("MARK begin %s %s", w->name, target);
    for (i = 0; i < runs; i++) {
        us[i] = time_ops(w->op, n) * 1e6 / n;
    }
    mark("MARK end %s %s %lu", w->name, target, n * runs * w->commands);
    if (w->teardown) {
        w->teardown();
    }
    qsort(us, runs, sizeof(us[0]), cmp_double);
    median = runs % 2 ? us[runs / 2] : (us[runs / 2 - 1] + us[runs / 2]) / 2;
    printf("BENCH %s %s %.2f %.1f %.2f %.2f %d %lu\n", w->name, target,
           median, 1e6 / median, us[0], us[runs - 1], runs, n);
    fflush(stdout);
}

static void sleep_us(unsigned long us)
{
    struct timespec ts = { us / 1000000, us % 1000000 * 1000 };

    while (nanosleep(&ts, &ts) && errno == EINTR) {
        continue;
    }
}

#define ONESHOT_MAX 1000

/*
 * One command at a time, after a pause: as many as fit in twice the
 * runs' time, at least 20
 */
static void oneshot(const struct workload *w, const char *target,
                    double seconds, int runs)
{
    static double us[ONESHOT_MAX];
    unsigned long n = 2 * seconds * runs * 1e6 / w->gap_us, i;
    double t;

    n = n < 20 ? 20 : n > ONESHOT_MAX ? ONESHOT_MAX : n;
    w->op();                    /* the first command of a run is no guide */
    mark("MARK begin %s %s", w->name, target);
    for (i = 0; i < n; i++) {
        sleep_us(w->gap_us);
        t = now();
        w->op();
        us[i] = (now() - t) * 1e6;
    }
    mark("MARK end %s %s %lu", w->name, target, n * w->commands);
    qsort(us, n, sizeof(us[0]), cmp_double);
    printf("ONESHOT %s %s %.2f %.2f %.2f %.2f %lu\n", w->name, target,
           us[n / 2], us[(n * 99 + 99) / 100 - 1], us[0], us[n - 1], n);
    fflush(stdout);
}

/* An interval with no TPM command, for the cost of the TPM at rest */
static void idle(double seconds)
{
    mark("MARK begin idle -");
    sleep_us(seconds * 1e6);
    mark("MARK end idle - 0");
}

#ifndef HAVE_LIBTPMS
/* The cost of one port access: 32-bit reads of PORT (see -p above) */
static void port_cost(unsigned long port, unsigned long n)
{
    unsigned long i;
    double t;

    if (ioperm(port, 4, 1)) {
        die("ioperm(0x%lx): %s", port, strerror(errno));
    }
    inl(port);
    t = now();
    for (i = 0; i < n; i++) {
        inl(port);
    }
    t = now() - t;
    printf("PORTCOST inl %.3f %lu\n", t * 1e6 / n, n);
}
#endif

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr,
            "usage: tpm2bench [-t SECONDS] [-r RUNS] [-m TTY] "
            "DEVICE|libtpms WORKLOAD...\n"
            "       tpm2bench [-m TTY] -i SECONDS\n"
            "       tpm2bench -m TTY -s TEXT\n"
            "       tpm2bench -p PORT [-n COUNT]\n"
            "workloads: getrandom pcr large session createprimary "
            "oneshot-1ms oneshot-100ms\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 1, idle_seconds = 0;
    unsigned long port = 0, count = 100000;
    int runs = 5, opt, i, j;

    while ((opt = getopt(argc, argv, "t:r:p:n:m:i:s:")) != -1) {
        switch (opt) {
        case 'm':
            mark_open(optarg);
            break;
        case 's':
            mark("MARK %s", optarg);
            return 0;
        case 'i':
            idle_seconds = atof(optarg);
            if (idle_seconds <= 0) {
                usage();
            }
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'p':
            port = strtoul(optarg, NULL, 0);
            break;
        case 'n':
            count = strtoul(optarg, NULL, 0);
            break;
        default:
            usage();
        }
    }
    if (seconds <= 0 || runs < 1 || runs > MAX_RUNS || !count) {
        usage();
    }
    if (port) {
#ifdef HAVE_LIBTPMS
        die("no port access in the host build");
#else
        port_cost(port, count);
        return 0;
#endif
    }
    if (idle_seconds) {
        idle(idle_seconds);
        return 0;
    }
    if (argc - optind < 2) {
        usage();
    }

    if (!strcmp(argv[optind], "libtpms")) {
#ifdef HAVE_LIBTPMS
        lib_open();
#else
        die("built without libtpms");
#endif
    } else {
        tpm_fd = open(argv[optind], O_RDWR);
        if (tpm_fd < 0) {
            die("cannot open %s: %s", argv[optind], strerror(errno));
        }
        transact = dev_transact;
    }

    for (i = optind + 1; i < argc; i++) {
        for (j = 0; j < (int)(sizeof(workloads) / sizeof(workloads[0])); j++) {
            if (!strcmp(argv[i], workloads[j].name)) {
                if (workloads[j].gap_us) {
                    oneshot(&workloads[j], argv[optind], seconds, runs);
                } else {
                    bench(&workloads[j], argv[optind], seconds, runs);
                }
                break;
            }
        }
        if (j == (int)(sizeof(workloads) / sizeof(workloads[0]))) {
            usage();
        }
    }
    return 0;
}
