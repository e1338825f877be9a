/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What an out-of-tree build of tpm_vtpm_pci needs beyond the kernel's
 * public headers.  In the kernel tree, drivers/char/tpm/tpm.h declares
 * these and this file goes away.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#ifndef TPM_VTPM_PCI_COMPAT_H
#define TPM_VTPM_PCI_COMPAT_H

#include <linux/tpm.h>
#include <linux/version.h>

/*
 * Exported by the TPM core, declared in drivers/char/tpm/tpm.h, which the
 * kernel headers packages do not ship.
 */
struct tpm_chip *tpmm_chip_alloc(struct device *pdev,
				 const struct tpm_class_ops *ops);
int tpm_chip_register(struct tpm_chip *chip);
void tpm_chip_unregister(struct tpm_chip *chip);
unsigned long tpm_calc_ordinal_duration(struct tpm_chip *chip, u32 ordinal);
int tpm_pm_suspend(struct device *dev);
int tpm_pm_resume(struct device *dev);

/*
 * Linux 6.17 added the buffer's size to tpm_class_ops.send, and with it
 * TPM_CHIP_FLAG_SYNC: a chip with that flag returns the response from
 * send(), in the command's buffer, and the core calls neither status()
 * nor recv().  The flag is an enumerator, which the preprocessor cannot
 * test.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
#define TPM_SEND_HAS_BUFSIZ
#define TPM_HAS_CHIP_FLAG_SYNC
#endif

/*
 * Linux 6.12 exported pcim_iomap_region(), which requests one BAR and maps
 * it, managed.  It replaces pcim_iomap() and pcim_iomap_regions() with
 * pcim_iomap_table(), which later kernels deprecate; before 6.12, those are
 * what there is.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define PCIM_HAS_IOMAP_REGION
#endif

#endif /* TPM_VTPM_PCI_COMPAT_H */
