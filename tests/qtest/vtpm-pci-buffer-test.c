/*
 * QTest testcase for vtpm-pci's buffer BAR (BAR 2): TPM commands in RAM,
 * started with CONTROL.START_BUFFER
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
#include "hw/pci/pci.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"
#include "tpm-cmd-tests.h"
#include "vtpm-pci-util.h"

#define VTPM_ARGS       "-M q35 -device vtpm-pci,id=card,addr=4.0"
/* A card whose commands all complete later, in the main loop */
#define VTPM_ARGS_SLOW  VTPM_ARGS ",poll-ns=0"

/* The slot of the card the unplug test takes out (pc's root bus) */
#define UNPLUG_SLOT     4

/* Another place for BAR 2, in the PCI hole of pc and q35 */
#define BUFFER_B        0xe2000000

/* The spec's interface version 1.1, and FEATURES.BUFFER */
#define SPEC_VERSION    0x00010001
#define SPEC_BUFFER     1

#define BUFFER_FILL     0xa5

/* A response with an authorization area (TPM 2.0 Part 2, 6.9) */
#define TPM2_ST_SESSIONS    0x8002

static const uint8_t tpm2_get_random_32[] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x20,
};

static uint32_t reg(QTestState *s, uint16_t port, uint32_t offset)
{
    return qtest_inl(s, port + offset);
}

static void control(QTestState *s, uint16_t port, uint32_t val)
{
    qtest_outl(s, port + A_VTPM_CONTROL, val);
}

/* Fill the whole of BAR 2 with @byte */
static void buffer_fill(QTestState *s, uint64_t buffer, uint8_t byte)
{
    g_autofree uint8_t *fill = g_malloc(VTPM_PCI_BUFFER_MAX);

    memset(fill, byte, VTPM_PCI_BUFFER_MAX);
    qtest_memwrite(s, buffer, fill, VTPM_PCI_BUFFER_MAX);
}

/* BAR 2 holds zeroes from @from on */
static void assert_buffer_clear(QTestState *s, uint64_t buffer, size_t from)
{
    g_autofree uint8_t *held = g_malloc(VTPM_PCI_BUFFER_MAX);
    size_t i;

    qtest_memread(s, buffer, held, VTPM_PCI_BUFFER_MAX);
    for (i = from; i < VTPM_PCI_BUFFER_MAX; i++) {
        g_assert_cmphex(held[i], ==, 0);
    }
}

/* A GetRandom(32) response: success, 32 bytes */
static void assert_random_32(const uint8_t *rsp, size_t len)
{
    g_assert_cmpuint(len, ==, TPM_RSP_HDR_SIZE + 2 + 32);
    g_assert_cmphex(lduw_be_p(rsp), ==, TPM2_ST_NO_SESSIONS);
    g_assert_cmpuint(ldl_be_p(rsp + 2), ==, len);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    g_assert_cmpuint(lduw_be_p(rsp + 10), ==, 32);
}

/* The commands guests started, as the host reads them */
static uint64_t card_commands(QTestState *s)
{
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'qom-get', 'arguments': "
                           "{ 'path': 'card', 'property': 'commands' } }");
    uint64_t n = qdict_get_int(rsp, "return");

    qobject_unref(rsp);
    return n;
}

static void test_identification(void)
{
    QTestState *s = qtest_init(VTPM_ARGS);
    uint16_t port = vtpm_pci_port(s);

    g_assert_cmphex(reg(s, port, A_VTPM_VERSION), ==, SPEC_VERSION);
    g_assert_cmphex(reg(s, port, A_VTPM_FEATURES), ==, SPEC_BUFFER);
    g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, VTPM_ERR_NONE);

    /* FEATURES is read-only */
    qtest_outl(s, port + A_VTPM_FEATURES, 0);
    g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, VTPM_ERR_ACCESS);
    g_assert_cmphex(reg(s, port, A_VTPM_FEATURES), ==, SPEC_BUFFER);
    qtest_quit(s);
}

