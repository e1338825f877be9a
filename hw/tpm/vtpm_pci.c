/*
 * vtpm-pci: a PCI TPM card with an I/O port register interface
 *
 * BAR 0 is an I/O BAR holding the register block described in
 * docs/specs/vtpm-pci.rst; BAR 1 holds the MSI-X table.  A command is
 * written byte-stream fashion to the DATA port, started through CONTROL,
 * handed to the TPM backend (which runs it in a worker thread), and its
 * response is read back from DATA.  Completion raises an interrupt.
 *
 * Registers are 32 bits wide and may be accessed with 1, 2 or 4 byte port
 * accesses at any offset that stays inside one register; DATA only at its
 * own offset, where every access moves 1, 2 or 4 bytes of the stream.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bitops.h"
#include "qemu/bswap.h"
#include "qemu/error-report.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/range.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "hw/pci/msix.h"
#include "hw/pci/pci_bridge.h"
#include "hw/pci/pci_device.h"
#include "hw/qdev-properties.h"
#include "hw/tpm/vtpm_pci.h"
#include "migration/vmstate.h"
#include "system/tpm_backend.h"
#include "system/tpm_libtpms.h"
#include "system/tpm_util.h"
#include "trace.h"

OBJECT_DECLARE_SIMPLE_TYPE(VTPMPCIState, VTPM_PCI)

/* iobase property: BAR 0 not pinned */
#define VTPM_PCI_IOBASE_NONE        UINT32_MAX

/*
 * poll-ns property: how long the START access waits for a command to
 * complete (the TPM's thread polls for the next command 4 times as long)
 */
#define VTPM_PCI_POLL_NS_DEFAULT    50000
#define VTPM_PCI_POLL_NS_MAX        1000000

struct VTPMPCIState {
    PCIDevice parent_obj;

    MemoryRegion io;
    uint32_t iobase;            /* pinned base of BAR 0, or IOBASE_NONE */
    uint32_t poll_ns;           /* 0: commands complete in the main loop */
    char *tpmdev;               /* the -tpmdev to attach at realize */
    TPMBackend *tpmbe;
    bool own_tpmbe;             /* created by the card, not -tpmdev */
    TPMBackendCmd cmd;
    uint32_t buffer_size;       /* largest command/response, <= buf size */
    uint8_t *buf;               /* the command, then its response */

    /* Guest-visible state */
    uint32_t state;             /* enum VTPMCmdState */
    uint32_t error;             /* enum VTPMError */
    uint32_t scratch;
    uint32_t locality;
    uint32_t int_enable;
    uint32_t int_status;
    uint32_t cmd_len;           /* command bytes received */
    bool overflow;              /* ... and more were dropped */
    uint32_t rsp_len;           /* response bytes */
    uint32_t rsp_pos;           /* response bytes read so far */
    uint32_t flags;             /* STATUS.FLAGS_VALID to OWNED */

    /* The card's own commands asking the TPM for its flags */
    unsigned query_step;        /* 0: none; else the command in flight */
    uint32_t query_flags;       /* flags gathered so far */
    QEMUBH *query_bh;           /* sends the next command of the query */
    int64_t start_ns;           /* when the command in flight was started */
    bool starting;              /* within the access that starts it */
    bool start_failed;          /* the TPM failed to start, and we said so */

    /* Not migrated: derived from the state above */
    bool irq_level;

    /*
     * The registers and buffer as the migration stream has them.  A load
     * fills these, and the card takes them only once they agree with
     * each other and with the PCI state loaded before them: a refused
     * stream leaves every register and the buffer as they were.
     */
    struct {
        uint32_t state;
        uint32_t error;
        uint32_t scratch;
        uint32_t locality;
        uint32_t int_enable;
        uint32_t int_status;
        uint32_t cmd_len;
        bool overflow;
        uint32_t rsp_len;
        uint32_t rsp_pos;
        uint32_t flags;
        uint32_t data_len;      /* bytes of buf in the stream */
        uint8_t *buf;           /* buf when saving, load_buf when loading */
    } mig;
    uint8_t *load_buf;

    uint64_t commands;          /* guest commands started: a statistic */
};

static const char *const vtpm_pci_state_names[] = {
    [VTPM_STATE_IDLE] = "idle",
    [VTPM_STATE_RECEIVING] = "receiving",
    [VTPM_STATE_EXECUTING] = "executing",
    [VTPM_STATE_COMPLETE] = "complete",
};

static void vtpm_pci_set_state(VTPMPCIState *s, enum VTPMCmdState state)
{
    trace_vtpm_pci_state(vtpm_pci_state_names[s->state],
                         vtpm_pci_state_names[state]);
    s->state = state;
}

/* Refuse a guest request: log it once, remember why, change nothing else */
static void vtpm_pci_refuse(VTPMPCIState *s, enum VTPMError error,
                            const char *what)
{
    qemu_log_mask(LOG_GUEST_ERROR, "vtpm-pci: %s (state %s)\n", what,
                  vtpm_pci_state_names[s->state]);
    s->error = error;
}

/*
 * Bring the interrupt in line with INT_STATUS and INT_ENABLE.  Its
 * callers call it last, once the card's state is what the guest may see:
 * an MSI-X message is a write to an address the guest chose, and the
 * card may be reset or unplugged by it (through a bridge's Secondary Bus
 * Reset, a slot's power control, ...) before msix_notify() returns.
 */
