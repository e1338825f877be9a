/*
 * vtpm-pci: a PCI TPM card with an I/O port register interface
 *
 * BAR 0 is an I/O BAR holding the register block described in
 * docs/specs/vtpm-pci.rst; BAR 1 holds the MSI-X table.  A command is
 * written byte-stream fashion to the DATA port, started through CONTROL,
 * handed to the TPM backend (which runs it in a worker thread), and its
 * response is read back from DATA.  Completion raises an interrupt.
 *
 * BAR 2 is RAM: a guest may put a whole command there instead, start it
 * with CONTROL.START_BUFFER and find the response there, so that a
 * command costs two trapped accesses (START_BUFFER, RSP_SIZE) however
 * long it is.
 *
 * The command state machine is vtpm_engine.c's; this file is the card
 * around it: the registers' decoding, the BARs, the interrupt, pinned
 * ports, the backend's life, reset and migration.
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
#include "qemu/module.h"
#include "qemu/range.h"
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
#include "vtpm_engine.h"

OBJECT_DECLARE_SIMPLE_TYPE(VTPMPCIState, VTPM_PCI)

/* iobase property: BAR 0 not pinned */
#define VTPM_PCI_IOBASE_NONE        UINT32_MAX

/*
 * poll-ns property: how long, at most, the START access waits for a
 * command to complete (the TPM's thread polls for the next command up to
 * 4 times as long); both adapt below it.  The default covers the TPM
 * thread's wake-up after a pause, which a guest waits for anyway.
 */
#define VTPM_PCI_POLL_NS_DEFAULT    200000
#define VTPM_PCI_POLL_NS_MAX        1000000

struct VTPMPCIState {
    PCIDevice parent_obj;

    MemoryRegion io;
    MemoryRegion buffer;        /* BAR 2 */
    bool buffer_bar;            /* ... which the card has */
    uint32_t iobase;            /* pinned base of BAR 0, or IOBASE_NONE */
    uint32_t poll_ns;           /* 0: commands complete in the main loop */
    char *tpmdev;               /* the -tpmdev to attach at realize */
    TPMBackend *tpmbe;
    bool own_tpmbe;             /* created by the card, not -tpmdev */
    VTPMEngine engine;          /* the command state machine and buffer */

    /* Guest-visible registers of the card's own */
    uint32_t scratch;
    uint32_t int_enable;
    uint32_t int_status;

    /* Not migrated: derived from the state above */
    bool irq_level;

    /* The registers as the migration stream has them: see post_load */
    struct {
        uint32_t scratch;
        uint32_t int_enable;
        uint32_t int_status;
    } mig;

    uint64_t commands;          /* guest commands started: a statistic */
};

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

/* Put the response to a START_BUFFER command in BAR 2 */
static void vtpm_pci_buffer_fill(VTPMPCIState *s)
{
    VTPMEngine *e = &s->engine;

    memcpy(memory_region_get_ram_ptr(&s->buffer), e->buf, e->rsp_len);
    memory_region_set_dirty(&s->buffer, 0, e->rsp_len);
}

/* The engine finished a command or a flags query */
static void vtpm_pci_completed(void *opaque)
{
    VTPMPCIState *s = opaque;
    VTPMEngine *e = &s->engine;

    /* The response is in BAR 2 before the guest can see COMPLETE */
    if (e->state == VTPM_STATE_COMPLETE && e->from_memory) {
        vtpm_pci_buffer_fill(s);
    }
    s->int_status = FIELD_DP32(s->int_status, VTPM_INT_STATUS, COMPLETE, 1);
    vtpm_pci_update_irq(s);
}

static void vtpm_pci_request_completed(TPMIf *ti, int ret)
{
    VTPMPCIState *s = VTPM_PCI(ti);

    vtpm_engine_request_completed(&s->engine, ret);
}

static enum TPMVersion vtpm_pci_get_version(TPMIf *ti)
{
    VTPMPCIState *s = VTPM_PCI(ti);

    return tpm_backend_get_tpm_version(s->tpmbe);
}

