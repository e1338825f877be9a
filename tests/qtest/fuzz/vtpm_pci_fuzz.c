/*
 * vtpm-pci fuzzing targets
 *
 * vtpm-pci-fuzz and vtpm-pci-tpm12-fuzz drive the card's registers as a
 * driver would, with sequences and TPM command frames from the fuzzer:
 * most of an input's bytes become TPM commands that run in libtpms,
 * through the DATA port or through the buffer BAR, and the rest pokes the
 * state machine in ways a driver should not.  Every response that comes
 * back is checked against what the card promises
 * (docs/specs/vtpm-pci.rst).
 *
 * vtpm-pci-migration-fuzz loads mutated migration streams of the card and
 * of its libtpms TPM: each is refused or loaded, and the card must then
 * answer a command, as a refused stream leaves it as it was.
 *
 * Each input starts from the same machine, with a TPM as it left the
 * factory: the state that libtpms keeps across a reset (its permanent
 * state) is restored from a snapshot between inputs, so that an input
 * that crashes QEMU does so on its own.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "io/channel-buffer.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "monitor/qdev.h"
#include "qobject/qdict.h"
#include "hw/acpi/ich9.h"
#include "hw/acpi/pcihp.h"
#include "hw/pci/pci_bridge.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pci_regs.h"
#include "hw/tpm/vtpm_pci.h"
#include "system/tpm.h"
#include "system/tpm_util.h"
#include "tests/qtest/libqtest.h"
#include "tests/qtest/vtpm-pci-util.h"
#include "fuzz.h"

/* PC configuration mechanism #1 */
#define PCI_CONFIG_ADDR         0xcf8
#define PCI_CONFIG_DATA         0xcfc

/* Where BAR 0 goes; an input may move it */
#define VTPM_FUZZ_PORT          0xc000
/* ... and BAR 2, the buffer */
#define VTPM_FUZZ_BUFFER        0xe1000000

/* Main loop turns a command may take before the input counts as a hang */
#define VTPM_FUZZ_WAIT_LOOPS    100000

/* The TPM 2.0 commands the migration target checks a loaded card with */
static const uint8_t tpm2_startup_clear[] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44, 0x00, 0x00,
};
static const uint8_t tpm2_get_random_8[] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x08,
};

typedef struct VTPMFuzz {
    PCIDevice *card;
    int32_t card_version;       /* its PCI configuration's, as realized */
    int bdf;                    /* the card's bus, device and function */
    uint16_t port;              /* BAR 0, as the input last placed it */
    /*
     * The card decodes its ports there, above the chipset's: what it
     * answers is its own, and is checked
     */
    bool checked;
    /*
     * Where that is: above the chipset's ports, or in the I/O window of
     * the root port the card is behind
     */
    uint32_t window[2];
    /* BAR 2 decodes at VTPM_FUZZ_BUFFER: the input's writes go there */
    bool buffer_checked;
    uint32_t buf_size;
    /*
     * The card's and the TPM's sections of the machine's device state,
     * and the root bus's (whose interrupt counts follow the card's
     * interrupt line), each a stream qemu_load_device_state() loads
     */
    GByteArray *fresh;          /* just reset, with a new TPM */
    GByteArray *bus;            /* the bus's, for the migration target */
    GByteArray *bases[3];       /* the card's and the TPM's, for it */
} VTPMFuzz;

static VTPMFuzz vf;

/* Register and PCI configuration access */

static unsigned vtpm_fuzz_width(uint8_t sel)
{
    return 1u << MIN(sel & 3, 2);
}

static uint32_t vtpm_fuzz_in(QTestState *s, uint16_t port, unsigned width)
{
    switch (width) {
    case 1:
        return qtest_inb(s, port);
    case 2:
        return qtest_inw(s, port);
    default:
        return qtest_inl(s, port);
    }
}

static void vtpm_fuzz_out(QTestState *s, uint16_t port, unsigned width,
                          uint32_t val)
{
    switch (width) {
    case 1:
        qtest_outb(s, port, val);
        break;
    case 2:
        qtest_outw(s, port, val);
        break;
    default:
        qtest_outl(s, port, val);
        break;
    }
}

static void vtpm_fuzz_config_addr(QTestState *s, int bdf, uint8_t offset)
{
    qtest_outl(s, PCI_CONFIG_ADDR, 0x80000000u | (bdf << 8) |
               (offset & 0xfc));
}

static uint32_t vtpm_fuzz_config_read(QTestState *s, int bdf,
                                      uint8_t offset, unsigned width)
{
    vtpm_fuzz_config_addr(s, bdf, offset);
    return vtpm_fuzz_in(s, PCI_CONFIG_DATA + (offset & (4 - width)), width);
}

static void vtpm_fuzz_config_write(QTestState *s, int bdf, uint8_t offset,
                                   unsigned width, uint32_t val)
{
    vtpm_fuzz_config_addr(s, bdf, offset);
    vtpm_fuzz_out(s, PCI_CONFIG_DATA + (offset & (4 - width)), width, val);
}

/* Follow BAR 0 where the input moved it, and see where BAR 2 is */
static void vtpm_fuzz_track_bar(QTestState *s)
{
    uint32_t bar = vtpm_fuzz_config_read(s, vf.bdf, PCI_BASE_ADDRESS_0, 4);
    uint32_t buffer = vtpm_fuzz_config_read(s, vf.bdf, PCI_BASE_ADDRESS_2, 4);
    uint16_t cmd = vtpm_fuzz_config_read(s, vf.bdf, PCI_COMMAND, 2);

    vf.port = bar & PCI_BASE_ADDRESS_IO_MASK & 0xffff;
    vf.checked = (cmd & PCI_COMMAND_IO) && vf.port >= vf.window[0] &&
                 vf.port + VTPM_PCI_BAR_SIZE - 1 <= vf.window[1];
    vf.buffer_checked = (cmd & PCI_COMMAND_MEMORY) &&
                        (buffer & PCI_BASE_ADDRESS_MEM_MASK) ==
                        VTPM_FUZZ_BUFFER;
}

/* A broken promise: abort, so that libFuzzer keeps the input */
static G_NORETURN void G_GNUC_PRINTF(1, 0) vtpm_fuzz_vabort(const char *fmt,
                                                           va_list ap)
{
    fprintf(stderr, "vtpm-pci: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    abort();
}

/* The card broke a promise about its registers, where we check them */
static void G_GNUC_PRINTF(1, 2) vtpm_fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    if (!vf.checked) {
        return;
    }
    va_start(ap, fmt);
    vtpm_fuzz_vabort(fmt, ap);
}

static uint32_t vtpm_fuzz_reg(QTestState *s, uint32_t reg)
{
    return qtest_inl(s, vf.port + reg);
}

static uint32_t vtpm_fuzz_state(QTestState *s)
{
    return FIELD_EX32(vtpm_fuzz_reg(s, A_VTPM_STATUS), VTPM_STATUS, STATE);
}

/*
 * Let the main loop run until the command in flight has completed, as a
 * driver waits for the interrupt or polls STATUS.  A card that never
 * completes is a hang: abort, so that libFuzzer keeps the input.
 */