static void vtpm_pci_update_irq(VTPMPCIState *s)
{
    PCIDevice *pci_dev = PCI_DEVICE(s);
    bool level = s->int_status & s->int_enable;
    bool edge = level && !s->irq_level;

    if (level != s->irq_level) {
        trace_vtpm_pci_irq(level);
    }
    s->irq_level = level;

    if (!msix_enabled(pci_dev)) {
        pci_set_irq(pci_dev, level);
        return;
    }
    pci_set_irq(pci_dev, 0);
    if (edge) {
        msix_notify(pci_dev, 0);
    }
}

static uint32_t vtpm_pci_status(VTPMPCIState *s)
{
    uint32_t val = s->flags;

    val = FIELD_DP32(val, VTPM_STATUS, STATE, s->state);
    val = FIELD_DP32(val, VTPM_STATUS, ERROR, s->error != VTPM_ERR_NONE);
    switch (tpm_backend_get_tpm_version(s->tpmbe)) {
    case TPM_VERSION_1_2:
        val = FIELD_DP32(val, VTPM_STATUS, FAMILY, VTPM_FAMILY_TPM12);
        break;
    case TPM_VERSION_2_0:
        val = FIELD_DP32(val, VTPM_STATUS, FAMILY, VTPM_FAMILY_TPM20);
        break;
    default:
        break;
    }
    return val;
}

static void vtpm_pci_discard(VTPMPCIState *s)
{
    s->cmd_len = 0;
    s->overflow = false;
    s->rsp_len = 0;
    s->rsp_pos = 0;
    s->error = VTPM_ERR_NONE;
}

static void vtpm_pci_deliver(VTPMPCIState *s, uint32_t len, uint8_t locty)
{
    trace_vtpm_pci_command(tpm_cmd_get_ordinal(s->buf), len, locty);
    s->start_ns = get_clock();
    vtpm_pci_set_state(s, VTPM_STATE_EXECUTING);
    s->cmd = (TPMBackendCmd) {
        .locty = locty,
        .in = s->buf,
        .in_len = len,
        .out = s->buf,
        .out_len = s->buffer_size,
    };
    /* With poll-ns, a short command completes before this returns */
    s->starting = true;
    tpm_backend_deliver_request(s->tpmbe, &s->cmd);
    s->starting = false;
}

/* The query is over: the card is idle, and says it finished */
static void vtpm_pci_query_end(VTPMPCIState *s)
{
    s->query_step = 0;
    vtpm_pci_set_state(s, VTPM_STATE_IDLE);
    s->int_status = FIELD_DP32(s->int_status, VTPM_INT_STATUS, COMPLETE, 1);
    vtpm_pci_update_irq(s);
}

/*
 * The flags query (CONTROL.QUERY).  TPM 2.0: one TPM2_GetCapability of
 * TPM_PT_PERMANENT and TPM_PT_STARTUP_CLEAR.  TPM 1.2: TPM_GetCapability
 * of the permanent flags, then of TPM_CAP_PROP_OWNER.
 */

/* Write the query's next command to buf; returns its length, 0 if done */
static uint32_t vtpm_pci_query_command(VTPMPCIState *s)
{
    uint8_t *b = s->buf;

    if (tpm_backend_get_tpm_version(s->tpmbe) == TPM_VERSION_2_0) {
        if (s->query_step > 1) {
            return 0;
        }
        stw_be_p(b, TPM2_ST_NO_SESSIONS);
        stl_be_p(b + 2, 22);
        stl_be_p(b + 6, TPM2_CC_GetCapability);
        stl_be_p(b + 10, TPM2_CAP_TPM_PROPERTIES);
        stl_be_p(b + 14, TPM2_PT_PERMANENT);
        stl_be_p(b + 18, 2);                    /* and STARTUP_CLEAR */
        return 22;
    }
    if (s->query_step > 2) {
        return 0;
    }
    stw_be_p(b, TPM_TAG_RQU_COMMAND);
    stl_be_p(b + 2, 22);
    stl_be_p(b + 6, TPM_ORD_GetCapability);
    stl_be_p(b + 10, s->query_step == 1 ? TPM_CAP_FLAG : TPM_CAP_PROPERTY);
    stl_be_p(b + 14, 4);                        /* subCapSize */
    stl_be_p(b + 18, s->query_step == 1 ? TPM_CAP_FLAG_PERMANENT :
                                          TPM_CAP_PROP_OWNER);
    return 22;
}

/* Fold the response in buf (@len bytes) into query_flags */
static bool vtpm_pci_query_parse(VTPMPCIState *s, uint32_t len)
{
    const uint8_t *b = s->buf;
    uint32_t *f = &s->query_flags;

    if (tpm_cmd_get_errcode(b) != 0) {
        return false;
    }
    if (tpm_backend_get_tpm_version(s->tpmbe) == TPM_VERSION_2_0) {
        /* moreData, capability, count, then (property, value) pairs */
        uint32_t count, i;
        uint8_t found = 0;

        if (len < 19 || ldl_be_p(b + 11) != TPM2_CAP_TPM_PROPERTIES) {
            return false;
        }
        count = ldl_be_p(b + 15);
        for (i = 0; i < count && 19 + 8 * i + 8 <= len; i++) {
            uint32_t prop = ldl_be_p(b + 19 + 8 * i);
            uint32_t value = ldl_be_p(b + 23 + 8 * i);

            if (prop == TPM2_PT_PERMANENT) {
                *f = FIELD_DP32(*f, VTPM_STATUS, OWNED,
                                !!(value & TPMA_PERMANENT_OWNERAUTHSET));
                found |= 1;
            } else if (prop == TPM2_PT_STARTUP_CLEAR) {
                *f = FIELD_DP32(*f, VTPM_STATUS, ENABLED,
                                !!(value & TPMA_STARTUP_CLEAR_SHENABLE));
                *f = FIELD_DP32(*f, VTPM_STATUS, ACTIVATED,
                                !!(value & TPMA_STARTUP_CLEAR_EHENABLE));
                found |= 2;
            }
        }
        return found == 3;
    }
    /* respSize, then TPM_PERMANENT_FLAGS or a BOOL */
    if (s->query_step == 1) {
        /* tag, disable, ownership, deactivated, ... */
        if (len < 19 || lduw_be_p(b + 14) != TPM_TAG_PERMANENT_FLAGS) {
            return false;
        }
        *f = FIELD_DP32(*f, VTPM_STATUS, ENABLED, !b[16]);
        *f = FIELD_DP32(*f, VTPM_STATUS, ACTIVATED, !b[18]);
        return true;
    }
    if (len < 15 || ldl_be_p(b + 10) != 1) {
        return false;
    }
    *f = FIELD_DP32(*f, VTPM_STATUS, OWNED, !!b[14]);
    return true;
}

