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
#include "libqtest.h"
#include "qemu/module.h"
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
