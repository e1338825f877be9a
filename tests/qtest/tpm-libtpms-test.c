/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest testcase for QEMU's TPM interfaces (CRB, TIS) with the libtpms
 * backend
 *
 * The expected responses come from the TPM 1.2 and TPM 2.0
 * specifications (TCG TPM Main Part 3, TPM 2.0 Library Part 3).
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#include "qemu/osdep.h"

#include <glib/gstdio.h>
#include "qemu/bswap.h"
#include "hw/acpi/tpm.h"
#include "libqtest.h"
#include "tpm-cmd-tests.h"
#include "tpm-tis-util.h"
#include "tpm-util.h"

/* Where tpm-tis-util's transfer finds the TIS on a PC */
uint64_t tpm_tis_base_addr = TPM_TIS_ADDR_BASE;

typedef struct TPMInterface {
    const char *name;           /* in the test paths */
    const char *device;         /* the frontend, and its TpmModel */
    tx_func *tx;
} TPMInterface;

static const TPMInterface interfaces[] = {
    { "crb", "tpm-crb", tpm_util_crb_transfer },
    { "tis", "tpm-tis", tpm_tis_transfer },
};

/* One check of one interface */
typedef struct TPMTest {
    const TPMInterface *iface;
    const TPMCmdTest *cmd;
} TPMTest;

static QTestState *start_qemu(const TPMInterface *iface,
                              const char *tpmdev_opts)
{
    return qtest_initf("-machine q35 -tpmdev libtpms,id=dev%s "
                       "-device %s,tpmdev=dev", tpmdev_opts, iface->device);
}

/* Start QEMU with a TPM 2.0, run the check through the interface, quit */
static void test_cmd(const void *data)
{
    const TPMTest *t = data;
    QTestState *s = start_qemu(t->iface, "");

    t->cmd->check(s, t->iface->tx);
    qtest_quit(s);
}

static void test_tpm12(const void *data)
{
    const TPMInterface *iface = data;
    QTestState *s = start_qemu(iface, ",version=1.2");

    tpm_cmd_test_tpm12(s, iface->tx);
    qtest_quit(s);
}

static void test_query_tpm(const void *data)
{
    const TPMInterface *iface = data;
    QTestState *s = start_qemu(iface, "");

    tpm_cmd_assert_query_tpm(s, "dev", iface->device, "libtpms", "v2-0");
    qtest_quit(s);
}

/*
 * The TPM migrates with the device in front of it, each side keeping it
 * in a state file of its own; after the migration the destination's file
 * holds it, for the next QEMU started on it.
 */
static void test_migrate(const void *data)
{
    static const uint8_t startup_state[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44,
        0x00, 0x01,
    };
    const TPMInterface *iface = data;
    g_autofree char *dir = g_dir_make_tmp("tpm-libtpms-migrate.XXXXXX",
                                          NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/mig.sock", dir);
    g_autofree char *src_opts = g_strdup_printf(",path=%s/src", dir);
    g_autofree char *dst_opts = g_strdup_printf(",path=%s/dst", dir);
    const char *names[] = { "src", "src.lock", "dst", "dst.lock" };
    QTestState *src, *dst;
    uint8_t rsp[64];
    size_t i;

    src = start_qemu(iface, src_opts);
    dst = qtest_initf("-machine q35 -tpmdev libtpms,id=dev%s "
                      "-device %s,tpmdev=dev -incoming %s",
                      dst_opts, iface->device, uri);
    tpm_util_startup(src, iface->tx);
    tpm_util_pcrextend(src, iface->tx);
    tpm_util_migrate(src, uri);
    tpm_util_wait_for_migration_complete(dst);
    tpm_cmd_assert_pcr10_extended(dst, iface->tx);
    qtest_quit(src);
    qtest_quit(dst);

    /* QEMU shut the TPM down at exit: TPM2_Startup(TPM_SU_STATE) resumes */
    dst = start_qemu(iface, dst_opts);
    tpm_cmd_transfer(dst, iface->tx, startup_state, sizeof(startup_state),
                     rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS, TPM_RC_SUCCESS);
    tpm_cmd_assert_pcr10_extended(dst, iface->tx);
    qtest_quit(dst);

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        g_autofree char *path = g_build_filename(dir, names[i], NULL);

        g_unlink(path);
    }
    g_rmdir(dir);
}

/*
 * Guest accesses while a long command runs.  The TIS runs it at locality
 * 3, so that the write to STS that resets the TPM's established flag
 * reaches the backend.
 */
#define TIS_LOCTY               3
#define TIS_STS(l)              TIS_REG(l, TPM_TIS_REG_STS)
#define TIS_ACCESS(l)           TIS_REG(l, TPM_TIS_REG_ACCESS)
#define CRB_REG(r)              (TPM_CRB_ADDR_BASE + (r))

