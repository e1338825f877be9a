/*
 * QTest helpers for vtpm-pci: reach the card and move TPM commands
 *
 * The transfer function has the tx_func signature of tpm-util.h, so
 * QEMU's shared TPM tests can drive the card.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"
#include "vtpm-pci-util.h"

/* How long a command may take before the test gives up */
#define VTPM_PCI_TIMEOUT_US (60 * G_USEC_PER_SEC)

static void vtpm_pci_found(QPCIDevice *dev, int devfn, void *data)
{
    QPCIDevice **found = data;

    g_assert_null(*found);
    *found = dev;
}

/* The one vtpm-pci card on the PC's PCI bus; free it, and then @bus */
static QPCIDevice *vtpm_pci_find(QTestState *s, QPCIBus **bus)
{
    QPCIDevice *dev = NULL;

    *bus = qpci_new_pc(s, NULL);
    qpci_device_foreach(*bus, PCI_VENDOR_ID_REDHAT,
                        PCI_DEVICE_ID_REDHAT_VTPM, vtpm_pci_found, &dev);
    g_assert_nonnull(dev);
    return dev;
}

/*
 * The address of the card's BAR at configuration offset @reg (@mask: its
 * address bits).  If the BAR is not placed yet, place it at @where; let
 * the card decode it (@decode, in its command register).
 */
static uint32_t vtpm_pci_place(QTestState *s, uint8_t reg, uint32_t mask,
                               uint32_t where, uint16_t decode)
{
    QPCIBus *bus;
    QPCIDevice *dev = vtpm_pci_find(s, &bus);
    uint32_t bar = qpci_config_readl(dev, reg) & mask;
    uint16_t cmd = qpci_config_readw(dev, PCI_COMMAND);

    if (!bar) {
        bar = where;
        qpci_config_writel(dev, reg, bar);
    }
    if (!(cmd & decode)) {
        qpci_config_writew(dev, PCI_COMMAND, cmd | decode);
    }
    g_free(dev);
    qpci_free_pc(bus);
    return bar;
}

/*
 * The I/O base of the one vtpm-pci card on the PC's PCI bus.  If its BAR
 * is not placed yet, place it at VTPM_PCI_TEST_PORT; enable I/O decode.
 */
uint16_t vtpm_pci_port(QTestState *s)
{
    return vtpm_pci_place(s, PCI_BASE_ADDRESS_0,
                          (uint32_t)PCI_BASE_ADDRESS_IO_MASK,
                          VTPM_PCI_TEST_PORT, PCI_COMMAND_IO);
}

uint64_t vtpm_pci_buffer(QTestState *s)
{
    return vtpm_pci_place(s, PCI_BASE_ADDRESS_2,
                          (uint32_t)PCI_BASE_ADDRESS_MEM_MASK,
                          VTPM_PCI_TEST_BUFFER, PCI_COMMAND_MEMORY);
}

uint32_t vtpm_pci_state(QTestState *s, uint16_t port)
{
    return FIELD_EX32(qtest_inl(s, port + A_VTPM_STATUS), VTPM_STATUS,
                      STATE);
}

/* Poll STATUS until the command in flight has finished */
void vtpm_pci_wait_done(QTestState *s, uint16_t port)
{
    gint64 deadline = g_get_monotonic_time() + VTPM_PCI_TIMEOUT_US;

    while (vtpm_pci_state(s, port) == VTPM_STATE_EXECUTING) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
}

/* Write a command to DATA, four bytes at a time and the rest bytewise */
void vtpm_pci_write_command(QTestState *s, uint16_t port,
                            const unsigned char *req, size_t req_size)
{
    size_t i;

    for (i = 0; i + 4 <= req_size; i += 4) {
        qtest_outl(s, port + A_VTPM_DATA, ldl_le_p(req + i));
    }
    for (; i < req_size; i++) {
        qtest_outb(s, port + A_VTPM_DATA, req[i]);
    }
}