static void vtpm_pci_control(VTPMPCIState *s, uint32_t val)
{
    VTPMEngine *e = &s->engine;

    switch (val) {
    case R_VTPM_CONTROL_START_MASK:
        if (vtpm_engine_start(e)) {
            s->commands++;
        }
        break;
    case R_VTPM_CONTROL_START_BUFFER_MASK:
        if (!s->buffer_bar) {
            vtpm_engine_refuse(e, VTPM_ERR_VALUE,
                               "START_BUFFER on a card without buffer BAR");
        } else if (vtpm_engine_start_from(e,
                       memory_region_get_ram_ptr(&s->buffer),
                       VTPM_PCI_BUFFER_MAX)) {
            s->commands++;
        }
        break;
    case R_VTPM_CONTROL_CANCEL_MASK:
        vtpm_engine_cancel(e);
        break;
    case R_VTPM_CONTROL_QUERY_MASK:
        vtpm_engine_query(e);
        break;
    case R_VTPM_CONTROL_ABORT_MASK:
        vtpm_engine_abort(e);
        break;
    default:
        vtpm_engine_refuse(e, VTPM_ERR_VALUE,
                           "CONTROL write with other than exactly one bit");
        break;
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
    VTPMEngine *e = &s->engine;
    uint8_t bytes[4] = { 0 };
    hwaddr reg;
    unsigned shift;
    uint32_t val;

    if (!vtpm_pci_decode(addr, size, &reg, &shift)) {
        vtpm_engine_refuse(e, VTPM_ERR_ACCESS, "misplaced register read");
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
        val = vtpm_engine_status(e);
        break;
    case A_VTPM_CMD_SIZE:
        val = e->cmd_len;
        break;
    case A_VTPM_RSP_SIZE:
        val = e->state == VTPM_STATE_COMPLETE ? e->rsp_len : 0;
        break;
    case A_VTPM_BUF_SIZE:
        val = e->buffer_size;
        break;
    case A_VTPM_LOCALITY:
        val = e->locality;
        break;
    case A_VTPM_INT_ENABLE:
        val = s->int_enable;
        break;
    case A_VTPM_INT_STATUS:
        val = s->int_status;
        break;
    case A_VTPM_ERROR:
        val = e->error;
        break;
    case A_VTPM_FEATURES:
        val = FIELD_DP32(0, VTPM_FEATURES, BUFFER, s->buffer_bar);
        break;
    case A_VTPM_DATA:
        vtpm_engine_read(e, bytes, size);
        val = ldl_le_p(bytes);
        trace_vtpm_pci_io_read(addr, size, val);
        return val;
    case A_VTPM_CONTROL:
        val = 0;        /* write-only */
        break;
    default:
        vtpm_engine_refuse(e, VTPM_ERR_ACCESS, "read of a reserved offset");
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
    VTPMEngine *e = &s->engine;
    uint32_t val = val64;
    uint8_t bytes[4];
    hwaddr reg;
    unsigned shift;

    trace_vtpm_pci_io_write(addr, size, val);

    if (!vtpm_pci_decode(addr, size, &reg, &shift)) {
        vtpm_engine_refuse(e, VTPM_ERR_ACCESS, "misplaced register write");
        return;
    }
    if (reg == A_VTPM_DATA) {
        stl_le_p(bytes, val);
        vtpm_engine_write(e, bytes, size);
        return;
    }
    if (size != 4 && reg != A_VTPM_SCRATCH) {
        vtpm_engine_refuse(e, VTPM_ERR_ACCESS,
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
        vtpm_engine_set_locality(e, val);
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
    case A_VTPM_FEATURES:
        vtpm_engine_refuse(e, VTPM_ERR_ACCESS,
                           "write to a read-only register");
        break;
    default:
        vtpm_engine_refuse(e, VTPM_ERR_ACCESS, "write to a reserved offset");
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
    if (s->buffer_bar &&
        !memory_region_init_ram_nomigrate(&s->buffer, OBJECT(s),
                                          "vtpm-pci-buffer",
                                          VTPM_PCI_BUFFER_MAX, errp)) {
        pci_io_unpin(pci_dev);
        return;
    }
    pci_config_set_interrupt_pin(pci_dev->config, 1);
    if (msix_init_exclusive_bar(pci_dev, 1, VTPM_PCI_MSIX_BAR, errp)) {
        goto fail_buffer;
    }
    msix_vector_use(pci_dev, 0);

    /* The backend comes last: it is all there is to undo */
    if (s->tpmdev ? !vtpm_pci_attach_backend(s, errp) :
                    !vtpm_pci_create_backend(s, errp)) {
        msix_unuse_all_vectors(pci_dev);
        msix_uninit_exclusive_bar(pci_dev);
        goto fail_buffer;
    }

    vtpm_engine_init(&s->engine, DEVICE(s), s->tpmbe, vtpm_pci_completed, s);

    memory_region_init_io(&s->io, OBJECT(s), &vtpm_pci_io_ops, s,
                          "vtpm-pci-io", VTPM_PCI_BAR_SIZE);
    pci_register_bar(pci_dev, VTPM_PCI_BAR, PCI_BASE_ADDRESS_SPACE_IO,
                     &s->io);
    if (s->buffer_bar) {
        /* Migrated as RAM; named after the card, unique to it */
        vmstate_register_ram(&s->buffer, DEVICE(s));
        pci_register_bar(pci_dev, VTPM_PCI_BUFFER_BAR,
                         PCI_BASE_ADDRESS_SPACE_MEMORY |
                         PCI_BASE_ADDRESS_MEM_PREFETCH, &s->buffer);
    }
    tpm_backend_set_poll(s->tpmbe, s->poll_ns);
    return;

fail_buffer:
    if (s->buffer_bar) {
        object_unparent(OBJECT(&s->buffer));
    }
    pci_io_unpin(pci_dev);
}

static void vtpm_pci_exit(PCIDevice *pci_dev)
{
    VTPMPCIState *s = VTPM_PCI(pci_dev);

    vtpm_engine_drain(&s->engine);
    vtpm_engine_finalize(&s->engine);
    if (s->buffer_bar) {
        vmstate_unregister_ram(&s->buffer, DEVICE(s));
    }
    msix_unuse_all_vectors(pci_dev);
    msix_uninit_exclusive_bar(pci_dev);
    pci_io_unpin(pci_dev);

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

    vtpm_engine_reset(&s->engine);
    if (s->buffer_bar) {
        memset(memory_region_get_ram_ptr(&s->buffer), 0, VTPM_PCI_BUFFER_MAX);
        memory_region_set_dirty(&s->buffer, 0, VTPM_PCI_BUFFER_MAX);
    }
    s->scratch = 0;
    s->int_enable = 0;
    s->int_status = 0;
    s->irq_level = false;
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

    /*
     * This waits for a command in flight.  Its response reaches BAR 2
     * after the RAM has been sent, if it came from there: the stream
     * carries it in the card's buffer too, and post_load puts it back.
     */
    vtpm_engine_pre_save(&s->engine);
    s->mig.scratch = s->scratch;
    s->mig.int_enable = s->int_enable;
    s->mig.int_status = s->int_status;
    return 0;
}

static int vtpm_pci_pre_load(void *opaque)
{
    VTPMPCIState *s = opaque;

    vtpm_engine_pre_load(&s->engine);
    return 0;
}

static bool vtpm_pci_data_len_valid(void *opaque, int version_id)
{
    VTPMPCIState *s = opaque;

    return vtpm_engine_data_len_valid(&s->engine);
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
    if ((s->mig.int_enable & ~R_VTPM_INT_ENABLE_COMPLETE_MASK) ||
        (s->mig.int_status & ~R_VTPM_INT_STATUS_COMPLETE_MASK)) {
        error_setg(errp, "vtpm-pci: inconsistent state in the migration "
                   "stream");
        return false;
    }
    if (s->engine.mig.from_memory && !s->buffer_bar) {
        error_setg(errp, "vtpm-pci: the migration stream has a response "
                   "for the buffer BAR, and this card has none "
                   "(buffer-bar=off)");
        return false;
    }
    return vtpm_engine_load_check(&s->engine, errp);
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

    vtpm_engine_load_commit(&s->engine);
    s->scratch = s->mig.scratch;
    s->int_enable = s->mig.int_enable;
    s->int_status = s->mig.int_status;
    s->irq_level = s->int_status & s->int_enable;
    /*
     * RAM may have been sent before the source's card finished the
     * command (see pre_save): put the response where the guest expects it
     */
    if (s->engine.from_memory) {
        vtpm_pci_buffer_fill(s);
    }
    return true;
}

static bool vtpm_pci_buffer_needed(void *opaque)
{
    VTPMPCIState *s = opaque;

    return s->engine.mig.from_memory;
}

/* A response to a START_BUFFER command, which BAR 2 also holds */
static const VMStateDescription vmstate_vtpm_pci_buffer = {
    .name = TYPE_VTPM_PCI "/buffer",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = vtpm_pci_buffer_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(engine.mig.from_memory, VTPMPCIState),
        VMSTATE_END_OF_LIST()
    },
};

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
        VMSTATE_UINT32(engine.mig.state, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.error, VTPMPCIState),
        VMSTATE_UINT32(mig.scratch, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.locality, VTPMPCIState),
        VMSTATE_UINT32(mig.int_enable, VTPMPCIState),
        VMSTATE_UINT32(mig.int_status, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.cmd_len, VTPMPCIState),
        VMSTATE_BOOL(engine.mig.overflow, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.rsp_len, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.rsp_pos, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.flags, VTPMPCIState),
        VMSTATE_UINT32(engine.mig.data_len, VTPMPCIState),
        VMSTATE_VALIDATE("data_len fits the buffer",
                         vtpm_pci_data_len_valid),
        VMSTATE_VBUFFER_UINT32(engine.mig.buf, VTPMPCIState, 1, NULL,
                               engine.mig.data_len),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_vtpm_pci_buffer,
        NULL
    },
};

static const Property vtpm_pci_properties[] = {
    DEFINE_PROP_STRING("tpmdev", VTPMPCIState, tpmdev),
    DEFINE_PROP_UINT32("iobase", VTPMPCIState, iobase, VTPM_PCI_IOBASE_NONE),
    DEFINE_PROP_UINT32("poll-ns", VTPMPCIState, poll_ns,
                       VTPM_PCI_POLL_NS_DEFAULT),
    DEFINE_PROP_BOOL("buffer-bar", VTPMPCIState, buffer_bar, true),
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
        "how long a START write waits for the TPM at most, in ns "
        "(0-1000000; adapts below it); 0: every command completes later, "
        "by interrupt");
    object_class_property_set_description(klass, "buffer-bar",
        "give the card BAR 2, a RAM buffer for whole commands "
        "(CONTROL.START_BUFFER); off: the DATA port only");
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