static void tis_start(QTestState *s, const uint8_t *cmd, size_t len)
{
    size_t i;

    qtest_writeb(s, TIS_ACCESS(TIS_LOCTY), TPM_TIS_ACCESS_REQUEST_USE);
    g_assert_true(qtest_readb(s, TIS_ACCESS(TIS_LOCTY)) &
                  TPM_TIS_ACCESS_ACTIVE_LOCALITY);
    /*
     * Twice: the first takes the locality from idle to ready, the second
     * empties the FIFO, which the TIS shares between localities and
     * tpm_tis_transfer() at locality 0 left holding its last response
     */
    qtest_writel(s, TIS_STS(TIS_LOCTY), TPM_TIS_STS_COMMAND_READY);
    qtest_writel(s, TIS_STS(TIS_LOCTY), TPM_TIS_STS_COMMAND_READY);
    for (i = 0; i < len; i++) {
        qtest_writeb(s, TIS_REG(TIS_LOCTY, TPM_TIS_REG_DATA_FIFO), cmd[i]);
    }
    qtest_writeb(s, TIS_STS(TIS_LOCTY), TPM_TIS_STS_TPM_GO);
}

static bool tis_executing(QTestState *s)
{
    return !(qtest_readl(s, TIS_STS(TIS_LOCTY)) & TPM_TIS_STS_DATA_AVAILABLE);
}

static void tis_finish(QTestState *s, uint8_t *rsp, size_t size)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    size_t i;

    while (tis_executing(s)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
    for (i = 0; i < size && (qtest_readl(s, TIS_STS(TIS_LOCTY)) &
                             TPM_TIS_STS_DATA_AVAILABLE); i++) {
        rsp[i] = qtest_readb(s, TIS_REG(TIS_LOCTY, TPM_TIS_REG_DATA_FIFO));
    }
    qtest_writel(s, TIS_STS(TIS_LOCTY), TPM_TIS_STS_COMMAND_READY);
    qtest_writeb(s, TIS_ACCESS(TIS_LOCTY), TPM_TIS_ACCESS_ACTIVE_LOCALITY);
}

static void tis_read_sts(QTestState *s)
{
    qtest_readl(s, TIS_STS(TIS_LOCTY));
}

static void tis_reset_established(QTestState *s)
{
    qtest_writel(s, TIS_STS(TIS_LOCTY), TPM_TIS_STS_RESET_ESTABLISHMENT_BIT);
}

static void tis_read_access(QTestState *s)
{
    qtest_readb(s, TIS_ACCESS(TIS_LOCTY));
}

static void tis_request_locality_0(QTestState *s)
{
    qtest_writeb(s, TIS_ACCESS(0), TPM_TIS_ACCESS_REQUEST_USE);
}

static void tis_read_int_status(QTestState *s)
{
    qtest_readl(s, TIS_REG(TIS_LOCTY, TPM_TIS_REG_INT_STATUS));
}

static void tis_read_did_vid(QTestState *s)
{
    qtest_readl(s, TIS_REG(0, TPM_TIS_REG_DID_VID));
}

static const TPMCmdAccess tis_accesses[] = {
    { "STS read", tis_read_sts },
    { "STS write, resetEstablishment", tis_reset_established },
    { "ACCESS read", tis_read_access },
    { "ACCESS write, requestUse of locality 0", tis_request_locality_0 },
    { "INT_STATUS read", tis_read_int_status },
    { "DID_VID read", tis_read_did_vid },
};

static void crb_start(QTestState *s, const uint8_t *cmd, size_t len)
{
    uint64_t caddr = qtest_readq(s, CRB_REG(A_CRB_CTRL_CMD_LADDR));

    qtest_writeb(s, CRB_REG(A_CRB_LOC_CTRL), 1);
    qtest_memwrite(s, caddr, cmd, len);
    qtest_writel(s, CRB_REG(A_CRB_CTRL_START), 1);
}

static bool crb_executing(QTestState *s)
{
    return qtest_readl(s, CRB_REG(A_CRB_CTRL_START)) & 1;
}

static void crb_finish(QTestState *s, uint8_t *rsp, size_t size)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    uint64_t raddr = qtest_readq(s, CRB_REG(A_CRB_CTRL_RSP_ADDR));

    while (crb_executing(s)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
    qtest_memread(s, raddr, rsp, size);
}

static void crb_read_loc_state(QTestState *s)
{
    qtest_readl(s, CRB_REG(A_CRB_LOC_STATE));
}

static void crb_request_locality(QTestState *s)
{
    qtest_writeb(s, CRB_REG(A_CRB_LOC_CTRL), 1);
}

