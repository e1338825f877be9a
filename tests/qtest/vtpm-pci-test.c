/*
 * QTest testcase for vtpm-pci: PCI identity, the I/O BAR and its registers
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"

/* Where the tests plug the card, and ports they choose for its BAR */
#define VTPM_SLOT       4
#define PORT_A          0xc100
#define PORT_B          0xd040

typedef struct {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *dev;
} VTPMTest;

static void vtpm_start(VTPMTest *t, const char *machine)
{
    t->qts = qtest_initf("-M %s -device vtpm-pci,addr=%d.0", machine,
                         VTPM_SLOT);
    t->bus = qpci_new_pc(t->qts, NULL);
    t->dev = qpci_device_find(t->bus, QPCI_DEVFN(VTPM_SLOT, 0));
    g_assert(t->dev);
}

static void vtpm_stop(VTPMTest *t)
{
    g_free(t->dev);
    qpci_free_pc(t->bus);
    qtest_quit(t->qts);
}

/* Program BAR 0 with @port and enable I/O decode */
static QPCIBar vtpm_map_at(VTPMTest *t, uint16_t port)
{
    uint16_t cmd;

    qpci_config_writel(t->dev, PCI_BASE_ADDRESS_0, port);
    cmd = qpci_config_readw(t->dev, PCI_COMMAND);
    qpci_config_writew(t->dev, PCI_COMMAND, cmd | PCI_COMMAND_IO);
    return qpci_legacy_iomap(t->dev, port);
}

static uint32_t reg_read(VTPMTest *t, QPCIBar bar, uint32_t reg)
{
    return qpci_io_readl(t->dev, bar, reg);
}

static void reg_write(VTPMTest *t, QPCIBar bar, uint32_t reg, uint32_t val)
{
    qpci_io_writel(t->dev, bar, reg, val);
}

static void test_ids(const void *data)
{
    VTPMTest t;

    vtpm_start(&t, data);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_VENDOR_ID), ==,
                    VTPM_PCI_VENDOR_ID);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_DEVICE_ID), ==,
                    VTPM_PCI_DEVICE_ID);
    g_assert_cmphex(qpci_config_readb(t.dev, PCI_REVISION_ID), ==,
                    VTPM_PCI_REVISION);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_CLASS_DEVICE), ==,
                    VTPM_PCI_CLASS_CODE);
    g_assert_cmphex(qpci_config_readb(t.dev, PCI_CLASS_PROG), ==, 0);
    g_assert_cmphex(qpci_config_readb(t.dev, PCI_HEADER_TYPE), ==,
                    PCI_HEADER_TYPE_NORMAL);
    /* QEMU's defaults for devices that set no subsystem of their own */
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_SUBSYSTEM_VENDOR_ID), ==,
                    0x1af4);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_SUBSYSTEM_ID), ==, 0x1100);
    vtpm_stop(&t);
}

static void test_bar_sizing(const void *data)
{
    VTPMTest t;
    uint32_t bar;
    int i;

    vtpm_start(&t, data);

    qpci_config_writel(t.dev, PCI_BASE_ADDRESS_0, 0xffffffff);
    bar = qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0);
    g_assert_cmphex(bar & PCI_BASE_ADDRESS_SPACE, ==,
                    PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_cmphex(bar & 0x2, ==, 0);          /* reserved bit */
    /* I/O BARs decode 16 bits on PC: size from the low 16 bits */
    g_assert_cmphex((~(bar & PCI_BASE_ADDRESS_IO_MASK) + 1) & 0xffff, ==,
                    VTPM_PCI_BAR_SIZE);

    /* BARs 1 to 5 are not implemented: all-ones reads back as zero */
    for (i = 1; i < 6; i++) {
        uint8_t off = PCI_BASE_ADDRESS_0 + 4 * i;

        qpci_config_writel(t.dev, off, 0xffffffff);
        g_assert_cmphex(qpci_config_readl(t.dev, off), ==, 0);
    }
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_ROM_ADDRESS), ==, 0);
    vtpm_stop(&t);
}