/* buffer-bar=off: interface 1.1 all the same, without BAR 2 */
static void test_off(void)
{
    QTestState *s = qtest_init(VTPM_ARGS ",buffer-bar=off");
    uint16_t port = vtpm_pci_port(s);
    QPCIBus *bus = qpci_new_pc(s, NULL);
    QPCIDevice *dev = qpci_device_find(bus, QPCI_DEVFN(4, 0));
    uint8_t rsp[64];

    g_assert_cmphex(reg(s, port, A_VTPM_VERSION), ==, SPEC_VERSION);
    g_assert_cmphex(reg(s, port, A_VTPM_FEATURES), ==, 0);
    qpci_config_writel(dev, PCI_BASE_ADDRESS_2, 0xffffffff);
    g_assert_cmphex(qpci_config_readl(dev, PCI_BASE_ADDRESS_2), ==, 0);

    /* START_BUFFER is refused, and the card is as it was */
    tpm_util_startup(s, vtpm_pci_transfer);
    control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
    g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, VTPM_ERR_VALUE);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    vtpm_pci_transfer_at(s, port, tpm2_get_random_32,
                         sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    assert_random_32(rsp, TPM_RSP_HDR_SIZE + 2 + 32);

    g_free(dev);
    qpci_free_pc(bus);
    qtest_quit(s);
}

/* The TPM command tests that run through the DATA port, through BAR 2 */
static void test_tpm_cmd(const void *data)
{
    const TPMCmdTest *cmd = data;
    QTestState *s = qtest_init(VTPM_ARGS);

    cmd->check(s, vtpm_pci_buffer_transfer);
    qtest_quit(s);
}

/*
 * TPM2_Hash of 1 KiB (TPM 2.0 Part 3, 15.4), the largest input the TPM
 * takes: its SHA-256 digest is the one GLib computes
 */
static void test_hash(void)
{
    QTestState *s = qtest_init(VTPM_ARGS);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t data[1024], digest[32], cmd[10 + 2 + sizeof(data) + 2 + 4];
    uint8_t rsp[128], rsp_data[128];
    gsize digest_len = sizeof(digest);
    uint32_t len;
    size_t i;

    for (i = 0; i < sizeof(data); i++) {
        data[i] = i * 7 + 3;
    }
    g_checksum_update(sha256, data, sizeof(data));
    g_checksum_get_digest(sha256, digest, &digest_len);

    stw_be_p(cmd, TPM2_ST_NO_SESSIONS);
    stl_be_p(cmd + 2, sizeof(cmd));
    stl_be_p(cmd + 6, 0x17d);                   /* TPM_CC_Hash */
    stw_be_p(cmd + 10, sizeof(data));
    memcpy(cmd + 12, data, sizeof(data));
    stw_be_p(cmd + 12 + sizeof(data), 0x000b);  /* TPM_ALG_SHA256 */
    stl_be_p(cmd + 14 + sizeof(data), 0x40000007);  /* TPM_RH_NULL */

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    vtpm_pci_buffer_transfer_at(s, port, buffer, cmd, sizeof(cmd),
                                rsp, sizeof(rsp));
    len = reg(s, port, A_VTPM_RSP_SIZE);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    g_assert_cmpuint(ldl_be_p(rsp + 2), ==, len);
    g_assert_cmpuint(lduw_be_p(rsp + 10), ==, sizeof(digest));
    g_assert_cmpmem(rsp + 12, sizeof(digest), digest, sizeof(digest));
    /* The ticket: TPM_ST_HASHCHECK, TPM_RH_NULL, no digest */
    g_assert_cmpuint(len, ==, 12 + sizeof(digest) + 2 + 4 + 2);
    g_assert_cmphex(lduw_be_p(rsp + 44), ==, 0x8024);
    g_assert_cmphex(ldl_be_p(rsp + 46), ==, 0x40000007);

    /* The same response is on DATA, whose last byte ends it */
    g_assert_cmpuint(vtpm_pci_read_response(s, port, rsp_data,
                                            sizeof(rsp_data)), ==, len);
    g_assert_cmpmem(rsp_data, len, rsp, len);
    qtest_quit(s);
}

/*
 * BAR 2 is where the guest puts it: moved, the command and response
 * are at the new address, and nothing is left at the old one
 */
