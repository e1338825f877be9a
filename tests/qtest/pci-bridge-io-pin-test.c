/*
 * QTest testcase for PCI bridges whose I/O window is pinned (io-base,
 * io-size): pci-bridge on pc, pcie-root-port on q35
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "hw/pci/pci_regs.h"

#define BRIDGE_SLOT     5
#define DEV_SLOT        3       /* behind a pci-bridge (SHPC: 1 to 31) */
#define WINDOW          0x2000
#define WINDOW_SIZE     0x2000
#define TESTDEV_IO_SIZE 0x100   /* pci-testdev's I/O BAR */

typedef struct {
    const char *machine;
    const char *bridge;         /* the bridge's type and its options */
    int slot;                   /* a slot behind it */
} BridgeConfig;

static const BridgeConfig pci_bridge = {
    "pc", "pci-bridge,chassis_nr=1", DEV_SLOT
};
static const BridgeConfig root_port = {
    "q35", "pcie-root-port,chassis=1", 0
};

typedef struct {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *bridge;
} BridgeTest;

static void bridge_start(BridgeTest *t, const BridgeConfig *cfg,
                         const char *extra)
{
    t->qts = qtest_initf("-M %s -device %s,id=br,addr=%d.0,io-base=0x%x,"
                         "io-size=0x%x %s", cfg->machine, cfg->bridge,
                         BRIDGE_SLOT, WINDOW, WINDOW_SIZE, extra);
    t->bus = qpci_new_pc(t->qts, NULL);
    t->bridge = qpci_device_find(t->bus, QPCI_DEVFN(BRIDGE_SLOT, 0));
    g_assert_nonnull(t->bridge);
}

static void bridge_stop(BridgeTest *t)
{
    g_free(t->bridge);
    qpci_free_pc(t->bus);
    qtest_quit(t->qts);
}

/* The window's registers hold it, and the bridge decodes I/O */
static void assert_window(QPCIDevice *bridge)
{
    g_assert_cmphex(qpci_config_readb(bridge, PCI_IO_BASE), ==,
                    (WINDOW >> 8) | PCI_IO_RANGE_TYPE_16);
    g_assert_cmphex(qpci_config_readb(bridge, PCI_IO_LIMIT), ==,
                    ((WINDOW + WINDOW_SIZE - 1) >> 8 & 0xf0) |
                    PCI_IO_RANGE_TYPE_16);
    g_assert_cmphex(qpci_config_readl(bridge, PCI_IO_BASE_UPPER16), ==, 0);
    g_assert_true(qpci_config_readw(bridge, PCI_COMMAND) & PCI_COMMAND_IO);
}

/* How many times QEMU's log (-D @log) reports a guest's move of a window */
static int window_move_reports(const char *log)
{
    g_autofree char *text = NULL;
    const char *p;
    int n = 0;

    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    for (p = text; (p = strstr(p, "the I/O window is pinned at "
                               "0x2000-0x3fff: configuration write")); p++) {
        n++;
    }
    return n;
}

