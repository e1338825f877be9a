/*
 * QTest testcase for vtpm-pci: the PCI function, its registers, and the
 * TPM behind them (the embedded libtpms backend)
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "qemu/bswap.h"
#include "qobject/qdict.h"
#include "qobject/qnum.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"
#include "tpm-cmd-tests.h"
#include "vtpm-pci-util.h"

/* Where the tests plug the card, and ports they choose for its BAR */
#define VTPM_SLOT       4
#define PORT_A          0xc100
#define PORT_B          0xd040

/* TPM_PT_MAX_COMMAND_SIZE, TPM 2.0 Part 2, 6.13 */

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
                    PCI_VENDOR_ID_REDHAT);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_DEVICE_ID), ==,
                    PCI_DEVICE_ID_REDHAT_VTPM);
    g_assert_cmphex(qpci_config_readb(t.dev, PCI_REVISION_ID), ==,
                    VTPM_PCI_REVISION);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_CLASS_DEVICE), ==,
                    PCI_CLASS_CRYPT_OTHER);
    g_assert_cmphex(qpci_config_readb(t.dev, PCI_CLASS_PROG), ==, 0);
    g_assert_cmphex(qpci_config_readb(t.dev, PCI_HEADER_TYPE), ==,
                    PCI_HEADER_TYPE_NORMAL);
    /* QEMU's defaults for devices that set no subsystem of their own */
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_SUBSYSTEM_VENDOR_ID), ==,
                    PCI_SUBVENDOR_ID_REDHAT_QUMRANET);
    g_assert_cmphex(qpci_config_readw(t.dev, PCI_SUBSYSTEM_ID), ==, 0x1100);
    g_assert_cmpuint(qpci_config_readb(t.dev, PCI_INTERRUPT_PIN), ==, 1);
    g_assert_cmphex(qpci_find_capability(t.dev, PCI_CAP_ID_MSIX, 0), !=, 0);
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

    /* BAR 1: 4 KiB of 32-bit memory space, for the MSI-X table */
    qpci_config_writel(t.dev, PCI_BASE_ADDRESS_1, 0xffffffff);
    bar = qpci_config_readl(t.dev, PCI_BASE_ADDRESS_1);
    g_assert_cmphex(bar & PCI_BASE_ADDRESS_SPACE, ==,
                    PCI_BASE_ADDRESS_SPACE_MEMORY);
    g_assert_cmphex((uint32_t)(~(bar & PCI_BASE_ADDRESS_MEM_MASK) + 1), ==,
                    0x1000);

    /*
     * BAR 2: the buffer, 32-bit prefetchable memory, VTPM_PCI_BUFFER_MAX
     * bytes (a power of two)
     */
    qpci_config_writel(t.dev, PCI_BASE_ADDRESS_2, 0xffffffff);
    bar = qpci_config_readl(t.dev, PCI_BASE_ADDRESS_2);
    g_assert_cmphex(bar & ~PCI_BASE_ADDRESS_MEM_MASK, ==,
                    PCI_BASE_ADDRESS_SPACE_MEMORY |
                    PCI_BASE_ADDRESS_MEM_TYPE_32 |
                    PCI_BASE_ADDRESS_MEM_PREFETCH);
    g_assert_cmphex((uint32_t)(~(bar & PCI_BASE_ADDRESS_MEM_MASK) + 1), ==,
                    VTPM_PCI_BUFFER_MAX);

    /* BARs 3 to 5 are not implemented: all-ones reads back as zero */
    for (i = 3; i < 6; i++) {
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
    g_assert_cmpuint(FIELD_EX32(version, VTPM_VERSION, MINOR), ==, 1);

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
    /* Interface 1.1, as the spec gives it */
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_VERSION), ==, 0x00010001);

    /* Reserved offsets read as zero and ignore writes */
    reg_write(&t, bar, VTPM_PCI_BAR_SIZE - 4, 0xffffffff);
    g_assert_cmphex(reg_read(&t, bar, VTPM_PCI_BAR_SIZE - 4), ==, 0);
    g_assert_cmpuint(reg_read(&t, bar, A_VTPM_ERROR), ==, VTPM_ERR_ACCESS);

    /* System reset clears the scratch register along with the BAR */
    qtest_system_reset(t.qts);
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0), ==,
                    PCI_BASE_ADDRESS_SPACE_IO);
    bar = vtpm_map_at(&t, PORT_A);
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_SCRATCH), ==, 0);
    vtpm_stop(&t);
}

/*
 * The TPM behind the card.  Unless a test says otherwise, the card brings
 * its own TPM 2.0 (libtpms, in memory), and the helpers of vtpm-pci-util
 * place its BAR at VTPM_PCI_TEST_PORT.
 */

static uint32_t tpm_reg(QTestState *s, uint16_t port, uint32_t reg)
{
    return qtest_inl(s, port + reg);
}

static void tpm_control(QTestState *s, uint16_t port, uint32_t bit)
{
    qtest_outl(s, port + A_VTPM_CONTROL, bit);
}

static uint32_t tpm_error(QTestState *s, uint16_t port)
{
    return tpm_reg(s, port, A_VTPM_ERROR);
}

/* The card is idle, and a TPM2_GetRandom still works through it */
static void assert_tpm_works(QTestState *s, uint16_t port)
{
    uint8_t random[16];

    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    tpm_cmd_get_random(s, vtpm_pci_transfer, random, sizeof(random));
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_NONE);
}

/* Start QEMU with the card, TPM2_Startup the TPM; returns the port */
static uint16_t tpm_start(QTestState **s)
{
    *s = qtest_initf("-M q35 -device vtpm-pci,addr=%d.0", VTPM_SLOT);
    tpm_util_startup(*s, vtpm_pci_transfer);
    return vtpm_pci_port(*s);
}

/* Read the whole response of a finished command; returns its TPM rc */
static uint32_t finish_command(QTestState *s, uint16_t port)
{
    uint8_t rsp[VTPM_PCI_BUFFER_MAX];
    size_t len;

    vtpm_pci_wait_done(s, port);
    len = vtpm_pci_read_response(s, port, rsp, sizeof(rsp));
    g_assert_cmpuint(len, >=, TPM_RSP_HDR_SIZE);
    g_assert_cmpuint(ldl_be_p(rsp + 2), ==, len);
    return ldl_be_p(rsp + 6);
}

/*
 * Write and start a slow CreatePrimary; it is executing on return.  A key
 * takes from about 10 ms to a second, and the host's scheduler can hold
 * the test back between two accesses for longer (by up to 600 ms, seen
 * with the tests two at a time beside fuzzers): a key made before the
 * test looked is flushed, and another started, with a new salt, so a new
 * key that takes a time of its own.  Returns the command's length.
 */
static size_t start_long_command(QTestState *s, uint16_t port)
{
    uint8_t cmd[TPM_CMD_CREATE_PRIMARY_SALTED_SIZE];
    uint32_t salt;
    size_t len;

    for (salt = 0; salt < 8; salt++) {
        len = tpm_cmd_create_primary_salted(cmd, salt, 2048);
        vtpm_pci_write_command(s, port, cmd, len);
        tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
        if (vtpm_pci_state(s, port) == VTPM_STATE_EXECUTING) {
            return len;
        }
        g_test_message("key %u was made before the test looked", salt);
        g_assert_cmphex(finish_command(s, port), ==, TPM_RC_SUCCESS);
        tpm_cmd_flush(s, vtpm_pci_transfer, TPM2_TRANSIENT_FIRST);
    }
    g_assert_not_reached();
}

/* Run one of tpm-cmd-tests' checks through the card */
static void test_tpm_cmd(const void *data)
{
    const TPMCmdTest *cmd = data;
    QTestState *s = qtest_init("-M q35 -device vtpm-pci");

    cmd->check(s, vtpm_pci_transfer);
    qtest_quit(s);
}

/* The same, with poll-ns=0: every command completes in the main loop */
static void test_tpm_cmd_no_poll(const void *data)
{
    const TPMCmdTest *cmd = data;
    QTestState *s = qtest_init("-M q35 -device vtpm-pci,poll-ns=0");

    cmd->check(s, vtpm_pci_transfer);
    qtest_quit(s);
}

/*
 * A command longer than the longest poll (an RSA key generation) is
 * still executing when START returns, and completes later, with its
 * interrupt: the card's own TPM thread hands it back to the main loop.
 */