static void test_relocation(void)
{
    QTestState *s = qtest_init(VTPM_ARGS);
    uint16_t port = vtpm_pci_port(s);
    QPCIBus *bus = qpci_new_pc(s, NULL);
    QPCIDevice *dev = qpci_device_find(bus, QPCI_DEVFN(4, 0));
    uint64_t buffer = vtpm_pci_buffer(s);
    uint8_t rsp[64], old[16], zero[16] = { 0 };

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    assert_random_32(rsp, reg(s, port, A_VTPM_RSP_SIZE));

    qpci_config_writel(dev, PCI_BASE_ADDRESS_2, BUFFER_B);
    g_assert_cmphex(qpci_config_readl(dev, PCI_BASE_ADDRESS_2) &
                    PCI_BASE_ADDRESS_MEM_MASK, ==, BUFFER_B);
    qtest_memread(s, buffer, old, sizeof(old));
    g_assert_cmpmem(old, sizeof(old), zero, sizeof(zero));
    /* The response is still there, at the new address */
    qtest_memread(s, BUFFER_B, old, sizeof(old));
    g_assert_cmpmem(old, sizeof(old), rsp, sizeof(old));

    vtpm_pci_buffer_transfer_at(s, port, BUFFER_B, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    assert_random_32(rsp, reg(s, port, A_VTPM_RSP_SIZE));

    /* With memory decode off, the guest cannot reach it */
    qpci_config_writew(dev, PCI_COMMAND, PCI_COMMAND_IO);
    qtest_memread(s, BUFFER_B, old, sizeof(old));
    g_assert_cmpmem(old, sizeof(old), zero, sizeof(zero));

    g_free(dev);
    qpci_free_pc(bus);
    qtest_quit(s);
}

/*
 * Start an RSA key generation from BAR 2 on a card with poll-ns=0, and
 * fill BAR 2 with BUFFER_FILL while it runs.  Returns whether the fill
 * happened while the command executed; the response is the key's.
 */
static bool overwrite_executing(QTestState *s, uint16_t port,
                                uint64_t buffer, uint32_t salt)
{
    uint8_t cmd[TPM_CMD_CREATE_PRIMARY_SALTED_SIZE], rsp[1024];
    size_t cmd_len = tpm_cmd_create_primary_salted(cmd, salt, 2048);
    bool executing;
    uint32_t len;
    size_t i;

    qtest_memwrite(s, buffer, cmd, cmd_len);
    control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
    buffer_fill(s, buffer, BUFFER_FILL);
    executing = vtpm_pci_state(s, port) == VTPM_STATE_EXECUTING;
    vtpm_pci_wait_done(s, port);

    /* TPM2_CreatePrimary's response, with the handle of a new object */
    len = reg(s, port, A_VTPM_RSP_SIZE);
    g_assert_cmpuint(len, >, 14);
    g_assert_cmpuint(len, <=, sizeof(rsp));
    qtest_memread(s, buffer, rsp, sizeof(rsp));
    g_assert_cmphex(lduw_be_p(rsp), ==, TPM2_ST_SESSIONS);
    g_assert_cmpuint(ldl_be_p(rsp + 2), ==, len);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    g_assert_cmphex(ldl_be_p(rsp + 10) & 0xff000000, ==, TPM2_TRANSIENT_FIRST);
    /* The response covers the fill, and no more */
    for (i = len; i < sizeof(rsp); i++) {
        g_assert_cmphex(rsp[i], ==, BUFFER_FILL);
    }
    tpm_cmd_flush(s, vtpm_pci_buffer_transfer, ldl_be_p(rsp + 10));
    return executing;
}

/*
 * A guest that writes BAR 2 while the TPM works does not change what the
 * TPM executes: the card took a copy at START_BUFFER.  A key generation
 * takes long enough for the fill to land while it runs, nearly always;
 * the test tries keys until one did, and every key must be whole.
 */
static void test_overwrite_executing(void)
{
    QTestState *s = qtest_init(VTPM_ARGS_SLOW);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    bool seen = false;
    uint32_t salt;

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    for (salt = 1; salt <= 8 && !seen; salt++) {
        seen = overwrite_executing(s, port, buffer, salt);
    }
    g_assert_true(seen);
    qtest_quit(s);
}

/* The DATA port and BAR 2, command after command */
static void test_mixed(void)
{
    QTestState *s = qtest_init(VTPM_ARGS);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    uint8_t rsp[64], rsp_data[64];
    uint64_t commands;

    tpm_util_startup(s, vtpm_pci_transfer);
    commands = card_commands(s);

    /* BAR 2, then DATA: a DATA write waits for the response to go */
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    g_assert_cmpuint(card_commands(s), ==, commands + 1);
    qtest_outb(s, port + A_VTPM_DATA, 0x80);
    g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, VTPM_ERR_STATE);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_COMPLETE);
    control(s, port, R_VTPM_CONTROL_ABORT_MASK);
    vtpm_pci_transfer_at(s, port, tpm2_get_random_32,
                         sizeof(tpm2_get_random_32), rsp_data,
                         sizeof(rsp_data));
    assert_random_32(rsp_data, TPM_RSP_HDR_SIZE + 2 + 32);

    /* DATA's response unread: START_BUFFER drops it */
    vtpm_pci_write_command(s, port, tpm2_get_random_32,
                           sizeof(tpm2_get_random_32));
    control(s, port, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(s, port);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_COMPLETE);
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    assert_random_32(rsp, reg(s, port, A_VTPM_RSP_SIZE));

    /* ... and so does a second START_BUFFER, for BAR 2's */
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    g_assert_cmpuint(card_commands(s), ==, commands + 5);

    /* A command half written on DATA: START_BUFFER is refused */
    control(s, port, R_VTPM_CONTROL_ABORT_MASK);
    vtpm_pci_write_command(s, port, tpm2_get_random_32, 6);
    control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
    g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, VTPM_ERR_STATE);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_RECEIVING);
    g_assert_cmpuint(reg(s, port, A_VTPM_CMD_SIZE), ==, 6);
    vtpm_pci_write_command(s, port, tpm2_get_random_32 + 6,
                           sizeof(tpm2_get_random_32) - 6);
    control(s, port, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(s, port);
    g_assert_cmpuint(vtpm_pci_read_response(s, port, rsp_data,
                                            sizeof(rsp_data)), ==, 44);
    assert_random_32(rsp_data, 44);
    g_assert_cmpuint(card_commands(s), ==, commands + 6);
    qtest_quit(s);
}