static void test_registers(const void *data)
{
    g_autofree char *log = NULL;
    g_autofree char *extra = NULL;
    BridgeTest t;
    uint16_t cmd, mem;
    int fd;

    fd = g_file_open_tmp("pci-bridge-io-pin-XXXXXX.log", &log, NULL);
    g_assert_cmpint(fd, >=, 0);
    close(fd);
    extra = g_strdup_printf("-d guest_errors -D %s", log);
    bridge_start(&t, data, extra);
    assert_window(t.bridge);
    mem = qpci_config_readw(t.bridge, PCI_MEMORY_BASE);

    /* Writes of every width that would move it, or turn decode off */
    qpci_config_writeb(t.bridge, PCI_IO_BASE, 0xc0);
    qpci_config_writeb(t.bridge, PCI_IO_LIMIT, 0xd0);
    assert_window(t.bridge);
    qpci_config_writew(t.bridge, PCI_IO_BASE, 0xd0c0);
    assert_window(t.bridge);
    qpci_config_writel(t.bridge, PCI_IO_BASE, 0x0000f0f0);
    assert_window(t.bridge);
    qpci_config_writew(t.bridge, PCI_IO_BASE_UPPER16, 0x0001);
    qpci_config_writew(t.bridge, PCI_IO_LIMIT_UPPER16, 0xffff);
    qpci_config_writeb(t.bridge, PCI_IO_BASE_UPPER16 + 1, 0x12);
    qpci_config_writel(t.bridge, PCI_IO_BASE_UPPER16, 0xffffffff);
    assert_window(t.bridge);
    cmd = qpci_config_readw(t.bridge, PCI_COMMAND);
    qpci_config_writew(t.bridge, PCI_COMMAND, 0);
    qpci_config_writeb(t.bridge, PCI_COMMAND, PCI_COMMAND_MEMORY);
    assert_window(t.bridge);
    g_assert_cmphex(qpci_config_readw(t.bridge, PCI_COMMAND), ==,
                    (cmd & PCI_COMMAND_IO) | PCI_COMMAND_MEMORY);

    /* The bridge's other registers are as writable as ever */
    qpci_config_writeb(t.bridge, PCI_SECONDARY_BUS, 1);
    g_assert_cmphex(qpci_config_readb(t.bridge, PCI_SECONDARY_BUS), ==, 1);
    qpci_config_writew(t.bridge, PCI_MEMORY_BASE, 0xfe00);
    g_assert_cmphex(qpci_config_readw(t.bridge, PCI_MEMORY_BASE), ==, 0xfe00);

    /* The first write that would move the window is logged, only it */
    g_assert_cmpint(window_move_reports(log), ==, 1);

    /* A system reset puts everything else back, and keeps the window */
    qtest_system_reset(t.qts);
    assert_window(t.bridge);
    g_assert_cmphex(qpci_config_readb(t.bridge, PCI_SECONDARY_BUS), ==, 0);
    g_assert_cmphex(qpci_config_readw(t.bridge, PCI_MEMORY_BASE), ==, mem);
    /* ... also across resets, which a guest may do at will */
    qpci_config_writew(t.bridge, PCI_COMMAND, 0);
    qpci_config_writeb(t.bridge, PCI_IO_LIMIT, 0xf0);
    qpci_config_writeb(t.bridge, PCI_IO_LIMIT, 0xe0);
    assert_window(t.bridge);
    g_assert_cmpint(window_move_reports(log), ==, 1);
    bridge_stop(&t);
    unlink(log);
}

/*
 * A pci-testdev behind the bridge: its I/O BAR (1) answers inside the
 * window and nowhere else.  Unclaimed ports read all-ones; pci-testdev
 * with no test selected reads 0.
 */
static void test_forwarding(const void *data)
{
    const BridgeConfig *cfg = data;
    BridgeTest t;
    QPCIDevice *dev;
    g_autofree char *extra = NULL;

    if (!qtest_has_device("pci-testdev")) {
        g_test_skip("no pci-testdev in this QEMU");
        return;
    }
    extra = g_strdup_printf("-device pci-testdev,bus=br,addr=%d.0",
                            cfg->slot);
    bridge_start(&t, cfg, extra);
    qpci_config_writeb(t.bridge, PCI_SECONDARY_BUS, 1);
    qpci_config_writeb(t.bridge, PCI_SUBORDINATE_BUS, 1);
    dev = qpci_device_find(t.bus, 1 << 8 | QPCI_DEVFN(cfg->slot, 0));
    g_assert_nonnull(dev);
    qpci_config_writew(dev, PCI_COMMAND, PCI_COMMAND_IO);

    qpci_config_writel(dev, PCI_BASE_ADDRESS_1, WINDOW + TESTDEV_IO_SIZE);
    g_assert_cmphex(qtest_inb(t.qts, WINDOW + TESTDEV_IO_SIZE), ==, 0);
    qpci_config_writel(dev, PCI_BASE_ADDRESS_1,
                       WINDOW + WINDOW_SIZE - TESTDEV_IO_SIZE);
    g_assert_cmphex(qtest_inb(t.qts, WINDOW + WINDOW_SIZE - 1), ==, 0);
    g_assert_cmphex(qtest_inb(t.qts, WINDOW + TESTDEV_IO_SIZE), ==, 0xff);

    /* Outside the window, the device cannot be reached */
    qpci_config_writel(dev, PCI_BASE_ADDRESS_1, WINDOW + WINDOW_SIZE);
    g_assert_cmphex(qtest_inb(t.qts, WINDOW + WINDOW_SIZE), ==, 0xff);
    qpci_config_writel(dev, PCI_BASE_ADDRESS_1, 0xc000);
    g_assert_cmphex(qtest_inb(t.qts, 0xc000), ==, 0xff);

    /* The guest cannot close the window either */
    qpci_config_writel(dev, PCI_BASE_ADDRESS_1, WINDOW);
    qpci_config_writew(t.bridge, PCI_COMMAND, 0);
    qpci_config_writel(t.bridge, PCI_IO_BASE, 0x00f0);
    g_assert_cmphex(qtest_inb(t.qts, WINDOW), ==, 0);
    g_free(dev);
    bridge_stop(&t);
}