/*
 * Read the whole response (which returns the card to idle), keep up to
 * @rsp_size bytes of it; returns its length.
 */
size_t vtpm_pci_read_response(QTestState *s, uint16_t port,
                              unsigned char *rsp, size_t rsp_size)
{
    size_t len = qtest_inl(s, port + A_VTPM_RSP_SIZE);
    g_autofree unsigned char *buf = g_malloc(len);
    size_t i;

    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_COMPLETE);
    for (i = 0; i + 4 <= len; i += 4) {
        stl_le_p(buf + i, qtest_inl(s, port + A_VTPM_DATA));
    }
    for (; i < len; i++) {
        buf[i] = qtest_inb(s, port + A_VTPM_DATA);
    }
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    memcpy(rsp, buf, MIN(len, rsp_size));
    return len;
}

void vtpm_pci_transfer_at(QTestState *s, uint16_t port,
                          const unsigned char *req, size_t req_size,
                          unsigned char *rsp, size_t rsp_size)
{
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    vtpm_pci_write_command(s, port, req, req_size);
    g_assert_cmpuint(qtest_inl(s, port + A_VTPM_CMD_SIZE), ==, req_size);
    qtest_outl(s, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(s, port);
    vtpm_pci_read_response(s, port, rsp, rsp_size);
}

void vtpm_pci_transfer(QTestState *s,
                       const unsigned char *req, size_t req_size,
                       unsigned char *rsp, size_t rsp_size)
{
    vtpm_pci_transfer_at(s, vtpm_pci_port(s), req, req_size, rsp, rsp_size);
}

void vtpm_pci_buffer_transfer_at(QTestState *s, uint16_t port,
                                 uint64_t buffer,
                                 const unsigned char *req, size_t req_size,
                                 unsigned char *rsp, size_t rsp_size)
{
    uint32_t len;

    qtest_memwrite(s, buffer, req, req_size);
    qtest_outl(s, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_BUFFER_MASK);
    g_assert_cmpuint(qtest_inl(s, port + A_VTPM_ERROR), ==, VTPM_ERR_NONE);
    g_assert_cmpuint(qtest_inl(s, port + A_VTPM_CMD_SIZE), ==, req_size);
    vtpm_pci_wait_done(s, port);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_COMPLETE);
    len = qtest_inl(s, port + A_VTPM_RSP_SIZE);
    g_assert_cmpuint(len, >=, 10);
    g_assert_cmpuint(len, <=, VTPM_PCI_BUFFER_MAX);
    qtest_memread(s, buffer, rsp, MIN(len, rsp_size));
    /* The response stays there until the next command */
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_COMPLETE);
}

void vtpm_pci_buffer_transfer(QTestState *s,
                              const unsigned char *req, size_t req_size,
                              unsigned char *rsp, size_t rsp_size)
{
    vtpm_pci_buffer_transfer_at(s, vtpm_pci_port(s), vtpm_pci_buffer(s),
                                req, req_size, rsp, rsp_size);
}

/* Poll query-migrate until the migration ends; its status, and why */
static char *vtpm_pci_migration_end(QTestState *s, char **desc)
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

void vtpm_pci_migration_assert_end(QTestState *s, const char *status,
                                   const char *reason)
{
    g_autofree char *desc = NULL;
    g_autofree char *end = vtpm_pci_migration_end(s, &desc);

    g_assert_cmpstr(end, ==, status);
    if (reason) {
        g_assert_nonnull(desc);
        g_assert_nonnull(strstr(desc, reason));
    }
}

bool vtpm_pci_has_libtpms(void)
{
    static int has = -1;

    if (has < 0) {
        QTestState *s = qtest_init("-machine none");
        QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-tpm-types' }");
        QListEntry *e;

        has = 0;
        QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
            if (!strcmp(qstring_get_str(qobject_to(QString, e->value)),
                        "libtpms")) {
                has = 1;
            }
        }
        qobject_unref(rsp);
        qtest_quit(s);
    }
    return has;
}