static void vtpm_fuzz_wait(QTestState *s)
{
    int i;

    if (!vf.checked) {
        /* Whatever runs there, the reset after the input waits for it */
        return;
    }
    for (i = 0; i < VTPM_FUZZ_WAIT_LOOPS; i++) {
        if (vtpm_fuzz_state(s) != VTPM_STATE_EXECUTING) {
            return;
        }
        fuzz_watch_begin("a turn of the main loop");
        main_loop_wait(false);
        fuzz_watch_end();
    }
    vtpm_fuzz_fail("a command never completed");
}

/* Move @len bytes to DATA: whole words, then the rest bytewise */
static void vtpm_fuzz_write_data(QTestState *s, const uint8_t *data,
                                 size_t len)
{
    size_t i;

    for (i = 0; i + 4 <= len; i += 4) {
        qtest_outl(s, vf.port + A_VTPM_DATA, ldl_le_p(data + i));
    }
    for (; i < len; i++) {
        qtest_outb(s, vf.port + A_VTPM_DATA, data[i]);
    }
}

/*
 * Read a completed command's response and check it: RSP_SIZE bytes, a
 * TPM response whose header's size field says the same (if none of it
 * was read before: @whole), and the card idle after the last byte.
 */
static void vtpm_fuzz_read_response(QTestState *s, uint8_t *rsp,
                                    size_t rsp_size, bool whole)
{
    uint32_t len = vtpm_fuzz_reg(s, A_VTPM_RSP_SIZE);
    g_autofree uint8_t *buf = NULL;
    uint32_t i;

    if (len < sizeof(struct tpm_resp_hdr) || len > vf.buf_size) {
        vtpm_fuzz_fail("RSP_SIZE %u outside [%zu, %u]", len,
                       sizeof(struct tpm_resp_hdr), vf.buf_size);
        return;
    }
    buf = g_malloc(len);
    for (i = 0; i + 4 <= len; i += 4) {
        stl_le_p(buf + i, qtest_inl(s, vf.port + A_VTPM_DATA));
    }
    for (; i < len; i++) {
        buf[i] = qtest_inb(s, vf.port + A_VTPM_DATA);
    }
    if (whole && ldl_be_p(buf + 2) != len) {
        vtpm_fuzz_fail("response header says %u bytes, RSP_SIZE %u",
                       ldl_be_p(buf + 2), len);
    }
    if (vtpm_fuzz_state(s) != VTPM_STATE_IDLE) {
        vtpm_fuzz_fail("not idle after the whole response");
    }
    memcpy(rsp, buf, MIN(len, rsp_size));
}

/*
 * Send a whole command the way a driver does.  The checks hold when the
 * card was idle and decoding its BAR where we think it is.
 */