/*
 * Send the query's next command, or publish what it found.  Not from the
 * backend's completion callback, which may not start another request.
 */
static void vtpm_pci_query_next(void *opaque)
{
    VTPMPCIState *s = opaque;
    uint32_t len;

    s->query_step++;
    len = vtpm_pci_query_command(s);
    if (len) {
        vtpm_pci_deliver(s, len, 0);
        return;
    }
    s->flags = FIELD_DP32(s->query_flags, VTPM_STATUS, FLAGS_VALID, 1);
    trace_vtpm_pci_flags(s->flags);
    vtpm_pci_query_end(s);
}

/* The backend finished the command: make its response readable */
static void vtpm_pci_request_completed(TPMIf *ti, int ret)
{
    VTPMPCIState *s = VTPM_PCI(ti);
    uint32_t len = tpm_cmd_get_size(s->buf);

    if (ret != 0 || len < sizeof(struct tpm_resp_hdr) ||
        len > s->buffer_size) {
        /* No usable response: give the guest a well-formed TPM failure */
        tpm_util_write_fatal_error_response(s->buf, s->buffer_size);
        len = tpm_cmd_get_size(s->buf);
    }
    trace_vtpm_pci_response(tpm_cmd_get_errcode(s->buf), len,
                            get_clock() - s->start_ns,
                            s->starting ? "within START" : "later");

    if (s->query_step) {
        if (vtpm_pci_query_parse(s, len)) {
            qemu_bh_schedule(s->query_bh);
        } else {
            trace_vtpm_pci_flags(0);
            vtpm_pci_query_end(s);
        }
        return;
    }

    s->rsp_len = len;
    s->rsp_pos = 0;
    vtpm_pci_set_state(s, VTPM_STATE_COMPLETE);
    s->int_status = FIELD_DP32(s->int_status, VTPM_INT_STATUS, COMPLETE, 1);
    vtpm_pci_update_irq(s);
}

static enum TPMVersion vtpm_pci_get_version(TPMIf *ti)
{
    VTPMPCIState *s = VTPM_PCI(ti);

    return tpm_backend_get_tpm_version(s->tpmbe);
}

static void vtpm_pci_start(VTPMPCIState *s)
{
    switch (s->state) {
    case VTPM_STATE_IDLE:
        vtpm_pci_refuse(s, VTPM_ERR_LENGTH, "START with no command written");
        return;
    case VTPM_STATE_RECEIVING:
        break;
    default:
        vtpm_pci_refuse(s, VTPM_ERR_STATE, "START while busy");
        return;
    }

    if (s->overflow || s->cmd_len > s->buffer_size) {
        vtpm_pci_refuse(s, VTPM_ERR_OVERFLOW,
                        "START of a command longer than the buffer");
    } else if (s->cmd_len < sizeof(struct tpm_req_hdr)) {
        vtpm_pci_refuse(s, VTPM_ERR_LENGTH,
                        "START of a command shorter than its header");
    } else if (tpm_cmd_get_size(s->buf) != s->cmd_len) {
        vtpm_pci_refuse(s, VTPM_ERR_LENGTH,
                        "START of a command whose header size differs "
                        "from the bytes written");
    } else {
        s->commands++;
        vtpm_pci_deliver(s, s->cmd_len, s->locality);
        return;
    }
    /* The command is dropped; the error stays visible until the next one */
    s->cmd_len = 0;
    s->overflow = false;
    vtpm_pci_set_state(s, VTPM_STATE_IDLE);
}

static void vtpm_pci_control(VTPMPCIState *s, uint32_t val)
{
    switch (val) {
    case R_VTPM_CONTROL_START_MASK:
        vtpm_pci_start(s);
        break;
    case R_VTPM_CONTROL_CANCEL_MASK:
        if (s->state != VTPM_STATE_EXECUTING) {
            vtpm_pci_refuse(s, VTPM_ERR_STATE,
                            "CANCEL with no command executing");
            break;
        }
        trace_vtpm_pci_cancel();
        tpm_backend_cancel_cmd(s->tpmbe);
        break;
    case R_VTPM_CONTROL_QUERY_MASK:
        if (s->state != VTPM_STATE_IDLE) {
            vtpm_pci_refuse(s, VTPM_ERR_STATE, "QUERY while busy");
            break;
        }
        vtpm_pci_discard(s);
        s->flags = 0;
        s->query_flags = 0;
        s->query_step = 0;
        vtpm_pci_query_next(s);
        break;
    case R_VTPM_CONTROL_ABORT_MASK:
        if (s->state == VTPM_STATE_EXECUTING) {
            vtpm_pci_refuse(s, VTPM_ERR_STATE,
                            "ABORT while executing (CANCEL first)");
            break;
        }
        vtpm_pci_discard(s);
        vtpm_pci_set_state(s, VTPM_STATE_IDLE);
        break;
    default:
        vtpm_pci_refuse(s, VTPM_ERR_VALUE,
                        "CONTROL write with other than exactly one bit");
        break;
    }
}

