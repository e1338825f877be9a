/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest testcase for the TPM CRB interface with the libtpms backend
 *
 * The expected responses come from the TPM 1.2 and TPM 2.0
 * specifications (TCG TPM Main Part 3, TPM 2.0 Library Part 3).
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#include "qemu/osdep.h"

#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "tpm-util.h"

#define TPM2_RC_SUCCESS         0x000
#define TPM2_RC_INITIALIZE      0x100
#define TPM2_ST_NO_SESSIONS     0x8001

#define TPM_TAG_RSP_COMMAND     0x00c4

#define TPM_RSP_HDR_SIZE        10

#define QEMU_TPM_ARGS \
    "-machine q35 -tpmdev libtpms,id=dev%s -device tpm-crb,tpmdev=dev"

static QTestState *start_qemu(const char *tpmdev_opts)
{
    return qtest_initf(QEMU_TPM_ARGS, tpmdev_opts);
}

/* Send @req, check the response's header, return its length */
static size_t transfer(QTestState *s, const void *req, size_t req_len,
                       uint8_t *rsp, size_t rsp_size,
                       uint16_t tag, uint32_t rc)
{
    size_t len;

    memset(rsp, 0, rsp_size);
    tpm_util_crb_transfer(s, req, req_len, rsp, rsp_size);

    len = ldl_be_p(rsp + 2);
    g_assert_cmphex(lduw_be_p(rsp), ==, tag);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, rc);
    g_assert_cmpuint(len, >=, TPM_RSP_HDR_SIZE);
    g_assert_cmpuint(len, <=, rsp_size);
    return len;
}

/* TPM2_PCR_Read of PCR 10 in the SHA-256 bank */
static const uint8_t tpm2_pcr_read_10[] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x01, 0x7e,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x0b, 0x03, 0x00, 0x04, 0x00,
};

static void test_pcr_read_before_startup(void)
{
    QTestState *s = start_qemu("");
    uint8_t rsp[64];

    g_assert_cmpuint(transfer(s, tpm2_pcr_read_10, sizeof(tpm2_pcr_read_10),
                              rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                              TPM2_RC_INITIALIZE), ==, TPM_RSP_HDR_SIZE);
    qtest_quit(s);
}

static void test_startup(void)
{
    QTestState *s = start_qemu("");

    tpm_util_startup(s, tpm_util_crb_transfer);
    qtest_quit(s);
}

/* TPM2_GetRandom(bytesRequested), returns the random bytes */
static void get_random(QTestState *s, uint8_t *buf, uint16_t len)
{
    uint8_t req[12] = { 0x80, 0x01, 0x00, 0x00, 0x00, 0x0c,
                        0x00, 0x00, 0x01, 0x7b };
    uint8_t rsp[TPM_RSP_HDR_SIZE + 2 + 64];

    g_assert_cmpuint(len, <=, 64);
    stw_be_p(req + 10, len);
    g_assert_cmpuint(transfer(s, req, sizeof(req), rsp, sizeof(rsp),
                              TPM2_ST_NO_SESSIONS, TPM2_RC_SUCCESS),
                     ==, TPM_RSP_HDR_SIZE + 2 + len);
    g_assert_cmpuint(lduw_be_p(rsp + TPM_RSP_HDR_SIZE), ==, len);
    memcpy(buf, rsp + TPM_RSP_HDR_SIZE + 2, len);
}

static void test_get_random(void)
{
    QTestState *s = start_qemu("");
    uint8_t a[32], b[32];

    tpm_util_startup(s, tpm_util_crb_transfer);
    get_random(s, a, sizeof(a));
    get_random(s, b, sizeof(b));
    g_assert_true(memcmp(a, b, sizeof(a)) != 0);
    qtest_quit(s);
}