static void crb_read_ctrl_sts(QTestState *s)
{
    qtest_readl(s, CRB_REG(A_CRB_CTRL_STS));
}

static void crb_read_ctrl_start(QTestState *s)
{
    qtest_readl(s, CRB_REG(A_CRB_CTRL_START));
}

static void crb_read_intf_id(QTestState *s)
{
    qtest_readl(s, CRB_REG(A_CRB_INTF_ID));
}

static const TPMCmdAccess crb_accesses[] = {
    { "LOC_STATE read", crb_read_loc_state },
    { "LOC_CTRL write, requestAccess", crb_request_locality },
    { "CTRL_STS read", crb_read_ctrl_sts },
    { "CTRL_START read", crb_read_ctrl_start },
    { "INTF_ID read", crb_read_intf_id },
};

static const TPMCmdNoWait no_wait[] = {
    { tpm_util_crb_transfer, crb_start, crb_executing, crb_finish,
      crb_accesses, ARRAY_SIZE(crb_accesses) },
    { tpm_tis_transfer, tis_start, tis_executing, tis_finish,
      tis_accesses, ARRAY_SIZE(tis_accesses) },
};

/*
 * No guest access waits for a command with the BQL held; for the TIS,
 * that includes resetting the TPM's established flag, which the backend
 * does after the command instead
 */
static void test_no_wait(const void *data)
{
    const TPMInterface *iface = data;
    QTestState *s = start_qemu(iface, "");

    tpm_util_startup(s, iface->tx);
    tpm_cmd_test_no_wait(s, &no_wait[iface - interfaces]);
    qtest_quit(s);
}

/*
 * A system reset while an RSA key is being made does not wait for it:
 * the TPM cancels the command (a TPM 2.0) or finishes it (a TPM 1.2
 * cannot cancel it) on its own and drops the response, and the TPM is
 * new afterwards.  Returns how long the reset took, the BQL held all
 * along, or -1 where the key was made before the test looked (the host's
 * scheduler held it back): that round shows nothing.
 */
static gint64 reset_executing(const TPMInterface *iface, bool tpm12)
{
    const TPMCmdNoWait *nw = &no_wait[iface - interfaces];
    QTestState *s = start_qemu(iface, tpm12 ? ",version=1.2" : "");
    uint8_t rsp[64], random[8];
    gint64 t;

    if (tpm12) {
        tpm_cmd_transfer(s, iface->tx, tpm12_startup_clear, TPM_STARTUP_SIZE,
                         rsp, sizeof(rsp), TPM_TAG_RSP_COMMAND, 0);
        /* A new TPM 1.2 has no endorsement key, and makes one */
        nw->start(s, tpm12_create_ek, tpm12_create_ek_size);
    } else {
        tpm_util_startup(s, iface->tx);
        nw->start(s, tpm2_create_primary_rsa2048,
                  tpm2_create_primary_rsa2048_size);
    }
    if (!nw->executing(s)) {
        g_test_message("the key was made before the test looked");
        qtest_quit(s);
        return -1;
    }
    t = g_get_monotonic_time();
    qtest_system_reset(s);
    t = g_get_monotonic_time() - t;

    qtest_qmp_assert_success(s, "{ 'execute': 'query-status' }");
    g_assert_false(nw->executing(s));
    if (tpm12) {
        g_assert_cmpuint(tpm_cmd_transfer(s, iface->tx, tpm12_startup_clear,
                                          TPM_STARTUP_SIZE, rsp, sizeof(rsp),
                                          TPM_TAG_RSP_COMMAND, 0),
                         ==, TPM_RSP_HDR_SIZE);
    } else {
        tpm_cmd_test_pcr_read_before_startup(s, iface->tx);
        tpm_cmd_transfer(s, iface->tx, tpm2_startup_clear, TPM_STARTUP_SIZE,
                         rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                         TPM_RC_SUCCESS);
        tpm_cmd_get_random(s, iface->tx, random, sizeof(random));
    }
    qtest_quit(s);
    return t;
}

/* A new TPM for each round: a TPM 1.2 makes its endorsement key once */
static void reset_executing_rounds(const TPMInterface *iface, bool tpm12)
{
    gint64 us[TPM_CMD_RESET_ROUNDS];
    size_t i, rounds;

    for (i = 0, rounds = 0; i < ARRAY_SIZE(us); rounds++) {
        g_assert_cmpuint(rounds, <, 2 * ARRAY_SIZE(us));
        us[i] = reset_executing(iface, tpm12);
        i += us[i] >= 0;
    }
    g_assert_cmpint(tpm_cmd_shortest_us(us, ARRAY_SIZE(us)), <=,
                    TPM_CMD_RESET_MAX_US);
}