static uint32_t vtpm_pci_data_read(VTPMPCIState *s, unsigned size)
{
    uint32_t val = 0;
    unsigned i;

    if (s->state != VTPM_STATE_COMPLETE) {
        vtpm_pci_refuse(s, VTPM_ERR_STATE, "DATA read with no response");
        return MAKE_64BIT_MASK(0, size * 8);
    }
    for (i = 0; i < size; i++) {
        uint8_t byte = 0xff;

        if (s->rsp_pos < MIN(s->rsp_len, s->buffer_size)) {
            byte = s->buf[s->rsp_pos++];
        } else if (s->error != VTPM_ERR_UNDERRUN) {
            vtpm_pci_refuse(s, VTPM_ERR_UNDERRUN,
                            "DATA read past the end of the response");
        }
        val |= byte << (i * 8);
    }
    if (s->rsp_pos >= s->rsp_len) {
        /* All of it read: ready for the next command */
        vtpm_pci_set_state(s, VTPM_STATE_IDLE);
    }
    return val;
}

static void vtpm_pci_data_write(VTPMPCIState *s, uint32_t val, unsigned size)
{
    unsigned i;

    switch (s->state) {
    case VTPM_STATE_IDLE:
        vtpm_pci_discard(s);
        vtpm_pci_set_state(s, VTPM_STATE_RECEIVING);
        break;
    case VTPM_STATE_RECEIVING:
        break;
    default:
        vtpm_pci_refuse(s, VTPM_ERR_STATE, "DATA write while busy");
        return;
    }
    for (i = 0; i < size; i++) {
        if (s->cmd_len < s->buffer_size) {
            s->buf[s->cmd_len++] = val >> (i * 8);
        } else if (!s->overflow) {
            s->overflow = true;
            vtpm_pci_refuse(s, VTPM_ERR_OVERFLOW,
                            "DATA write past the end of the buffer");
        }
    }
}

/*
 * Split a port access into the register it falls in and the bit position
 * of its lowest byte.  Returns false for an access that straddles two
 * registers, or that reaches DATA anywhere but at its own offset.
 */
static bool vtpm_pci_decode(hwaddr addr, unsigned size, hwaddr *reg,
                            unsigned *shift)
{
    *reg = addr & ~(hwaddr)3;
    *shift = (addr & 3) * 8;
    if (*reg == A_VTPM_DATA) {
        return addr == A_VTPM_DATA;
    }
    return (addr & 3) + size <= 4;
}

static uint64_t vtpm_pci_io_read(void *opaque, hwaddr addr, unsigned size)
{
    VTPMPCIState *s = opaque;
    hwaddr reg;
    unsigned shift;
    uint32_t val;

    if (!vtpm_pci_decode(addr, size, &reg, &shift)) {
        vtpm_pci_refuse(s, VTPM_ERR_ACCESS, "misplaced register read");
        val = MAKE_64BIT_MASK(0, size * 8);
        trace_vtpm_pci_io_read(addr, size, val);
        return val;
    }

    switch (reg) {
    case A_VTPM_ID:
        val = VTPM_PCI_ID_MAGIC;
        break;
    case A_VTPM_VERSION:
        val = FIELD_DP32(0, VTPM_VERSION, MAJOR, VTPM_PCI_VERSION_MAJOR);
        val = FIELD_DP32(val, VTPM_VERSION, MINOR, VTPM_PCI_VERSION_MINOR);
        break;
    case A_VTPM_SCRATCH:
        val = s->scratch;
        break;
    case A_VTPM_STATUS:
        val = vtpm_pci_status(s);
        break;
    case A_VTPM_CMD_SIZE:
        val = s->cmd_len;
        break;
    case A_VTPM_RSP_SIZE:
        val = s->state == VTPM_STATE_COMPLETE ? s->rsp_len : 0;
        break;
    case A_VTPM_BUF_SIZE:
        val = s->buffer_size;
        break;
    case A_VTPM_LOCALITY:
        val = s->locality;
        break;
    case A_VTPM_INT_ENABLE:
        val = s->int_enable;
        break;
    case A_VTPM_INT_STATUS:
        val = s->int_status;
        break;
    case A_VTPM_ERROR:
        val = s->error;
        break;
    case A_VTPM_DATA:
        val = vtpm_pci_data_read(s, size);
        trace_vtpm_pci_io_read(addr, size, val);
        return val;
    case A_VTPM_CONTROL:
        val = 0;        /* write-only */
        break;
    default:
        vtpm_pci_refuse(s, VTPM_ERR_ACCESS, "read of a reserved offset");
        val = 0;
        break;
    }

    val = extract32(val, shift, size * 8);
    trace_vtpm_pci_io_read(addr, size, val);
    return val;
}

