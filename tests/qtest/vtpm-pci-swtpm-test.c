/*
 * QTest testcase for vtpm-pci with swtpm behind it (-tpmdev emulator)
 *
 * QEMU's shared TPM tests, driven through the card's I/O ports.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qapi/qapi-types-sockets.h"
#include "hw/tpm/vtpm_pci.h"
#include "libqos/fw_cfg.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "tpm-cmd-tests.h"
#include "tpm-tests.h"
#include "tpm-util.h"
#include "vtpm-pci-util.h"

typedef struct TestState {
    char *src_tpm_path;
    char *dst_tpm_path;
    char *uri;
    const char *machine;
} TestState;

static void vtpm_pci_swtpm_test(const void *data)
{
    const TestState *ts = data;

    tpm_test_swtpm_test(ts->src_tpm_path, vtpm_pci_transfer, "vtpm-pci",
                        ts->machine);
}

static void vtpm_pci_swtpm_migration_test(const void *data)
{
    const TestState *ts = data;

    tpm_test_swtpm_migration_test(ts->src_tpm_path, ts->dst_tpm_path,
                                  ts->uri, vtpm_pci_transfer, "vtpm-pci",
                                  ts->machine);
}

typedef enum {
    MIGRATE_IN_FLIGHT,      /* the command still executing */
    MIGRATE_RESPONSE,       /* its response waiting */
    MIGRATE_HALF_READ,      /* its response partly read */
} MigratePoint;

/*
 * A command the guest started on the source is answered on the
 * destination: the card finishes it before its state is saved, and its
 * response, or what is left of it, migrates.
 */
static void migrate_command(const TestState *ts, MigratePoint point)
{
    static const uint8_t get_random[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b,
        0x00, 0x10,
    };
    QTestState *src, *dst;
    SocketAddress *src_addr = NULL, *dst_addr = NULL;
    GPid src_pid, dst_pid;
    GError *error = NULL;
    uint8_t rsp[64];
    uint16_t port;
    size_t done = 0;

    if (!tpm_util_swtpm_has_tpm2()) {
        g_test_skip("swtpm not in PATH or missing --tpm2 support");
        return;
    }
    g_assert_true(tpm_util_swtpm_start(ts->src_tpm_path, &src_pid,
                                       &src_addr, &error));
    g_assert_true(tpm_util_swtpm_start(ts->dst_tpm_path, &dst_pid,
                                       &dst_addr, &error));
    tpm_util_migration_start_qemu(&src, &dst, src_addr, dst_addr, ts->uri,
                                  "vtpm-pci", ts->machine);

    tpm_util_startup(src, vtpm_pci_transfer);
    port = vtpm_pci_port(src);
    vtpm_pci_write_command(src, port, get_random, sizeof(get_random));
    qtest_outl(src, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    if (point != MIGRATE_IN_FLIGHT) {
        vtpm_pci_wait_done(src, port);
    }
    if (point == MIGRATE_HALF_READ) {
        stl_le_p(rsp, qtest_inl(src, port + A_VTPM_DATA));
        done = 4;
    }

    tpm_util_migrate(src, ts->uri);
    tpm_util_wait_for_migration_complete(dst);

    /* The BAR migrated too: same port */
    g_assert_cmpuint(vtpm_pci_port(dst), ==, port);
    g_assert_cmpuint(vtpm_pci_state(dst, port), ==, VTPM_STATE_COMPLETE);
    g_assert_cmpuint(qtest_inl(dst, port + A_VTPM_RSP_SIZE), ==, 12 + 16);
    for (; done < 12 + 16; done += 4) {
        stl_le_p(rsp + done, qtest_inl(dst, port + A_VTPM_DATA));
    }
    g_assert_cmpuint(vtpm_pci_state(dst, port), ==, VTPM_STATE_IDLE);
    g_assert_cmphex(lduw_be_p(rsp), ==, 0x8001);
    g_assert_cmpuint(ldl_be_p(rsp + 2), ==, 12 + 16);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);
    g_assert_cmpuint(lduw_be_p(rsp + 10), ==, 16);

    /* ... and the destination takes the next command */
    tpm_util_pcrextend(dst, vtpm_pci_transfer);

    qtest_quit(dst);
    qtest_quit(src);
    tpm_util_swtpm_kill(dst_pid);
    g_unlink(dst_addr->u.q_unix.path);
    qapi_free_SocketAddress(dst_addr);
    tpm_util_swtpm_kill(src_pid);
    g_unlink(src_addr->u.q_unix.path);
    qapi_free_SocketAddress(src_addr);
}

static void vtpm_pci_migrate_in_flight_test(const void *data)
{
    migrate_command(data, MIGRATE_IN_FLIGHT);
}

static void vtpm_pci_migrate_response_test(const void *data)
{
    migrate_command(data, MIGRATE_RESPONSE);
}

static void vtpm_pci_migrate_half_read_test(const void *data)
{
    migrate_command(data, MIGRATE_HALF_READ);
}

/*
 * Whether firmware is told about a TPM: the fw_cfg file SeaBIOS and OVMF
 * read, and a TPM2 table among the ACPI tables.
 */
static void assert_platform_tpm(QTestState *s, bool described)
{
    QFWCFG *fw_cfg = pc_fw_cfg_init(s);
    g_autofree uint8_t *tables = NULL;
    uint8_t config[8];
    size_t len;

    g_assert_cmpuint(qfw_cfg_get_file(fw_cfg, "etc/tpm/config", config,
                                      sizeof(config)) != 0, ==, described);
    len = qfw_cfg_get_file(fw_cfg, "etc/acpi/tables", NULL, 0);
    g_assert_cmpuint(len, >, 0);
    tables = g_malloc(len);
    qfw_cfg_get_file(fw_cfg, "etc/acpi/tables", tables, len);
    g_assert_cmpuint(memmem(tables, len, "TPM2", 4) != NULL, ==, described);
    pc_fw_cfg_uninit(fw_cfg);
}