/* Commands the card refuses at START_BUFFER, for their size or the state */
static void test_bad(void)
{
    QTestState *s = qtest_init(VTPM_ARGS_SLOW);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    uint32_t buf_size = reg(s, port, A_VTPM_BUF_SIZE);
    const struct {
        uint32_t size;
        uint32_t error;
    } sizes[] = {
        { 0, VTPM_ERR_LENGTH },
        { 9, VTPM_ERR_LENGTH },
        { buf_size + 1, VTPM_ERR_OVERFLOW },
        { VTPM_PCI_BUFFER_MAX + 1, VTPM_ERR_OVERFLOW },
        { UINT32_MAX, VTPM_ERR_OVERFLOW },
    };
    uint8_t cmd[TPM_CMD_CREATE_PRIMARY_SALTED_SIZE], rsp[64];
    bool seen = false;
    uint32_t salt;
    size_t i;

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    for (i = 0; i < ARRAY_SIZE(sizes); i++) {
        uint8_t hdr[10];
        uint32_t size = sizes[i].size;

        /* A response there goes too */
        vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                    sizeof(tpm2_get_random_32), rsp,
                                    sizeof(rsp));
        memcpy(hdr, tpm2_get_random_32, sizeof(hdr));
        stl_be_p(hdr + 2, size);
        qtest_memwrite(s, buffer, hdr, sizeof(hdr));
        control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
        g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, sizes[i].error);
        g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
        g_assert_cmpuint(reg(s, port, A_VTPM_RSP_SIZE), ==, 0);
        g_assert_cmpuint(reg(s, port, A_VTPM_CMD_SIZE), ==, 0);
    }

    /*
     * While a key is made: refused, and the key is made all the same
     * (keys until the second START_BUFFER caught one executing)
     */
    for (salt = 1; salt <= 8 && !seen; salt++) {
        qtest_memwrite(s, buffer, cmd,
                       tpm_cmd_create_primary_salted(cmd, salt, 2048));
        control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
        control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
        if (vtpm_pci_state(s, port) == VTPM_STATE_EXECUTING) {
            g_assert_cmpuint(reg(s, port, A_VTPM_ERROR), ==, VTPM_ERR_STATE);
            seen = true;
        }
        vtpm_pci_wait_done(s, port);
        qtest_memread(s, buffer, rsp, sizeof(rsp));
        g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
        g_assert_cmphex(ldl_be_p(rsp + 10) & 0xff000000, ==,
                        TPM2_TRANSIENT_FIRST);
        tpm_cmd_flush(s, vtpm_pci_buffer_transfer, ldl_be_p(rsp + 10));
    }
    g_assert_true(seen);
    qtest_quit(s);
}