static void test_bar_enumeration(const void *data)
{
    VTPMTest t;
    QPCIBar bar;
    uint64_t size;

    vtpm_start(&t, data);
    qpci_device_enable(t.dev);
    bar = qpci_iomap(t.dev, VTPM_PCI_BAR, &size);
    g_assert(bar.is_io);
    g_assert_cmpuint(size, ==, VTPM_PCI_BAR_SIZE);
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0) &
                    PCI_BASE_ADDRESS_IO_MASK, ==, bar.addr);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    vtpm_stop(&t);
}

static void test_bar_relocation(const void *data)
{
    VTPMTest t;
    QPCIBar a, b;

    vtpm_start(&t, data);
    g_assert_cmphex(qtest_inl(t.qts, PORT_A), ==, 0xffffffff);

    a = vtpm_map_at(&t, PORT_A);
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0), ==,
                    PORT_A | PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_cmphex(reg_read(&t, a, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    reg_write(&t, a, A_VTPM_SCRATCH, 0x12345678);

    b = vtpm_map_at(&t, PORT_B);
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0), ==,
                    PORT_B | PCI_BASE_ADDRESS_SPACE_IO);
    /* The old ports no longer decode: reads float to all-ones */
    g_assert_cmphex(reg_read(&t, a, A_VTPM_ID), ==, 0xffffffff);
    g_assert_cmphex(reg_read(&t, a, A_VTPM_SCRATCH), ==, 0xffffffff);
    /* The new ones reach the same registers */
    g_assert_cmphex(reg_read(&t, b, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    g_assert_cmphex(reg_read(&t, b, A_VTPM_SCRATCH), ==, 0x12345678);
    vtpm_stop(&t);
}

static void test_command_io(const void *data)
{
    VTPMTest t;
    QPCIBar bar;
    uint16_t cmd;

    vtpm_start(&t, data);
    bar = vtpm_map_at(&t, PORT_A);
    reg_write(&t, bar, A_VTPM_SCRATCH, 0xcafe);
    cmd = qpci_config_readw(t.dev, PCI_COMMAND);

    qpci_config_writew(t.dev, PCI_COMMAND, cmd & ~PCI_COMMAND_IO);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_ID), ==, 0xffffffff);
    reg_write(&t, bar, A_VTPM_SCRATCH, 0xdead);   /* must go nowhere */

    qpci_config_writew(t.dev, PCI_COMMAND, cmd | PCI_COMMAND_IO);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0xcafe);
    vtpm_stop(&t);
}

static void test_config_read_only(const void *data)
{
    static const struct {
        uint8_t offset;
        uint8_t width;
    } ro[] = {
        { PCI_VENDOR_ID, 2 }, { PCI_DEVICE_ID, 2 },
        { PCI_REVISION_ID, 1 }, { PCI_CLASS_PROG, 1 },
        { PCI_CLASS_DEVICE, 2 }, { PCI_HEADER_TYPE, 1 },
        { PCI_SUBSYSTEM_VENDOR_ID, 2 }, { PCI_SUBSYSTEM_ID, 2 },
        { PCI_INTERRUPT_PIN, 1 }, { PCI_CAPABILITY_LIST, 1 },
    };
    VTPMTest t;
    size_t i;

    vtpm_start(&t, data);
    for (i = 0; i < ARRAY_SIZE(ro); i++) {
        uint8_t off = ro[i].offset;

        if (ro[i].width == 1) {
            uint8_t before = qpci_config_readb(t.dev, off);

            qpci_config_writeb(t.dev, off, ~before);
            g_assert_cmphex(qpci_config_readb(t.dev, off), ==, before);
        } else {
            uint16_t before = qpci_config_readw(t.dev, off);

            qpci_config_writew(t.dev, off, ~before);
            g_assert_cmphex(qpci_config_readw(t.dev, off), ==, before);
        }
    }
    vtpm_stop(&t);
}