/*
 * Start QEMU with swtpm behind "-tpmdev emulator,id=dev" and @devices,
 * and check whether firmware is told of a platform TPM
 */
static void vtpm_pci_acpi_check(const TestState *ts, const char *devices,
                                bool described)
{
    SocketAddress *addr = NULL;
    GError *error = NULL;
    GPid pid;
    QTestState *s;

    if (!tpm_util_swtpm_has_tpm2()) {
        g_test_skip("swtpm not in PATH or missing --tpm2 support");
        return;
    }
    g_assert_true(tpm_util_swtpm_start(ts->src_tpm_path, &pid, &addr,
                                       &error));
    s = qtest_initf("-M q35 -chardev socket,id=chr,path=%s "
                    "-tpmdev emulator,id=dev,chardev=chr %s",
                    addr->u.q_unix.path, devices);
    assert_platform_tpm(s, described);
    qtest_quit(s);
    tpm_util_swtpm_kill(pid);
    g_unlink(addr->u.q_unix.path);
    qapi_free_SocketAddress(addr);
}

/* The card is found through PCI: firmware is told of no TPM for it */
static void vtpm_pci_acpi_alone_test(const void *data)
{
    vtpm_pci_acpi_check(data, "-device vtpm-pci,tpmdev=dev", false);
}

/*
 * Beside a tpm-crb, the card does not hide the CRB from firmware.  QEMU
 * takes one -tpmdev: the card brings its own TPM, which needs libtpms.
 */
static void vtpm_pci_acpi_beside_crb_test(const void *data)
{
    if (!vtpm_pci_has_libtpms()) {
        g_test_skip("QEMU without libtpms: the card has no TPM of its own");
        return;
    }
    vtpm_pci_acpi_check(data, "-device tpm-crb,tpmdev=dev -device vtpm-pci",
                        true);
}

/*
 * Without libtpms the card has no TPM of its own: it needs a tpmdev, and
 * says so, on the command line and to device_add
 */
static void vtpm_pci_no_libtpms_test(const void *data)
{
    static const char msg[] = "'tpmdev' property is required: this QEMU "
                              "was built without libtpms";
    QTestState *s;
    QDict *rsp;

    if (vtpm_pci_has_libtpms()) {
        g_test_skip("QEMU with libtpms: the card brings its own TPM");
        return;
    }
    tpm_cmd_assert_qemu_refuses("-M q35 -device vtpm-pci", msg);

    s = qtest_init("-M pc");
    rsp = qtest_qmp(s, "{ 'execute': 'device_add',"
                    "  'arguments': { 'driver': 'vtpm-pci', 'id': 'card' } }");
    g_assert_nonnull(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                          "desc"), msg));
    qobject_unref(rsp);
    /* ... and nothing is left behind: no backend, no card */
    rsp = qtest_qmp(s, "{ 'execute': 'query-tpm' }");
    g_assert_true(qlist_empty(qdict_get_qlist(rsp, "return")));
    qobject_unref(rsp);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    TestState pc = { .machine = "-M pc" }, q35 = { .machine = "-M q35" };
    TestState *all[] = { &pc, &q35 };
    size_t i;
    int ret;

    for (i = 0; i < ARRAY_SIZE(all); i++) {
        all[i]->src_tpm_path = g_dir_make_tmp("vtpm-pci-swtpm.XXXXXX", NULL);
        all[i]->dst_tpm_path = g_dir_make_tmp("vtpm-pci-swtpm.XXXXXX", NULL);
        all[i]->uri = g_strdup_printf("unix:%s/migsocket",
                                      all[i]->src_tpm_path);
    }

    module_call_init(MODULE_INIT_QOM);
    g_test_init(&argc, &argv, NULL);

    qtest_add_data_func("/vtpm-pci/swtpm/pc", &pc, vtpm_pci_swtpm_test);
    qtest_add_data_func("/vtpm-pci/swtpm/q35", &q35, vtpm_pci_swtpm_test);
    qtest_add_data_func("/vtpm-pci/swtpm-migration/pc", &pc,
                        vtpm_pci_swtpm_migration_test);
    qtest_add_data_func("/vtpm-pci/swtpm-migration/q35", &q35,
                        vtpm_pci_swtpm_migration_test);
    qtest_add_data_func("/vtpm-pci/swtpm-migration/command-in-flight", &q35,
                        vtpm_pci_migrate_in_flight_test);
    qtest_add_data_func("/vtpm-pci/swtpm-migration/response-pending", &q35,
                        vtpm_pci_migrate_response_test);
    qtest_add_data_func("/vtpm-pci/swtpm-migration/response-half-read", &q35,
                        vtpm_pci_migrate_half_read_test);
    qtest_add_data_func("/vtpm-pci/acpi/alone", &q35,
                        vtpm_pci_acpi_alone_test);
    qtest_add_data_func("/vtpm-pci/acpi/beside-tpm-crb", &q35,
                        vtpm_pci_acpi_beside_crb_test);
    qtest_add_data_func("/vtpm-pci/no-libtpms/tpmdev-required", &q35,
                        vtpm_pci_no_libtpms_test);
    ret = g_test_run();

    for (i = 0; i < ARRAY_SIZE(all); i++) {
        tpm_util_rmdir(all[i]->dst_tpm_path);
        g_free(all[i]->dst_tpm_path);
        tpm_util_rmdir(all[i]->src_tpm_path);
        g_free(all[i]->src_tpm_path);
        g_free(all[i]->uri);
    }
    return ret;
}
