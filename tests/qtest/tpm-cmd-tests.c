/*
 * TPM command tests shared by TPM frontends: real TPM 1.2 and TPM 2.0
 * commands, checked against the TCG specifications (TPM Main Part 3 for
 * 1.2, TPM 2.0 Library Part 3), sent through any interface that has a
 * transfer function.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "tpm-cmd-tests.h"

/* Send @req, check the response's header, return its length */
size_t tpm_cmd_transfer(QTestState *s, tx_func *tx,
                        const void *req, size_t req_len,
                        uint8_t *rsp, size_t rsp_size,
                        uint16_t tag, uint32_t rc)
{
    size_t len;

    memset(rsp, 0, rsp_size);
    tx(s, req, req_len, rsp, rsp_size);

    len = ldl_be_p(rsp + 2);
    g_assert_cmphex(lduw_be_p(rsp), ==, tag);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, rc);
    g_assert_cmpuint(len, >=, TPM_RSP_HDR_SIZE);
    g_assert_cmpuint(len, <=, rsp_size);
    return len;
}

const uint8_t tpm12_startup_clear[TPM_STARTUP_SIZE] = {
    0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99,
    0x00, 0x01,                                 /* TPM_ST_CLEAR */
};
const uint8_t tpm2_startup_clear[TPM_STARTUP_SIZE] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44,
    0x00, 0x00,                                 /* TPM_SU_CLEAR */
};

/*
 * TPM2_CreatePrimary under the owner hierarchy (password session) of an
 * RSA-2048 restricted decryption key, AES-128-CFB: generating the key
 * takes long enough to catch the command executing.
 */
const uint8_t tpm2_create_primary_rsa2048[] = {
    0x80, 0x02, 0x00, 0x00, 0x00, 0x43, 0x00, 0x00, 0x01, 0x31,
    0x40, 0x00, 0x00, 0x01,                     /* TPM_RH_OWNER */
    0x00, 0x00, 0x00, 0x09,                     /* authorizationSize */
    0x40, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00,  /* TPM_RS_PW */
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00,         /* inSensitive */
    0x00, 0x1a,                                 /* inPublic */
    0x00, 0x01, 0x00, 0x0b,                     /* TPM_ALG_RSA, SHA256 */
    0x00, 0x03, 0x00, 0x72,                     /* objectAttributes */
    0x00, 0x00,                                 /* authPolicy */
    0x00, 0x06, 0x00, 0x80, 0x00, 0x43,         /* AES-128-CFB */
    0x00, 0x10, 0x08, 0x00,                     /* no scheme, 2048 bits */
    0x00, 0x00, 0x00, 0x00,                     /* exponent */
    0x00, 0x00,                                 /* unique */
    0x00, 0x00,                                 /* outsideInfo */
    0x00, 0x00, 0x00, 0x00,                     /* creationPCR */
};
const size_t tpm2_create_primary_rsa2048_size =
    sizeof(tpm2_create_primary_rsa2048);

/*
 * TPM_CreateEndorsementKeyPair, for a 2048-bit RSA key: on a TPM 1.2
 * without an endorsement key (a new one), a key's generation that libtpms
 * cannot cancel (50 ms to over a second)
 */
const uint8_t tpm12_create_ek[] = {
    0x00, 0xc1, 0x00, 0x00, 0x00, 0x36, 0x00, 0x00, 0x00, 0x78,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                                /* antiReplay */
    0x00, 0x00, 0x00, 0x01,                     /* TPM_ALG_RSA */
    0x00, 0x03, 0x00, 0x01,                     /* OAEP, no signatures */
    0x00, 0x00, 0x00, 0x0c,                     /* parmSize */
    0x00, 0x00, 0x08, 0x00,                     /* 2048 bits */
    0x00, 0x00, 0x00, 0x02,                     /* numPrimes */
    0x00, 0x00, 0x00, 0x00,                     /* exponentSize */
};
const size_t tpm12_create_ek_size = sizeof(tpm12_create_ek);