static void vtpm_fuzz_command(QTestState *s, const uint8_t *cmd, size_t len,
                              uint8_t *rsp, size_t rsp_size)
{
    bool idle = len && vtpm_fuzz_state(s) == VTPM_STATE_IDLE;

    vtpm_fuzz_write_data(s, cmd, len);
    if (idle && len <= vf.buf_size &&
        vtpm_fuzz_reg(s, A_VTPM_CMD_SIZE) != len) {
        vtpm_fuzz_fail("CMD_SIZE %u after %zu bytes",
                       vtpm_fuzz_reg(s, A_VTPM_CMD_SIZE), len);
    }
    qtest_outl(s, vf.port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    vtpm_fuzz_wait(s);
    if (vtpm_fuzz_state(s) == VTPM_STATE_COMPLETE) {
        /* Not idle before: the response of an earlier command, maybe read */
        vtpm_fuzz_read_response(s, rsp, rsp_size, idle);
    } else if (idle && len >= sizeof(struct tpm_req_hdr) &&
               len <= vf.buf_size && ldl_be_p(cmd + 2) == len) {
        /* A well-formed command on an idle card must run */
        vtpm_fuzz_fail("a well-formed command did not run, STATUS 0x%x "
                       "ERROR %u", vtpm_fuzz_reg(s, A_VTPM_STATUS),
                       vtpm_fuzz_reg(s, A_VTPM_ERROR));
    }
}

/*
 * Send a whole command through BAR 2, the way a driver does.  The checks
 * hold when the card was idle or complete and both BARs decode where we
 * think they are.  The card reads the command's size from its header.
 */
static void vtpm_fuzz_buffer_command(QTestState *s, const uint8_t *cmd,
                                     size_t len)
{
    uint32_t state, size, rsp_len;
    g_autofree uint8_t *in_buffer = NULL, *on_data = NULL;
    bool ready;

    if (!vf.buffer_checked) {
        return;
    }
    state = vtpm_fuzz_state(s);
    ready = vf.checked && len >= sizeof(struct tpm_req_hdr) &&
            (state == VTPM_STATE_IDLE || state == VTPM_STATE_COMPLETE);
    qtest_memwrite(s, VTPM_FUZZ_BUFFER, cmd, MIN(len, VTPM_PCI_BUFFER_MAX));
    qtest_outl(s, vf.port + A_VTPM_CONTROL,
               R_VTPM_CONTROL_START_BUFFER_MASK);
    vtpm_fuzz_wait(s);
    if (!ready) {
        return;
    }

    size = ldl_be_p(cmd + 2);
    if (size < sizeof(struct tpm_req_hdr) || size > vf.buf_size) {
        uint32_t error = size > vf.buf_size ? VTPM_ERR_OVERFLOW :
                                              VTPM_ERR_LENGTH;

        if (vtpm_fuzz_state(s) != VTPM_STATE_IDLE ||
            vtpm_fuzz_reg(s, A_VTPM_ERROR) != error) {
            vtpm_fuzz_fail("START_BUFFER of %u bytes: STATUS 0x%x ERROR %u",
                           size, vtpm_fuzz_reg(s, A_VTPM_STATUS),
                           vtpm_fuzz_reg(s, A_VTPM_ERROR));
        }
        return;
    }
    if (vtpm_fuzz_state(s) != VTPM_STATE_COMPLETE) {
        vtpm_fuzz_fail("a well-formed command in BAR 2 did not run, "
                       "STATUS 0x%x ERROR %u",
                       vtpm_fuzz_reg(s, A_VTPM_STATUS),
                       vtpm_fuzz_reg(s, A_VTPM_ERROR));
    }
    /* BAR 2 holds the response that DATA gives */
    rsp_len = vtpm_fuzz_reg(s, A_VTPM_RSP_SIZE);
    if (rsp_len < sizeof(struct tpm_resp_hdr) || rsp_len > vf.buf_size) {
        vtpm_fuzz_fail("RSP_SIZE %u", rsp_len);
    }
    in_buffer = g_malloc(rsp_len);
    on_data = g_malloc(rsp_len);
    qtest_memread(s, VTPM_FUZZ_BUFFER, in_buffer, rsp_len);
    vtpm_fuzz_read_response(s, on_data, rsp_len, true);
    if (memcmp(in_buffer, on_data, rsp_len)) {
        vtpm_fuzz_fail("the response in BAR 2 differs from DATA's");
    }
}

/* Find the card, place its BAR and let it decode, as firmware would */
static void vtpm_fuzz_find_card(QTestState *s)
{
    uint32_t id = PCI_VENDOR_ID_REDHAT | (PCI_DEVICE_ID_REDHAT_VTPM << 16);
    int bdf;

    for (bdf = 0; bdf < 256; bdf++) {
        if (vtpm_fuzz_config_read(s, bdf, PCI_VENDOR_ID, 4) == id) {
            break;
        }
    }
    g_assert(bdf < 256);
    vf.bdf = bdf;
    vf.window[0] = 0x1000;
    vf.window[1] = 0xffff;
    vtpm_fuzz_config_write(s, bdf, PCI_BASE_ADDRESS_0, 4, VTPM_FUZZ_PORT);
    vtpm_fuzz_config_write(s, bdf, PCI_BASE_ADDRESS_2, 4, VTPM_FUZZ_BUFFER);
    vtpm_fuzz_config_write(s, bdf, PCI_COMMAND, 2,
                           PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
                           PCI_COMMAND_MASTER);
    vtpm_fuzz_track_bar(s);
    g_assert_cmphex(vtpm_fuzz_reg(s, A_VTPM_ID), ==, VTPM_PCI_ID_MAGIC);
    vf.buf_size = vtpm_fuzz_reg(s, A_VTPM_BUF_SIZE);
}

/* Device state snapshots */

static GByteArray *vtpm_fuzz_save_devices(void)
{
    QIOChannelBuffer *bioc = qio_channel_buffer_new(64 * KiB);
    QEMUFile *f = qemu_file_new_output(QIO_CHANNEL(bioc));
    GByteArray *out;

    g_assert_cmpint(qemu_save_device_state(f), ==, 0);
    g_assert_cmpint(qemu_fflush(f), ==, 0);
    out = g_byte_array_sized_new(bioc->usage);
    g_byte_array_append(out, bioc->data, bioc->usage);
    qemu_fclose(f);
    object_unref(OBJECT(bioc));
    return out;
}

/*
 * The end of the section at @p (just past its footer), where the stream
 * goes on with its last byte, QEMU_VM_EOF, or with a run of sections up
 * to it; NULL if there is no such end.  A section does not say how long
 * its payload is: its footer is searched for, and the payload may hold
 * the same bytes (a TPM state blob did, now and then), so an end counts
 * only if the rest of the stream parses after it.
 */
static const uint8_t *vtpm_fuzz_section_end(const uint8_t *p,
                                            const uint8_t *end)
{
    uint8_t footer[5] = { QEMU_VM_SECTION_FOOTER };
    const uint8_t *tail, *next;

    if (end - p < 6 || *p != QEMU_VM_SECTION_FULL || !p[5] ||
        end - p - 6 < p[5] + 8) {
        return NULL;
    }
    memcpy(footer + 1, p + 1, 4);
    for (tail = p + 6 + p[5] + 8;
         (tail = memmem(tail, end - tail, footer, sizeof(footer)));
         tail++) {
        next = tail + sizeof(footer);
        if ((next == end - 1 && *next == QEMU_VM_EOF) ||
            vtpm_fuzz_section_end(next, end)) {
            return next;
        }
    }
    return NULL;
}

/*
 * The sections of @stream (qemu_save_device_state()'s output: a file
 * header, then sections with footers, then QEMU_VM_EOF) that belong to
 * the card and its TPM (@ours), or to the PCI bus (!@ours)
 */
static GByteArray *vtpm_fuzz_sections(const GByteArray *stream, bool ours)
{
    GByteArray *out = g_byte_array_new();
    const uint8_t *p = stream->data + 8, *end = stream->data + stream->len;
    const uint8_t *next;

    for (; p < end - 1; p = next) {
        g_autofree char *idstr = NULL;
        bool card;

        next = vtpm_fuzz_section_end(p, end);
        g_assert(next);
        idstr = g_strndup((const char *)p + 6, p[5]);
        card = !strcmp(idstr, "tpm-libtpms") ||
               g_str_has_suffix(idstr, "/" TYPE_VTPM_PCI);
        if (ours ? card : !strcmp(idstr, "PCIBUS")) {
            g_byte_array_append(out, p, next - p);
        }
    }
    return out;
}

/* The end of a stream */
static void vtpm_fuzz_end_stream(GByteArray *st)
{
    uint8_t eof = QEMU_VM_EOF;

    g_byte_array_append(st, &eof, 1);
}

static bool vtpm_fuzz_load(const uint8_t *data, size_t len, Error **errp)
{
    QIOChannelBuffer *bioc = qio_channel_buffer_new(len);
    QEMUFile *f;
    int ret;

    if (len) {
        memcpy(bioc->data, data, len);
    }
    bioc->usage = len;
    f = qemu_file_new_input(QIO_CHANNEL(bioc));
    ret = qemu_load_device_state(f, errp);
    if (ret < 0 && errp && !*errp) {
        error_setg(errp, "loading device state failed: %d", ret);
    }
    qemu_fclose(f);
    object_unref(OBJECT(bioc));
    return ret >= 0;
}

/*
 * Back to the machine of the first input, with a new TPM, by loading the
 * snapshot.  The card is brought to rest first: what runs there finishes,
 * the flags query included.  No reset: it would start the TPM once more,
 * and a TPM 1.2 generates an RSA key in every self-test.
 */
static void vtpm_fuzz_restore(QTestState *s)
{
    static const uint8_t zero[VTPM_PCI_BUFFER_MAX];

    vtpm_fuzz_config_write(s, vf.bdf, PCI_BASE_ADDRESS_0, 4, VTPM_FUZZ_PORT);
    vtpm_fuzz_config_write(s, vf.bdf, PCI_BASE_ADDRESS_2, 4, VTPM_FUZZ_BUFFER);
    vtpm_fuzz_config_write(s, vf.bdf, PCI_COMMAND, 2,
                           PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    vtpm_fuzz_track_bar(s);
    vtpm_fuzz_wait(s);
    flush_events(s);
    /* BAR 2 is RAM, which the snapshot of the devices does not hold */
    qtest_memwrite(s, VTPM_FUZZ_BUFFER, zero, sizeof(zero));
    /*
     * The PCI core keeps the lowest configuration version it has loaded
     * (a stream of an older QEMU), and refuses newer ones after it
     */
    vf.card->version_id = vf.card_version;
    vtpm_fuzz_load(vf.fresh->data, vf.fresh->len, &error_abort);
    vtpm_fuzz_track_bar(s);
}

static void vtpm_fuzz_pre_fuzz(QTestState *s)
{
    g_autoptr(GByteArray) all = NULL;
    g_autoptr(GByteArray) mine = NULL;

    vtpm_fuzz_find_card(s);
    vf.card = PCI_DEVICE(object_resolve_path_type("", TYPE_VTPM_PCI, NULL));
    vf.card_version = vf.card->version_id;
    all = vtpm_fuzz_save_devices();
    vf.bus = vtpm_fuzz_sections(all, false);
    vf.fresh = vtpm_fuzz_sections(all, false);
    mine = vtpm_fuzz_sections(all, true);
    g_assert_cmpuint(vf.bus->len, >, 0);
    g_assert_cmpuint(mine->len, >, 0);
    g_byte_array_append(vf.fresh, mine->data, mine->len);
    vtpm_fuzz_end_stream(vf.fresh);
}

/* vtpm-pci-fuzz, vtpm-pci-tpm12-fuzz: the register interface */

/*
 * An input is a sequence of actions, each an opcode byte and its
 * operands; a truncated last action is dropped.
 */
enum {
    /* len (2, big-endian), then len bytes: a command frame, sent whole */
    VTPM_OP_COMMAND,
    /* width, n, then n values of that width: written to DATA */
    VTPM_OP_DATA_OUT,
    /* width, n: n reads of DATA */
    VTPM_OP_DATA_IN,
    /* offset, width, value (4): a register write */
    VTPM_OP_REG_OUT,
    /* offset, width: a register read */
    VTPM_OP_REG_IN,
    /* value: a CONTROL write, not waited for */
    VTPM_OP_CONTROL,
    /* wait for the command in flight */
    VTPM_OP_WAIT,
    /* offset, width, value (4): a write to the card's PCI configuration */
    VTPM_OP_CONFIG,
    /* a system reset */
    VTPM_OP_RESET,
    /* START, then CANCEL at once, then wait */
    VTPM_OP_CANCEL,
    /* len (2, big-endian), then len bytes: a command frame, through BAR 2 */
    VTPM_OP_BUFFER_COMMAND,
    /* offset (2, big-endian), n, then n bytes: written to BAR 2 */
    VTPM_OP_BUFFER_WRITE,
    VTPM_OP_MAX
};

/*
 * In VTPM_OP_COMMAND's length, this bit asks for the frame as it is;
 * without it, the header's size field is set to the frame's length, so
 * that most frames get past the card's checks to the TPM.
 */
#define VTPM_OP_COMMAND_RAW     0x8000

typedef struct VTPMFuzzInput {
    const uint8_t *p;
    size_t left;
} VTPMFuzzInput;

static bool vtpm_fuzz_take(VTPMFuzzInput *in, void *dst, size_t len)
{
    if (in->left < len) {
        in->left = 0;
        return false;
    }
    memcpy(dst, in->p, len);
    in->p += len;
    in->left -= len;
    return true;
}

/*
 * A command frame: its length (2, big-endian), then its bytes, up to
 * @max; NULL if there are none
 */
static uint8_t *vtpm_fuzz_take_frame(VTPMFuzzInput *in, size_t max,
                                     size_t *len)
{
    uint8_t lenbuf[2];
    uint8_t *cmd;

    if (!vtpm_fuzz_take(in, lenbuf, 2)) {
        return NULL;
    }
    *len = MIN(MIN(lduw_be_p(lenbuf) & ~VTPM_OP_COMMAND_RAW, in->left), max);
    if (!*len) {
        return NULL;
    }
    cmd = g_malloc(*len);
    vtpm_fuzz_take(in, cmd, *len);
    if (!(lduw_be_p(lenbuf) & VTPM_OP_COMMAND_RAW) && *len >= 6) {
        stl_be_p(cmd + 2, *len);
    }
    return cmd;
}

static void vtpm_fuzz_op_command(QTestState *s, VTPMFuzzInput *in)
{
    uint8_t rsp[sizeof(struct tpm_resp_hdr)];
    size_t len;
    g_autofree uint8_t *cmd = vtpm_fuzz_take_frame(in, UINT16_MAX, &len);

    if (cmd) {
        vtpm_fuzz_command(s, cmd, len, rsp, sizeof(rsp));
    }
}

static void vtpm_fuzz_op_buffer_command(QTestState *s, VTPMFuzzInput *in)
{
    size_t len;
    g_autofree uint8_t *cmd = vtpm_fuzz_take_frame(in, VTPM_PCI_BUFFER_MAX,
                                                   &len);

    if (cmd) {
        vtpm_fuzz_buffer_command(s, cmd, len);
    }
}

/* Bytes in BAR 2, whatever the card is doing */
static void vtpm_fuzz_op_buffer_write(QTestState *s, VTPMFuzzInput *in)
{
    uint8_t a[3], bytes[UINT8_MAX];
    uint32_t offset, n;

    if (!vtpm_fuzz_take(in, a, 3)) {
        return;
    }
    offset = lduw_be_p(a) % VTPM_PCI_BUFFER_MAX;
    n = MIN(a[2], in->left);
    vtpm_fuzz_take(in, bytes, n);
    if (vf.buffer_checked) {
        qtest_memwrite(s, VTPM_FUZZ_BUFFER + offset, bytes,
                       MIN(n, VTPM_PCI_BUFFER_MAX - offset));
    }
}

static void vtpm_fuzz_run(QTestState *s, const uint8_t *data, size_t size)
{
    VTPMFuzzInput in = { data, size };
    uint8_t op, a[6];
    unsigned width;
    int i;

    while (vtpm_fuzz_take(&in, &op, 1)) {
        switch (op % VTPM_OP_MAX) {
        case VTPM_OP_COMMAND:
            vtpm_fuzz_op_command(s, &in);
            break;
        case VTPM_OP_DATA_OUT:
            if (!vtpm_fuzz_take(&in, a, 2)) {
                break;
            }
            width = vtpm_fuzz_width(a[0]);
            for (i = 0; i < a[1]; i++) {
                uint8_t v[4] = { 0 };

                if (!vtpm_fuzz_take(&in, v, width)) {
                    break;
                }
                vtpm_fuzz_out(s, vf.port + A_VTPM_DATA, width, ldl_le_p(v));
            }
            break;
        case VTPM_OP_DATA_IN:
            if (!vtpm_fuzz_take(&in, a, 2)) {
                break;
            }
            width = vtpm_fuzz_width(a[0]);
            for (i = 0; i < a[1]; i++) {
                vtpm_fuzz_in(s, vf.port + A_VTPM_DATA, width);
            }
            break;
        case VTPM_OP_REG_OUT:
            if (vtpm_fuzz_take(&in, a, 6)) {
                vtpm_fuzz_out(s, vf.port + a[0] % VTPM_PCI_BAR_SIZE,
                              vtpm_fuzz_width(a[1]), ldl_le_p(a + 2));
            }
            break;
        case VTPM_OP_REG_IN:
            if (vtpm_fuzz_take(&in, a, 2)) {
                vtpm_fuzz_in(s, vf.port + a[0] % VTPM_PCI_BAR_SIZE,
                             vtpm_fuzz_width(a[1]));
            }
            break;
        case VTPM_OP_CONTROL:
            if (vtpm_fuzz_take(&in, a, 1)) {
                qtest_outl(s, vf.port + A_VTPM_CONTROL, a[0]);
            }
            break;
        case VTPM_OP_WAIT:
            vtpm_fuzz_wait(s);
            break;
        case VTPM_OP_CONFIG:
            if (vtpm_fuzz_take(&in, a, 6)) {
                width = vtpm_fuzz_width(a[1]);
                vtpm_fuzz_config_write(s, vf.bdf, a[0] & ~(width - 1),
                                       width, ldl_le_p(a + 2));
                vtpm_fuzz_track_bar(s);
            }
            break;
        case VTPM_OP_RESET:
            fuzz_reset(s);
            vtpm_fuzz_track_bar(s);
            break;
        case VTPM_OP_CANCEL:
            qtest_outl(s, vf.port + A_VTPM_CONTROL,
                       R_VTPM_CONTROL_START_MASK);
            qtest_outl(s, vf.port + A_VTPM_CONTROL,
                       R_VTPM_CONTROL_CANCEL_MASK);
            vtpm_fuzz_wait(s);
            break;
        case VTPM_OP_BUFFER_COMMAND:
            vtpm_fuzz_op_buffer_command(s, &in);
            break;
        case VTPM_OP_BUFFER_WRITE:
            vtpm_fuzz_op_buffer_write(s, &in);
            break;
        }
    }
}

static void vtpm_fuzz_registers(QTestState *s, const unsigned char *data,
                                size_t size)
{
    vtpm_fuzz_run(s, data, size);
    vtpm_fuzz_restore(s);
}

/* vtpm-pci-migration-fuzz: the card's and the TPM's migration streams */

/* Load the card's and the TPM's sections @st, after the bus's */
static bool vtpm_fuzz_load_base(const GByteArray *st, Error **errp)
{
    g_autoptr(GByteArray) all = g_byte_array_new();

    g_byte_array_append(all, vf.bus->data, vf.bus->len);
    g_byte_array_append(all, st->data, st->len);
    vtpm_fuzz_end_stream(all);
    return vtpm_fuzz_load(all->data, all->len, errp);
}

/*
 * The states a stream is taken in: a started TPM and an idle card, a
 * command half written, a response not yet read.
 */
static void vtpm_fuzz_make_bases(QTestState *s)
{
    uint8_t rsp[sizeof(struct tpm_resp_hdr)];
    int i;

    vtpm_fuzz_command(s, tpm2_startup_clear, sizeof(tpm2_startup_clear),
                      rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, 0);
    for (i = 0; i < ARRAY_SIZE(vf.bases); i++) {
        g_autoptr(GByteArray) all = NULL;

        if (i == 1) {
            vtpm_fuzz_write_data(s, tpm2_get_random_8, 7);
        } else if (i == 2) {
            vtpm_fuzz_write_data(s, tpm2_get_random_8 + 7, 5);
            qtest_outl(s, vf.port + A_VTPM_CONTROL,
                       R_VTPM_CONTROL_START_MASK);
            vtpm_fuzz_wait(s);
            g_assert_cmpuint(vtpm_fuzz_state(s), ==, VTPM_STATE_COMPLETE);
        }
        all = vtpm_fuzz_save_devices();
        vf.bases[i] = vtpm_fuzz_sections(all, true);
        /* The TPM's section first, for vtpm_fuzz_fix_digests() */
        g_assert(!memcmp(vf.bases[i]->data + 5, "\x0btpm-libtpms", 12));
        /* Each base loads as it is */
        vtpm_fuzz_load_base(vf.bases[i], &error_abort);
    }
    vtpm_fuzz_restore(s);
}

static void vtpm_fuzz_migration_pre_fuzz(QTestState *s)
{
    vtpm_fuzz_pre_fuzz(s);
    vtpm_fuzz_make_bases(s);
}

/*
 * An input is a base (1 byte: which of vf.bases, and a flag), then edits
 * of 4 bytes each: an operation, an offset (2, big-endian; modulo the
 * stream's length) and a value.  With the flag, the TPM's section gets
 * the digests of its state blobs as they are after the edits, so that
 * what the fuzzer changes in them reaches libtpms.
 */
#define VTPM_FUZZ_FIX_DIGESTS   0x80

enum {
    VTPM_EDIT_XOR,              /* xor the byte with value */
    VTPM_EDIT_SET,              /* set the byte to value */
    VTPM_EDIT_INSERT,           /* insert value before the byte */
    VTPM_EDIT_DELETE,           /* delete value bytes from there */
    VTPM_EDIT_TRUNCATE,         /* cut the stream there */
    VTPM_EDIT_MAX
};

static void vtpm_fuzz_edit(GByteArray *st, const uint8_t *edit)
{
    uint32_t at;

    if (!st->len) {
        return;
    }
    at = lduw_be_p(edit + 1) % st->len;
    switch (edit[0] % VTPM_EDIT_MAX) {
    case VTPM_EDIT_XOR:
        st->data[at] ^= edit[3];
        break;
    case VTPM_EDIT_SET:
        st->data[at] = edit[3];
        break;
    case VTPM_EDIT_INSERT:
        g_byte_array_set_size(st, st->len + 1);
        memmove(st->data + at + 1, st->data + at, st->len - 1 - at);
        st->data[at] = edit[3];
        break;
    case VTPM_EDIT_DELETE:
        g_byte_array_remove_range(st, at, MIN(edit[3], st->len - at));
        break;
    case VTPM_EDIT_TRUNCATE:
        g_byte_array_set_size(st, at);
        break;
    }
}

/*
 * Recompute the digests in the TPM's section at the start of @st (its
 * header, then family (4), running, needs_shutdown, the permanent and
 * volatile states' sizes (4 each), their SHA-256 digests, the states),
 * where the edits left enough of it to find them.
 */
static void vtpm_fuzz_fix_digests(GByteArray *st)
{
    static const char idstr[] = "tpm-libtpms";
    const size_t header = 6 + strlen(idstr) + 8;
    uint8_t *f = st->data + header;
    uint32_t sizes[2];
    gsize digest_len = 32;
    size_t at = header + 78;
    int i;

    if (st->len < at || st->data[5] != strlen(idstr) ||
        memcmp(st->data + 6, idstr, strlen(idstr))) {
        return;
    }
    sizes[0] = ldl_be_p(f + 6);
    sizes[1] = ldl_be_p(f + 10);
    for (i = 0; i < 2; i++) {
        g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);

        if (sizes[i] > st->len - at) {
            return;
        }
        g_checksum_update(sha256, st->data + at, sizes[i]);
        g_checksum_get_digest(sha256, f + 14 + 32 * i, &digest_len);
        at += sizes[i];
    }
}

/*
 * A card that loaded a stream, or refused one (and so is as it was
 * before), must still run a command
 */
static void vtpm_fuzz_check_answers(QTestState *s, bool loaded)
{
    uint8_t rsp[sizeof(struct tpm_resp_hdr)];

    vtpm_fuzz_track_bar(s);
    vtpm_fuzz_config_write(s, vf.bdf, PCI_BASE_ADDRESS_0, 4,
                           VTPM_FUZZ_PORT);
    vtpm_fuzz_config_write(s, vf.bdf, PCI_COMMAND, 2, PCI_COMMAND_IO);
    vtpm_fuzz_track_bar(s);
    switch (vtpm_fuzz_state(s)) {
    case VTPM_STATE_COMPLETE:
        /* The stream may have been taken half-way through reading it */
        vtpm_fuzz_read_response(s, rsp, sizeof(rsp), false);
        break;
    case VTPM_STATE_RECEIVING:
        qtest_outl(s, vf.port + A_VTPM_CONTROL, R_VTPM_CONTROL_ABORT_MASK);
        break;
    }
    if (vtpm_fuzz_state(s) != VTPM_STATE_IDLE) {
        vtpm_fuzz_fail("%s, and not idle: STATUS 0x%x",
                       loaded ? "loaded" : "refused",
                       vtpm_fuzz_reg(s, A_VTPM_STATUS));
    }
    vtpm_fuzz_command(s, tpm2_get_random_8, sizeof(tpm2_get_random_8),
                      rsp, sizeof(rsp));
}

static void vtpm_fuzz_migration(QTestState *s, const unsigned char *data,
                                size_t size)
{
    g_autoptr(GByteArray) st = g_byte_array_new();
    const GByteArray *base;
    Error *err = NULL;
    bool loaded;
    size_t i;

    if (size < 1) {
        return;
    }
    base = vf.bases[(data[0] & ~VTPM_FUZZ_FIX_DIGESTS) %
                    ARRAY_SIZE(vf.bases)];
    g_byte_array_append(st, base->data, base->len);
    for (i = 1; i + 4 <= size; i += 4) {
        vtpm_fuzz_edit(st, data + i);
    }
    if (data[0] & VTPM_FUZZ_FIX_DIGESTS) {
        vtpm_fuzz_fix_digests(st);
    }

    loaded = vtpm_fuzz_load_base(st, &err);
    vtpm_fuzz_check_answers(s, loaded);
    error_free(err);
    vtpm_fuzz_restore(s);
}

/* vtpm-pci-hotplug-fuzz: cards plugged with any properties, and ejected */

/*
 * Two PCIe root ports, each with a 4 KiB I/O window.  An input plugs
 * cards there as device_add does, with properties from the input, drives
 * them, and ejects them as a guest does, through the ACPI hotplug
 * registers, at any point of a command.  The one libtpms TPM a QEMU can
 * have is -tpmdev tpm0: a card with a TPM of its own must be refused,
 * and so must a card for tpm0 while another card holds it.
 */
#define VTPM_HP_PORTS           2
#define VTPM_HP_PORT_DEVFN(i)   PCI_DEVFN(0x10 + (i), 0)
#define VTPM_HP_CARD_BDF(i)     (((i) + 1) << 8)
/* Root port i's I/O window, pinned there (io-base) by the command line */
#define VTPM_HP_WINDOW(i)       (0xc000 + (i) * VTPM_HP_WINDOW_SIZE)
#define VTPM_HP_WINDOW_SIZE     0x1000
/* The iobase property's default: BAR 0 not pinned */
#define VTPM_FUZZ_IOBASE_UNSET  UINT32_MAX

/* The ICH9's ACPI PCI hotplug registers (hw/acpi/pcihp.c) */
#define VTPM_HP_PCIHP_EJ        (ACPI_PCIHP_ADDR_ICH9 + 0x08)
#define VTPM_HP_PCIHP_SEL       (ACPI_PCIHP_ADDR_ICH9 + 0x10)

static const uint8_t tpm2_self_test_full[] = {
    0x80, 0x01, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x01, 0x43, 0x01,
};

typedef struct VTPMHotplug {
    uint32_t bsel[VTPM_HP_PORTS];   /* ACPI's number of each port's bus */
    bool started[VTPM_HP_PORTS];    /* TPM2_Startup ran on the card there */
} VTPMHotplug;

static VTPMHotplug vh;

static void G_GNUC_PRINTF(1, 2) vtpm_hp_broke(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vtpm_fuzz_vabort(fmt, ap);
}

static Object *vtpm_hp_card(int i)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/card%d", i);

    return object_resolve_path_type(path, TYPE_VTPM_PCI, NULL);
}