static void test_get_capability(void)
{
    /* TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR) */
    static const uint8_t req[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x01, 0x7a,
        0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x01,
    };
    QTestState *s = start_qemu("");
    uint8_t rsp[64];
    const uint8_t *data = rsp + TPM_RSP_HDR_SIZE + 1;   /* after moreData */

    tpm_util_startup(s, tpm_util_crb_transfer);
    /* TPMS_CAPABILITY_DATA with one TPMS_TAGGED_PROPERTY */
    g_assert_cmpuint(transfer(s, req, sizeof(req), rsp, sizeof(rsp),
                              TPM2_ST_NO_SESSIONS, TPM2_RC_SUCCESS),
                     ==, TPM_RSP_HDR_SIZE + 1 + 4 + 4 + 8);
    g_assert_cmphex(ldl_be_p(data), ==, 0x6);           /* capability */
    g_assert_cmpuint(ldl_be_p(data + 4), ==, 1);        /* count */
    g_assert_cmphex(ldl_be_p(data + 8), ==, 0x100);     /* property */
    g_assert_cmpmem(data + 12, 4, "2.0", 4);            /* value */
    qtest_quit(s);
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

static void test_pcr_extend(void)
{
    QTestState *s = start_qemu("");
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

    tpm_util_startup(s, tpm_util_crb_transfer);
    tpm_util_pcrextend(s, tpm_util_crb_transfer);
    tpm_util_pcrread(s, tpm_util_crb_transfer, rsp, sizeof(rsp));
    qtest_quit(s);
}

static void test_reset(void)
{
    /* TPM2_Startup(TPM_SU_STATE) */
    static const uint8_t startup_state[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44,
        0x00, 0x01,
    };
    QTestState *s = start_qemu("");
    uint8_t rsp[64];

    tpm_util_startup(s, tpm_util_crb_transfer);
    qtest_qmp_assert_success(s, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(s, "RESET");

    /* A reset TPM needs TPM2_Startup again */
    transfer(s, tpm2_pcr_read_10, sizeof(tpm2_pcr_read_10),
             rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS, TPM2_RC_INITIALIZE);

    /*
     * Resuming needs the state a TPM2_Shutdown(TPM_SU_STATE) saved;
     * the guest sent none, so QEMU must have sent it at reset.
     */
    g_assert_cmpuint(transfer(s, startup_state, sizeof(startup_state),
                              rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                              TPM2_RC_SUCCESS), ==, TPM_RSP_HDR_SIZE);
    qtest_quit(s);
}

static void test_tpm12(void)
{
    /* TPM_Startup(TPM_ST_CLEAR) */
    static const uint8_t startup[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99,
        0x00, 0x01,
    };
    /* TPM_GetCapability(TPM_CAP_VERSION_VAL) */
    static const uint8_t get_cap[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x65,
        0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00, 0x00,
    };
    QTestState *s = start_qemu(",version=1.2");
    uint8_t rsp[128];
    const uint8_t *cap = rsp + TPM_RSP_HDR_SIZE + 4;   /* after respSize */
    size_t len;

    g_assert_cmpuint(transfer(s, startup, sizeof(startup), rsp, sizeof(rsp),
                              TPM_TAG_RSP_COMMAND, 0), ==, TPM_RSP_HDR_SIZE);

    len = transfer(s, get_cap, sizeof(get_cap), rsp, sizeof(rsp),
                   TPM_TAG_RSP_COMMAND, 0);
    g_assert_cmpuint(len, >=, TPM_RSP_HDR_SIZE + 4 + 6);
    g_assert_cmpuint(ldl_be_p(rsp + TPM_RSP_HDR_SIZE), ==,
                     len - TPM_RSP_HDR_SIZE - 4);
    /* TPM_CAP_VERSION_INFO: TPM_TAG_CAP_VERSION_INFO, then version 1.2 */
    g_assert_cmphex(lduw_be_p(cap), ==, 0x0030);
    g_assert_cmpuint(cap[2], ==, 1);
    g_assert_cmpuint(cap[3], ==, 2);
    qtest_quit(s);
}

static void test_query_tpm(void)
{
    QTestState *s = start_qemu("");
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-tpm' }");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *info, *options, *data;

    g_assert_nonnull(list);
    g_assert_cmpuint(qlist_size(list), ==, 1);
    info = qobject_to(QDict, qlist_peek(list));
    g_assert_cmpstr(qdict_get_str(info, "id"), ==, "dev");
    g_assert_cmpstr(qdict_get_str(info, "model"), ==, "tpm-crb");
    options = qdict_get_qdict(info, "options");
    g_assert_cmpstr(qdict_get_str(options, "type"), ==, "libtpms");
    data = qdict_get_qdict(options, "data");
    g_assert_cmpstr(qdict_get_str(data, "version"), ==, "2.0");
    qobject_unref(rsp);
    qtest_quit(s);
}

/*
 * Run QEMU with @args, which it must refuse: check that it exits with
 * an error, and prints @message.
 */
static void assert_qemu_refuses(const char *args, const char *message)
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

/* Whether @type has a property @name */
static bool device_has_property(const char *type, const char *name)
{
    QTestState *s = qtest_init("-machine none");
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'device-list-properties',"
                           "  'arguments': { 'typename': %s } }", type);
    QList *props = qdict_get_qlist(rsp, "return");
    QListEntry *e;
    bool found = false;

    QLIST_FOREACH_ENTRY(props, e) {
        QDict *prop = qobject_to(QDict, qlist_entry_obj(e));

        found |= !strcmp(qdict_get_str(prop, "name"), name);
    }
    qobject_unref(rsp);
    qtest_quit(s);
    return found;
}

static void test_second_tpmdev(void)
{
    assert_qemu_refuses("-machine none "
                        "-tpmdev libtpms,id=a -tpmdev libtpms,id=b",
                        "Only one TPM is allowed");
}

static void test_second_libtpms(void)
{
    /* Without a tpmdev, vtpm-pci creates a libtpms backend of its own */
    if (!qtest_has_device("vtpm-pci") ||
        !device_has_property("vtpm-pci", "tpmdev")) {
        g_test_skip("no vtpm-pci with a TPM backend");
        return;
    }
    assert_qemu_refuses("-machine q35 "
                        "-tpmdev libtpms,id=a -device vtpm-pci",
                        "only one libtpms TPM can exist per QEMU process");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/tpm-crb-libtpms/pcr-read-before-startup",
                   test_pcr_read_before_startup);
    qtest_add_func("/tpm-crb-libtpms/startup", test_startup);
    qtest_add_func("/tpm-crb-libtpms/get-random", test_get_random);
    qtest_add_func("/tpm-crb-libtpms/get-capability", test_get_capability);
    qtest_add_func("/tpm-crb-libtpms/pcr-extend", test_pcr_extend);
    qtest_add_func("/tpm-crb-libtpms/reset", test_reset);
    qtest_add_func("/tpm-crb-libtpms/tpm-1.2", test_tpm12);
    qtest_add_func("/tpm-crb-libtpms/query-tpm", test_query_tpm);
    qtest_add_func("/tpm-crb-libtpms/second-tpmdev", test_second_tpmdev);
    qtest_add_func("/tpm-crb-libtpms/second-libtpms", test_second_libtpms);

    return g_test_run();
}