/* device_add of @driver with @props (a JSON object) fails with @message */
static void assert_refused(QTestState *qts, const char *driver,
                           const char *props, const char *message)
{
    g_autoptr(QDict) args = qobject_to(QDict,
                                       qobject_from_json(props, &error_abort));
    QDict *rsp;
    const char *desc;

    qdict_put_str(args, "driver", driver);
    rsp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': %p}",
                    qobject_ref(args));
    g_assert_true(qdict_haskey(rsp, "error"));
    desc = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
    if (!strstr(desc, message)) {
        g_error("device_add %s %s: \"%s\", not \"%s\"", driver, props, desc,
                message);
    }
    qobject_unref(rsp);
}

static void test_invalid(void)
{
    QTestState *qts = qtest_initf("-M pc -device pci-bridge,id=br,"
                                  "chassis_nr=1,addr=%d.0,io-base=0x%x",
                                  BRIDGE_SLOT, WINDOW);

    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-size': 4096}",
                   "io-size needs io-base");
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 12800}",
                   "io-base 0x3200 and io-size 0x1000 must be multiples of "
                   "4 KiB");
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 12288, "
                   "'io-size': 2048}", "must be multiples of 4 KiB");
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 61440, "
                   "'io-size': 8192}", "does not fit in 0x0000-0xffff");
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 0}",
                   "ports 0x0000-0x0fff overlap the PC's DMA, PIC, PIT, "
                   "keyboard, RTC and other system ports (0x0000-0x00ff)");
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 45056}",
                   "ports 0xb000-0xbfff overlap the PC's ACPI power "
                   "management (OVMF on pc) ports (0xb000-0xb03f)");
    /* pc's ACPI PCI hotplug registers */
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 40960}",
                   "ports from 0xae00 are used by");
    /* The window of the first bridge, and one nested wrongly */
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'io-base': 8192}",
                   "ports 0x2000-0x2fff overlap ports 0x2000-0x2fff, pinned "
                   "by 'br'");
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'bus': 'br', "
                   "'io-base': 12288}", "ports 0x3000-0x3fff are outside "
                   "the I/O window 0x2000-0x2fff pinned on bridge 'br'");
    qtest_quit(qts);

    /* Behind a bridge whose window is not pinned */
    qts = qtest_initf("-M pc -device pci-bridge,id=free,chassis_nr=1,"
                      "addr=%d.0", BRIDGE_SLOT);
    assert_refused(qts, "pci-bridge", "{'chassis_nr': 2, 'bus': 'free', "
                   "'io-base': 8192}", "ports 0x2000-0x2fff are behind "
                   "bridge 'free', whose I/O window is not pinned");
    qtest_quit(qts);
}

/*
 * Nested two deep, and hot-plugged: a bridge plugged into the pinned one
 * pins a window inside it; unplugged, its ports are free for the next.
 */
static void test_nested_hotplug(void)
{
    QTestState *qts = qtest_initf("-M pc -device pci-bridge,id=br,"
                                  "chassis_nr=1,addr=%d.0,io-base=0x%x,"
                                  "io-size=0x%x", BRIDGE_SLOT, WINDOW,
                                  WINDOW_SIZE);
    QPCIBus *bus = qpci_new_pc(qts, NULL);
    QPCIDevice *hot;

    qtest_qmp_device_add(qts, "pci-bridge", "hot", "{'chassis_nr': 2, "
                         "'addr': %d, 'io-base': %d}",
                         QPCI_DEVFN(BRIDGE_SLOT + 1, 0), 0x4000);
    hot = qpci_device_find(bus, QPCI_DEVFN(BRIDGE_SLOT + 1, 0));
    g_assert_nonnull(hot);
    g_assert_cmphex(qpci_config_readb(hot, PCI_IO_BASE), ==, 0x40);
    g_assert_cmphex(qpci_config_readb(hot, PCI_IO_LIMIT), ==, 0x40);
    g_assert_true(qpci_config_readw(hot, PCI_COMMAND) & PCI_COMMAND_IO);
    qpci_unplug_acpi_device_test(qts, "hot", BRIDGE_SLOT + 1);
    g_free(hot);

    /* Its ports are free again: nested in "br" this time */
    qtest_qmp_device_add(qts, "pci-bridge", "inner", "{'chassis_nr': 3, "
                         "'bus': 'br', 'addr': %d, 'io-base': %d}",
                         QPCI_DEVFN(DEV_SLOT, 0), WINDOW + 0x1000);
    qtest_qmp_device_add(qts, "pci-bridge", "hot", "{'chassis_nr': 2, "
                         "'addr': %d, 'io-base': %d}",
                         QPCI_DEVFN(BRIDGE_SLOT + 1, 0), 0x4000);
    qpci_free_pc(bus);
    qtest_quit(qts);
}