/* Point the register helpers at the card behind root port @i */
static bool vtpm_hp_select(QTestState *s, int i)
{
    vf.bdf = VTPM_HP_CARD_BDF(i);
    vf.window[0] = VTPM_HP_WINDOW(i);
    vf.window[1] = VTPM_HP_WINDOW(i) + VTPM_HP_WINDOW_SIZE - 1;
    vf.checked = false;
    if (!vtpm_hp_card(i)) {
        return false;
    }
    vtpm_fuzz_track_bar(s);
    return true;
}

/* Give each root port a bus and an I/O window, as firmware does */
static void vtpm_hp_setup_ports(QTestState *s)
{
    int i;

    for (i = 0; i < VTPM_HP_PORTS; i++) {
        int devfn = VTPM_HP_PORT_DEVFN(i);
        uint32_t win = VTPM_HP_WINDOW(i);

        vtpm_fuzz_config_write(s, devfn, PCI_PRIMARY_BUS, 1, 0);
        vtpm_fuzz_config_write(s, devfn, PCI_SECONDARY_BUS, 1, i + 1);
        vtpm_fuzz_config_write(s, devfn, PCI_SUBORDINATE_BUS, 1, i + 1);
        vtpm_fuzz_config_write(s, devfn, PCI_IO_BASE, 1, (win >> 8) & 0xf0);
        vtpm_fuzz_config_write(s, devfn, PCI_IO_LIMIT, 1,
                               ((win + VTPM_HP_WINDOW_SIZE - 1) >> 8) & 0xf0);
        vtpm_fuzz_config_write(s, devfn, PCI_COMMAND, 2,
                               PCI_COMMAND_IO | PCI_COMMAND_MASTER);
    }
}