static void vtpm_pci_io_write(void *opaque, hwaddr addr, uint64_t val64,
                              unsigned size)
{
    VTPMPCIState *s = opaque;
    uint32_t val = val64;
    hwaddr reg;
    unsigned shift;

    trace_vtpm_pci_io_write(addr, size, val);

    if (!vtpm_pci_decode(addr, size, &reg, &shift)) {
        vtpm_pci_refuse(s, VTPM_ERR_ACCESS, "misplaced register write");
        return;
    }
    if (reg == A_VTPM_DATA) {
        vtpm_pci_data_write(s, val, size);
        return;
    }
    if (size != 4 && reg != A_VTPM_SCRATCH) {
        vtpm_pci_refuse(s, VTPM_ERR_ACCESS,
                        "narrow write to a control register");
        return;
    }

    switch (reg) {
    case A_VTPM_SCRATCH:
        s->scratch = deposit32(s->scratch, shift, size * 8, val);
        break;
    case A_VTPM_CONTROL:
        vtpm_pci_control(s, val);
        break;
    case A_VTPM_LOCALITY:
        if (s->state != VTPM_STATE_IDLE) {
            vtpm_pci_refuse(s, VTPM_ERR_STATE,
                            "LOCALITY change during a command");
        } else if (val > VTPM_PCI_LOCALITY_MAX) {
            vtpm_pci_refuse(s, VTPM_ERR_VALUE, "LOCALITY out of range");
        } else {
            s->locality = val;
        }
        break;
    case A_VTPM_INT_ENABLE:
        s->int_enable = val & R_VTPM_INT_ENABLE_COMPLETE_MASK;
        vtpm_pci_update_irq(s);
        break;
    case A_VTPM_INT_STATUS:
        s->int_status &= ~val;
        vtpm_pci_update_irq(s);
        break;
    case A_VTPM_ID:
    case A_VTPM_VERSION:
    case A_VTPM_STATUS:
    case A_VTPM_CMD_SIZE:
    case A_VTPM_RSP_SIZE:
    case A_VTPM_BUF_SIZE:
    case A_VTPM_ERROR:
        vtpm_pci_refuse(s, VTPM_ERR_ACCESS, "write to a read-only register");
        break;
    default:
        vtpm_pci_refuse(s, VTPM_ERR_ACCESS, "write to a reserved offset");
        break;
    }
}

static const MemoryRegionOps vtpm_pci_io_ops = {
    .read = vtpm_pci_io_read,
    .write = vtpm_pci_io_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 4,
        .unaligned = true,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 4,
        .unaligned = true,
    },
};

/*
 * Check the iobase property and pin BAR 0's ports: the PCI core keeps
 * them clear of the PC's ports, of ports in use and of other pinned ports,
 * and behind a bridge, inside the bridge's pinned I/O window.
 */
static bool vtpm_pci_pin(VTPMPCIState *s, Error **errp)
{
    ERRP_GUARD();

    if (s->iobase == VTPM_PCI_IOBASE_NONE) {
        return true;
    }
    if (s->iobase > 0xffff || s->iobase + VTPM_PCI_BAR_SIZE - 1 > 0xffff) {
        error_setg(errp, "iobase 0x%" PRIx32 " is outside the I/O space: "
                   "the %u ports must fit in 0x0000-0xffff", s->iobase,
                   VTPM_PCI_BAR_SIZE);
        return false;
    }
    if (s->iobase % VTPM_PCI_BAR_SIZE) {
        error_setg(errp, "iobase 0x%04" PRIx32 " is not a multiple of the "
                   "BAR size, 0x%x", s->iobase, VTPM_PCI_BAR_SIZE);
        return false;
    }
    if (!pci_io_pin(PCI_DEVICE(s), s->iobase, VTPM_PCI_BAR_SIZE, errp)) {
        error_prepend(errp, "iobase 0x%04" PRIx32 ": ", s->iobase);
        return false;
    }
    return true;
}

/*
 * A pinned BAR 0 keeps its base.  All-ones is the sizing protocol and
 * reads back as the size mask; any other value becomes the pinned base.
 */
static void vtpm_pci_config_write(PCIDevice *pci_dev, uint32_t addr,
                                  uint32_t val, int len)
{
    VTPMPCIState *s = VTPM_PCI(pci_dev);
    uint32_t first = MAX(addr, PCI_BASE_ADDRESS_0);
    uint32_t end = MIN(addr + len, PCI_BASE_ADDRESS_0 + 4);
    uint32_t bar;

    if (s->iobase == VTPM_PCI_IOBASE_NONE ||
        !ranges_overlap(addr, len, PCI_BASE_ADDRESS_0, 4)) {
        pci_default_write_config(pci_dev, addr, val, len);
        return;
    }
    /*
     * An access need not be aligned (QEMU keeps the low bits of the
     * register number in CONFIG_ADDRESS): its bytes before and after
     * BAR 0 go to their registers as usual
     */
    if (addr < first) {
        pci_default_write_config(pci_dev, addr, val, first - addr);
    }
    if (addr + len > end) {
        pci_default_write_config(pci_dev, end, val >> ((end - addr) * 8),
                                 addr + len - end);
    }
    bar = pci_get_long(pci_dev->config + PCI_BASE_ADDRESS_0);
    bar = deposit32(bar, (first - PCI_BASE_ADDRESS_0) * 8, (end - first) * 8,
                    val >> ((first - addr) * 8));
    if (bar != UINT32_MAX) {
        trace_vtpm_pci_bar_pinned(bar, s->iobase);
        bar = s->iobase | PCI_BASE_ADDRESS_SPACE_IO;
    }
    pci_default_write_config(pci_dev, PCI_BASE_ADDRESS_0, bar, 4);
}

/*
 * The card attaches to the -tpmdev its tpmdev property names when it is
 * realized, not when the property is set, as DEFINE_PROP_TPMBE does: the
 * card is hot-pluggable, and device_add may refuse it for a property set
 * after tpmdev.  Such a card is never realized, and never freed either,
 * and would hold the backend for good.
 */
static bool vtpm_pci_attach_backend(VTPMPCIState *s, Error **errp)
{
    TPMBackend *be = qemu_find_tpm_be(s->tpmdev);

    if (!be) {
        error_setg(errp, "tpmdev '%s' not found", s->tpmdev);
        return false;
    }
    if (tpm_backend_init(be, TPM_IF(s), errp) < 0) {
        return false;
    }
    s->tpmbe = be;
    return true;
}