/*
 * A key generation started from BAR 2 and migrated before it finished:
 * the destination's card has its response in BAR 2 and on DATA, exactly
 * once.  The source finishes the command when it saves the card, after
 * the RAM left: the response reaches BAR 2 by the card's own state.
 */
static void test_migration(void)
{
    g_autofree char *dir = g_dir_make_tmp("vtpm-pci-buffer-XXXXXX", NULL);
    g_autofree char *stream = g_build_filename(dir, "stream", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    uint8_t cmd[TPM_CMD_CREATE_PRIMARY_SALTED_SIZE], rsp[1024];
    uint8_t rsp_data[1024];
    QTestState *s, *d;
    uint16_t port;
    uint64_t buffer;
    uint32_t len;

    s = qtest_init(VTPM_ARGS_SLOW);
    port = vtpm_pci_port(s);
    buffer = vtpm_pci_buffer(s);
    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    qtest_memwrite(s, buffer, cmd,
                   tpm_cmd_create_primary_salted(cmd, 7, 2048));
    control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
    tpm_util_migrate(s, uri);
    tpm_util_wait_for_migration_complete(s);
    qtest_quit(s);

    /* A card without BAR 2 refuses the stream (its RAM has no home) */
    d = qtest_init(VTPM_ARGS ",buffer-bar=off -incoming defer");
    qtest_qmp_assert_success(d, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "  'exit-on-error': false } }", uri);
    vtpm_pci_migration_assert_end(d, "failed", NULL);
    qtest_quit(d);

    d = qtest_init(VTPM_ARGS_SLOW " -incoming defer");
    qtest_qmp_assert_success(d, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s } }", uri);
    tpm_util_wait_for_migration_complete(d);
    qtest_qmp_assert_success(d, "{ 'execute': 'cont' }");
    g_assert_cmpuint(vtpm_pci_port(d), ==, port);
    g_assert_cmphex(vtpm_pci_buffer(d), ==, buffer);
    g_assert_cmpuint(vtpm_pci_state(d, port), ==, VTPM_STATE_COMPLETE);
    len = reg(d, port, A_VTPM_RSP_SIZE);
    g_assert_cmpuint(len, <=, sizeof(rsp));
    qtest_memread(d, buffer, rsp, len);
    g_assert_cmphex(lduw_be_p(rsp), ==, TPM2_ST_SESSIONS);
    g_assert_cmpuint(ldl_be_p(rsp + 2), ==, len);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    g_assert_cmpuint(vtpm_pci_read_response(d, port, rsp_data,
                                            sizeof(rsp_data)), ==, len);
    g_assert_cmpmem(rsp_data, len, rsp, len);

    /* The key is loaded in the destination's TPM */
    tpm_cmd_flush(d, vtpm_pci_buffer_transfer, ldl_be_p(rsp + 10));
    qtest_quit(d);
    g_unlink(stream);
    g_rmdir(dir);
}

/* A reset clears BAR 2, and the card starts over */
static void test_reset(void)
{
    QTestState *s = qtest_init(VTPM_ARGS);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    uint8_t rsp[64];

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    buffer_fill(s, buffer, BUFFER_FILL);
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));

    qtest_system_reset(s);
    /* The PCI core cleared the BARs: place them again */
    port = vtpm_pci_port(s);
    buffer = vtpm_pci_buffer(s);
    assert_buffer_clear(s, buffer, 0);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(reg(s, port, A_VTPM_RSP_SIZE), ==, 0);
    g_assert_cmphex(reg(s, port, A_VTPM_FEATURES), ==, SPEC_BUFFER);

    /* The TPM was reset too: it needs TPM2_Startup again */
    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    assert_random_32(rsp, reg(s, port, A_VTPM_RSP_SIZE));
    qtest_quit(s);
}

/*
 * Start an RSA key generation from BAR 2 on a card with poll-ns=0, and
 * leave it executing (a key that was done at once is taken and flushed,
 * and the next salt tried)
 */
static void start_key_executing(QTestState *s, uint16_t port,
                                uint64_t buffer)
{
    uint8_t cmd[TPM_CMD_CREATE_PRIMARY_SALTED_SIZE], rsp[64];
    uint32_t salt;

    for (salt = 1; salt <= 8; salt++) {
        qtest_memwrite(s, buffer, cmd,
                       tpm_cmd_create_primary_salted(cmd, salt, 2048));
        control(s, port, R_VTPM_CONTROL_START_BUFFER_MASK);
        if (vtpm_pci_state(s, port) == VTPM_STATE_EXECUTING) {
            return;
        }
        vtpm_pci_wait_done(s, port);
        qtest_memread(s, buffer, rsp, sizeof(rsp));
        tpm_cmd_flush(s, vtpm_pci_buffer_transfer, ldl_be_p(rsp + 10));
    }
    g_assert_not_reached();
}