/*
 * tpm2_create_primary_rsa2048, for a key of @bits with @salt as its
 * unique field: libtpms derives a primary key from the hierarchy's seed
 * and the template, so each salt gives another key, and how long the key
 * takes varies with the key (3072 bits: 50 to 350 ms here).  Returns the
 * command's length, at most TPM_CMD_CREATE_PRIMARY_SALTED_SIZE.
 */
size_t tpm_cmd_create_primary_salted(uint8_t *cmd, uint32_t salt,
                                     uint16_t bits)
{
    /* Offsets of inPublic's size, keyBits and unique's size */
    const size_t in_public = 33, key_bits = 53;
    const size_t unique = tpm2_create_primary_rsa2048_size - 8;
    size_t len = tpm2_create_primary_rsa2048_size + sizeof(salt);

    memcpy(cmd, tpm2_create_primary_rsa2048, unique);
    stw_be_p(cmd + unique, sizeof(salt));
    stl_be_p(cmd + unique + 2, salt);
    /* outsideInfo and creationPCR, both empty */
    memcpy(cmd + unique + 2 + sizeof(salt),
           tpm2_create_primary_rsa2048 + unique + 2, 6);
    stl_be_p(cmd + 2, len);
    stw_be_p(cmd + in_public, lduw_be_p(cmd + in_public) + sizeof(salt));
    stw_be_p(cmd + key_bits, bits);
    return len;
}

void tpm_cmd_flush(QTestState *s, tx_func *tx, uint32_t handle)
{
    /* TPM2_FlushContext */
    uint8_t cmd[14] = { 0x80, 0x01, 0x00, 0x00, 0x00, 0x0e,
                        0x00, 0x00, 0x01, 0x65 };
    uint8_t rsp[TPM_RSP_HDR_SIZE];

    stl_be_p(cmd + 10, handle);
    tpm_cmd_transfer(s, tx, cmd, sizeof(cmd), rsp, sizeof(rsp),
                     TPM2_ST_NO_SESSIONS, TPM_RC_SUCCESS);
}

static int tpm_cmd_cmp_us(const void *a, const void *b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

    return x < y ? -1 : x > y;
}

/* The shortest of @n times, all of them printed */
gint64 tpm_cmd_shortest_us(const gint64 *us, size_t n)
{
    g_autoptr(GString) all = g_string_new(NULL);
    gint64 shortest = us[0];
    size_t i;

    for (i = 0; i < n; i++) {
        g_string_append_printf(all, " %" PRId64, us[i]);
        shortest = MIN(shortest, us[i]);
    }
    g_test_message("times (us):%s; the shortest %" PRId64 " us",
                   all->str, shortest);
    return shortest;
}

/*
 * Make RSA keys through an interface, one at a time, and while each is
 * made, make the interface's guest accesses in turn, as fast as qtest
 * allows.  An access that waited for the command would return only when
 * the command is over: so each access must be seen, at least once, to
 * start and to end while the command executes.  And each is timed: 99%
 * of them must take no longer than TPM_CMD_ACCESS_MAX_US (an access of
 * one kind in 13 that stalled would be 7% of them), the slowest percent
 * being left to the host's scheduler, which on a busy 2-CPU machine has
 * held the test or QEMU back for 100 ms.  Keys are made until one took
 * twice the bound, so that a wait would also have shown in the time, and
 * until TPM_CMD_ACCESS_SAMPLES accesses were made, so that the slowest
 * percent is more than the one slowest access (under TSan, a key leaves
 * time for only 40 or so).
 */