/*
 * With no tpmdev, the card brings its own TPM: TPM 2.0 emulated by
 * libtpms inside QEMU, its state in memory.  The libtpms backend is
 * looked up by name, so that the card builds, and works with a tpmdev,
 * in a QEMU without libtpms.
 */
static bool vtpm_pci_create_backend(VTPMPCIState *s, Error **errp)
{
    DeviceState *dev = DEVICE(s);
    ObjectClass *oc = object_class_by_name(TYPE_TPM_LIBTPMS);
    g_autofree char *id = NULL;

    if (!oc) {
        error_setg(errp, "'tpmdev' property is required: this QEMU was "
                   "built without libtpms, which gives the card a TPM "
                   "of its own");
        error_append_hint(errp, "Put a -tpmdev emulator (swtpm) or "
                          "-tpmdev passthrough backend behind the card "
                          "with tpmdev=ID.\n");
        return false;
    }
    s->tpmbe = TPM_BACKEND_CLASS(oc)->create_own(TPM_VERSION_2_0, errp);
    if (!s->tpmbe) {
        return false;
    }
    id = g_strdup_printf("%s-tpm", dev->id ?: "vtpm-pci");
    if (!tpm_backend_register(s->tpmbe, id, errp)) {
        object_unref(OBJECT(s->tpmbe));
        s->tpmbe = NULL;
        return false;
    }
    if (tpm_backend_init(s->tpmbe, TPM_IF(s), errp) < 0) {
        tpm_backend_unregister(s->tpmbe);
        s->tpmbe = NULL;
        return false;
    }
    s->own_tpmbe = true;
    return true;
}

static void vtpm_pci_realize(PCIDevice *pci_dev, Error **errp)
{
    VTPMPCIState *s = VTPM_PCI(pci_dev);

    if (s->poll_ns > VTPM_PCI_POLL_NS_MAX) {
        error_setg(errp, "poll-ns %" PRIu32 " is above the maximum, %d",
                   s->poll_ns, VTPM_PCI_POLL_NS_MAX);
        return;
    }
    if (!vtpm_pci_pin(s, errp)) {
        return;
    }
    pci_config_set_interrupt_pin(pci_dev->config, 1);
    if (msix_init_exclusive_bar(pci_dev, 1, VTPM_PCI_MSIX_BAR, errp)) {
        pci_io_unpin(pci_dev);
        return;
    }
    msix_vector_use(pci_dev, 0);

    /* The backend comes last: it is all there is to undo */
    if (s->tpmdev ? !vtpm_pci_attach_backend(s, errp) :
                    !vtpm_pci_create_backend(s, errp)) {
        msix_unuse_all_vectors(pci_dev);
        msix_uninit_exclusive_bar(pci_dev);
        pci_io_unpin(pci_dev);
        return;
    }

    s->query_bh = qemu_bh_new_guarded(vtpm_pci_query_next, s,
                                      &DEVICE(s)->mem_reentrancy_guard);
    s->buffer_size = MIN(tpm_backend_get_buffer_size(s->tpmbe),
                         VTPM_PCI_BUFFER_MAX);
    s->buf = g_malloc0(VTPM_PCI_BUFFER_MAX);
    s->load_buf = g_malloc(VTPM_PCI_BUFFER_MAX);

    memory_region_init_io(&s->io, OBJECT(s), &vtpm_pci_io_ops, s,
                          "vtpm-pci-io", VTPM_PCI_BAR_SIZE);
    pci_register_bar(pci_dev, VTPM_PCI_BAR, PCI_BASE_ADDRESS_SPACE_IO,
                     &s->io);
    tpm_backend_set_poll(s->tpmbe, s->poll_ns);
}

/* Wait until neither a guest command nor a flags query is in flight */
static void vtpm_pci_drain(VTPMPCIState *s)
{
    tpm_backend_finish_sync(s->tpmbe);
    while (s->query_step) {
        aio_poll(qemu_get_aio_context(), true);
        tpm_backend_finish_sync(s->tpmbe);
    }
}

static void vtpm_pci_exit(PCIDevice *pci_dev)
{
    VTPMPCIState *s = VTPM_PCI(pci_dev);

    vtpm_pci_drain(s);
    qemu_bh_delete(s->query_bh);
    msix_unuse_all_vectors(pci_dev);
    msix_uninit_exclusive_bar(pci_dev);
    pci_io_unpin(pci_dev);
    g_free(s->buf);
    g_free(s->load_buf);

    /* Let the TPM go: a -tpmdev one to the next card, our own for good */
    tpm_backend_deinit(s->tpmbe);
    if (s->own_tpmbe) {
        tpm_backend_unregister(s->tpmbe);
    }
    s->tpmbe = NULL;
}

static void vtpm_pci_reset_hold(Object *obj, ResetType type)
{
    VTPMPCIState *s = VTPM_PCI(obj);

    /*
     * No completion comes after this for a command in flight: the backend
     * waits for it, or leaves it to the TPM and drops the response
     */
    tpm_backend_reset(s->tpmbe);
    qemu_bh_cancel(s->query_bh);

    vtpm_pci_discard(s);
    s->state = VTPM_STATE_IDLE;
    s->scratch = 0;
    s->flags = 0;
    s->query_step = 0;
    s->locality = 0;
    s->int_enable = 0;
    s->int_status = 0;
    s->irq_level = false;

    /*
     * On failure, commands get a TPM failure response and QEMU stays up.
     * A guest can reset the card as often as it likes: say it once for a
     * run of failed starts.
     */
    if (tpm_backend_startup_tpm(s->tpmbe, s->buffer_size) < 0) {
        if (!s->start_failed) {
            error_report("vtpm-pci: the TPM backend failed to start; "
                         "commands fail until a reset starts it");
        }
        s->start_failed = true;
    } else {
        s->start_failed = false;
    }
}