/* Wait for the end of a migration on @s: its status must be @want */
static void migration_wait(QTestState *s, const char *want)
{
    const char *status;
    QDict *ev;

    for (;;) {
        ev = qtest_qmp_eventwait_ref(s, "MIGRATION");
        status = qdict_get_str(qdict_get_qdict(ev, "data"), "status");
        if (!strcmp(status, "completed") || !strcmp(status, "failed")) {
            g_assert_cmpstr(status, ==, want);
            qobject_unref(ev);
            return;
        }
        qobject_unref(ev);
    }
}

static QTestState *migration_start(const char *args)
{
    QTestState *s = qtest_init(args);

    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-set-capabilities',"
                             "  'arguments': { 'capabilities': [ {"
                             "  'capability': 'events', 'state': true } ] } }");
    return s;
}

/*
 * A migration stream carries the window: a destination whose window is
 * pinned elsewhere refuses it, and keeps its own; one pinned alike loads
 * it
 */
static void test_migration(void)
{
    g_autofree char *stream = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *args = NULL;
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *bridge;
    int fd;

    fd = g_file_open_tmp("pci-bridge-io-pin-XXXXXX.mig", &stream, NULL);
    g_assert_cmpint(fd, >=, 0);
    close(fd);
    uri = g_strdup_printf("file:%s", stream);
    args = g_strdup_printf("-M pc -device pci-bridge,id=br,chassis_nr=1,"
                           "addr=%d.0,io-base=0x%x,io-size=0x%x",
                           BRIDGE_SLOT, WINDOW, WINDOW_SIZE);

    s = migration_start(args);
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate',"
                             "  'arguments': { 'uri': %s } }", uri);
    migration_wait(s, "completed");
    qtest_quit(s);

    s = migration_start("-M pc -device pci-bridge,id=br,chassis_nr=1,"
                        "addr=5.0,io-base=0x4000 -incoming defer");
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "  'exit-on-error': false } }", uri);
    migration_wait(s, "failed");
    bus = qpci_new_pc(s, NULL);
    bridge = qpci_device_find(bus, QPCI_DEVFN(BRIDGE_SLOT, 0));
    g_assert_nonnull(bridge);
    g_assert_cmphex(qpci_config_readb(bridge, PCI_IO_BASE), ==, 0x40);
    g_assert_cmphex(qpci_config_readb(bridge, PCI_IO_LIMIT), ==, 0x40);
    g_free(bridge);
    qpci_free_pc(bus);
    qtest_quit(s);

    g_free(args);
    args = g_strdup_printf("-M pc -device pci-bridge,id=br,chassis_nr=1,"
                           "addr=%d.0,io-base=0x%x,io-size=0x%x "
                           "-incoming defer", BRIDGE_SLOT, WINDOW,
                           WINDOW_SIZE);
    s = migration_start(args);
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s } }", uri);
    migration_wait(s, "completed");
    qtest_quit(s);
    unlink(stream);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    if (qtest_has_device("pci-bridge")) {
        qtest_add_data_func("/pci-bridge-io-pin/pci-bridge/registers",
                            &pci_bridge, test_registers);
        qtest_add_data_func("/pci-bridge-io-pin/pci-bridge/forwarding",
                            &pci_bridge, test_forwarding);
        qtest_add_func("/pci-bridge-io-pin/pci-bridge/invalid",
                       test_invalid);
        qtest_add_func("/pci-bridge-io-pin/pci-bridge/nested-hotplug",
                       test_nested_hotplug);
        qtest_add_func("/pci-bridge-io-pin/pci-bridge/migration",
                       test_migration);
    }
    if (qtest_has_machine("q35") && qtest_has_device("pcie-root-port")) {
        qtest_add_data_func("/pci-bridge-io-pin/pcie-root-port/registers",
                            &root_port, test_registers);
        qtest_add_data_func("/pci-bridge-io-pin/pcie-root-port/forwarding",
                            &root_port, test_forwarding);
    }
    return g_test_run();
}