void tpm_cmd_test_no_wait(QTestState *s, const TPMCmdNoWait *nw)
{
    g_autofree bool *within = g_new0(bool, nw->n_accesses);
    g_autoptr(GArray) times = g_array_new(false, false, sizeof(gint64));
    uint8_t cmd[128], rsp[1024];
    const char *longest_name = NULL;
    gint64 longest = 0, ran = 0, p99;
    unsigned made = 0;
    uint32_t salt;
    size_t i;

    for (salt = 0; salt < 16 && (ran < 2 * TPM_CMD_ACCESS_MAX_US ||
                                 made < TPM_CMD_ACCESS_SAMPLES); salt++) {
        size_t len = tpm_cmd_create_primary_salted(cmd, salt, 3072);
        gint64 start = g_get_monotonic_time();
        bool executing;

        nw->start(s, cmd, len);
        executing = nw->executing(s);
        for (i = 0; executing; i = (i + 1) % nw->n_accesses) {
            gint64 t = g_get_monotonic_time();

            nw->accesses[i].access(s);
            t = g_get_monotonic_time() - t;
            g_array_append_val(times, t);
            if (t > longest) {
                longest = t;
                longest_name = nw->accesses[i].name;
            }
            made++;
            executing = nw->executing(s);
            within[i] |= executing;
        }
        ran = g_get_monotonic_time() - start;
        memset(rsp, 0, sizeof(rsp));
        nw->finish(s, rsp, sizeof(rsp));
        /* ... unless the last access came after the response, and took it */
        if (!nw->accesses[(i + nw->n_accesses - 1) % nw->n_accesses].consumes) {
            g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
            g_assert_cmphex((uint32_t)ldl_be_p(rsp + TPM_RSP_HDR_SIZE), ==,
                            TPM2_TRANSIENT_FIRST);
        }

        /* Make room for the next key: each gets the first handle */
        tpm_cmd_flush(s, nw->tx, TPM2_TRANSIENT_FIRST);
        g_test_message("key %u: %" PRId64 " us; %u accesses so far, the "
                       "longest %" PRId64 " us (%s)", salt, ran, made,
                       longest, longest_name ?: "none");
    }
    g_assert_cmpint(ran, >=, 2 * TPM_CMD_ACCESS_MAX_US);
    g_assert_cmpuint(made, >=, TPM_CMD_ACCESS_SAMPLES);
    for (i = 0; i < nw->n_accesses; i++) {
        if (!within[i]) {
            g_test_message("%s did not return while the command executed",
                           nw->accesses[i].name);
        }
        g_assert_true(within[i]);
    }
    g_array_sort(times, tpm_cmd_cmp_us);
    p99 = g_array_index(times, gint64, times->len * 99 / 100);
    g_test_message("%u accesses: 99%% within %" PRId64 " us, the longest "
                   "%" PRId64 " us (%s)", made, p99, longest, longest_name);
    g_assert_cmpint(p99, <=, TPM_CMD_ACCESS_MAX_US);
}

/* TPM2_PCR_Read of PCR 10 in the SHA-256 bank */
static const uint8_t tpm2_pcr_read_10[] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x01, 0x7e,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x0b, 0x03, 0x00, 0x04, 0x00,
};

void tpm_cmd_test_pcr_read_before_startup(QTestState *s, tx_func *tx)
{
    uint8_t rsp[64];

    g_assert_cmpuint(tpm_cmd_transfer(s, tx, tpm2_pcr_read_10,
                                      sizeof(tpm2_pcr_read_10),
                                      rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                                      TPM_RC_INITIALIZE),
                     ==, TPM_RSP_HDR_SIZE);
}

/* TPM2_GetRandom(bytesRequested), returns the random bytes */
void tpm_cmd_get_random(QTestState *s, tx_func *tx, uint8_t *buf,
                        uint16_t len)
{
    uint8_t req[12] = { 0x80, 0x01, 0x00, 0x00, 0x00, 0x0c,
                        0x00, 0x00, 0x01, 0x7b };
    uint8_t rsp[TPM_RSP_HDR_SIZE + 2 + 64];

    g_assert_cmpuint(len, <=, 64);
    stw_be_p(req + 10, len);
    g_assert_cmpuint(tpm_cmd_transfer(s, tx, req, sizeof(req),
                                      rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                                      TPM_RC_SUCCESS),
                     ==, TPM_RSP_HDR_SIZE + 2 + len);
    g_assert_cmpuint(lduw_be_p(rsp + TPM_RSP_HDR_SIZE), ==, len);
    memcpy(buf, rsp + TPM_RSP_HDR_SIZE + 2, len);
}

void tpm_cmd_test_get_random(QTestState *s, tx_func *tx)
{
    uint8_t a[32], b[32];

    tpm_util_startup(s, tx);
    tpm_cmd_get_random(s, tx, a, sizeof(a));
    tpm_cmd_get_random(s, tx, b, sizeof(b));
    g_assert_true(memcmp(a, b, sizeof(a)) != 0);
}

/* TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, @property): its value */
uint32_t tpm_cmd_get_property(QTestState *s, tx_func *tx, uint32_t property)
{
    uint8_t req[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x01, 0x7a,
        0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,
    };
    uint8_t rsp[64];
    const uint8_t *data = rsp + TPM_RSP_HDR_SIZE + 1;   /* after moreData */

    stl_be_p(req + 14, property);
    /* TPMS_CAPABILITY_DATA with one TPMS_TAGGED_PROPERTY */
    g_assert_cmpuint(tpm_cmd_transfer(s, tx, req, sizeof(req),
                                      rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                                      TPM_RC_SUCCESS),
                     ==, TPM_RSP_HDR_SIZE + 1 + 4 + 4 + 8);
    g_assert_cmphex(ldl_be_p(data), ==, 0x6);           /* capability */
    g_assert_cmpuint(ldl_be_p(data + 4), ==, 1);        /* count */
    g_assert_cmphex(ldl_be_p(data + 8), ==, property);
    return ldl_be_p(data + 12);
}

void tpm_cmd_test_get_capability(QTestState *s, tx_func *tx)
{
    uint8_t value[4];
    int i;

    tpm_util_startup(s, tx);
    /* TPM_PT_FAMILY_INDICATOR: "2.0" */
    stl_be_p(value, tpm_cmd_get_property(s, tx, 0x100));
    g_assert_cmpmem(value, 4, "2.0", 4);
    /* TPM_PT_MANUFACTURER: a vendor ID, up to four printable characters */
    stl_be_p(value, tpm_cmd_get_property(s, tx, 0x105));
    g_assert_true(g_ascii_isalpha(value[0]));
    for (i = 1; i < 4; i++) {
        g_assert_true(g_ascii_isprint(value[i]) || value[i] == 0);
    }
}

/*
 * The TPM2_PCR_Read response tpm_util_pcrread() expects for PCR 10
 * holding @digest
 */
static void pcr_read_response(uint8_t *rsp, const uint8_t *digest)
{
    static const uint8_t head[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x3e, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,                 /* pcrUpdateCounter */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x0b, 0x03, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x20,
    };

    memcpy(rsp, head, sizeof(head));
    memcpy(rsp + sizeof(head), digest, 32);
}

void tpm_cmd_assert_pcr10_extended(QTestState *s, tx_func *tx)
{
    /* the digest tpm_util_pcrextend() extends PCR 10 with */
    uint8_t data[32] = "test";
    uint8_t buf[64] = { 0 };
    uint8_t digest[32], rsp[0x3e];
    gsize digest_len = sizeof(digest);
    GChecksum *sha256 = g_checksum_new(G_CHECKSUM_SHA256);

    /* PCR 10 starts out as zeros; extending makes it H(old || data) */
    memcpy(buf + 32, data, sizeof(data));
    g_checksum_update(sha256, buf, sizeof(buf));
    g_checksum_get_digest(sha256, digest, &digest_len);
    g_checksum_free(sha256);
    pcr_read_response(rsp, digest);

    tpm_util_pcrread(s, tx, rsp, sizeof(rsp));
}

void tpm_cmd_test_pcr_extend(QTestState *s, tx_func *tx)
{
    tpm_util_startup(s, tx);
    tpm_util_pcrextend(s, tx);
    tpm_cmd_assert_pcr10_extended(s, tx);
}

