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
#include "qemu/units.h"
#include "qobject/qdict.h"
#include "qapi/qapi-types-sockets.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"
#include "tpm-cmd-tests.h"
#include "tpm-util.h"
#include "vtpm-pci-util.h"

#define VTPM_ARGS   "-M q35 -m 32 -device vtpm-pci"

static char *tmp_dir;

/*
 * The card's section of a stream, from its PCI configuration on: the
 * configuration, the interrupt pins' states (four 32-bit words), the
 * MSI-X table (one vector, 16 bytes) and pending bits (1), then the
 * registers, 32 bits big-endian each but for the overflow flag (8), the
 * buffer's length and the buffer.
 */
#define STREAM_INTX         PCI_CFG_SPACE_SIZE
#define STREAM_REGS         (STREAM_INTX + 16 + 16 + 1)
#define STREAM_STATE        (STREAM_REGS + 0)
#define STREAM_ERROR        (STREAM_REGS + 4)
#define STREAM_SCRATCH      (STREAM_REGS + 8)
#define STREAM_LOCALITY     (STREAM_REGS + 12)
#define STREAM_INT_ENABLE   (STREAM_REGS + 16)
#define STREAM_INT_STATUS   (STREAM_REGS + 20)
#define STREAM_CMD_LEN      (STREAM_REGS + 24)
#define STREAM_RSP_LEN      (STREAM_REGS + 29)
#define STREAM_RSP_POS      (STREAM_REGS + 33)
#define STREAM_FLAGS        (STREAM_REGS + 37)
#define STREAM_DATA_LEN     (STREAM_REGS + 41)
#define STREAM_END          (STREAM_REGS + 45)

/* A stream that changes @offset to @value (1 or 4 bytes, @size) */
typedef struct StreamEdit {
    unsigned offset;
    unsigned size;
    uint32_t value;
} StreamEdit;

/*
 * What the destination's card holds when the stream arrives: a command
 * half written, a value in SCRATCH, the completion interrupt enabled
 */
#define DEST_SCRATCH        0x5ca1ab1e
#define DEST_PART           4

static void dest_card_prepare(QTestState *s, uint16_t port)
{
    qtest_outl(s, port + A_VTPM_SCRATCH, DEST_SCRATCH);
    qtest_outl(s, port + A_VTPM_INT_ENABLE, R_VTPM_INT_ENABLE_COMPLETE_MASK);
    vtpm_pci_write_command(s, port, tpm2_startup_clear, DEST_PART);
}

/* ... and still holds after a refused stream, then works on */
static void dest_card_check(QTestState *s, uint16_t port)
{
    uint8_t rsp[32];
    size_t len;

    g_assert_cmphex(qtest_inl(s, port + A_VTPM_SCRATCH), ==, DEST_SCRATCH);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_INT_ENABLE), ==,
                    R_VTPM_INT_ENABLE_COMPLETE_MASK);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_INT_STATUS), ==, 0);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_ERROR), ==, VTPM_ERR_NONE);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_LOCALITY), ==, 0);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_RECEIVING);
    g_assert_cmpuint(qtest_inl(s, port + A_VTPM_CMD_SIZE), ==, DEST_PART);
    g_assert_cmpuint(qtest_inl(s, port + A_VTPM_RSP_SIZE), ==, 0);
    g_assert_cmphex(qtest_inb(s, port + A_VTPM_DATA), ==, 0xff);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_ERROR), ==, VTPM_ERR_STATE);

    /* The rest of TPM2_Startup, which the stream's TPM has not had */
    vtpm_pci_write_command(s, port, tpm2_startup_clear + DEST_PART,
                           TPM_STARTUP_SIZE - DEST_PART);
    qtest_outl(s, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(s, port);
    g_assert_cmphex(qtest_inl(s, port + A_VTPM_INT_STATUS), ==,
                    R_VTPM_INT_STATUS_COMPLETE_MASK);
    len = vtpm_pci_read_response(s, port, rsp, sizeof(rsp));
    g_assert_cmpuint(len, ==, 10);             /* the header alone */
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);
}

/*
 * Load the stream at @uri into a new QEMU started with @args, whose card
 * holds what dest_card_prepare() put there: the load must fail for
 * @reason, and the card keep that and work on
 */