static void test_identification(const void *data)
{
    VTPMTest t;
    QPCIBar bar;
    uint32_t version;

    vtpm_start(&t, data);
    bar = vtpm_map_at(&t, PORT_A);

    g_assert_cmphex(reg_read(&t, bar, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    /* Byte by byte, the magic spells "VTPM" */
    g_assert_cmpint(qpci_io_readb(t.dev, bar, A_VTPM_ID + 0), ==, 'V');
    g_assert_cmpint(qpci_io_readb(t.dev, bar, A_VTPM_ID + 1), ==, 'T');
    g_assert_cmpint(qpci_io_readb(t.dev, bar, A_VTPM_ID + 2), ==, 'P');
    g_assert_cmpint(qpci_io_readb(t.dev, bar, A_VTPM_ID + 3), ==, 'M');
    g_assert_cmphex(qpci_io_readw(t.dev, bar, A_VTPM_ID + 2), ==,
                    'P' | 'M' << 8);

    version = reg_read(&t, bar, A_VTPM_VERSION);
    g_assert_cmpuint(FIELD_EX32(version, VTPM_VERSION, MAJOR), ==, 1);
    g_assert_cmpuint(FIELD_EX32(version, VTPM_VERSION, MINOR), ==, 0);

    /* Read-only registers ignore writes */
    reg_write(&t, bar, A_VTPM_ID, 0);
    reg_write(&t, bar, A_VTPM_VERSION, 0xffffffff);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_VERSION), ==, version);
    vtpm_stop(&t);
}

static void test_scratch(const void *data)
{
    VTPMTest t;
    QPCIBar bar;

    vtpm_start(&t, data);
    bar = vtpm_map_at(&t, PORT_A);

    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0);
    reg_write(&t, bar, A_VTPM_SCRATCH, 0xa5a55a5a);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0xa5a55a5a);

    /* Narrow accesses reach just their bytes */
    qpci_io_writeb(t.dev, bar, A_VTPM_SCRATCH + 1, 0x11);
    qpci_io_writew(t.dev, bar, A_VTPM_SCRATCH + 2, 0x3322);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0x3322115a);
    g_assert_cmphex(qpci_io_readb(t.dev, bar, A_VTPM_SCRATCH + 3), ==, 0x33);
    g_assert_cmphex(qpci_io_readw(t.dev, bar, A_VTPM_SCRATCH), ==, 0x115a);

    /* An access that straddles two registers reads all-ones, writes none */
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH + 2), ==, 0xffffffff);
    reg_write(&t, bar, A_VTPM_SCRATCH - 2, 0);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0x3322115a);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_VERSION), ==,
                    VTPM_PCI_VERSION_MAJOR << 16 | VTPM_PCI_VERSION_MINOR);

    /* Reserved offsets read as zero and ignore writes */
    reg_write(&t, bar, VTPM_PCI_BAR_SIZE - 4, 0xffffffff);
    g_assert_cmphex(reg_read(&t, bar, VTPM_PCI_BAR_SIZE - 4), ==, 0);

    /* System reset clears the scratch register along with the BAR */
    qtest_system_reset(t.qts);
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0), ==,
                    PCI_BASE_ADDRESS_SPACE_IO);
    bar = vtpm_map_at(&t, PORT_A);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0);
    vtpm_stop(&t);
}

static void add_tests(const char *machine)
{
    static const struct {
        const char *name;
        void (*fn)(const void *);
    } cases[] = {
        { "ids", test_ids },
        { "bar-sizing", test_bar_sizing },
        { "bar-enumeration", test_bar_enumeration },
        { "bar-relocation", test_bar_relocation },
        { "command-io", test_command_io },
        { "config-read-only", test_config_read_only },
        { "identification", test_identification },
        { "scratch", test_scratch },
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("vtpm-pci/%s/%s", machine,
                                                cases[i].name);

        qtest_add_data_func(path, machine, cases[i].fn);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    add_tests("pc");
    add_tests("q35");
    return g_test_run();
}