/* Place the BAR of the card behind port @i at its window, and check it */
static void vtpm_hp_place(QTestState *s, int i)
{
    if (!vtpm_hp_select(s, i)) {
        return;
    }
    vtpm_fuzz_config_write(s, vf.bdf, PCI_BASE_ADDRESS_0, 4,
                           VTPM_HP_WINDOW(i));
    vtpm_fuzz_config_write(s, vf.bdf, PCI_COMMAND, 2,
                           PCI_COMMAND_IO | PCI_COMMAND_MASTER);
    vtpm_fuzz_track_bar(s);
    if (vtpm_fuzz_reg(s, A_VTPM_ID) != VTPM_PCI_ID_MAGIC) {
        vtpm_fuzz_fail("card%d at 0x%x: ID 0x%x", i, vf.port,
                       vtpm_fuzz_reg(s, A_VTPM_ID));
    }
    if (vf.checked) {
        vf.buf_size = vtpm_fuzz_reg(s, A_VTPM_BUF_SIZE);
    }
}

static const uint32_t vtpm_hp_iobases[] = {
    VTPM_HP_WINDOW(0), VTPM_HP_WINDOW(1) + VTPM_PCI_BAR_SIZE,
    VTPM_HP_WINDOW(0) + 4, 0x1f0, 0x510, 0x600, 0xcf8, 0x10000 - 0x40,
    0x10000, VTPM_FUZZ_IOBASE_UNSET,
};
static const uint32_t vtpm_hp_polls[] = {
    0, 1, VTPM_PCI_TEST_POLL_NS_DEFAULT, VTPM_PCI_TEST_POLL_NS_MAX,
    VTPM_PCI_TEST_POLL_NS_MAX + 1, UINT32_MAX,
};