static void test_poll_long_command(void)
{
    QTestState *s = qtest_initf("-M q35 -device vtpm-pci,addr=%d.0,"
                                "poll-ns=%d", VTPM_SLOT,
                                VTPM_PCI_TEST_POLL_NS_MAX);
    uint16_t port;

    tpm_util_startup(s, vtpm_pci_transfer);
    port = vtpm_pci_port(s);
    qtest_outl(s, port + A_VTPM_INT_STATUS, R_VTPM_INT_STATUS_COMPLETE_MASK);
    qtest_outl(s, port + A_VTPM_INT_ENABLE, R_VTPM_INT_ENABLE_COMPLETE_MASK);
    start_long_command(s, port);
    g_assert_cmphex(tpm_reg(s, port, A_VTPM_INT_STATUS), ==, 0);

    g_assert_cmphex(finish_command(s, port), ==, 0);
    g_assert_cmphex(tpm_reg(s, port, A_VTPM_INT_STATUS), ==,
                    R_VTPM_INT_STATUS_COMPLETE_MASK);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

/*
 * No register access waits for a command with the BQL held: every
 * register, read and written (refused where the card is busy), while
 * RSA keys are made; with polling at its default, at its longest, and
 * off
 */
static uint16_t no_wait_port;

static void vtpm_no_wait_start(QTestState *s, const uint8_t *cmd, size_t len)
{
    vtpm_pci_write_command(s, no_wait_port, cmd, len);
    tpm_control(s, no_wait_port, R_VTPM_CONTROL_START_MASK);
}

static bool vtpm_no_wait_executing(QTestState *s)
{
    return vtpm_pci_state(s, no_wait_port) == VTPM_STATE_EXECUTING;
}

static void vtpm_no_wait_finish(QTestState *s, uint8_t *rsp, size_t size)
{
    uint32_t len;
    size_t i;

    vtpm_pci_wait_done(s, no_wait_port);
    /* What is left of it: a DATA read may have read some, an ABORT all */
    len = tpm_reg(s, no_wait_port, A_VTPM_RSP_SIZE);
    for (i = 0; vtpm_pci_state(s, no_wait_port) == VTPM_STATE_COMPLETE;
         i++) {
        uint8_t byte = qtest_inb(s, no_wait_port + A_VTPM_DATA);

        if (i < size) {
            rsp[i] = byte;
        }
    }
    g_assert_cmpuint(i, <=, len);
}

#define NO_WAIT_READ(reg)                                               \
    static void no_wait_read_##reg(QTestState *s)                       \
    {                                                                   \
        qtest_inl(s, no_wait_port + A_VTPM_##reg);                      \
    }
#define NO_WAIT_WRITE(reg, val)                                         \
    static void no_wait_write_##reg(QTestState *s)                      \
    {                                                                   \
        qtest_outl(s, no_wait_port + A_VTPM_##reg, val);                \
    }

NO_WAIT_READ(STATUS)
NO_WAIT_READ(CMD_SIZE)
NO_WAIT_READ(RSP_SIZE)
NO_WAIT_READ(INT_STATUS)
NO_WAIT_READ(ERROR)
NO_WAIT_READ(DATA)
NO_WAIT_WRITE(SCRATCH, 0x5a5a5a5a)
NO_WAIT_WRITE(INT_ENABLE, 0)
NO_WAIT_WRITE(LOCALITY, 1)
NO_WAIT_WRITE(DATA, 0)

static void no_wait_start(QTestState *s)
{
    tpm_control(s, no_wait_port, R_VTPM_CONTROL_START_MASK);
}

static void no_wait_query(QTestState *s)
{
    tpm_control(s, no_wait_port, R_VTPM_CONTROL_QUERY_MASK);
}

static void no_wait_abort(QTestState *s)
{
    tpm_control(s, no_wait_port, R_VTPM_CONTROL_ABORT_MASK);
}

static const TPMCmdAccess vtpm_no_wait_accesses[] = {
    { "STATUS read", no_wait_read_STATUS },
    { "CMD_SIZE read", no_wait_read_CMD_SIZE },
    { "RSP_SIZE read", no_wait_read_RSP_SIZE },
    { "INT_STATUS read", no_wait_read_INT_STATUS },
    { "ERROR read", no_wait_read_ERROR },
    { "DATA read", no_wait_read_DATA, true },
    { "SCRATCH write", no_wait_write_SCRATCH },
    { "INT_ENABLE write", no_wait_write_INT_ENABLE },
    { "LOCALITY write", no_wait_write_LOCALITY },
    { "DATA write", no_wait_write_DATA },
    { "CONTROL write, START", no_wait_start },
    { "CONTROL write, QUERY", no_wait_query },
    { "CONTROL write, ABORT", no_wait_abort, true },
};

static const TPMCmdNoWait vtpm_no_wait = {
    vtpm_pci_transfer, vtpm_no_wait_start, vtpm_no_wait_executing,
    vtpm_no_wait_finish, vtpm_no_wait_accesses,
    ARRAY_SIZE(vtpm_no_wait_accesses),
};

static void no_wait(unsigned poll_ns)
{
    QTestState *s = qtest_initf("-M q35 -device vtpm-pci,poll-ns=%u",
                                poll_ns);

    tpm_util_startup(s, vtpm_pci_transfer);
    no_wait_port = vtpm_pci_port(s);
    tpm_cmd_test_no_wait(s, &vtpm_no_wait);
    qtest_quit(s);
}

static void test_no_wait(void)
{
    no_wait(VTPM_PCI_TEST_POLL_NS_DEFAULT);
}

static void test_no_wait_poll_max(void)
{
    no_wait(VTPM_PCI_TEST_POLL_NS_MAX);
}

static void test_no_wait_no_poll(void)
{
    no_wait(0);
}

static void test_poll_invalid(void)
{
    tpm_cmd_assert_qemu_refuses("-M q35 -device vtpm-pci,poll-ns=1000001",
                                "poll-ns 1000001 is above the maximum, "
                                "1000000");
}

/*
 * Adaptive polling, as the spec describes it: a wait longer than the
 * poll but within the limit doubles it (from 4 us), one beyond the limit
 * halves it (below 4 us: 0), one the poll covered leaves it
 */
#define POLL_ADAPT_MIN_NS   4000

static int64_t poll_adapted(int64_t poll, int64_t max, int64_t waited)
{
    if (waited <= poll) {
        return poll;
    }
    if (waited > max) {
        return poll / 2 < POLL_ADAPT_MIN_NS ? 0 : poll / 2;
    }
    return MIN(max, MAX(poll * 2, POLL_ADAPT_MIN_NS));
}

/*
 * Replay the backend's trace of one poll's changes (@event: "waited N;
 * poll M" lines) against the rule above, from @start up to @max; returns
 * the last value, and in @low the lowest
 */
static int64_t poll_replay(char **lines, const char *event, int64_t max,
                           int64_t start, int64_t *low)
{
    int64_t poll = start;
    int n = 0;

    *low = start;
    for (; *lines; lines++) {
        const char *at = strstr(*lines, event);
        int64_t waited, now;

        if (!at) {
            continue;
        }
        at = strpbrk(at + strlen(event), "0123456789");
        g_assert_nonnull(at);
        waited = g_ascii_strtoll(at, (char **)&at, 10);
        at = strpbrk(at, "0123456789");
        g_assert_nonnull(at);
        now = g_ascii_strtoll(at, NULL, 10);
        g_assert_cmpint(now, ==, poll_adapted(poll, max, waited));
        *low = MIN(*low, now);
        poll = now;
        n++;
    }
    g_assert_cmpint(n, >, 0);
    return poll;
}

/*
 * Both polls adapt (tpm_backend_set_poll()): the START write's to how
 * long the TPM takes to answer, the TPM thread's to how long the next
 * command takes to come.  RSA keys, each far longer than poll-ns, cut
 * the START poll to what the short commands between them take (a
 * FlushContext: tens of microseconds, where poll-ns is 1 ms), and it
 * stays on for short commands; commands 20 ms apart, five times the
 * thread's limit, turn the thread's poll off.  Each change the backend
 * traces follows the rule.
 */
static void test_poll_adapts(void)
{
    const int64_t max = VTPM_PCI_TEST_POLL_NS_MAX;
    g_autofree char *dir = g_dir_make_tmp("vtpm-pci-poll-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(dir, "trace.log", NULL);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    uint8_t cmd[TPM_CMD_CREATE_PRIMARY_SALTED_SIZE], rsp[1024];
    QTestState *s;
    int64_t low;
    int i;

    s = qtest_initf("-M q35 -device vtpm-pci,poll-ns=%" PRId64 " "
                    "-d trace:tpm_backend_start_poll,"
                    "trace:tpm_backend_idle_poll -D %s", max, log);
    tpm_util_startup(s, vtpm_pci_transfer);
    for (i = 1; i <= 10; i++) {
        size_t len = tpm_cmd_create_primary_salted(cmd, i, 2048);

        /* TPM_ST_SESSIONS: CreatePrimary answers with an auth area */
        tpm_cmd_transfer(s, vtpm_pci_transfer, cmd, len, rsp, sizeof(rsp),
                         0x8002, TPM_RC_SUCCESS);
        tpm_cmd_flush(s, vtpm_pci_transfer, ldl_be_p(rsp + 10));
    }
    for (i = 0; i < 10; i++) {
        tpm_cmd_get_random(s, vtpm_pci_transfer, rsp, 32);
    }
    /* A guest that sends a command now and then: the workload, not a wait */
    for (i = 0; i < 12; i++) {
        g_usleep(20 * 1000);
        tpm_cmd_get_random(s, vtpm_pci_transfer, rsp, 8);
    }
    qtest_quit(s);

    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    /* START: cut by the keys, on for the short commands */
    g_assert_cmpint(poll_replay(lines, "tpm_backend_start_poll", max, max,
                                &low), >, 0);
    g_assert_cmpint(low, <=, max / 4);
    /* The thread: off after the commands that came seldom */
    g_assert_cmpint(poll_replay(lines, "tpm_backend_idle_poll", 4 * max,
                                4 * max, &low), ==, 0);
    g_unlink(log);
    g_rmdir(dir);
}

static void test_tpm_selftest(void)
{
    /* TPM2_SelfTest(fullTest = YES) */
    static const uint8_t req[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x01, 0x43, 0x01,
    };
    uint8_t rsp[TPM_RSP_HDR_SIZE];
    QTestState *s;

    tpm_start(&s);
    g_assert_cmpuint(tpm_cmd_transfer(s, vtpm_pci_transfer, req, sizeof(req),
                                      rsp, sizeof(rsp), TPM2_ST_NO_SESSIONS,
                                      TPM_RC_SUCCESS),
                     ==, TPM_RSP_HDR_SIZE);
    qtest_quit(s);
}

static void test_tpm_status(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);
    uint32_t status = tpm_reg(s, port, A_VTPM_STATUS);

    g_assert_cmpuint(FIELD_EX32(status, VTPM_STATUS, STATE), ==,
                     VTPM_STATE_IDLE);
    g_assert_cmpuint(FIELD_EX32(status, VTPM_STATUS, ERROR), ==, 0);
    g_assert_cmpuint(FIELD_EX32(status, VTPM_STATUS, FAMILY), ==,
                     VTPM_FAMILY_TPM20);
    /* The card holds the largest command its TPM takes */
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_BUF_SIZE), ==,
                     MIN(tpm_cmd_get_property(s, vtpm_pci_transfer,
                                              TPM2_PT_MAX_COMMAND_SIZE),
                         VTPM_PCI_BUFFER_MAX));
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_LOCALITY), ==, 0);
    qtest_quit(s);
}

