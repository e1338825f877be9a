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
#include "tpm-cmd-tests.h"

#define QEMU_TPM_ARGS \
    "-machine q35 -tpmdev libtpms,id=dev%s -device tpm-crb,tpmdev=dev"

static QTestState *start_qemu(const char *tpmdev_opts)
{
    return qtest_initf(QEMU_TPM_ARGS, tpmdev_opts);
}

/* Start QEMU with a TPM 2.0, run @test through the CRB, quit */
static void crb_test(const void *data)
{
    void (*test)(QTestState *s, tx_func *tx) = data;
    QTestState *s = start_qemu("");

    test(s, tpm_util_crb_transfer);
    qtest_quit(s);
}

static void test_tpm12(void)
{
    QTestState *s = start_qemu(",version=1.2");

    tpm_cmd_test_tpm12(s, tpm_util_crb_transfer);
    qtest_quit(s);
}

static void test_query_tpm(void)
{
    QTestState *s = start_qemu("");

    tpm_cmd_assert_query_tpm(s, "dev", "tpm-crb", "libtpms", "2.0");
    qtest_quit(s);
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_data_func("/tpm-crb-libtpms/pcr-read-before-startup",
                        tpm_cmd_test_pcr_read_before_startup, crb_test);
    qtest_add_data_func("/tpm-crb-libtpms/get-random",
                        tpm_cmd_test_get_random, crb_test);
    qtest_add_data_func("/tpm-crb-libtpms/get-capability",
                        tpm_cmd_test_get_capability, crb_test);
    qtest_add_data_func("/tpm-crb-libtpms/pcr-extend",
                        tpm_cmd_test_pcr_extend, crb_test);
    qtest_add_data_func("/tpm-crb-libtpms/reset", tpm_cmd_test_reset,
                        crb_test);
    qtest_add_func("/tpm-crb-libtpms/tpm-1.2", test_tpm12);
    qtest_add_func("/tpm-crb-libtpms/query-tpm", test_query_tpm);
    qtest_add_func("/tpm-crb-libtpms/second-tpmdev", test_second_tpmdev);
    qtest_add_func("/tpm-crb-libtpms/second-libtpms", test_second_libtpms);

    return g_test_run();
}