static void dest_refuses(const char *args, const char *uri,
                         const char *reason)
{
    QTestState *s = qtest_initf("%s -incoming defer", args);
    uint16_t port = vtpm_pci_port(s);

    dest_card_prepare(s, port);
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "  'exit-on-error': false } }", uri);
    vtpm_pci_migration_assert_end(s, "failed", reason);
    dest_card_check(s, port);
    qtest_quit(s);
}

/* Load the stream at @uri into a new QEMU started with @args, and run it */
static QTestState *dest_loads(const char *args, const char *uri)
{
    QTestState *s = qtest_initf("%s -incoming defer", args);

    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s } }", uri);
    vtpm_pci_migration_assert_end(s, "completed", NULL);
    qtest_qmp_assert_success(s, "{ 'execute': 'cont' }");
    return s;
}

/*
 * The card's section in the stream @img of @len bytes (a migration's, or
 * a device state's alone), from its PCI configuration on
 */
static char *stream_card(char *img, gsize len)
{
    /* The card's idstr ends its path on the bus; instance id 0 follows */
    static const char idstr[] = "/vtpm-pci\0\0\0\0";
    char *config = memmem(img, len, idstr, sizeof(idstr) - 1);

    /*
     * After the idstr and instance id: version, PCIDevice's version_id.
     * (The RAM block of BAR 2 is named "<path>/vtpm-pci-buffer".)
     */
    g_assert_nonnull(config);
    config += sizeof(idstr) - 1 + 8;
    g_assert_cmpuint(config + STREAM_END - img, <=, len);
    g_assert_cmpuint(ldl_le_p(config), ==,
                     PCI_VENDOR_ID_REDHAT | PCI_DEVICE_ID_REDHAT_VTPM << 16);
    return config;
}

/*
 * Migrate a card to a file, make @edits to the card's section, and check
 * that a destination refuses the stream for @reason, that its card keeps
 * every register and its buffer as they were and works on, and that the
 * stream loads without the edits.
 */