static void test_tpm12(void)
{
    QTestState *s = qtest_init("-M q35 -tpmdev libtpms,id=t,version=1.2 "
                               "-device vtpm-pci,tpmdev=t");
    uint16_t port = vtpm_pci_port(s);

    g_assert_cmpuint(FIELD_EX32(tpm_reg(s, port, A_VTPM_STATUS),
                                VTPM_STATUS, FAMILY), ==, VTPM_FAMILY_TPM12);
    tpm_cmd_test_tpm12(s, vtpm_pci_transfer);
    qtest_quit(s);
}

static void test_query_tpm(void)
{
    QTestState *s = qtest_init("-M q35 -device vtpm-pci,id=card");

    g_autofree char *info = NULL;

    /* The card's own backend takes its name from the card's */
    tpm_cmd_assert_query_tpm(s, "card-tpm", "vtpm-pci", "libtpms", "v2-0");
    info = qtest_hmp(s, "info tpm");
    g_assert_nonnull(strstr(info, "model=vtpm-pci"));
    g_assert_nonnull(strstr(info, "card-tpm: type=libtpms,version=2.0"));
    qtest_quit(s);
}

static void test_second_libtpms(void)
{
    tpm_cmd_assert_qemu_refuses("-M q35 -device vtpm-pci -device vtpm-pci",
                                "only one libtpms TPM can exist per QEMU "
                                "process");
}

static void test_bad_data_read_idle(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);

    g_assert_cmphex(qtest_inl(s, port + A_VTPM_DATA), ==, 0xffffffff);
    g_assert_cmphex(qtest_inb(s, port + A_VTPM_DATA), ==, 0xff);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(FIELD_EX32(tpm_reg(s, port, A_VTPM_STATUS),
                                VTPM_STATUS, ERROR), ==, 1);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_bad_data_write_executing(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);

    size_t len = start_long_command(s, port);

    qtest_outb(s, port + A_VTPM_DATA, 0x55);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_CMD_SIZE), ==, len);
    g_assert_cmphex(finish_command(s, port), ==, TPM_RC_SUCCESS);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_bad_overflow(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);
    uint32_t size = tpm_reg(s, port, A_VTPM_BUF_SIZE);
    g_autofree uint8_t *cmd = g_malloc0(size + 1);

    /* A GetRandom header claiming one byte more than fits */
    stw_be_p(cmd, TPM2_ST_NO_SESSIONS);
    stl_be_p(cmd + 2, size + 1);
    stl_be_p(cmd + 6, 0x17b);
    vtpm_pci_write_command(s, port, cmd, size);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_NONE);
    qtest_outb(s, port + A_VTPM_DATA, 0);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_OVERFLOW);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_CMD_SIZE), ==, size);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_RECEIVING);

    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_OVERFLOW);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_CMD_SIZE), ==, 0);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

/* Write @len bytes of a header claiming @size, START: it must be refused */
static void assert_length_refused(QTestState *s, uint16_t port,
                                  uint32_t size, size_t len)
{
    uint8_t cmd[16] = { 0x80, 0x01 };

    g_assert_cmpuint(len, <=, sizeof(cmd));
    stl_be_p(cmd + 2, size);
    stl_be_p(cmd + 6, 0x17b);                   /* TPM2_CC_GetRandom */
    vtpm_pci_write_command(s, port, cmd, len);
    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_LENGTH);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
}

static void test_bad_lengths(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);

    /* Header size larger than the buffer */
    assert_length_refused(s, port, VTPM_PCI_BUFFER_MAX * 2, 12);
    assert_tpm_works(s, port);
    /* Fewer bytes than a header */
    assert_length_refused(s, port, 8, 8);
    assert_tpm_works(s, port);
    /* Header size different from the bytes written, both ways */
    assert_length_refused(s, port, 12, 14);
    assert_length_refused(s, port, 14, 12);
    assert_tpm_works(s, port);
    /* START with nothing written */
    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_LENGTH);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_bad_start_twice(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);

    start_long_command(s, port);
    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    g_assert_cmphex(finish_command(s, port), ==, TPM_RC_SUCCESS);
    /* One command, one response: nothing more to read */
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_DATA), ==, 0xffffffff);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_bad_read_past_end(void)
{
    /* TPM2_SelfTest(fullTest = NO): a 10-byte response */
    static const uint8_t req[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x01, 0x43, 0x00,
    };
    QTestState *s;
    uint16_t port = tpm_start(&s);
    uint32_t last;

    vtpm_pci_write_command(s, port, req, sizeof(req));
    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(s, port);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_RSP_SIZE), ==, 10);

    /* tag and size, then code in bytes 6-9 */
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_DATA), ==, 0x00000180);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_DATA), ==, 0x00000a00);
    /* The last 2 bytes, then 2 past the end that read as ones */
    last = qtest_inl(s, port + A_VTPM_DATA);
    g_assert_cmphex(last, ==, 0xffff0000);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_UNDERRUN);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    /* Nothing more to read */
    g_assert_cmphex(qtest_inw(s, port + A_VTPM_DATA), ==, 0xffff);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_cancel_idle(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);

    tpm_control(s, port, R_VTPM_CONTROL_CANCEL_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_cancel_executing(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);
    uint32_t rc;

    start_long_command(s, port);
    tpm_control(s, port, R_VTPM_CONTROL_CANCEL_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_NONE);
    /* Either the TPM gave up, or it had finished before it saw the cancel */
    rc = finish_command(s, port);
    g_assert_true(rc == TPM_RC_CANCELED || rc == TPM_RC_SUCCESS);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_bad_accesses(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);

    /* A 2-byte write to CONTROL starts nothing */
    vtpm_pci_write_command(s, port, (const uint8_t *)"\x80\x01", 2);
    qtest_outw(s, port + A_VTPM_CONTROL, R_VTPM_CONTROL_ABORT_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_ACCESS);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_RECEIVING);
    tpm_control(s, port, R_VTPM_CONTROL_ABORT_MASK);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_NONE);

    /* DATA only at its own offset */
    g_assert_cmphex(qtest_inb(s, port + A_VTPM_DATA + 1), ==, 0xff);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_ACCESS);
    qtest_outb(s, port + A_VTPM_DATA + 2, 0x80);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);

    /* An unaligned read across STATUS and CONTROL */
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_STATUS + 2), ==, 0xffffffff);

    /* CONTROL takes exactly one bit */
    tpm_control(s, port, R_VTPM_CONTROL_START_MASK |
                R_VTPM_CONTROL_CANCEL_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_VALUE);
    tpm_control(s, port, 0);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_VALUE);

    /* Reserved offsets, and the first port past the block */
    g_assert_cmphex(qtest_inl(s, port + 0x38), ==, 0);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_ACCESS);
    g_assert_cmphex(qtest_inl(s, port + VTPM_PCI_BAR_SIZE), ==, 0xffffffff);

    /* Read-only registers */
    qtest_outl(s, port + A_VTPM_RSP_SIZE, 5);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_RSP_SIZE), ==, 0);

    /* LOCALITY: 0 to 3, and not in the middle of a command */
    qtest_outl(s, port + A_VTPM_LOCALITY, 4);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_VALUE);
    qtest_outl(s, port + A_VTPM_LOCALITY, 2);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_LOCALITY), ==, 2);
    qtest_outb(s, port + A_VTPM_DATA, 0x80);
    qtest_outl(s, port + A_VTPM_LOCALITY, 0);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_LOCALITY), ==, 2);
    tpm_control(s, port, R_VTPM_CONTROL_ABORT_MASK);
    qtest_outl(s, port + A_VTPM_LOCALITY, 0);

    /* ABORT while executing is refused: CANCEL is the way */
    start_long_command(s, port);
    tpm_control(s, port, R_VTPM_CONTROL_ABORT_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    g_assert_cmphex(finish_command(s, port), ==, TPM_RC_SUCCESS);

    assert_tpm_works(s, port);
    qtest_quit(s);
}