/*
 * After the PCI core has cleared the BARs and the command register (in
 * the bus's hold phase): a pinned card is back at its base, decoding, as
 * a legacy device would be from power-on.
 */
static void vtpm_pci_reset_exit(Object *obj, ResetType type)
{
    VTPMPCIState *s = VTPM_PCI(obj);
    PCIDevice *pci_dev = PCI_DEVICE(obj);
    uint16_t cmd = pci_get_word(pci_dev->config + PCI_COMMAND);

    if (s->iobase == VTPM_PCI_IOBASE_NONE) {
        return;
    }
    pci_default_write_config(pci_dev, PCI_BASE_ADDRESS_0,
                             s->iobase | PCI_BASE_ADDRESS_SPACE_IO, 4);
    pci_default_write_config(pci_dev, PCI_COMMAND, cmd | PCI_COMMAND_IO, 2);
}

static int vtpm_pci_pre_save(void *opaque)
{
    VTPMPCIState *s = opaque;

    /* Let a command in flight finish: its response migrates instead */
    vtpm_pci_drain(s);
    s->mig.state = s->state;
    s->mig.error = s->error;
    s->mig.scratch = s->scratch;
    s->mig.locality = s->locality;
    s->mig.int_enable = s->int_enable;
    s->mig.int_status = s->int_status;
    s->mig.cmd_len = s->cmd_len;
    s->mig.overflow = s->overflow;
    s->mig.rsp_len = s->rsp_len;
    s->mig.rsp_pos = s->rsp_pos;
    s->mig.flags = s->flags;
    s->mig.data_len = s->state == VTPM_STATE_RECEIVING ? s->cmd_len :
                      s->state == VTPM_STATE_COMPLETE ? s->rsp_len : 0;
    s->mig.data_len = MIN(s->mig.data_len, s->buffer_size);
    s->mig.buf = s->buf;
    return 0;
}

static int vtpm_pci_pre_load(void *opaque)
{
    VTPMPCIState *s = opaque;

    /*
     * loadvm over a running card: the command in flight ends before the
     * stream arrives, so that its response cannot land on top of it
     */
    vtpm_pci_drain(s);
    s->mig.buf = s->load_buf;
    return 0;
}

static bool vtpm_pci_data_len_valid(void *opaque, int version_id)
{
    VTPMPCIState *s = opaque;

    return s->mig.data_len <= s->buffer_size;
}

/* Does the stream's card, staged in s->mig, make sense as a whole? */
static bool vtpm_pci_load_check(VTPMPCIState *s, Error **errp)
{
    PCIDevice *pci_dev = PCI_DEVICE(s);

    /* The PCI core loads the pin as it comes, and asserts on a bad one */
    if (pci_get_byte(pci_dev->config + PCI_INTERRUPT_PIN) != 1) {
        error_setg(errp, "vtpm-pci: the migration stream moves the card's "
                   "interrupt off INTA");
        return false;
    }
    /*
     * ... and the line's state: INTA is up only for a pending interrupt
     * not sent by MSI-X, and the other pins never are, or a reset would
     * take back what the bus never counted
     */
    if ((pci_dev->irq_state & ~1) ||
        ((pci_dev->irq_state & 1) &&
         (!(s->mig.int_status & s->mig.int_enable) ||
          msix_enabled(pci_dev)))) {
        error_setg(errp, "vtpm-pci: the migration stream's interrupt line "
                   "disagrees with the card's interrupt registers");
        return false;
    }
    if (s->mig.state > VTPM_STATE_COMPLETE ||
        s->mig.state == VTPM_STATE_EXECUTING ||
        s->mig.cmd_len > s->buffer_size || s->mig.rsp_len > s->buffer_size ||
        s->mig.rsp_pos > s->mig.rsp_len ||
        s->mig.locality > VTPM_PCI_LOCALITY_MAX ||
        (s->mig.flags & ~(R_VTPM_STATUS_FLAGS_VALID_MASK |
                          R_VTPM_STATUS_ENABLED_MASK |
                          R_VTPM_STATUS_ACTIVATED_MASK |
                          R_VTPM_STATUS_OWNED_MASK)) ||
        s->mig.error > VTPM_ERR_VALUE ||
        (s->mig.int_enable & ~R_VTPM_INT_ENABLE_COMPLETE_MASK) ||
        (s->mig.int_status & ~R_VTPM_INT_STATUS_COMPLETE_MASK)) {
        error_setg(errp, "vtpm-pci: inconsistent state in the migration "
                   "stream");
        return false;
    }
    /* The buffer holds what the state says: the command, or a response */
    if ((s->mig.state == VTPM_STATE_RECEIVING &&
         s->mig.data_len != s->mig.cmd_len) ||
        (s->mig.state == VTPM_STATE_COMPLETE &&
         (s->mig.data_len != s->mig.rsp_len ||
          s->mig.rsp_len < sizeof(struct tpm_resp_hdr) ||
          tpm_cmd_get_size(s->mig.buf) != s->mig.rsp_len)) ||
        (s->mig.state == VTPM_STATE_IDLE && s->mig.data_len)) {
        error_setg(errp, "vtpm-pci: the migration stream's buffer does not "
                   "match the card's state");
        return false;
    }
    return true;
}

