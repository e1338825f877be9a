/*
 * QTest reproducers for what fuzzing vtpm-pci found
 *
 * Each test replays, through QEMU's own interfaces, an input that made a
 * fuzz target (tests/qtest/fuzz/vtpm_pci_fuzz.c) crash QEMU, so that
 * the bug cannot come back unnoticed.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qobject/qdict.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"
#include "tpm-util.h"
#include "vtpm-pci-util.h"

#define VTPM_ARGS   "-M q35 -m 32 -device vtpm-pci"

static char *tmp_dir;

/* Poll query-migrate until the migration ends; its status, and why */
static char *migration_end(QTestState *s, char **desc)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    for (;;) {
        QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-migrate' }");
        QDict *ret = qdict_get_qdict(rsp, "return");
        char *status = g_strdup(qdict_get_try_str(ret, "status"));

        if (!g_strcmp0(status, "completed") ||
            !g_strcmp0(status, "failed")) {
            *desc = g_strdup(qdict_get_try_str(ret, "error-desc"));
            qobject_unref(rsp);
            return status;
        }
        g_free(status);
        qobject_unref(rsp);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
}

static void migration_assert_end(QTestState *s, const char *status,
                                 const char *reason)
{
    g_autofree char *desc = NULL;
    g_autofree char *end = migration_end(s, &desc);

    g_assert_cmpstr(end, ==, status);
    if (reason) {
        g_assert_nonnull(desc);
        g_assert_nonnull(strstr(desc, reason));
    }
}

/*
 * Migrate a card to a file, change the byte at @offset in its copy of
 * the card's PCI configuration (followed in the stream by its interrupt
 * pins' states, a 32-bit word each) to @value, and check that a
 * destination refuses the stream for @reason and loads the original.
 */
static void stream_refused(unsigned offset, uint8_t value,
                           const char *reason)
{
    g_autofree char *stream = g_build_filename(tmp_dir, "stream", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    g_autofree char *img = NULL;
    const char *idstr = "/vtpm-pci";
    uint8_t rsp[32], old;
    char *config;
    gsize len;
    QTestState *s;
    uint16_t port;

    s = qtest_init(VTPM_ARGS);
    vtpm_pci_port(s);
    tpm_util_migrate(s, uri);
    migration_assert_end(s, "completed", NULL);
    qtest_quit(s);

    /* After the idstr: instance id, version, PCIDevice's version_id */
    g_assert_true(g_file_get_contents(stream, &img, &len, NULL));
    config = memmem(img, len, idstr, strlen(idstr));
    g_assert_nonnull(config);
    config += strlen(idstr) + 12;
    g_assert_cmpuint(config + PCI_CFG_SPACE_SIZE + 16 - img, <=, len);
    g_assert_cmpuint(ldl_le_p(config), ==,
                     VTPM_PCI_VENDOR_ID | VTPM_PCI_DEVICE_ID << 16);
    old = config[offset];
    config[offset] = value;
    g_assert_true(g_file_set_contents(stream, img, len, NULL));

    s = qtest_init(VTPM_ARGS " -incoming defer");
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "  'exit-on-error': false } }", uri);
    migration_assert_end(s, "failed", reason);
    qtest_quit(s);

    /* Unchanged, the same stream loads, and the card interrupts */
    config[offset] = old;
    g_assert_true(g_file_set_contents(stream, img, len, NULL));
    s = qtest_init(VTPM_ARGS " -incoming defer");
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s } }", uri);
    migration_assert_end(s, "completed", NULL);
    qtest_qmp_assert_success(s, "{ 'execute': 'cont' }");
    port = vtpm_pci_port(s);
    qtest_outl(s, port + A_VTPM_INT_ENABLE, R_VTPM_INT_ENABLE_COMPLETE_MASK);
    tpm_util_startup(s, vtpm_pci_transfer);
    vtpm_pci_transfer(s, (const uint8_t *)
                      "\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x7b\x00\x08",
                      12, rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);
    g_assert_cmpuint(qtest_inl(s, port + A_VTPM_INT_STATUS), ==,
                     R_VTPM_INT_STATUS_COMPLETE_MASK);
    qtest_quit(s);
    g_unlink(stream);
}

/*
 * vtpm-pci-migration-fuzz: a stream whose copy of the card's PCI
 * configuration names no interrupt pin loaded, and the next interrupt
 * hit an assertion in pci_irq_handler()
 */
static void test_stream_interrupt_pin(void)
{
    stream_refused(PCI_INTERRUPT_PIN, 0, "interrupt off INTA");
}

/*
 * The same target, before it restored the bus's state with the card's:
 * the card's interrupt line and the bus's count of it disagreed, and the
 * next reset hit an assertion in pcibus_reset_hold().  A stream can hold
 * the same disagreement, here INTB asserted, which the card never
 * drives and the bus never counted: the card refuses it.
 */
static void test_stream_interrupt_state(void)
{
    /* INTB's state, big-endian */
    stream_refused(PCI_CFG_SPACE_SIZE + 7, 1, "interrupt line disagrees");
}

/*
 * vtpm-pci-migration-fuzz: a stream in which the card had a response of
 * fewer bytes than a TPM response header, or one its buffer did not
 * hold, loaded.  The card refuses a stream whose buffer does not match
 * its state; here a card idle in the stream is made to hold a response.
 */
static void test_stream_buffer(void)
{
    /*
     * After the configuration: the interrupt pins' states (16), the
     * MSI-X table (one vector, 16) and pending bits (1), then the card's
     * state (32-bit, big-endian)
     */
    stream_refused(PCI_CFG_SPACE_SIZE + 16 + 16 + 1 + 3, VTPM_STATE_COMPLETE,
                   "buffer does not match the card's state");
}

int main(int argc, char **argv)
{
    int ret;

    tmp_dir = g_dir_make_tmp("fuzz-vtpm-pci.XXXXXX", NULL);
    g_assert_nonnull(tmp_dir);
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/vtpm-pci/fuzz/stream-interrupt-pin",
                   test_stream_interrupt_pin);
    qtest_add_func("/vtpm-pci/fuzz/stream-interrupt-state",
                   test_stream_interrupt_state);
    qtest_add_func("/vtpm-pci/fuzz/stream-buffer", test_stream_buffer);
    ret = g_test_run();
    g_rmdir(tmp_dir);
    g_free(tmp_dir);
    return ret;
}