static void stream_refused(const StreamEdit *edits, size_t n_edits,
                           const char *reason)
{
    g_autofree char *stream = g_build_filename(tmp_dir, "stream", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    g_autofree char *img = NULL, *orig = NULL;
    uint8_t rsp[32];
    char *config;
    gsize len;
    QTestState *s;
    uint16_t port;
    size_t i;

    s = qtest_init(VTPM_ARGS);
    vtpm_pci_port(s);
    tpm_util_migrate(s, uri);
    vtpm_pci_migration_assert_end(s, "completed", NULL);
    qtest_quit(s);

    g_assert_true(g_file_get_contents(stream, &img, &len, NULL));
    orig = g_memdup2(img, len);
    config = stream_card(img, len);
    for (i = 0; i < n_edits; i++) {
        if (edits[i].size == 1) {
            config[edits[i].offset] = edits[i].value;
        } else {
            stl_be_p(config + edits[i].offset, edits[i].value);
        }
    }
    g_assert_true(g_file_set_contents(stream, img, len, NULL));

    dest_refuses(VTPM_ARGS, uri, reason);

    /* Unchanged, the same stream loads, and the card interrupts */
    g_assert_true(g_file_set_contents(stream, orig, len, NULL));
    s = dest_loads(VTPM_ARGS, uri);
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
 * Streams the card refuses, one field of its section each.  The first
 * three are what vtpm-pci-migration-fuzz found loaded: a configuration
 * that names no interrupt pin (the next interrupt hit an assertion in
 * pci_irq_handler()); INTB asserted, which the card never drives and
 * the bus never counted (before the target restored the bus's state
 * with the card's, the next reset hit an assertion in
 * pcibus_reset_hold()); and a response the buffer does not hold, here
 * in a card idle in the stream.  The response of 1 MiB was loaded into
 * the card, refused, and read by the guest, host memory and all.
 */
typedef struct StreamCase {
    const char *name;
    StreamEdit edits[2];
    const char *reason;
} StreamCase;

#define INCONSISTENT    "inconsistent state in the migration stream"
#define MISMATCH        "buffer does not match the card's state"

static const StreamCase stream_cases[] = {
    { "interrupt-pin", { { PCI_INTERRUPT_PIN, 1, 0 } },
      "interrupt off INTA" },
    { "interrupt-state", { { STREAM_INTX + 4, 4, 1 } },
      "interrupt line disagrees" },
    { "buffer", { { STREAM_STATE, 4, VTPM_STATE_COMPLETE } }, MISMATCH },
    { "state", { { STREAM_STATE, 4, 7 } }, INCONSISTENT },
    { "state-executing", { { STREAM_STATE, 4, VTPM_STATE_EXECUTING } },
      INCONSISTENT },
    { "response-size", { { STREAM_STATE, 4, VTPM_STATE_COMPLETE },
                         { STREAM_RSP_LEN, 4, 1 * MiB } }, INCONSISTENT },
    { "command-size", { { STREAM_STATE, 4, VTPM_STATE_RECEIVING },
                        { STREAM_CMD_LEN, 4, 64 * KiB } }, INCONSISTENT },
    { "response-position", { { STREAM_RSP_POS, 4, 1 } }, INCONSISTENT },
    { "locality", { { STREAM_LOCALITY, 4, VTPM_PCI_LOCALITY_MAX + 1 } },
      INCONSISTENT },
    { "flags", { { STREAM_FLAGS, 4, 1u << 31 } }, INCONSISTENT },
    { "error", { { STREAM_ERROR, 4, VTPM_ERR_VALUE + 1 } }, INCONSISTENT },
    { "int-enable", { { STREAM_INT_ENABLE, 4, 2 } }, INCONSISTENT },
    { "int-status", { { STREAM_INT_STATUS, 4, 1u << 8 } }, INCONSISTENT },
    { "data-size", { { STREAM_DATA_LEN, 4, VTPM_PCI_BUFFER_MAX + 1 } },
      "data_len fits the buffer" },
    { "data-idle", { { STREAM_DATA_LEN, 4, 4 } }, MISMATCH },
};

static void test_stream(const void *opaque)
{
    const StreamCase *c = opaque;

    stream_refused(c->edits, c->edits[1].size ? 2 : 1, c->reason);
}

/*
 * A response for BAR 2 sent to a card without BAR 2.  A migration from a
 * card with BAR 2 never gets so far, since BAR 2's RAM block has no home
 * there (vtpm-pci-buffer-test), nor does a device state alone, whose
 * configuration space has BAR 2 (the PCI core refuses it).  A stream of a
 * card without BAR 2, holding a response, with the vtpm-pci/buffer
 * subsection added (the response is BAR 2's, says it), does: the card
 * refuses it and keeps what it held.  The same stream without the
 * subsection loads.
 */
static void test_stream_buffer_off(void)
{
    g_autofree char *stream = g_build_filename(tmp_dir, "stream", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    g_autofree char *img = NULL;
    static const uint8_t get_random_32[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00,
        0x20,
    };
    /* QEMU_VM_SUBSECTION, the name's length and the name, version 1 */
    static const char sub[] = "\x05\x0fvtpm-pci/buffer\0\0\0\x01";
    GByteArray *edited;
    uint8_t rsp[64];
    char *config;
    uint32_t data_len;
    QTestState *s;
    uint16_t port;
    gsize len;

    /*
     * The TPM is not started: dest_card_check() starts the destination's,
     * which has the stream's TPM by then.  The response is TPM_RC_INITIALIZE.
     */
    s = qtest_init(VTPM_ARGS ",buffer-bar=off");
    port = vtpm_pci_port(s);
    vtpm_pci_write_command(s, port, get_random_32, sizeof(get_random_32));
    qtest_outl(s, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(s, port);
    tpm_util_migrate(s, uri);
    vtpm_pci_migration_assert_end(s, "completed", NULL);
    qtest_quit(s);

    /* The subsection (from_memory: true) after the card's buffer */
    g_assert_true(g_file_get_contents(stream, &img, &len, NULL));
    config = stream_card(img, len);
    g_assert_cmpuint(ldl_be_p(config + STREAM_STATE), ==,
                     VTPM_STATE_COMPLETE);
    data_len = ldl_be_p(config + STREAM_DATA_LEN);
    g_assert_cmpuint(data_len, ==, TPM_RSP_HDR_SIZE);
    /* ... where the section's footer was */
    g_assert_cmphex(config[STREAM_END + data_len], ==, 0x7e);
    edited = g_byte_array_new();
    g_byte_array_append(edited, (uint8_t *)img,
                        config + STREAM_END + data_len - img);
    g_byte_array_append(edited, (const uint8_t *)sub, sizeof(sub) - 1);
    g_byte_array_append(edited, (const uint8_t *)"\x01", 1);
    g_byte_array_append(edited, (uint8_t *)config + STREAM_END + data_len,
                        img + len - (config + STREAM_END + data_len));
    g_assert_true(g_file_set_contents(stream, (char *)edited->data,
                                      edited->len, NULL));
    g_byte_array_unref(edited);

    dest_refuses(VTPM_ARGS ",buffer-bar=off", uri,
                 "a response for the buffer BAR");

    /* Without the subsection, the response is the DATA port's */
    g_assert_true(g_file_set_contents(stream, img, len, NULL));
    s = dest_loads(VTPM_ARGS ",buffer-bar=off", uri);
    g_assert_cmpuint(vtpm_pci_read_response(s, vtpm_pci_port(s), rsp,
                                            sizeof(rsp)), ==, data_len);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_INITIALIZE);
    qtest_quit(s);
    g_unlink(stream);
}

/*
 * MSI-X aimed where it resets, unplugs or reconfigures the card.  The
 * card's completion interrupt is a write to an address the guest chose;
 * when that write reset the card (a bridge's Secondary Bus Reset) or
 * unplugged it (a slot's power control), the reset or unrealize waited
 * for the very command whose completion was being reported, with the
 * BQL held: QEMU hung for good.  Each case below sends one command, or
 * starts the flags query, with the vector aimed at one such place, with
 * completion within START (poll-ns) and through the main loop
 * (poll-ns=0), and then checks that QEMU answers and that the card is
 * either gone or answers TPM commands again.
 */

/* q35's MMCONFIG, where the test puts it (as firmware does) */
#define MMCFG_BASE          0xb0000000u
#define MMCFG_ADDR(bdf, reg) (MMCFG_BASE | (bdf) << 12 | (reg))
#define Q35_PCIEXBAR        0x60
#define BRIDGE_DEVFN        QPCI_DEVFN(2, 0)
#define CARD_DEVFN          QPCI_DEVFN(4, 0)
/* The windows the test gives a bridge: libqos places BARs from there */
#define WINDOW_IO           0xc000
#define WINDOW_MEM          0xe0000000u

typedef enum {
    MSI_AT_ROOT_PORT_SBR,       /* pcie-root-port's Bridge Control */
    MSI_AT_BRIDGE_SBR,          /* pci-bridge's Bridge Control */
    MSI_AT_SLOT_POWER_OFF,      /* pcie-root-port's Slot Control */
    MSI_AT_OWN_TABLE,           /* the card's own MSI-X vector control */
    MSI_AT_OWN_PBA,             /* the card's own pending bits */
    MSI_AT_OWN_COMMAND,         /* the card's command register */
    MSI_AT_OWN_MSIX_CONTROL,    /* the card's MSI-X message control */
} MSITarget;

typedef struct {
    MSITarget target;
    bool query;                 /* the flags query, not a command */
    bool no_poll;               /* poll-ns=0 */
    bool swtpm;                 /* -tpmdev emulator, not the card's own */
} MSICase;

typedef struct {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *bridge;         /* or NULL: the card is on the root bus */
    QPCIDevice *card;
    QPCIBar bar0;
    uint64_t msi_addr;
    uint32_t msi_data;
    SocketAddress *swtpm_addr;  /* swtpm's, with MSICase.swtpm */
    GPid swtpm_pid;
    char *swtpm_dir;            /* its state */
} MSIWorld;

/* The card's ports, for msi_transfer() */
static uint16_t msi_port;

static void msi_transfer(QTestState *s,
                         const unsigned char *req, size_t req_size,
                         unsigned char *rsp, size_t rsp_size)
{
    vtpm_pci_transfer_at(s, msi_port, req, req_size, rsp, rsp_size);
}

static bool msi_target_is_bridge(MSITarget target)
{
    return target <= MSI_AT_SLOT_POWER_OFF;
}

static uint32_t msi_bdf(QPCIDevice *dev)
{
    /* libqos' devfn carries the bus number above the low 8 bits */
    return dev->devfn;
}

/* The machine, with the card behind a bridge or on the root bus */
static void msi_world_init(MSIWorld *w, const MSICase *c)
{
    g_autofree char *card_opts = NULL;
    GError *error = NULL;
    QPCIDevice *host;
    uint64_t table;

    w->swtpm_addr = NULL;
    w->swtpm_dir = NULL;
    if (c->swtpm) {
        w->swtpm_dir = g_build_filename(tmp_dir, "swtpm", NULL);
        g_assert_cmpint(g_mkdir(w->swtpm_dir, 0700), ==, 0);
        g_assert_true(tpm_util_swtpm_start(w->swtpm_dir, &w->swtpm_pid,
                                           &w->swtpm_addr, &error));
        card_opts = g_strdup_printf(",tpmdev=dev%s -chardev socket,"
                                    "id=chr,path=%s -tpmdev emulator,"
                                    "id=dev,chardev=chr",
                                    c->no_poll ? ",poll-ns=0" : "",
                                    w->swtpm_addr->u.q_unix.path);
    } else {
        card_opts = g_strdup(c->no_poll ? ",poll-ns=0" : "");
    }

    /*
     * -nodefaults, as the fuzz targets have: no default NIC or VGA in
     * the slots the bridges take
     */
    switch (c->target) {
    case MSI_AT_ROOT_PORT_SBR:
    case MSI_AT_SLOT_POWER_OFF:
        /* Native PCIe hot-plug: the slot's power control unplugs */
        w->qts = qtest_initf("-M q35 -nodefaults -m 64 -global ICH9-LPC."
                             "acpi-pci-hotplug-with-bridge-support=off "
                             "-device pcie-root-port,id=rp,chassis=1,"
                             "slot=1,addr=2.0 "
                             "-device vtpm-pci,id=card,bus=rp%s", card_opts);
        break;
    case MSI_AT_BRIDGE_SBR:
        w->qts = qtest_initf("-M q35 -nodefaults -m 64 "
                             "-device pci-bridge,id=br,chassis_nr=1,addr=2.0 "
                             "-device vtpm-pci,id=card,bus=br,addr=4.0%s",
                             card_opts);
        break;
    default:
        w->qts = qtest_initf("-M q35 -nodefaults -m 64 "
                             "-device vtpm-pci,id=card,addr=4.0%s", card_opts);
        break;
    }
    w->bus = qpci_new_pc(w->qts, NULL);

    /* MMCONFIG on, 256 buses, as firmware turns it on */
    host = qpci_device_find(w->bus, 0);
    qpci_config_writel(host, Q35_PCIEXBAR, MMCFG_BASE | 1);
    g_free(host);

    w->bridge = NULL;
    if (msi_target_is_bridge(c->target)) {
        w->bridge = qpci_device_find(w->bus, BRIDGE_DEVFN);
        g_assert_nonnull(w->bridge);
        qpci_config_writeb(w->bridge, PCI_SECONDARY_BUS, 1);
        qpci_config_writeb(w->bridge, PCI_SUBORDINATE_BUS, 1);
        qpci_config_writeb(w->bridge, PCI_IO_BASE, WINDOW_IO >> 8);
        qpci_config_writeb(w->bridge, PCI_IO_LIMIT, WINDOW_IO >> 8);
        qpci_config_writew(w->bridge, PCI_MEMORY_BASE, WINDOW_MEM >> 16);
        qpci_config_writew(w->bridge, PCI_MEMORY_LIMIT, WINDOW_MEM >> 16);
        qpci_config_writew(w->bridge, PCI_COMMAND, PCI_COMMAND_IO |
                           PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
        w->card = qpci_device_find(w->bus, 1 << 8 |
                                   (c->target == MSI_AT_BRIDGE_SBR ?
                                    CARD_DEVFN : 0));
    } else {
        w->card = qpci_device_find(w->bus, CARD_DEVFN);
    }
    g_assert_nonnull(w->card);

    qpci_device_enable(w->card);
    w->bar0 = qpci_iomap(w->card, VTPM_PCI_BAR, NULL);
    msi_port = w->bar0.addr;
    qpci_msix_enable(w->card);
    table = w->card->msix_table_bar.addr + w->card->msix_table_off;

    switch (c->target) {
    case MSI_AT_ROOT_PORT_SBR:
    case MSI_AT_BRIDGE_SBR:
        /* Bridge Control is the upper half of the dword at 0x3c */
        w->msi_addr = MMCFG_ADDR(msi_bdf(w->bridge), PCI_INTERRUPT_LINE);
        w->msi_data = PCI_BRIDGE_CTL_BUS_RESET << 16;
        break;
    case MSI_AT_SLOT_POWER_OFF:
        w->msi_addr = MMCFG_ADDR(msi_bdf(w->bridge),
                                 qpci_find_capability(w->bridge,
                                                      PCI_CAP_ID_EXP, 0) +
                                 PCI_EXP_SLTCTL);
        w->msi_data = PCI_EXP_SLTCTL_PWR_OFF | PCI_EXP_SLTCTL_PWR_IND_OFF;
        break;
    case MSI_AT_OWN_TABLE:
        w->msi_addr = table + PCI_MSIX_ENTRY_VECTOR_CTRL;
        w->msi_data = PCI_MSIX_ENTRY_CTRL_MASKBIT;
        break;
    case MSI_AT_OWN_PBA:
        w->msi_addr = w->card->msix_pba_bar.addr + w->card->msix_pba_off;
        w->msi_data = 1;
        break;
    case MSI_AT_OWN_COMMAND:
        w->msi_addr = MMCFG_ADDR(msi_bdf(w->card), PCI_COMMAND);
        w->msi_data = 0;
        break;
    case MSI_AT_OWN_MSIX_CONTROL:
        /* Message Control is the upper half of the capability's dword */
        w->msi_addr = MMCFG_ADDR(msi_bdf(w->card),
                                 qpci_find_capability(w->card,
                                                      PCI_CAP_ID_MSIX, 0));
        w->msi_data = (uint32_t)PCI_MSIX_FLAGS_MASKALL << 16;
        break;
    default:
        g_assert_not_reached();
    }

    qtest_writel(w->qts, table + PCI_MSIX_ENTRY_LOWER_ADDR, w->msi_addr);
    qtest_writel(w->qts, table + PCI_MSIX_ENTRY_UPPER_ADDR,
                 w->msi_addr >> 32);
    qtest_writel(w->qts, table + PCI_MSIX_ENTRY_DATA, w->msi_data);
    qtest_writel(w->qts, table + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    qtest_outl(w->qts, msi_port + A_VTPM_INT_ENABLE,
               R_VTPM_INT_ENABLE_COMPLETE_MASK);
}

static void msi_world_free(MSIWorld *w)
{
    g_free(w->card);
    g_free(w->bridge);
    qpci_free_pc(w->bus);
    qtest_quit(w->qts);
    if (w->swtpm_addr) {
        tpm_util_swtpm_kill(w->swtpm_pid);
        g_unlink(w->swtpm_addr->u.q_unix.path);
        qapi_free_SocketAddress(w->swtpm_addr);
        tpm_util_rmdir(w->swtpm_dir);
        g_free(w->swtpm_dir);
    }
}

/* Has the card's interrupt been sent?  Each target shows it its way. */
static bool msi_landed(MSIWorld *w, const MSICase *c)
{
    uint32_t status;

    switch (c->target) {
    case MSI_AT_ROOT_PORT_SBR:
    case MSI_AT_BRIDGE_SBR:
        return qpci_config_readw(w->bridge, PCI_BRIDGE_CONTROL) &
               PCI_BRIDGE_CTL_BUS_RESET;
    case MSI_AT_SLOT_POWER_OFF:
        return qpci_config_readw(w->card, PCI_VENDOR_ID) == 0xffff;
    case MSI_AT_OWN_COMMAND:
        return !qpci_config_readw(w->card, PCI_COMMAND);
    case MSI_AT_OWN_MSIX_CONTROL:
        return qpci_config_readw(w->card,
                                 qpci_find_capability(w->card,
                                                      PCI_CAP_ID_MSIX, 0) +
                                 PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_MASKALL;
    case MSI_AT_OWN_TABLE:
    case MSI_AT_OWN_PBA:
        /*
         * The PBA ignores writes, and a write to the table from within
         * one of the card's own register accesses is blocked as
         * re-entrant: wait for the completion instead
         */
        status = qtest_inl(w->qts, msi_port + A_VTPM_STATUS);
        return FIELD_EX32(status, VTPM_STATUS, STATE) !=
               VTPM_STATE_EXECUTING &&
               (qtest_inl(w->qts, msi_port + A_VTPM_INT_STATUS) &
                R_VTPM_INT_STATUS_COMPLETE_MASK);
    }
    g_assert_not_reached();
}

static void test_msi_target(const void *opaque)
{
    const MSICase *c = opaque;
    static const uint8_t startup[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44,
        0x00, 0x00,                             /* TPM_SU_CLEAR */
    };
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    uint8_t rsp[32], random[8];
    MSIWorld w;

    if (c->swtpm && !tpm_util_swtpm_has_tpm2()) {
        g_test_skip("swtpm not in PATH or missing --tpm2 support");
        return;
    }
    msi_world_init(&w, c);

    if (c->query) {
        qtest_outl(w.qts, msi_port + A_VTPM_CONTROL,
                   R_VTPM_CONTROL_QUERY_MASK);
    } else {
        vtpm_pci_write_command(w.qts, msi_port, startup, sizeof(startup));
        qtest_outl(w.qts, msi_port + A_VTPM_CONTROL,
                   R_VTPM_CONTROL_START_MASK);
    }
    while (!msi_landed(&w, c)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }

    /* QEMU answers */
    qtest_qmp_assert_success(w.qts, "{ 'execute': 'query-status' }");

    if (c->target == MSI_AT_SLOT_POWER_OFF) {
        /* The card is gone, and its own TPM with it */
        g_assert_cmphex(qpci_config_readl(w.card, PCI_VENDOR_ID), ==,
                        0xffffffff);
        if (!c->swtpm) {
            tpm_cmd_assert_query_tpm_none(w.qts);
        }
        msi_world_free(&w);
        return;
    }

    /* The card answers again once the guest sets it up again */
    if (w.bridge) {
        qpci_config_writew(w.bridge, PCI_BRIDGE_CONTROL, 0);
    }
    qpci_msix_disable(w.card);
    qpci_config_writel(w.card, PCI_BASE_ADDRESS_0, msi_port);
    qpci_device_enable(w.card);
    qtest_outl(w.qts, msi_port + A_VTPM_INT_ENABLE, 0);
    qtest_outl(w.qts, msi_port + A_VTPM_INT_STATUS,
               R_VTPM_INT_STATUS_COMPLETE_MASK);
    if (vtpm_pci_state(w.qts, msi_port) == VTPM_STATE_COMPLETE) {
        vtpm_pci_read_response(w.qts, msi_port, rsp, sizeof(rsp));
    }
    g_assert_cmpuint(vtpm_pci_state(w.qts, msi_port), ==, VTPM_STATE_IDLE);
    /* After a reset the TPM is new; otherwise the Startup above ran */
    msi_transfer(w.qts, startup, sizeof(startup), rsp, sizeof(rsp));
    g_assert_true(ldl_be_p(rsp + 6) == 0 ||
                  ldl_be_p(rsp + 6) == TPM_RC_INITIALIZE);
    tpm_cmd_get_random(w.qts, msi_transfer, random, sizeof(random));
    msi_world_free(&w);
}

static void add_msi_tests(void)
{
    static const char *const names[] = {
        [MSI_AT_ROOT_PORT_SBR] = "root-port-sbr",
        [MSI_AT_BRIDGE_SBR] = "bridge-sbr",
        [MSI_AT_SLOT_POWER_OFF] = "slot-power-off",
        [MSI_AT_OWN_TABLE] = "own-msix-table",
        [MSI_AT_OWN_PBA] = "own-msix-pba",
        [MSI_AT_OWN_COMMAND] = "own-command",
        [MSI_AT_OWN_MSIX_CONTROL] = "own-msix-control",
    };
    static MSICase cases[ARRAY_SIZE(names) * 8];
    unsigned i, n = 0;

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        bool bridge = msi_target_is_bridge(i);
        unsigned mode;

        if (!qtest_has_device(bridge && i == MSI_AT_BRIDGE_SBR ?
                              "pci-bridge" : "pcie-root-port")) {
            continue;
        }
        /* Behind a bridge, also with swtpm behind the card */
        for (mode = 0; mode < (bridge ? 8 : 4); mode++) {
            g_autofree char *path = NULL;
            MSICase *c = &cases[n++];

            c->target = i;
            c->query = mode & 1;
            c->no_poll = mode & 2;
            c->swtpm = mode & 4;
            path = g_strdup_printf("/vtpm-pci/fuzz/msi/%s/%s%s%s", names[i],
                                   c->query ? "query" : "command",
                                   c->no_poll ? "/poll-ns=0" : "",
                                   c->swtpm ? "/swtpm" : "");
            qtest_add_data_func(path, c, test_msi_target);
        }
    }
}

/*
 * Found by generic-fuzz-vtpm-pci-pinned-bridges: QEMU keeps the two low
 * bits of the register number a guest writes to CONFIG_ADDRESS (0xcf8),
 * so a 4-byte access to CONFIG_DATA (0xcfc) can start at any byte.  One
 * that covered part of a pinned BAR 0 and part of the register before or
 * after it failed an assertion in the card, which took it to lie inside
 * BAR 0.  Each byte goes where it belongs: BAR 0 stays pinned, BAR 1 (the
 * MSI-X table's, writable) takes its bytes, and the card answers.
 */
static void conf1_writel(QTestState *s, uint8_t devfn, uint8_t reg,
                         uint32_t val)
{
    qtest_outl(s, 0xcf8, 0x80000000u | devfn << 8 | reg);
    qtest_outl(s, 0xcfc, val);
}

static void test_pinned_unaligned_config(void)
{
    QTestState *s = qtest_initf("-M q35 -m 32 -device vtpm-pci,addr=4.0,"
                                "iobase=0x2000");
    QPCIBus *bus = qpci_new_pc(s, NULL);
    QPCIDevice *card = qpci_device_find(bus, CARD_DEVFN);

    /* Header type and BIST (read-only), then the low half of BAR 0 */
    conf1_writel(s, CARD_DEVFN, PCI_BASE_ADDRESS_0 - 2, 0x3000ffff);
    /* The high half of BAR 0, then the low half of BAR 1 */
    conf1_writel(s, CARD_DEVFN, PCI_BASE_ADDRESS_0 + 2, 0xe0000000);
    conf1_writel(s, CARD_DEVFN, PCI_BASE_ADDRESS_0 + 3, 0xffffffff);
    conf1_writel(s, CARD_DEVFN, PCI_BASE_ADDRESS_0 - 1, 0xffffffff);

    g_assert_cmphex(qpci_config_readl(card, PCI_BASE_ADDRESS_0), ==,
                    0x2000 | PCI_BASE_ADDRESS_SPACE_IO);
    g_assert_cmphex(qpci_config_readw(card, PCI_BASE_ADDRESS_1), ==,
                    0xf000);
    g_assert_cmphex(qpci_config_readb(card, PCI_HEADER_TYPE), ==,
                    PCI_HEADER_TYPE_NORMAL);
    g_assert_cmphex(qtest_inl(s, 0x2000 + A_VTPM_ID), ==,
                    VTPM_PCI_ID_MAGIC);
    g_free(card);
    qpci_free_pc(bus);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    size_t i;
    int ret;

    tmp_dir = g_dir_make_tmp("fuzz-vtpm-pci.XXXXXX", NULL);
    g_assert_nonnull(tmp_dir);
    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < ARRAY_SIZE(stream_cases); i++) {
        g_autofree char *path = g_strdup_printf("/vtpm-pci/fuzz/stream/%s",
                                                stream_cases[i].name);

        qtest_add_data_func(path, &stream_cases[i], test_stream);
    }
    qtest_add_func("/vtpm-pci/fuzz/stream/buffer-bar-off",
                   test_stream_buffer_off);
    add_msi_tests();
    qtest_add_func("/vtpm-pci/fuzz/pinned/unaligned-config",
                   test_pinned_unaligned_config);
    ret = g_test_run();
    g_rmdir(tmp_dir);
    g_free(tmp_dir);
    return ret;
}