static void test_reset_mid_command(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);
    uint8_t rsp[64];

    start_long_command(s, port);
    qtest_outl(s, port + A_VTPM_INT_ENABLE, 1);
    qtest_system_reset(s);

    port = vtpm_pci_port(s);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_INT_ENABLE), ==, 0);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_INT_STATUS), ==, 0);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_CMD_SIZE), ==, 0);
    /* The TPM was reset too: it wants TPM2_Startup again */
    tpm_cmd_test_pcr_read_before_startup(s, vtpm_pci_transfer);
    tpm_util_startup(s, vtpm_pci_transfer);
    tpm_cmd_get_random(s, vtpm_pci_transfer, rsp, 8);
    qtest_quit(s);
}

static void test_io_disabled_mid_command(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);
    QPCIBus *bus = qpci_new_pc(s, NULL);
    QPCIDevice *dev = qpci_device_find(bus, QPCI_DEVFN(VTPM_SLOT, 0));
    uint16_t cmd = qpci_config_readw(dev, PCI_COMMAND);

    g_assert_cmphex(qpci_config_readw(dev, PCI_VENDOR_ID), ==,
                    PCI_VENDOR_ID_REDHAT);
    start_long_command(s, port);
    qpci_config_writew(dev, PCI_COMMAND, cmd & ~PCI_COMMAND_IO);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_STATUS), ==, 0xffffffff);
    qpci_config_writew(dev, PCI_COMMAND, cmd);
    g_assert_cmphex(finish_command(s, port), ==, TPM_RC_SUCCESS);
    assert_tpm_works(s, port);

    g_free(dev);
    qpci_free_pc(bus);
    qtest_quit(s);
}

/* Run GetRandom by hand, leaving INT_STATUS as the completion left it */
static void run_command(QTestState *s, uint16_t port)
{
    static const uint8_t get_random[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b,
        0x00, 0x08,
    };

    vtpm_pci_write_command(s, port, get_random, sizeof(get_random));
    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    g_assert_cmphex(finish_command(s, port), ==, TPM_RC_SUCCESS);
}

static void test_interrupts(void)
{
    QTestState *s;
    uint16_t port = tpm_start(&s);
    QPCIBus *bus = qpci_new_pc(s, NULL);
    QPCIDevice *dev = qpci_device_find(bus, QPCI_DEVFN(VTPM_SLOT, 0));
    uint64_t entry;

#define INTX_ASSERTED() \
    (qpci_config_readw(dev, PCI_STATUS) & PCI_STATUS_INTERRUPT)

    /* Polling: completion is recorded, but no interrupt is raised */
    run_command(s, port);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_INT_STATUS), ==,
                     R_VTPM_INT_STATUS_COMPLETE_MASK);
    g_assert_false(INTX_ASSERTED());
    qtest_outl(s, port + A_VTPM_INT_STATUS, R_VTPM_INT_STATUS_COMPLETE_MASK);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_INT_STATUS), ==, 0);

    /* INTx: raised on completion, held until written back */
    qtest_outl(s, port + A_VTPM_INT_ENABLE, R_VTPM_INT_ENABLE_COMPLETE_MASK);
    g_assert_false(INTX_ASSERTED());
    run_command(s, port);
    g_assert_true(INTX_ASSERTED());
    qtest_outl(s, port + A_VTPM_INT_STATUS, R_VTPM_INT_STATUS_COMPLETE_MASK);
    g_assert_false(INTX_ASSERTED());
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_INT_STATUS), ==, 0);

    /* Enabling with a completion pending raises it at once */
    qtest_outl(s, port + A_VTPM_INT_ENABLE, 0);
    run_command(s, port);
    g_assert_false(INTX_ASSERTED());
    qtest_outl(s, port + A_VTPM_INT_ENABLE, R_VTPM_INT_ENABLE_COMPLETE_MASK);
    g_assert_true(INTX_ASSERTED());
    qtest_outl(s, port + A_VTPM_INT_STATUS, R_VTPM_INT_STATUS_COMPLETE_MASK);

    /* MSI-X, with the vector masked so that it shows as pending */
    qpci_device_enable(dev);
    qpci_msix_enable(dev);
    entry = dev->msix_table_off + 0 * PCI_MSIX_ENTRY_SIZE;
    qpci_io_writel(dev, dev->msix_table_bar,
                   entry + PCI_MSIX_ENTRY_VECTOR_CTRL,
                   PCI_MSIX_ENTRY_CTRL_MASKBIT);
    g_assert_true(qpci_msix_masked(dev, 0));
    g_assert_false(qpci_msix_pending(dev, 0));
    run_command(s, port);
    g_assert_true(qpci_msix_pending(dev, 0));
    g_assert_false(INTX_ASSERTED());
    /* Unmasking delivers it */
    qpci_io_writel(dev, dev->msix_table_bar,
                   entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    g_assert_false(qpci_msix_pending(dev, 0));
    qtest_outl(s, port + A_VTPM_INT_STATUS, R_VTPM_INT_STATUS_COMPLETE_MASK);
    qpci_msix_disable(dev);
#undef INTX_ASSERTED

    g_free(dev);
    qpci_free_pc(bus);
    qtest_quit(s);
}

/* Run CONTROL.QUERY to its end; returns STATUS */
static uint32_t query_flags(QTestState *s, uint16_t port)
{
    qtest_outl(s, port + A_VTPM_INT_STATUS, R_VTPM_INT_STATUS_COMPLETE_MASK);
    tpm_control(s, port, R_VTPM_CONTROL_QUERY_MASK);
    vtpm_pci_wait_done(s, port);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(tpm_reg(s, port, A_VTPM_INT_STATUS), ==,
                     R_VTPM_INT_STATUS_COMPLETE_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_NONE);
    return tpm_reg(s, port, A_VTPM_STATUS);
}

/* Send a TPM 2.0 command authorized with an empty password */
static void tpm2_send_pw(QTestState *s, const uint8_t *req, size_t len)
{
    uint8_t rsp[64];

    tpm_cmd_transfer(s, vtpm_pci_transfer, req, len, rsp, sizeof(rsp),
                     0x8002, TPM_RC_SUCCESS);
}

static void test_flags_tpm2(void)
{
    /* TPM2_HierarchyChangeAuth(TPM_RH_OWNER, newAuth = "abcd") */
    static const uint8_t change_auth[] = {
        0x80, 0x02, 0x00, 0x00, 0x00, 0x21, 0x00, 0x00, 0x01, 0x29,
        0x40, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x09,
        0x40, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x04, 'a', 'b', 'c', 'd',
    };
    /* TPM2_HierarchyControl(TPM_RH_PLATFORM, TPM_RH_OWNER, NO) */
    static const uint8_t disable_owner[] = {
        0x80, 0x02, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x01, 0x21,
        0x40, 0x00, 0x00, 0x0c,
        0x00, 0x00, 0x00, 0x09,
        0x40, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x40, 0x00, 0x00, 0x01, 0x00,
    };
    QTestState *s = qtest_initf("-M q35 -device vtpm-pci,addr=%d.0",
                                VTPM_SLOT);
    uint16_t port = vtpm_pci_port(s);
    uint32_t st;

    /* Before TPM2_Startup the TPM answers nothing: no flags */
    st = query_flags(s, port);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, FLAGS_VALID), ==, 0);

    tpm_util_startup(s, vtpm_pci_transfer);
    st = query_flags(s, port);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, FLAGS_VALID), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ENABLED), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ACTIVATED), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, OWNED), ==, 0);

    /* An owner authorization value makes it owned */
    tpm2_send_pw(s, change_auth, sizeof(change_auth));
    st = query_flags(s, port);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, OWNED), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ENABLED), ==, 1);

    /* The platform disabling the storage hierarchy disables it */
    tpm2_send_pw(s, disable_owner, sizeof(disable_owner));
    st = query_flags(s, port);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, FLAGS_VALID), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ENABLED), ==, 0);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ACTIVATED), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, OWNED), ==, 1);

    /* Only from IDLE */
    qtest_outb(s, port + A_VTPM_DATA, 0x80);
    tpm_control(s, port, R_VTPM_CONTROL_QUERY_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_STATE);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_RECEIVING);
    tpm_control(s, port, R_VTPM_CONTROL_ABORT_MASK);
    assert_tpm_works(s, port);
    qtest_quit(s);
}

/* The commands guests started, as the host reads them (qom-get) */
static uint64_t card_commands(QTestState *s)
{
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'qom-get', 'arguments': "
                           "{ 'path': 'card', 'property': 'commands' } }");
    uint64_t n;

    g_assert(qdict_haskey(rsp, "return"));
    n = qnum_get_uint(qobject_to(QNum, qdict_get(rsp, "return")));
    qobject_unref(rsp);
    return n;
}

/*
 * The card counts each command a guest starts, and nothing else: not a
 * START it refuses, not the commands of its own flags query, not the
 * shutdown QEMU sends at reset
 */