static bool vtpm_pci_post_load(void *opaque, int version_id, Error **errp)
{
    VTPMPCIState *s = opaque;
    PCIDevice *pci_dev = PCI_DEVICE(s);

    if (!vtpm_pci_load_check(s, errp)) {
        /*
         * The registers and the buffer stay as they were.  The PCI core
         * has loaded the configuration space and the line's state before
         * us; of these the card puts back what is its own, the pin
         * (read-only to a guest) and INTA, which follows the registers.
         */
        pci_config_set_interrupt_pin(pci_dev->config, 1);
        pci_set_irq(pci_dev, s->irq_level && !msix_enabled(pci_dev));
        return false;
    }

    s->state = s->mig.state;
    s->error = s->mig.error;
    s->scratch = s->mig.scratch;
    s->locality = s->mig.locality;
    s->int_enable = s->mig.int_enable;
    s->int_status = s->mig.int_status;
    s->cmd_len = s->mig.cmd_len;
    s->overflow = s->mig.overflow;
    s->rsp_len = s->mig.rsp_len;
    s->rsp_pos = s->mig.rsp_pos;
    s->flags = s->mig.flags;
    memcpy(s->buf, s->mig.buf, s->mig.data_len);
    s->irq_level = s->int_status & s->int_enable;
    return true;
}

static const VMStateDescription vmstate_vtpm_pci = {
    .name = TYPE_VTPM_PCI,
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = vtpm_pci_pre_save,
    .pre_load = vtpm_pci_pre_load,
    .post_load_errp = vtpm_pci_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_PCI_DEVICE(parent_obj, VTPMPCIState),
        VMSTATE_MSIX(parent_obj, VTPMPCIState),
        VMSTATE_UINT32(mig.state, VTPMPCIState),
        VMSTATE_UINT32(mig.error, VTPMPCIState),
        VMSTATE_UINT32(mig.scratch, VTPMPCIState),
        VMSTATE_UINT32(mig.locality, VTPMPCIState),
        VMSTATE_UINT32(mig.int_enable, VTPMPCIState),
        VMSTATE_UINT32(mig.int_status, VTPMPCIState),
        VMSTATE_UINT32(mig.cmd_len, VTPMPCIState),
        VMSTATE_BOOL(mig.overflow, VTPMPCIState),
        VMSTATE_UINT32(mig.rsp_len, VTPMPCIState),
        VMSTATE_UINT32(mig.rsp_pos, VTPMPCIState),
        VMSTATE_UINT32(mig.flags, VTPMPCIState),
        VMSTATE_UINT32(mig.data_len, VTPMPCIState),
        VMSTATE_VALIDATE("data_len fits the buffer",
                         vtpm_pci_data_len_valid),
        VMSTATE_VBUFFER_UINT32(mig.buf, VTPMPCIState, 1, NULL,
                               mig.data_len),
        VMSTATE_END_OF_LIST()
    },
};

static const Property vtpm_pci_properties[] = {
    DEFINE_PROP_STRING("tpmdev", VTPMPCIState, tpmdev),
    DEFINE_PROP_UINT32("iobase", VTPMPCIState, iobase, VTPM_PCI_IOBASE_NONE),
    DEFINE_PROP_UINT32("poll-ns", VTPMPCIState, poll_ns,
                       VTPM_PCI_POLL_NS_DEFAULT),
};

static void vtpm_pci_class_init(ObjectClass *klass, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *pc = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);
    TPMIfClass *tc = TPM_IF_CLASS(klass);

    pc->realize = vtpm_pci_realize;
    pc->exit = vtpm_pci_exit;
    pc->config_write = vtpm_pci_config_write;
    pc->vendor_id = PCI_VENDOR_ID_REDHAT;
    pc->device_id = PCI_DEVICE_ID_REDHAT_VTPM;
    pc->revision = VTPM_PCI_REVISION;
    pc->class_id = PCI_CLASS_CRYPT_OTHER;

    dc->desc = "PCI TPM card with an I/O port interface";
    dc->vmsd = &vmstate_vtpm_pci;
    device_class_set_props(dc, vtpm_pci_properties);
    object_class_property_set_description(klass, "tpmdev",
        "ID of the -tpmdev behind the card; default: the card's own "
        "libtpms TPM 2.0 (required in a QEMU without libtpms)");
    object_class_property_set_description(klass, "iobase",
        "pin BAR 0 at this I/O port, a multiple of 0x40 clear of the "
        "ports a PC reserves; 4294967295: not pinned, firmware and "
        "guest place it");
    object_class_property_set_description(klass, "poll-ns",
        "how long a START write waits for the TPM, in ns (0-1000000); "
        "0: every command completes later, by interrupt");
    rc->phases.hold = vtpm_pci_reset_hold;
    rc->phases.exit = vtpm_pci_reset_exit;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);

    tc->model = TPM_MODEL_VTPM_PCI;
    tc->get_version = vtpm_pci_get_version;
    tc->request_completed = vtpm_pci_request_completed;
}

static void vtpm_pci_instance_init(Object *obj)
{
    VTPMPCIState *s = VTPM_PCI(obj);

    /* For the host (qom-get), not the guest: it survives resets */
    object_property_add_uint64_ptr(obj, "commands", &s->commands,
                                   OBJ_PROP_FLAG_READ);
    object_property_set_description(obj, "commands",
        "the number of commands guests have started on the card's TPM");
}

static const TypeInfo vtpm_pci_info = {
    .name = TYPE_VTPM_PCI,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(VTPMPCIState),
    .instance_init = vtpm_pci_instance_init,
    .class_init = vtpm_pci_class_init,
    .interfaces = (const InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { TYPE_TPM_IF },
        { },
    },
};

static void vtpm_pci_register_types(void)
{
    type_register_static(&vtpm_pci_info);
}

type_init(vtpm_pci_register_types)