void tpm_cmd_test_reset(QTestState *s, tx_func *tx)
{
    /* TPM2_Startup(TPM_SU_STATE) */
    static const uint8_t startup_state[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44,
        0x00, 0x01,
    };
    uint8_t rsp[64];

    tpm_util_startup(s, tx);
    qtest_qmp_assert_success(s, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(s, "RESET");

    /* A reset TPM needs TPM2_Startup again */
    tpm_cmd_transfer(s, tx, tpm2_pcr_read_10, sizeof(tpm2_pcr_read_10),
                     rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                     TPM_RC_INITIALIZE);

    /*
     * Resuming needs the state a TPM2_Shutdown(TPM_SU_STATE) saved;
     * the guest sent none, so QEMU must have sent it at reset.
     */
    g_assert_cmpuint(tpm_cmd_transfer(s, tx, startup_state,
                                      sizeof(startup_state),
                                      rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                                      TPM_RC_SUCCESS),
                     ==, TPM_RSP_HDR_SIZE);
}

const TPMCmdTest tpm_cmd_tests[] = {
    { "pcr-read-before-startup", tpm_cmd_test_pcr_read_before_startup },
    { "get-random", tpm_cmd_test_get_random },
    { "get-capability", tpm_cmd_test_get_capability },
    { "pcr-extend", tpm_cmd_test_pcr_extend },
    { "reset", tpm_cmd_test_reset },
};
const size_t tpm_cmd_tests_count = ARRAY_SIZE(tpm_cmd_tests);

void tpm_cmd_test_tpm12(QTestState *s, tx_func *tx)
{
    /* TPM_GetCapability(TPM_CAP_VERSION_VAL) */
    static const uint8_t get_cap[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x65,
        0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00, 0x00,
    };
    uint8_t rsp[128];
    const uint8_t *cap = rsp + TPM_RSP_HDR_SIZE + 4;   /* after respSize */
    size_t len;

    g_assert_cmpuint(tpm_cmd_transfer(s, tx, tpm12_startup_clear,
                                      TPM_STARTUP_SIZE, rsp, sizeof(rsp),
                                      TPM_TAG_RSP_COMMAND, 0),
                     ==, TPM_RSP_HDR_SIZE);

    len = tpm_cmd_transfer(s, tx, get_cap, sizeof(get_cap), rsp, sizeof(rsp),
                           TPM_TAG_RSP_COMMAND, 0);
    g_assert_cmpuint(len, >=, TPM_RSP_HDR_SIZE + 4 + 6);
    g_assert_cmpuint(ldl_be_p(rsp + TPM_RSP_HDR_SIZE), ==,
                     len - TPM_RSP_HDR_SIZE - 4);
    /* TPM_CAP_VERSION_INFO: TPM_TAG_CAP_VERSION_INFO, then version 1.2 */
    g_assert_cmphex(lduw_be_p(cap), ==, 0x0030);
    g_assert_cmpuint(cap[2], ==, 1);
    g_assert_cmpuint(cap[3], ==, 2);
}

/*
 * query-tpm must list exactly one TPM: @id, with frontend @model and
 * backend @type, and for libtpms TPM @version.
 */
void tpm_cmd_assert_query_tpm(QTestState *s, const char *id,
                              const char *model, const char *type,
                              const char *version)
{
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-tpm' }");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *info, *options;

    g_assert_nonnull(list);
    g_assert_cmpuint(qlist_size(list), ==, 1);
    info = qobject_to(QDict, qlist_peek(list));
    g_assert_cmpstr(qdict_get_str(info, "id"), ==, id);
    g_assert_cmpstr(qdict_get_str(info, "model"), ==, model);
    options = qdict_get_qdict(info, "options");
    g_assert_cmpstr(qdict_get_str(options, "type"), ==, type);
    if (version) {
        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(options, "data"),
                                      "version"), ==, version);
    }
    qobject_unref(rsp);
}

/* query-tpm must list no TPM */
void tpm_cmd_assert_query_tpm_none(QTestState *s)
{
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-tpm' }");

    g_assert_cmpuint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 0);
    qobject_unref(rsp);
}

/*
 * Run QEMU with @args, which it must refuse: check that it exits with
 * an error, and prints @message.
 */
void tpm_cmd_assert_qemu_refuses(const char *args, const char *message)
{
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    g_autofree char *cmdline = NULL;
    g_auto(GStrv) argv = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    int status;

    g_assert_nonnull(qemu);
    cmdline = g_strdup_printf("%s -nodefaults -display none -S %s",
                              qemu, args);
    g_assert_true(g_shell_parse_argv(cmdline, NULL, &argv, &error));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, &err, &status, &error));
    g_assert_no_error(error);
    g_assert_false(g_spawn_check_exit_status(status, NULL));
    g_assert_nonnull(strstr(err, message));
}