static void test_commands(void)
{
    QTestState *s = qtest_initf("-M q35 -device vtpm-pci,id=card,addr=%d.0",
                                VTPM_SLOT);
    uint16_t port = vtpm_pci_port(s);
    int i;

    g_assert_cmpuint(card_commands(s), ==, 0);
    tpm_util_startup(s, vtpm_pci_transfer);
    for (i = 0; i < 10; i++) {
        assert_tpm_works(s, port);
    }
    g_assert_cmpuint(card_commands(s), ==, 11);

    tpm_control(s, port, R_VTPM_CONTROL_START_MASK);
    g_assert_cmpuint(tpm_error(s, port), ==, VTPM_ERR_LENGTH);
    query_flags(s, port);
    g_assert_cmpuint(card_commands(s), ==, 11);

    qtest_qmp_assert_success(s, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(s, "RESET");
    g_assert_cmpuint(card_commands(s), ==, 11);
    tpm_util_startup(s, vtpm_pci_transfer);
    g_assert_cmpuint(card_commands(s), ==, 12);
    qtest_quit(s);
}

static void test_flags_tpm12(void)
{
    /* TPM_GetCapability(TPM_CAP_FLAG, TPM_CAP_FLAG_PERMANENT) */
    static const uint8_t get_flags[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x65,
        0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x00, 0x01, 0x08,
    };
    static const uint8_t startup[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99,
        0x00, 0x01,
    };
    QTestState *s = qtest_init("-M q35 -tpmdev libtpms,id=t,version=1.2 "
                               "-device vtpm-pci,tpmdev=t");
    uint16_t port = vtpm_pci_port(s);
    uint8_t rsp[128];
    uint32_t st;

    tpm_cmd_transfer(s, vtpm_pci_transfer, startup, sizeof(startup),
                     rsp, sizeof(rsp), TPM_TAG_RSP_COMMAND, 0);
    /* TPM_PERMANENT_FLAGS: tag 0x001f, disable, ownership, deactivated */
    tpm_cmd_transfer(s, vtpm_pci_transfer, get_flags, sizeof(get_flags),
                     rsp, sizeof(rsp), TPM_TAG_RSP_COMMAND, 0);
    g_assert_cmphex(lduw_be_p(rsp + 14), ==, 0x001f);

    st = query_flags(s, port);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, FAMILY), ==,
                     VTPM_FAMILY_TPM12);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, FLAGS_VALID), ==, 1);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ENABLED), ==, !rsp[16]);
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, ACTIVATED), ==, !rsp[18]);
    /* A new TPM has no owner */
    g_assert_cmpuint(FIELD_EX32(st, VTPM_STATUS, OWNED), ==, 0);
    qtest_quit(s);
}

/*
 * A card pinned at PINNED_PORT (-device vtpm-pci,iobase=...).  It decodes
 * there from reset on, and no BAR write moves it.
 */
#define PINNED_PORT     0x2000

static void vtpm_start_pinned(VTPMTest *t, const char *machine)
{
    t->qts = qtest_initf("-M %s -device vtpm-pci,addr=%d.0,iobase=0x%x",
                         machine, VTPM_SLOT, PINNED_PORT);
    t->bus = qpci_new_pc(t->qts, NULL);
    t->dev = qpci_device_find(t->bus, QPCI_DEVFN(VTPM_SLOT, 0));
    g_assert(t->dev);
}

/* BAR 0 holds the pinned base, and the registers answer there */
static void assert_pinned(VTPMTest *t)
{
    QPCIBar pinned = qpci_legacy_iomap(t->dev, PINNED_PORT);

    g_assert_cmphex(qpci_config_readl(t->dev, PCI_BASE_ADDRESS_0), ==,
                    PINNED_PORT | PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_cmphex(reg_read(t, pinned, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
}

static void test_pinned_enumeration(const void *data)
{
    VTPMTest t;
    QPCIBar bar;
    uint64_t size;

    vtpm_start_pinned(&t, data);
    /* Decoding at the pinned base from reset, before anyone enables it */
    g_assert_true(qpci_config_readw(t.dev, PCI_COMMAND) & PCI_COMMAND_IO);
    assert_pinned(&t);

    /* libqos sizes the BAR and places it where it likes: it stays */
    qpci_device_enable(t.dev);
    bar = qpci_iomap(t.dev, VTPM_PCI_BAR, &size);
    g_assert_cmpuint(size, ==, VTPM_PCI_BAR_SIZE);
    g_assert_cmphex(bar.addr, !=, PINNED_PORT);
    assert_pinned(&t);
    /* ... and the port libqos chose answers nothing */
    g_assert_cmphex(reg_read(&t, bar, A_VTPM_ID), ==, 0xffffffff);
    vtpm_stop(&t);
}

static void test_pinned_config_writes(const void *data)
{
    static const uint32_t values[] = {
        0xc101, 0x0, 0x1, 0x3001, 0xfffe0001, 0xffffffc1, PINNED_PORT | 1,
    };
    VTPMTest t;
    size_t i;

    vtpm_start_pinned(&t, data);
    for (i = 0; i < ARRAY_SIZE(values); i++) {
        qpci_config_writel(t.dev, PCI_BASE_ADDRESS_0, values[i]);
        assert_pinned(&t);
    }
    /* Narrow writes too */
    qpci_config_writew(t.dev, PCI_BASE_ADDRESS_0, 0xc101);
    assert_pinned(&t);
    qpci_config_writeb(t.dev, PCI_BASE_ADDRESS_0 + 1, 0x30);
    assert_pinned(&t);
    qpci_config_writew(t.dev, PCI_BASE_ADDRESS_0 + 2, 0xffff);
    assert_pinned(&t);

    /* Sizing: all-ones reads back the size mask, then the base returns */
    qpci_config_writel(t.dev, PCI_BASE_ADDRESS_0, 0xffffffff);
    g_assert_cmphex(qpci_config_readl(t.dev, PCI_BASE_ADDRESS_0), ==,
                    (uint32_t)~(VTPM_PCI_BAR_SIZE - 1) |
                    PCI_BASE_ADDRESS_SPACE_IO);
    qpci_config_writel(t.dev, PCI_BASE_ADDRESS_0, 0xe001);
    assert_pinned(&t);
    vtpm_stop(&t);
}

static void test_pinned_command_io(const void *data)
{
    VTPMTest t;
    QPCIBar pinned;
    uint16_t cmd;

    vtpm_start_pinned(&t, data);
    pinned = qpci_legacy_iomap(t.dev, PINNED_PORT);
    cmd = qpci_config_readw(t.dev, PCI_COMMAND);
    qpci_config_writew(t.dev, PCI_COMMAND, cmd & ~PCI_COMMAND_IO);
    g_assert_cmphex(reg_read(&t, pinned, A_VTPM_ID), ==, 0xffffffff);
    qpci_config_writew(t.dev, PCI_COMMAND, cmd | PCI_COMMAND_IO);
    assert_pinned(&t);
    vtpm_stop(&t);
}

static void test_pinned_reset(const void *data)
{
    VTPMTest t;
    QPCIBar pinned;

    vtpm_start_pinned(&t, data);
    pinned = qpci_legacy_iomap(t.dev, PINNED_PORT);
    reg_write(&t, pinned, A_VTPM_SCRATCH, 0x5a5a);
    qpci_config_writew(t.dev, PCI_COMMAND, 0);
    qtest_system_reset(t.qts);
    g_assert_true(qpci_config_readw(t.dev, PCI_COMMAND) & PCI_COMMAND_IO);
    assert_pinned(&t);
    g_assert_cmphex(reg_read(&t, pinned, A_VTPM_SCRATCH), ==, 0);
    vtpm_stop(&t);
}

static void test_pinned_tpm(const void *data)
{
    VTPMTest t;
    uint8_t random[16];

    vtpm_start_pinned(&t, data);
    /* The helpers find the card's port in BAR 0: the pinned one */
    g_assert_cmphex(vtpm_pci_port(t.qts), ==, PINNED_PORT);
    tpm_cmd_test_pcr_extend(t.qts, vtpm_pci_transfer);   /* starts it up */
    tpm_cmd_get_random(t.qts, vtpm_pci_transfer, random, sizeof(random));
    vtpm_stop(&t);
}

/* A bridge at 00:05.0 and, on its bus 1, the card at 01:VTPM_SLOT.0 */
#define BRIDGE_SLOT     5
#define BUS1_DEVFN(slot) (1 << 8 | QPCI_DEVFN(slot, 0))

static void pinned_transfer(QTestState *s,
                            const unsigned char *req, size_t req_size,
                            unsigned char *rsp, size_t rsp_size)
{
    vtpm_pci_transfer_at(s, PINNED_PORT, req, req_size, rsp, rsp_size);
}

/* The card at the pinned port runs TPM commands: the TPM is started */
static void assert_pinned_tpm_works(QTestState *s)
{
    uint8_t random[8];

    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_ID), ==,
                    VTPM_PCI_ID_MAGIC);
    tpm_cmd_get_random(s, pinned_transfer, random, sizeof(random));
}

/*
 * The bridge at BRIDGE_SLOT, its I/O window pinned at PINNED_PORT's 4 KiB
 * (PINNED_BRIDGE), and bus 1 numbered as firmware would
 */
#define PINNED_BRIDGE   "pci-bridge,id=br,chassis_nr=1,addr=5.0,io-base=0x2000"

static QPCIDevice *pinned_bridge_setup(QPCIBus *bus)
{
    QPCIDevice *bridge = qpci_device_find(bus, QPCI_DEVFN(BRIDGE_SLOT, 0));

    g_assert_nonnull(bridge);
    qpci_config_writeb(bridge, PCI_SECONDARY_BUS, 1);
    qpci_config_writeb(bridge, PCI_SUBORDINATE_BUS, 1);
    return bridge;
}

/*
 * A pc with -device @device at 01:VTPM_SLOT.0, behind the pinned bridge,
 * its I/O decode on: *@bus, *@bridge and *@dev for the caller to free
 */
static QTestState *behind_pinned_bridge(const char *device, QPCIBus **bus,
                                        QPCIDevice **bridge,
                                        QPCIDevice **dev)
{
    QTestState *s = qtest_initf("-M pc -device " PINNED_BRIDGE " "
                                "-device %s,bus=br,addr=%d.0", device,
                                VTPM_SLOT);

    *bus = qpci_new_pc(s, NULL);
    *bridge = pinned_bridge_setup(*bus);
    *dev = qpci_device_find(*bus, BUS1_DEVFN(VTPM_SLOT));
    g_assert_nonnull(*dev);
    qpci_config_writew(*dev, PCI_COMMAND, PCI_COMMAND_IO);
    return s;
}

/*
 * Behind a PCI bridge, a secondary bus reset resets the card like a
 * system reset does: BAR 0 stays pinned, the card decodes its ports
 * again, and its TPM is new (not started).
 */
static void test_pinned_bridge_reset(void)
{
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *bridge, *card;
    uint8_t random[8];

    if (!qtest_has_device("pci-bridge")) {
        g_test_skip("no pci-bridge in this QEMU");
        return;
    }
    s = qtest_initf("-M pc -device " PINNED_BRIDGE " "
                    "-device vtpm-pci,bus=br,addr=%d.0,iobase=0x%x",
                    VTPM_SLOT, PINNED_PORT);
    bus = qpci_new_pc(s, NULL);
    bridge = pinned_bridge_setup(bus);
    card = qpci_device_find(bus, BUS1_DEVFN(VTPM_SLOT));
    g_assert_nonnull(card);
    g_assert_cmphex(qpci_config_readl(card, PCI_BASE_ADDRESS_0), ==,
                    PINNED_PORT | PCI_BASE_ADDRESS_SPACE_IO);
    tpm_util_startup(s, pinned_transfer);
    qtest_outl(s, PINNED_PORT + A_VTPM_SCRATCH, 0x5a5a);

    /* The guest tries to move the card, and turns its decode off */
    qpci_config_writel(card, PCI_BASE_ADDRESS_0, 0x3000);
    qpci_config_writew(card, PCI_COMMAND, 0);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_ID), ==, 0xffffffff);

    qpci_config_writew(bridge, PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET);
    qpci_config_writew(bridge, PCI_BRIDGE_CONTROL, 0);

    g_assert_cmphex(qpci_config_readl(card, PCI_BASE_ADDRESS_0), ==,
                    PINNED_PORT | PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_true(qpci_config_readw(card, PCI_COMMAND) & PCI_COMMAND_IO);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_ID), ==,
                    VTPM_PCI_ID_MAGIC);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_SCRATCH), ==, 0);
    tpm_cmd_test_pcr_read_before_startup(s, pinned_transfer);
    tpm_util_startup(s, pinned_transfer);
    tpm_cmd_get_random(s, pinned_transfer, random, sizeof(random));

    g_free(card);
    g_free(bridge);
    qpci_free_pc(bus);
    qtest_quit(s);
}

