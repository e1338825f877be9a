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

    tpm_cmd_assert_query_tpm(s, "dev", iface->device, "libtpms", "2.0");
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
                     rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS, TPM2_RC_SUCCESS);
    tpm_cmd_assert_pcr10_extended(dst, iface->tx);
    qtest_quit(dst);

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        g_autofree char *path = g_build_filename(dir, names[i], NULL);

        g_unlink(path);
    }
    g_rmdir(dir);
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

static void add_interface_tests(const TPMInterface *iface)
{
    g_autofree char *tpm12 = NULL;
    g_autofree char *query = NULL;
    g_autofree char *migrate = NULL;
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

    return g_test_run();
}