/*
 * A reset while an RSA key is made from BAR 2: the card is idle at once,
 * BAR 2 is clear, and the key's response, which the TPM still produces,
 * never lands there (the TPM finishes it before it runs the next
 * command, whose response alone BAR 2 then holds)
 */
static void test_reset_mid_command(void)
{
    QTestState *s = qtest_init(VTPM_ARGS_SLOW);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    uint8_t rsp[64];
    uint32_t len;

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    start_key_executing(s, port, buffer);

    qtest_system_reset(s);
    port = vtpm_pci_port(s);
    buffer = vtpm_pci_buffer(s);
    g_assert_cmpuint(vtpm_pci_state(s, port), ==, VTPM_STATE_IDLE);
    g_assert_cmpuint(reg(s, port, A_VTPM_RSP_SIZE), ==, 0);

    /* TPM2_Startup waits for the key, then runs on the restarted TPM */
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_startup_clear,
                                sizeof(tpm2_startup_clear), rsp, sizeof(rsp));
    len = reg(s, port, A_VTPM_RSP_SIZE);
    g_assert_cmpuint(len, ==, TPM_RSP_HDR_SIZE);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    assert_buffer_clear(s, buffer, len);
    qtest_quit(s);
}

/*
 * Hot-unplug (pc: ACPI hotplug on the root bus) while an RSA key is made
 * from BAR 2.  The unplug waits for the key, whose response must not be
 * written to the card's RAM once that is gone (ASan sees it).  A new
 * card in the same slot, on the same backend, gets a BAR 2 of its own:
 * its RAM block is named after the slot, so the first card must have
 * given the name back.  It starts clear and carries commands.
 */
static void test_unplug_executing(void)
{
    QTestState *s = qtest_initf("-M pc -tpmdev libtpms,id=t "
                                "-device vtpm-pci,id=a,addr=%d.0,"
                                "poll-ns=0,tpmdev=t", UNPLUG_SLOT);
    uint16_t port = vtpm_pci_port(s);
    uint64_t buffer = vtpm_pci_buffer(s);
    uint8_t rsp[64];

    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    start_key_executing(s, port, buffer);
    qpci_unplug_acpi_device_test(s, "a", UNPLUG_SLOT);
    g_assert_cmphex(reg(s, port, A_VTPM_ID), ==, 0xffffffff);

    qtest_qmp_device_add(s, "vtpm-pci", "b", "{'addr': %d, "
                         "'tpmdev': 't'}", QPCI_DEVFN(UNPLUG_SLOT, 0));
    port = vtpm_pci_port(s);
    buffer = vtpm_pci_buffer(s);
    g_assert_cmphex(reg(s, port, A_VTPM_FEATURES), ==, SPEC_BUFFER);
    assert_buffer_clear(s, buffer, 0);
    tpm_util_startup(s, vtpm_pci_buffer_transfer);
    vtpm_pci_buffer_transfer_at(s, port, buffer, tpm2_get_random_32,
                                sizeof(tpm2_get_random_32), rsp, sizeof(rsp));
    assert_random_32(rsp, reg(s, port, A_VTPM_RSP_SIZE));
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        { "identification", test_identification },
        { "off", test_off },
        { "hash", test_hash },
        { "relocation", test_relocation },
        { "overwrite-executing", test_overwrite_executing },
        { "mixed", test_mixed },
        { "bad", test_bad },
        { "migration", test_migration },
        { "reset", test_reset },
        { "reset-mid-command", test_reset_mid_command },
        { "unplug-executing", test_unplug_executing },
    };
    size_t i;

    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < tpm_cmd_tests_count; i++) {
        g_autofree char *path = g_strdup_printf("vtpm-pci/buffer/tpm/%s",
                                                tpm_cmd_tests[i].name);

        qtest_add_data_func(path, &tpm_cmd_tests[i], test_tpm_cmd);
    }
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("vtpm-pci/buffer/%s",
                                                cases[i].name);

        qtest_add_func(path, cases[i].fn);
    }
    return g_test_run();
}