/*
 * A Secondary Bus Reset is a guest's configuration write, and restarts
 * the card's TPM.  The write does not wait for libtpms to stop and start
 * again (a TPM 1.2 takes up to a second): the TPM's thread restarts it
 * before the next command, which shows the TPM new (a second Startup
 * would fail on a TPM that was not restarted).
 */
/* A pinned card with a TPM @version behind a pci-bridge */
static QTestState *bridged_libtpms_start(const char *version,
                                         QPCIBus **bus, QPCIDevice **bridge)
{
    QTestState *s;

    s = qtest_initf("-M pc -device " PINNED_BRIDGE " "
                    "-tpmdev libtpms,id=t,version=%s "
                    "-device vtpm-pci,bus=br,addr=%d.0,iobase=0x%x,tpmdev=t",
                    version, VTPM_SLOT, PINNED_PORT);
    *bus = qpci_new_pc(s, NULL);
    *bridge = pinned_bridge_setup(*bus);
    return s;
}

/* A Secondary Bus Reset of the card; returns how long its write took */
static gint64 secondary_bus_reset(QPCIDevice *bridge)
{
    gint64 t = g_get_monotonic_time();

    qpci_config_writew(bridge, PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET);
    t = g_get_monotonic_time() - t;
    qpci_config_writew(bridge, PCI_BRIDGE_CONTROL, 0);
    return t;
}

static void reset_no_wait(const char *version)
{
    bool tpm12 = !strcmp(version, "1.2");
    const uint8_t *startup = tpm12 ? tpm12_startup_clear : tpm2_startup_clear;
    gint64 us[4];
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *bridge;
    uint8_t rsp[64];
    size_t i;

    if (!qtest_has_device("pci-bridge")) {
        g_test_skip("no pci-bridge in this QEMU");
        return;
    }
    s = bridged_libtpms_start(version, &bus, &bridge);
    /*
     * A reset that waited for the TPM's restart would take it every time:
     * the shortest of them, as the host's scheduler may hold up any one
     */
    for (i = 0; i < ARRAY_SIZE(us); i++) {
        pinned_transfer(s, startup, TPM_STARTUP_SIZE, rsp, sizeof(rsp));
        g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);
        us[i] = secondary_bus_reset(bridge);
    }
    g_assert_cmpint(tpm_cmd_shortest_us(us, ARRAY_SIZE(us)), <=,
                    TPM_CMD_ACCESS_MAX_US);

    /* The last reset's restart, too */
    pinned_transfer(s, startup, TPM_STARTUP_SIZE, rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);
    g_free(bridge);
    qpci_free_pc(bus);
    qtest_quit(s);
}

static void test_reset_no_wait(void)
{
    reset_no_wait("2.0");
}

static void test_reset_no_wait_tpm12(void)
{
    reset_no_wait("1.2");
}

/*
 * Nor does a Secondary Bus Reset wait for the command in flight, an RSA
 * key's generation: the TPM cancels it (a TPM 2.0) or finishes it (a TPM
 * 1.2 cannot cancel it) on its own, drops its response, and restarts
 * before it runs the guest's next command.  That command waits its turn;
 * a second reset drops it before it runs.  What the guest reads is the
 * response to the command it sent last, of a TPM that was restarted (a
 * second Startup would fail otherwise).  Returns the longer reset's time,
 * or -1 where the key was made before the test looked (the host's
 * scheduler held it back): that round shows nothing.
 */
static gint64 reset_mid_command(const char *version)
{
    bool tpm12 = !strcmp(version, "1.2");
    const uint8_t *startup = tpm12 ? tpm12_startup_clear : tpm2_startup_clear;
    gint64 longest;
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *bridge;
    uint8_t rsp[64];

    s = bridged_libtpms_start(version, &bus, &bridge);
    pinned_transfer(s, startup, TPM_STARTUP_SIZE, rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);

    /* A new TPM 1.2 has no endorsement key, and makes one */
    if (tpm12) {
        vtpm_pci_write_command(s, PINNED_PORT, tpm12_create_ek,
                               tpm12_create_ek_size);
    } else {
        vtpm_pci_write_command(s, PINNED_PORT, tpm2_create_primary_rsa2048,
                               tpm2_create_primary_rsa2048_size);
    }
    tpm_control(s, PINNED_PORT, R_VTPM_CONTROL_START_MASK);
    if (vtpm_pci_state(s, PINNED_PORT) != VTPM_STATE_EXECUTING) {
        g_test_message("the key was made before the test looked");
        longest = -1;
        goto out;
    }
    longest = secondary_bus_reset(bridge);
    g_assert_cmpuint(vtpm_pci_state(s, PINNED_PORT), ==, VTPM_STATE_IDLE);

    vtpm_pci_write_command(s, PINNED_PORT, startup, TPM_STARTUP_SIZE);
    tpm_control(s, PINNED_PORT, R_VTPM_CONTROL_START_MASK);
    longest = MAX(longest, secondary_bus_reset(bridge));

    pinned_transfer(s, startup, TPM_STARTUP_SIZE, rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 2), ==, TPM_RSP_HDR_SIZE);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);

out:
    g_free(bridge);
    qpci_free_pc(bus);
    qtest_quit(s);
    return longest;
}