/*
 * A property's value from @in (a kind byte, 4 value bytes): none (NULL
 * returned), a number from @table or from the input, in hex or decimal,
 * or the 4 bytes as they are.  A number goes to *@val; *@number says
 * whether the value is one.
 */
static char *vtpm_hp_value(VTPMFuzzInput *in, const uint32_t *table,
                           size_t n, bool *number, uint32_t *val)
{
    uint8_t a[5];

    *number = true;
    if (!vtpm_fuzz_take(in, a, sizeof(a))) {
        return NULL;
    }
    switch (a[0] % 5) {
    case 0:
        return NULL;
    case 1:
        *val = table[ldl_le_p(a + 1) % n];
        return g_strdup_printf("0x%" PRIx32, *val);
    case 2:
        *val = ldl_le_p(a + 1);
        return g_strdup_printf("0x%" PRIx32, *val);
    case 3:
        *val = ldl_le_p(a + 1);
        return g_strdup_printf("%" PRIu32, *val);
    default:
        *number = false;
        return g_strndup((const char *)a + 1, 4);
    }
}

/*
 * Plug a card behind a root port as device_add does, and check that
 * what must be refused is, and what must work does.
 */
static void vtpm_hp_plug(QTestState *s, VTPMFuzzInput *in)
{
    static const char *const tpmdevs[] = { "tpm0", NULL, "tpm1" };
    uint32_t iobase_val = VTPM_FUZZ_IOBASE_UNSET;
    uint32_t poll_val = VTPM_PCI_TEST_POLL_NS_DEFAULT;
    g_autofree char *iobase = NULL, *poll = NULL, *id = NULL, *bus = NULL;
    g_autoptr(QDict) opts = qdict_new();
    bool iobase_num, poll_num, bad, good, taken = false;
    const char *tpmdev;
    DeviceState *dev;
    Error *err = NULL;
    uint8_t a[2];
    int i, j;

    if (!vtpm_fuzz_take(in, a, sizeof(a))) {
        return;
    }
    i = a[0] % VTPM_HP_PORTS;
    tpmdev = tpmdevs[a[1] % ARRAY_SIZE(tpmdevs)];
    iobase = vtpm_hp_value(in, vtpm_hp_iobases, ARRAY_SIZE(vtpm_hp_iobases),
                           &iobase_num, &iobase_val);
    poll = vtpm_hp_value(in, vtpm_hp_polls, ARRAY_SIZE(vtpm_hp_polls),
                         &poll_num, &poll_val);
    id = g_strdup_printf("card%d", i);
    bus = g_strdup_printf("rp%d", i);
    qdict_put_str(opts, "driver", TYPE_VTPM_PCI);
    qdict_put_str(opts, "id", id);
    qdict_put_str(opts, "bus", bus);
    if (tpmdev) {
        qdict_put_str(opts, "tpmdev", tpmdev);
    }
    if (iobase) {
        qdict_put_str(opts, "iobase", iobase);
    }
    if (poll) {
        qdict_put_str(opts, "poll-ns", poll);
    }
    /* Every card there is holds tpm0, and libtpms */
    for (j = 0; j < VTPM_HP_PORTS; j++) {
        taken |= vtpm_hp_card(j) != NULL;
    }
    bad = taken || g_strcmp0(tpmdev, "tpm0") ||
          (iobase_num && iobase_val != VTPM_FUZZ_IOBASE_UNSET &&
           (iobase_val % VTPM_PCI_BAR_SIZE ||
            iobase_val < VTPM_HP_WINDOW(i) ||
            iobase_val > VTPM_HP_WINDOW(i) + VTPM_HP_WINDOW_SIZE -
                         VTPM_PCI_BAR_SIZE)) ||
          (poll_num && poll_val > VTPM_PCI_TEST_POLL_NS_MAX);
    good = !bad && iobase_num && iobase_val == VTPM_FUZZ_IOBASE_UNSET &&
           poll_num;

    dev = qdev_device_add_from_qdict(opts, false, &err);
    if (dev && bad) {
        vtpm_hp_broke("card%d plugged: tpmdev %s iobase %s poll-ns %s, "
                      "another card %s", i, tpmdev ?: "(none)",
                      iobase ?: "(none)", poll ?: "(none)",
                      taken ? "there" : "not there");
    }
    if (!dev && good) {
        vtpm_hp_broke("card%d refused: tpmdev %s poll-ns %s: %s", i, tpmdev,
                      poll ?: "(none)", error_get_pretty(err));
    }
    error_free(err);
    if (dev) {
        object_unref(OBJECT(dev));
        vh.started[i] = false;
        vtpm_hp_place(s, i);
    }
}