static void test_reset_executing(const void *data)
{
    reset_executing_rounds(data, false);
}

static void test_reset_executing_tpm12(const void *data)
{
    reset_executing_rounds(data, true);
}

static void test_second_tpmdev(void)
{
    tpm_cmd_assert_qemu_refuses("-machine none "
                        "-tpmdev libtpms,id=a -tpmdev libtpms,id=b",
                        "Only one TPM is allowed");
}

static void test_second_libtpms(void)
{
    /* Without a tpmdev, vtpm-pci creates a libtpms backend of its own */
    if (!qtest_has_device("vtpm-pci")) {
        g_test_skip("no vtpm-pci in this QEMU");
        return;
    }
    tpm_cmd_assert_qemu_refuses("-machine q35 "
                        "-tpmdev libtpms,id=a -device vtpm-pci",
                        "only one libtpms TPM can exist per QEMU process");
}

/*
 * tpm-tis' debug register printed the interface's state to QEMU's
 * standard output at every read, a flood a guest could keep up for as
 * long as it liked (generic-fuzz-tpm-tis-libtpms wrote 2.4 GB of it in
 * 20 minutes); reads of it now print nothing
 */
static void test_tis_debug_quiet(void)
{
    g_autofree char *dir = g_dir_make_tmp("tpm-libtpms-test.XXXXXX", NULL);
    g_autofree char *out = g_build_filename(dir, "stdout", NULL);
    g_autofree char *contents = NULL;
    QTestState *s;
    gsize len;
    int i;

    s = qtest_initf("-machine q35 -tpmdev libtpms,id=dev "
                    "-device tpm-tis,tpmdev=dev >%s", out);
    for (i = 0; i < 100; i++) {
        qtest_readl(s, TPM_TIS_ADDR_BASE + TPM_TIS_REG_DEBUG);
    }
    qtest_quit(s);
    g_assert_true(g_file_get_contents(out, &contents, &len, NULL));
    g_assert_cmpstr(contents, ==, "");
    g_unlink(out);
    g_rmdir(dir);
}

static void add_interface_tests(const TPMInterface *iface)
{
    g_autofree char *tpm12 = NULL;
    g_autofree char *query = NULL;
    g_autofree char *migrate = NULL;
    g_autofree char *no_wait_path = NULL;
    g_autofree char *reset_path = NULL;
    g_autofree char *reset12_path = NULL;
    size_t i;

    if (!qtest_has_device(iface->device)) {
        return;
    }
    for (i = 0; i < tpm_cmd_tests_count; i++) {
        g_autofree char *path = g_strdup_printf("/tpm-libtpms/%s/%s",
                                                iface->name,
                                                tpm_cmd_tests[i].name);
        TPMTest *t = g_new(TPMTest, 1);

        t->iface = iface;
        t->cmd = &tpm_cmd_tests[i];
        qtest_add_data_func_full(path, t, test_cmd, g_free);
    }
    tpm12 = g_strdup_printf("/tpm-libtpms/%s/tpm-1.2", iface->name);
    qtest_add_data_func(tpm12, iface, test_tpm12);
    query = g_strdup_printf("/tpm-libtpms/%s/query-tpm", iface->name);
    qtest_add_data_func(query, iface, test_query_tpm);
    migrate = g_strdup_printf("/tpm-libtpms/%s/migrate", iface->name);
    qtest_add_data_func(migrate, iface, test_migrate);
    no_wait_path = g_strdup_printf("/tpm-libtpms/%s/no-wait", iface->name);
    qtest_add_data_func(no_wait_path, iface, test_no_wait);
    reset_path = g_strdup_printf("/tpm-libtpms/%s/reset-executing",
                                 iface->name);
    qtest_add_data_func(reset_path, iface, test_reset_executing);
    reset12_path = g_strdup_printf("/tpm-libtpms/%s/reset-executing/tpm-1.2",
                                   iface->name);
    qtest_add_data_func(reset12_path, iface, test_reset_executing_tpm12);
}

int main(int argc, char **argv)
{
    size_t i;

    g_test_init(&argc, &argv, NULL);

    for (i = 0; i < ARRAY_SIZE(interfaces); i++) {
        add_interface_tests(&interfaces[i]);
    }
    qtest_add_func("/tpm-libtpms/second-tpmdev", test_second_tpmdev);
    qtest_add_func("/tpm-libtpms/second-libtpms", test_second_libtpms);
    if (qtest_has_device("tpm-tis")) {
        qtest_add_func("/tpm-libtpms/tis/debug-quiet", test_tis_debug_quiet);
    }

    return g_test_run();
}