/* A new TPM for each round: a TPM 1.2 makes its endorsement key once */
static void reset_mid_command_rounds(const char *version)
{
    gint64 us[TPM_CMD_RESET_ROUNDS];
    size_t i, rounds;

    if (!qtest_has_device("pci-bridge")) {
        g_test_skip("no pci-bridge in this QEMU");
        return;
    }
    for (i = 0, rounds = 0; i < ARRAY_SIZE(us); rounds++) {
        g_assert_cmpuint(rounds, <, 2 * ARRAY_SIZE(us));
        us[i] = reset_mid_command(version);
        i += us[i] >= 0;
    }
    g_assert_cmpint(tpm_cmd_shortest_us(us, ARRAY_SIZE(us)), <=,
                    TPM_CMD_ACCESS_MAX_US);
}

static void test_reset_mid_command_no_wait(void)
{
    reset_mid_command_rounds("2.0");
}

static void test_reset_mid_command_no_wait_tpm12(void)
{
    reset_mid_command_rounds("1.2");
}

/*
 * device_add of a card for backend t, with @args, is refused with
 * @message, and leaves the backend free
 */
static void assert_card_refused(QTestState *s, QDict *args,
                                const char *message)
{
    QDict *rsp;

    qdict_put_str(args, "driver", "vtpm-pci");
    qdict_put_str(args, "id", "b");
    qdict_put_int(args, "addr", QPCI_DEVFN(VTPM_SLOT, 0));
    qdict_put_str(args, "tpmdev", "t");
    rsp = qtest_qmp(s, "{ 'execute': 'device_add', 'arguments': %p }", args);
    g_assert_nonnull(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                          "desc"), message));
    qobject_unref(rsp);
    tpm_cmd_assert_query_tpm_none(s);
}

/*
 * Hot-unplug and replug (pc: ACPI hotplug on the root bus).  The pinned
 * base comes back with the new card, whose own TPM is a new one; a
 * -tpmdev backend passes from the old card to the new.
 */
static void test_pinned_replug(void)
{
    QTestState *s = qtest_initf("-M pc -tpmdev libtpms,id=t "
                                "-device vtpm-pci,id=a,addr=%d.0,iobase=0x%x,"
                                "tpmdev=t", VTPM_SLOT, PINNED_PORT);
    QDict *args;

    tpm_util_startup(s, vtpm_pci_transfer);
    assert_pinned_tpm_works(s);
    qpci_unplug_acpi_device_test(s, "a", VTPM_SLOT);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_ID), ==, 0xffffffff);
    /* query-tpm lists TPMs that a device uses: none now */
    tpm_cmd_assert_query_tpm_none(s);

    /* A refused card leaves the backend free: refused at realize, */
    args = qdict_new();
    qdict_put_int(args, "iobase", 0x3c0);
    assert_card_refused(s, args, "VGA ports");
    /*
     * or for a property set after tpmdev, and never realized (QOM sets
     * them in the order of their names' hashes: here tpmdev first)
     */
    args = qdict_new();
    qdict_put_str(args, "poll-ns", "soon");
    assert_card_refused(s, args, "poll-ns");

    /* The backend serves the next card; its TPM was reset with the bus */
    qtest_qmp_device_add(s, "vtpm-pci", "c", "{'addr': %d, 'iobase': %d, "
                         "'tpmdev': 't'}", QPCI_DEVFN(VTPM_SLOT, 0),
                         PINNED_PORT);
    tpm_cmd_assert_query_tpm(s, "t", "vtpm-pci", "libtpms", "v2-0");
    tpm_util_startup(s, vtpm_pci_transfer);
    assert_pinned_tpm_works(s);

    /* A card with its own TPM, replugged, has a TPM of its own again */
    qpci_unplug_acpi_device_test(s, "c", VTPM_SLOT);
    qtest_quit(s);

    s = qtest_initf("-M pc -device vtpm-pci,id=a,addr=%d.0,iobase=0x%x",
                    VTPM_SLOT, PINNED_PORT);
    tpm_util_startup(s, vtpm_pci_transfer);
    qpci_unplug_acpi_device_test(s, "a", VTPM_SLOT);
    tpm_cmd_assert_query_tpm_none(s);
    qtest_qmp_device_add(s, "vtpm-pci", "b", "{'addr': %d, 'iobase': %d}",
                         QPCI_DEVFN(VTPM_SLOT, 0), PINNED_PORT);
    tpm_cmd_test_pcr_read_before_startup(s, vtpm_pci_transfer);
    tpm_util_startup(s, vtpm_pci_transfer);
    assert_pinned_tpm_works(s);
    qtest_quit(s);
}

/*
 * Unplugging a card whose TPM thread runs a long command: the unplug
 * waits for the command, the thread stops, and the next card given the
 * same backend starts a thread of its own and works.
 */
static void test_poll_unplug_executing(void)
{
    QTestState *s = qtest_initf("-M pc -tpmdev libtpms,id=t "
                                "-device vtpm-pci,id=a,addr=%d.0,iobase=0x%x,"
                                "tpmdev=t", VTPM_SLOT, PINNED_PORT);

    tpm_util_startup(s, vtpm_pci_transfer);
    start_long_command(s, PINNED_PORT);
    qpci_unplug_acpi_device_test(s, "a", VTPM_SLOT);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_ID), ==, 0xffffffff);

    qtest_qmp_device_add(s, "vtpm-pci", "b", "{'addr': %d, 'iobase': %d, "
                         "'tpmdev': 't'}", QPCI_DEVFN(VTPM_SLOT, 0),
                         PINNED_PORT);
    tpm_util_startup(s, vtpm_pci_transfer);
    assert_pinned_tpm_works(s);
    qtest_quit(s);
}

/* QEMU refuses to start with each case's arguments, with its message */
typedef struct {
    const char *args;
    const char *message;
} RefusedCase;

static void assert_refused_cases(const char *machine,
                                 const RefusedCase *cases, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        g_autofree char *args = g_strdup_printf("-M %s %s", machine,
                                                cases[i].args);

        tpm_cmd_assert_qemu_refuses(args, cases[i].message);
    }
}

static void test_pinned_invalid(void)
{
    static const RefusedCase cases[] = {
        { "-device vtpm-pci,iobase=0x2010",
          "iobase 0x2010 is not a multiple of the BAR size, 0x40" },
        { "-device vtpm-pci,iobase=0x10000",
          "iobase 0x10000 is outside the I/O space" },
        { "-device vtpm-pci,iobase=0xffe0",
          "iobase 0xffe0 is outside the I/O space" },
        { "-device vtpm-pci,iobase=0x0",
          "overlap the PC's DMA, PIC, PIT, keyboard, RTC and other system "
          "ports (0x0000-0x00ff)" },
        { "-device vtpm-pci,iobase=0x3c0",
          "overlap the PC's VGA ports (0x03b0-0x03df)" },
        { "-device vtpm-pci,iobase=0xcc0",
          "overlap the PC's PCI configuration ports (0x0cf8-0x0cff)" },
        { "-device vtpm-pci,iobase=0x500",
          "ports from 0x0510 are used by 'fwcfg'" },
        { "-device vtpm-pci,iobase=0x600",
          "overlap the PC's ACPI power management (SeaBIOS, OVMF on q35) "
          "ports" },
        { "-device vtpm-pci,iobase=0x700",
          "overlap the PC's SMBus (SeaBIOS on pc) ports (0x0700-0x070f)" },
        { "-device vtpm-pci,id=a,iobase=0x2000 "
          "-device vtpm-pci,iobase=0x2000",
          "iobase 0x2000: ports 0x2000-0x203f overlap ports 0x2000-0x203f, "
          "pinned by 'a'" },
    };

    assert_refused_cases("q35", cases, ARRAY_SIZE(cases));
}

/*
 * Behind a pinned bridge, an unpinned card answers where the guest puts
 * it inside the window, and nowhere outside it.  (A pinned one works
 * there with nothing programmed but the bus numbers: bridge-reset.)
 */
static void test_pinned_behind_bridge(void)
{
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *bridge, *card;

    if (!qtest_has_device("pci-bridge")) {
        g_test_skip("no pci-bridge in this QEMU");
        return;
    }
    s = behind_pinned_bridge("vtpm-pci", &bus, &bridge, &card);
    qpci_config_writel(card, PCI_BASE_ADDRESS_0, PINNED_PORT + 0xfc0);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + 0xfc0 + A_VTPM_ID), ==,
                    VTPM_PCI_ID_MAGIC);
    qpci_config_writel(card, PCI_BASE_ADDRESS_0, PINNED_PORT + 0x1000);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + 0x1000 + A_VTPM_ID), ==,
                    0xffffffff);
    g_free(card);
    g_free(bridge);
    qpci_free_pc(bus);
    qtest_quit(s);
}

/*
 * Two pinned bridges deep: the inner window inside the outer, the card
 * inside both.  It decodes before anyone numbered a bus or enabled
 * anything, and a system reset, or a secondary bus reset of the outer
 * bridge, keeps it all where it was.
 */