/* Eject the card behind port @i as a guest does, through ACPI */
static void vtpm_hp_eject(QTestState *s, int i)
{
    qtest_outl(s, VTPM_HP_PCIHP_SEL, vh.bsel[i]);
    qtest_outl(s, VTPM_HP_PCIHP_EJ, 1u << 0);
    if (vtpm_hp_card(i)) {
        vtpm_hp_broke("card%d still there after its eject", i);
    }
}

/*
 * Send a command the card's TPM answers as the specification says:
 * before TPM2_Startup, with TPM_RC_INITIALIZE, and after it, so does
 * TPM2_Startup itself.
 */
static void vtpm_hp_command(QTestState *s, int i, uint8_t which)
{
    static const struct {
        const uint8_t *cmd;
        size_t len;
    } cmds[] = {
        { tpm2_startup_clear, sizeof(tpm2_startup_clear) },
        { tpm2_get_random_8, sizeof(tpm2_get_random_8) },
        { tpm2_self_test_full, sizeof(tpm2_self_test_full) },
    };
    uint8_t rsp[sizeof(struct tpm_resp_hdr) + 2 + 8] = { 0 };
    uint32_t rc, want, len;
    bool startup, idle;

    if (!vtpm_hp_select(s, i)) {
        return;
    }
    which %= ARRAY_SIZE(cmds);
    startup = which == 0;
    idle = vf.checked && vtpm_fuzz_state(s) == VTPM_STATE_IDLE;
    vtpm_fuzz_command(s, cmds[which].cmd, cmds[which].len, rsp, sizeof(rsp));
    if (!idle) {
        /* It may have read an earlier command's response */
        return;
    }
    rc = ldl_be_p(rsp + 6);
    len = ldl_be_p(rsp + 2);
    want = startup == vh.started[i] ? TPM_RC_INITIALIZE : TPM_RC_SUCCESS;
    if (rc != want) {
        vtpm_fuzz_fail("card%d: command 0x%x answered 0x%x, not 0x%x", i,
                       ldl_be_p(cmds[which].cmd + 6), rc, want);
    }
    if (!rc && which == 1 && (len != sizeof(rsp) || lduw_be_p(rsp + 10) != 8)) {
        vtpm_fuzz_fail("card%d: TPM2_GetRandom answered %u bytes", i, len);
    }
    vh.started[i] |= startup && !rc;
}

