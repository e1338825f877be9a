/*
 * vtpm-pci: a PCI TPM card with an I/O port register interface
 *
 * BAR 0 is an I/O BAR holding the register block described in
 * docs/specs/vtpm-pci.rst.  Registers are 32 bits wide and may be accessed
 * with 1, 2 or 4 byte port accesses at any offset that stays inside one
 * register.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bitops.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "hw/pci/pci_device.h"
#include "hw/tpm/vtpm_pci.h"
#include "migration/vmstate.h"
#include "trace.h"

OBJECT_DECLARE_SIMPLE_TYPE(VTPMPCIState, VTPM_PCI)

struct VTPMPCIState {
    PCIDevice parent_obj;

    MemoryRegion io;
    uint32_t scratch;
};

/*
 * Split a port access into the register it falls in and the bit position
 * of its lowest byte.  Returns false for an access that straddles two
 * registers.
 */
static bool vtpm_pci_decode(hwaddr addr, unsigned size, hwaddr *reg,
                            unsigned *shift)
{
    *reg = addr & ~(hwaddr)3;
    *shift = (addr & 3) * 8;
    return (addr & 3) + size <= 4;
}

static uint64_t vtpm_pci_io_read(void *opaque, hwaddr addr, unsigned size)
{
    VTPMPCIState *s = opaque;
    hwaddr reg;
    unsigned shift;
    uint32_t val;

    if (!vtpm_pci_decode(addr, size, &reg, &shift)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: %u-byte read at 0x%" HWADDR_PRIx
                      " straddles two registers\n", __func__, size, addr);
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
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: read of reserved offset 0x%" HWADDR_PRIx "\n",
                      __func__, addr);
        val = 0;
        break;
    }

    val = extract32(val, shift, size * 8);
    trace_vtpm_pci_io_read(addr, size, val);
    return val;
}

static void vtpm_pci_io_write(void *opaque, hwaddr addr, uint64_t val,
                              unsigned size)
{
    VTPMPCIState *s = opaque;
    hwaddr reg;
    unsigned shift;

    trace_vtpm_pci_io_write(addr, size, val);

    if (!vtpm_pci_decode(addr, size, &reg, &shift)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: %u-byte write at 0x%" HWADDR_PRIx
                      " straddles two registers\n", __func__, size, addr);
        return;
    }

    switch (reg) {
    case A_VTPM_ID:
    case A_VTPM_VERSION:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: write to read-only register at 0x%" HWADDR_PRIx
                      "\n", __func__, addr);
        break;
    case A_VTPM_SCRATCH:
        s->scratch = deposit32(s->scratch, shift, size * 8, val);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "%s: write to reserved offset 0x%" HWADDR_PRIx "\n",
                      __func__, addr);
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

static void vtpm_pci_realize(PCIDevice *pci_dev, Error **errp)
{
    VTPMPCIState *s = VTPM_PCI(pci_dev);

    memory_region_init_io(&s->io, OBJECT(s), &vtpm_pci_io_ops, s,
                          "vtpm-pci-io", VTPM_PCI_BAR_SIZE);
    pci_register_bar(pci_dev, VTPM_PCI_BAR, PCI_BASE_ADDRESS_SPACE_IO,
                     &s->io);
}

static void vtpm_pci_reset_hold(Object *obj, ResetType type)
{
    VTPMPCIState *s = VTPM_PCI(obj);

    s->scratch = 0;
}

static const VMStateDescription vmstate_vtpm_pci = {
    .name = TYPE_VTPM_PCI,
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_PCI_DEVICE(parent_obj, VTPMPCIState),
        VMSTATE_UINT32(scratch, VTPMPCIState),
        VMSTATE_END_OF_LIST()
    },
};

static void vtpm_pci_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *pc = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    pc->realize = vtpm_pci_realize;
    pc->vendor_id = VTPM_PCI_VENDOR_ID;
    pc->device_id = VTPM_PCI_DEVICE_ID;
    pc->revision = VTPM_PCI_REVISION;
    pc->class_id = VTPM_PCI_CLASS_CODE;

    dc->desc = "PCI TPM card with an I/O port interface";
    dc->vmsd = &vmstate_vtpm_pci;
    rc->phases.hold = vtpm_pci_reset_hold;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo vtpm_pci_info = {
    .name = TYPE_VTPM_PCI,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(VTPMPCIState),
    .class_init = vtpm_pci_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void vtpm_pci_register_types(void)
{
    type_register_static(&vtpm_pci_info);
}

type_init(vtpm_pci_register_types)