static void test_pinned_nested_bridges(void)
{
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *outer, *inner;

    if (!qtest_has_device("pci-bridge")) {
        g_test_skip("no pci-bridge in this QEMU");
        return;
    }
    s = qtest_initf("-M pc -device pci-bridge,id=outer,chassis_nr=1,"
                    "addr=%d.0,io-base=0x1000,io-size=0x4000 "
                    "-device pci-bridge,id=inner,chassis_nr=2,bus=outer,"
                    "addr=3.0,io-base=0x%x "
                    "-device vtpm-pci,bus=inner,addr=%d.0,iobase=0x%x",
                    BRIDGE_SLOT, PINNED_PORT, VTPM_SLOT, PINNED_PORT);
    tpm_util_startup(s, pinned_transfer);
    assert_pinned_tpm_works(s);
    qtest_outl(s, PINNED_PORT + A_VTPM_SCRATCH, 0x5a5a);
    qtest_system_reset(s);
    g_assert_cmphex(qtest_inl(s, PINNED_PORT + A_VTPM_SCRATCH), ==, 0);
    tpm_util_startup(s, pinned_transfer);
    assert_pinned_tpm_works(s);

    /* Numbered as firmware does, the windows read back as pinned */
    bus = qpci_new_pc(s, NULL);
    outer = qpci_device_find(bus, QPCI_DEVFN(BRIDGE_SLOT, 0));
    g_assert_nonnull(outer);
    qpci_config_writeb(outer, PCI_SECONDARY_BUS, 1);
    qpci_config_writeb(outer, PCI_SUBORDINATE_BUS, 2);
    inner = qpci_device_find(bus, 1 << 8 | QPCI_DEVFN(3, 0));
    g_assert_nonnull(inner);
    qpci_config_writeb(inner, PCI_SECONDARY_BUS, 2);
    qpci_config_writeb(inner, PCI_SUBORDINATE_BUS, 2);
    g_assert_cmphex(qpci_config_readb(outer, PCI_IO_BASE), ==, 0x10);
    g_assert_cmphex(qpci_config_readb(outer, PCI_IO_LIMIT), ==, 0x40);
    g_assert_cmphex(qpci_config_readb(inner, PCI_IO_BASE), ==, 0x20);
    g_assert_cmphex(qpci_config_readb(inner, PCI_IO_LIMIT), ==, 0x20);
    assert_pinned_tpm_works(s);

    /* A secondary bus reset above resets the inner bridge: it stays */
    qpci_config_writew(outer, PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET);
    qpci_config_writew(outer, PCI_BRIDGE_CONTROL, 0);
    g_assert_cmphex(qpci_config_readb(inner, PCI_SECONDARY_BUS), ==, 0);
    g_assert_cmphex(qpci_config_readb(inner, PCI_IO_BASE), ==, 0x20);
    g_assert_cmphex(qpci_config_readb(inner, PCI_IO_LIMIT), ==, 0x20);
    tpm_util_startup(s, pinned_transfer);
    assert_pinned_tpm_works(s);
    g_free(inner);
    g_free(outer);
    qpci_free_pc(bus);
    qtest_quit(s);
}

static void test_pinned_bridge_invalid(void)
{
    static const RefusedCase cases[] = {
        { "-device pci-bridge,id=br,chassis_nr=1 "
          "-device vtpm-pci,bus=br,iobase=0x2000",
          "iobase 0x2000: ports 0x2000-0x203f are behind bridge 'br', whose "
          "I/O window is not pinned" },
        { "-device " PINNED_BRIDGE " -device vtpm-pci,bus=br,iobase=0x3000",
          "iobase 0x3000: ports 0x3000-0x303f are outside the I/O window "
          "0x2000-0x2fff pinned on bridge 'br'" },
        { "-device " PINNED_BRIDGE " -device vtpm-pci,iobase=0x2fc0",
          "iobase 0x2fc0: ports 0x2fc0-0x2fff overlap ports 0x2000-0x2fff, "
          "pinned by 'br'" },
        { "-device pci-bridge,id=outer,chassis_nr=1,io-base=0x2000 "
          "-device pci-bridge,id=inner,chassis_nr=2,bus=outer,"
          "io-base=0x2000,io-size=0x2000",
          "ports 0x2000-0x3fff are outside the I/O window 0x2000-0x2fff "
          "pinned on bridge 'outer'" },
    };

    if (!qtest_has_device("pci-bridge")) {
        g_test_skip("no pci-bridge in this QEMU");
        return;
    }
    assert_refused_cases("pc", cases, ARRAY_SIZE(cases));
}

/*
 * Hot-plugged behind a pinned bridge: a pinned card takes its ports if
 * nothing else answers there (here a pci-testdev the guest placed in the
 * window does), and works.  Ports in use are looked up in the root bus's
 * I/O space, where what is behind a bridge shows through its window.
 */
static void test_pinned_hotplug_behind_bridge(void)
{
    QTestState *s;
    QPCIBus *bus;
    QPCIDevice *bridge, *dev;
    QDict *rsp;

    if (!qtest_has_device("pci-bridge") ||
        !qtest_has_device("pci-testdev")) {
        g_test_skip("no pci-bridge or no pci-testdev in this QEMU");
        return;
    }
    s = behind_pinned_bridge("pci-testdev", &bus, &bridge, &dev);
    qpci_config_writel(dev, PCI_BASE_ADDRESS_1, PINNED_PORT + 0x100);

    rsp = qtest_qmp(s, "{ 'execute': 'device_add', 'arguments': {"
                    " 'driver': 'vtpm-pci', 'id': 'b', 'bus': 'br',"
                    " 'addr': %d, 'iobase': %d } }",
                    QPCI_DEVFN(VTPM_SLOT + 1, 0), PINNED_PORT + 0x140);
    g_assert_nonnull(strstr(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                          "desc"),
                            "iobase 0x2140: ports from 0x2140 are used by "
                            "'pci-testdev-portio'"));
    qobject_unref(rsp);

    qtest_qmp_device_add(s, "vtpm-pci", "b", "{'bus': 'br', 'addr': %d, "
                         "'iobase': %d}", QPCI_DEVFN(VTPM_SLOT + 1, 0),
                         PINNED_PORT);
    tpm_util_startup(s, pinned_transfer);
    assert_pinned_tpm_works(s);
    g_free(dev);
    g_free(bridge);
    qpci_free_pc(bus);
    qtest_quit(s);
}

static void add_tpm_tests(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        { "tpm/selftest", test_tpm_selftest },
        { "tpm/status", test_tpm_status },
        { "tpm/tpm-1.2", test_tpm12 },
        { "tpm/query-tpm", test_query_tpm },
        { "tpm/flags-2.0", test_flags_tpm2 },
        { "tpm/flags-1.2", test_flags_tpm12 },
        { "tpm/commands", test_commands },
        { "tpm/second-libtpms", test_second_libtpms },
        { "pinned/invalid", test_pinned_invalid },
        { "pinned/replug", test_pinned_replug },
        { "pinned/bridge-reset", test_pinned_bridge_reset },
        { "pinned/behind-bridge", test_pinned_behind_bridge },
        { "pinned/nested-bridges", test_pinned_nested_bridges },
        { "pinned/bridge-invalid", test_pinned_bridge_invalid },
        { "pinned/hotplug-behind-bridge", test_pinned_hotplug_behind_bridge },
        { "bad/data-read-idle", test_bad_data_read_idle },
        { "bad/data-write-executing", test_bad_data_write_executing },
        { "bad/overflow", test_bad_overflow },
        { "bad/lengths", test_bad_lengths },
        { "bad/start-twice", test_bad_start_twice },
        { "bad/read-past-end", test_bad_read_past_end },
        { "bad/accesses", test_bad_accesses },
        { "cancel/idle", test_cancel_idle },
        { "cancel/executing", test_cancel_executing },
        { "reset-mid-command", test_reset_mid_command },
        { "reset-no-wait", test_reset_no_wait },
        { "reset-no-wait/tpm-1.2", test_reset_no_wait_tpm12 },
        { "reset-no-wait/mid-command", test_reset_mid_command_no_wait },
        { "reset-no-wait/mid-command/tpm-1.2",
          test_reset_mid_command_no_wait_tpm12 },
        { "io-disabled-mid-command", test_io_disabled_mid_command },
        { "interrupts", test_interrupts },
        { "poll/long-command", test_poll_long_command },
        { "poll/invalid", test_poll_invalid },
        { "poll/adapts", test_poll_adapts },
        { "poll/unplug-executing", test_poll_unplug_executing },
        { "no-wait", test_no_wait },
        { "no-wait/poll-ns=max", test_no_wait_poll_max },
        { "no-wait/poll-ns=0", test_no_wait_no_poll },
    };
    size_t i;

    for (i = 0; i < tpm_cmd_tests_count; i++) {
        const TPMCmdTest *cmd = &tpm_cmd_tests[i];
        g_autofree char *path = g_strdup_printf("vtpm-pci/tpm/%s",
                                                cmd->name);
        g_autofree char *no_poll = g_strdup_printf("vtpm-pci/tpm/no-poll/%s",
                                                   cmd->name);

        qtest_add_data_func(path, cmd, test_tpm_cmd);
        qtest_add_data_func(no_poll, cmd, test_tpm_cmd_no_poll);
    }
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("vtpm-pci/%s",
                                                cases[i].name);

        qtest_add_func(path, cases[i].fn);
    }
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
        { "pinned/enumeration", test_pinned_enumeration },
        { "pinned/config-writes", test_pinned_config_writes },
        { "pinned/command-io", test_pinned_command_io },
        { "pinned/reset", test_pinned_reset },
        { "pinned/tpm", test_pinned_tpm },
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
    add_tpm_tests();
    return g_test_run();
}