/* vtpm-pci-hotplug-fuzz's actions, as vtpm-pci-fuzz's */
enum {
    /* port, tpmdev, then iobase's and poll-ns's values: a card plugged */
    VTPM_HP_OP_PLUG,
    /* port: the card there ejected */
    VTPM_HP_OP_EJECT,
    /* port, command: sent, waited for and checked */
    VTPM_HP_OP_COMMAND,
    /* port: TPM2_GetRandom started, not waited for */
    VTPM_HP_OP_START,
    /* port, value: a CONTROL write */
    VTPM_HP_OP_CONTROL,
    /* port, offset, width, value (4): a write to the card's configuration */
    VTPM_HP_OP_CONFIG,
    /* a system reset */
    VTPM_HP_OP_RESET,
    VTPM_HP_OP_MAX
};

static void vtpm_hp_fuzz(QTestState *s, const unsigned char *data,
                         size_t size)
{
    VTPMFuzzInput in = { data, size };
    uint8_t op, a[7];
    unsigned width;
    int i;

    while (vtpm_fuzz_take(&in, &op, 1)) {
        switch (op % VTPM_HP_OP_MAX) {
        case VTPM_HP_OP_PLUG:
            vtpm_hp_plug(s, &in);
            break;
        case VTPM_HP_OP_EJECT:
            if (vtpm_fuzz_take(&in, a, 1)) {
                vtpm_hp_eject(s, a[0] % VTPM_HP_PORTS);
            }
            break;
        case VTPM_HP_OP_COMMAND:
            if (vtpm_fuzz_take(&in, a, 2)) {
                vtpm_hp_command(s, a[0] % VTPM_HP_PORTS, a[1]);
            }
            break;
        case VTPM_HP_OP_START:
            if (vtpm_fuzz_take(&in, a, 1) &&
                vtpm_hp_select(s, a[0] % VTPM_HP_PORTS)) {
                vtpm_fuzz_write_data(s, tpm2_get_random_8,
                                     sizeof(tpm2_get_random_8));
                qtest_outl(s, vf.port + A_VTPM_CONTROL,
                           R_VTPM_CONTROL_START_MASK);
            }
            break;
        case VTPM_HP_OP_CONTROL:
            if (vtpm_fuzz_take(&in, a, 2) &&
                vtpm_hp_select(s, a[0] % VTPM_HP_PORTS)) {
                qtest_outl(s, vf.port + A_VTPM_CONTROL, a[1]);
            }
            break;
        case VTPM_HP_OP_CONFIG:
            if (vtpm_fuzz_take(&in, a, 7) &&
                vtpm_hp_select(s, a[0] % VTPM_HP_PORTS)) {
                width = vtpm_fuzz_width(a[2]);
                vtpm_fuzz_config_write(s, vf.bdf, a[1] & ~(width - 1),
                                       width, ldl_le_p(a + 3));
            }
            break;
        case VTPM_HP_OP_RESET:
            fuzz_reset(s);
            vtpm_hp_setup_ports(s);
            for (i = 0; i < VTPM_HP_PORTS; i++) {
                vh.started[i] = false;
                vtpm_hp_place(s, i);
            }
            break;
        }
    }
    /* Back to no cards, with what runs there ended by the eject */
    for (i = 0; i < VTPM_HP_PORTS; i++) {
        if (vtpm_hp_card(i)) {
            vtpm_hp_eject(s, i);
        }
    }
    flush_events(s);
}

static void vtpm_hp_pre_fuzz(QTestState *s)
{
    int i;

    vtpm_hp_setup_ports(s);
    for (i = 0; i < VTPM_HP_PORTS; i++) {
        g_autofree char *path = g_strdup_printf("/machine/peripheral/rp%d",
                                                i);
        PCIBridge *port = PCI_BRIDGE(object_resolve_path(path, NULL));

        vh.bsel[i] = object_property_get_uint(
            OBJECT(pci_bridge_get_sec_bus(port)), ACPI_PCIHP_PROP_BSEL,
            &error_abort);
    }
}

static GString *vtpm_fuzz_cmdline(FuzzTarget *t)
{
    return g_string_new(t->opaque);
}

static void register_vtpm_pci_fuzz_targets(void)
{
    fuzz_add_target(&(FuzzTarget){
        .name = "vtpm-pci-fuzz",
        .description = "Fuzz vtpm-pci's registers and the TPM 2.0 commands "
                       "it carries to libtpms",
        .get_init_cmdline = vtpm_fuzz_cmdline,
        .pre_fuzz = vtpm_fuzz_pre_fuzz,
        .fuzz = vtpm_fuzz_registers,
        .opaque = (void *)TARGET_NAME " -machine q35,accel=qtest -nodefaults "
                  "-display none -device vtpm-pci",
    });
    fuzz_add_target(&(FuzzTarget){
        .name = "vtpm-pci-tpm12-fuzz",
        .description = "Fuzz vtpm-pci's registers and the TPM 1.2 commands "
                       "it carries to libtpms, with commands completing in "
                       "the main loop (poll-ns=0), on a card whose BAR is "
                       "pinned (iobase)",
        .get_init_cmdline = vtpm_fuzz_cmdline,
        .pre_fuzz = vtpm_fuzz_pre_fuzz,
        .fuzz = vtpm_fuzz_registers,
        .opaque = (void *)TARGET_NAME " -machine q35,accel=qtest -nodefaults "
                  "-display none -tpmdev libtpms,id=tpm0,version=1.2 "
                  "-device vtpm-pci,tpmdev=tpm0,poll-ns=0,"
                  "iobase=" stringify(VTPM_FUZZ_PORT),
    });
    fuzz_add_target(&(FuzzTarget){
        .name = "vtpm-pci-migration-fuzz",
        .description = "Fuzz the migration streams of vtpm-pci and its "
                       "libtpms TPM 2.0",
        .get_init_cmdline = vtpm_fuzz_cmdline,
        .pre_fuzz = vtpm_fuzz_migration_pre_fuzz,
        .fuzz = vtpm_fuzz_migration,
        .opaque = (void *)TARGET_NAME " -machine q35,accel=qtest -nodefaults "
                  "-display none -device vtpm-pci",
    });
    fuzz_add_target(&(FuzzTarget){
        .name = "vtpm-pci-hotplug-fuzz",
        .description = "Plug vtpm-pci cards with properties from the "
                       "input behind PCIe root ports, drive them, and eject "
                       "them through ACPI at any point of a command",
        .get_init_cmdline = vtpm_fuzz_cmdline,
        .pre_fuzz = vtpm_hp_pre_fuzz,
        .fuzz = vtpm_hp_fuzz,
        .opaque = (void *)TARGET_NAME " -machine q35,accel=qtest -nodefaults "
                  "-display none -tpmdev libtpms,id=tpm0 "
                  "-device pcie-root-port,id=rp0,bus=pcie.0,chassis=1,"
                  "addr=0x10,io-base=0xc000 "
                  "-device pcie-root-port,id=rp1,bus=pcie.0,chassis=2,"
                  "addr=0x11,io-base=0xd000",
    });
}

fuzz_target_init(register_vtpm_pci_fuzz_targets);
