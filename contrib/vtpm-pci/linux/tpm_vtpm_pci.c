// SPDX-License-Identifier: GPL-2.0
/*
 * Driver for QEMU's vtpm-pci card: a TPM behind a block of I/O ports.
 *
 * BAR 0 holds 64 ports of 32-bit registers.  A command is written to the
 * DATA port, four bytes per access, started through CONTROL, and its
 * response read back from DATA once STATUS.STATE says COMPLETE.  A short
 * command is usually complete as soon as the START write returns; for one
 * that is not, the driver enables the card's completion interrupt (MSI-X,
 * MSI or INTx) and sleeps until it comes.  The driver polls STATUS when no
 * interrupt works or when asked to.
 *
 * Cards of interface 1.1 may also offer BAR 2, a buffer of plain memory
 * that holds the command and then the response.  The driver uses it when
 * there (unless loaded with port=1): a command done within its start then
 * costs two port accesses, the START_BUFFER write and the RSP_SIZE read,
 * where DATA takes one for every four bytes each way.
 *
 * Where the TPM core has TPM_CHIP_FLAG_SYNC (Linux 6.17 and later),
 * send() runs the whole command and returns its response, so that a
 * command done within START costs the core no recv() or STATUS poll.
 *
 * The interface is specified in QEMU's docs/specs/vtpm-pci.rst.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#include <linux/bitfield.h>
#include <linux/interrupt.h>
#include <linux/iopoll.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pm.h>
#include <linux/tpm.h>
#include <linux/wait.h>

#include "tpm_compat.h"

#define PCI_DEVICE_ID_REDHAT_VTPM	0x0015

/* Registers, as offsets into BAR 0 */
#define VTPM_ID			0x00
#define VTPM_VERSION		0x04
#define VTPM_STATUS		0x0c
#define VTPM_CONTROL		0x10
#define VTPM_RSP_SIZE		0x18
#define VTPM_BUF_SIZE		0x1c
#define VTPM_LOCALITY		0x20
#define VTPM_INT_ENABLE		0x24
#define VTPM_INT_STATUS		0x28
#define VTPM_ERROR		0x2c
#define VTPM_DATA		0x30
#define VTPM_FEATURES		0x34	/* interface 1.1 */
#define VTPM_REGS_SIZE		0x40

#define VTPM_BUFFER_BAR		2

#define VTPM_ID_MAGIC		0x4d505456	/* "VTPM" */
#define VTPM_VERSION_MAJOR	GENMASK(31, 16)
#define VTPM_VERSION_MINOR	GENMASK(15, 0)

#define VTPM_STATUS_STATE	GENMASK(2, 0)
#define VTPM_STATUS_ERROR	BIT(3)
#define VTPM_STATUS_FAMILY	GENMASK(9, 8)

#define VTPM_FEATURES_BUFFER	BIT(0)

enum vtpm_state {
	VTPM_STATE_IDLE,
	VTPM_STATE_RECEIVING,
	VTPM_STATE_EXECUTING,
	VTPM_STATE_COMPLETE,
};

#define VTPM_FAMILY_TPM12	1
#define VTPM_FAMILY_TPM20	2

#define VTPM_CONTROL_START	BIT(0)
#define VTPM_CONTROL_CANCEL	BIT(1)
#define VTPM_CONTROL_ABORT	BIT(2)
#define VTPM_CONTROL_START_BUFFER	BIT(4)

#define VTPM_INT_COMPLETE	BIT(0)

/* How long a cancelled command may still take to finish */
#define VTPM_CANCEL_TIMEOUT_US	(2 * USEC_PER_SEC)
/* The interrupt test: a TPM_GetCapability takes well under this */
#define VTPM_TEST_TIMEOUT_US	(2 * USEC_PER_SEC)
/* Delivery of an interrupt the card has already raised */
#define VTPM_IRQ_LATENCY_MS	100
#define VTPM_POLL_US		100

static bool poll;
module_param(poll, bool, 0444);
MODULE_PARM_DESC(poll, "Poll for completion instead of using the interrupt");

static bool port;
module_param(port, bool, 0444);
MODULE_PARM_DESC(port, "Move commands through the DATA port even when the card has a buffer BAR");

#ifdef TPM_HAS_CHIP_FLAG_SYNC
static bool sync_send = true;
module_param_named(sync, sync_send, bool, 0444);
MODULE_PARM_DESC(sync, "Return the response from send() (TPM_CHIP_FLAG_SYNC)");
#endif

struct vtpm_pci {
	void __iomem *regs;
	void __iomem *buf;	/* BAR 2, or NULL: commands move through DATA */
	struct pci_dev *pdev;
	wait_queue_head_t wq;
	unsigned int family;
	u32 buf_size;
	bool use_irq;		/* completion is signalled by the interrupt */
	bool irq_seen;		/* the handler ran since the last test */
	bool sync;		/* TPM_CHIP_FLAG_SYNC: send() reads the response */
	bool unsettled;		/* BAR 2: the card may not take START_BUFFER */
	u32 rsp_len;		/* RSP_SIZE as read after START, or 0 */
};

static u32 vtpm_read(struct vtpm_pci *priv, unsigned int reg)
{
	return ioread32(priv->regs + reg);
}

static void vtpm_write(struct vtpm_pci *priv, unsigned int reg, u32 val)
{
	iowrite32(val, priv->regs + reg);
}

/*
 * Move len bytes through DATA, four at a time, then the rest one by one:
 * each access moves as many bytes of the stream as it is wide, the byte
 * at the lowest port first, which is their order in memory.  Every port
 * access is an exit to the hypervisor: a quarter as many as byte by byte.
 */
static void vtpm_write_data(struct vtpm_pci *priv, const u8 *buf, size_t len)
{
	iowrite32_rep(priv->regs + VTPM_DATA, buf, len / 4);
	iowrite8_rep(priv->regs + VTPM_DATA, buf + (len & ~3), len & 3);
}

static void vtpm_read_data(struct vtpm_pci *priv, u8 *buf, size_t len)
{
	ioread32_rep(priv->regs + VTPM_DATA, buf, len / 4);
	ioread8_rep(priv->regs + VTPM_DATA, buf + (len & ~3), len & 3);
}

static u32 vtpm_state(struct vtpm_pci *priv)
{
	return FIELD_GET(VTPM_STATUS_STATE, vtpm_read(priv, VTPM_STATUS));
}

static irqreturn_t vtpm_pci_isr(int irq, void *dev_id)
{
	struct vtpm_pci *priv = dev_id;
	u32 pending = vtpm_read(priv, VTPM_INT_STATUS);

	/* All-ones: the ports no longer decode, so the interrupt is not ours */
	if (pending == U32_MAX || !(pending & VTPM_INT_COMPLETE))
		return IRQ_NONE;

	vtpm_write(priv, VTPM_INT_STATUS, VTPM_INT_COMPLETE);
	WRITE_ONCE(priv->irq_seen, true);
	wake_up(&priv->wq);
	return IRQ_HANDLED;
}

/* Wait, polling, until the card no longer executes a command */
static int vtpm_poll_done(struct vtpm_pci *priv, u64 timeout_us)
{
	u32 state;

	return read_poll_timeout(vtpm_state, state,
				 state != VTPM_STATE_EXECUTING,
				 VTPM_POLL_US, timeout_us, false, priv);
}

/*
 * Bring the card to IDLE.  A command left executing by a timeout or a
 * signal is cancelled and allowed to finish; a response nobody read is
 * dropped.
 */
static int vtpm_make_idle(struct vtpm_pci *priv)
{
	u32 state = vtpm_state(priv);

	/* The usual case: the last response was read, and INT_STATUS cleared */
	if (state == VTPM_STATE_IDLE)
		return 0;

	if (state == VTPM_STATE_EXECUTING) {
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_CANCEL);
		if (vtpm_poll_done(priv, VTPM_CANCEL_TIMEOUT_US)) {
			dev_err(&priv->pdev->dev, "stuck executing a command\n");
			return -EBUSY;
		}
		state = vtpm_state(priv);
	}
	if (state != VTPM_STATE_IDLE)
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_ABORT);
	vtpm_write(priv, VTPM_INT_STATUS, VTPM_INT_COMPLETE);
	return 0;
}

/*
 * Ordering between BAR 2 and the registers.  BAR 2 is mapped
 * write-combining (vtpm_map_buffer()).  The ordering memory-barriers.txt
 * gives readX() and writeX(), and inX() and outX() with them (ioread32()
 * and iowrite32() on ports), holds only for mappings with the default
 * attributes; accesses to a write-combining mapping are not ordered
 * against register accesses without explicit barriers
 * (driver-api/device-io.rst); and memcpy_toio() and memcpy_fromio() are
 * made of raw accesses, which order nothing.  Hence two barriers:
 *
 * - wmb() after memcpy_toio() of a command, before the START_BUFFER write:
 *   the card copies the command out of BAR 2 when it takes START_BUFFER,
 *   and no byte of it may still be in the CPU's write-combining buffers
 *   then (on x86, wmb() is SFENCE, which drains them; tpm_crb has the same
 *   barrier before its start);
 * - rmb() after the RSP_SIZE read that says COMPLETE, before
 *   memcpy_fromio() of the response: the card has written the response to
 *   BAR 2 before RSP_SIZE becomes non-zero, but the CPU may read a
 *   write-combining mapping ahead of the program, and such a read must
 *   not pass RSP_SIZE (on x86, rmb() is LFENCE).
 *
 * Neither is a trapped access.  A mapping with the default attributes
 * would need them as well (memcpy_toio() and memcpy_fromio() are raw
 * accesses), and would move a command one uncached write at a time.
 */

/*
 * Start a command through BAR 2.  Returns the card's state after
 * START_BUFFER, as vtpm_start().  The card takes START_BUFFER in IDLE and
 * in COMPLETE, which every command through BAR 2 leaves it in, so the
 * driver looks at STATUS first only after it may have left a command
 * executing, or had one refused.  A refusal (STATUS.ERROR, which an
 * accepted START_BUFFER clears) is met by making the card idle and trying
 * once more.
 */
static int vtpm_start_buffer(struct vtpm_pci *priv, const u8 *buf, size_t len)
{
	u32 status, state, rsp_len;
	int rc, attempt;

	/* The card takes the command's length from its header */
	if (len < TPM_HEADER_SIZE ||
	    be32_to_cpu(((const struct tpm_header *)buf)->length) != len)
		return -EINVAL;

	for (attempt = 0; attempt < 2; attempt++) {
		if (priv->unsettled) {
			rc = vtpm_make_idle(priv);
			if (rc)
				return rc;
			priv->unsettled = false;
		}

		memcpy_toio(priv->buf, buf, len);
		wmb();	/* the command in BAR 2 before START_BUFFER */
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_START_BUFFER);

		/* 0 in any state but COMPLETE, as after START */
		rsp_len = vtpm_read(priv, VTPM_RSP_SIZE);
		if (rsp_len && rsp_len != U32_MAX) {
			priv->rsp_len = rsp_len;
			return VTPM_STATE_COMPLETE;
		}

		status = vtpm_read(priv, VTPM_STATUS);
		state = FIELD_GET(VTPM_STATUS_STATE, status);
		if (!(status & VTPM_STATUS_ERROR) &&
		    (state == VTPM_STATE_EXECUTING ||
		     state == VTPM_STATE_COMPLETE))
			return state;
		priv->unsettled = true;
	}

	dev_err(&priv->pdev->dev, "command refused, error %u\n",
		vtpm_read(priv, VTPM_ERROR));
	return -EIO;
}

/*
 * Write a command and start it.  Returns the card's state after START,
 * EXECUTING or, for a command done within START, COMPLETE.
 */
static int vtpm_start(struct vtpm_pci *priv, const u8 *buf, size_t len)
{
	u32 state, rsp_len;
	int rc;

	priv->rsp_len = 0;
	if (len > priv->buf_size)
		return -E2BIG;
	if (priv->buf)
		return vtpm_start_buffer(priv, buf, len);

	rc = vtpm_make_idle(priv);
	if (rc)
		return rc;

	vtpm_write_data(priv, buf, len);
	vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_START);

	/*
	 * Most commands are done within START: RSP_SIZE, which reads 0 in
	 * any state but COMPLETE, says so and gives the response's length
	 * in one access, and STATUS is read only for the others.
	 */
	rsp_len = vtpm_read(priv, VTPM_RSP_SIZE);
	if (rsp_len && rsp_len != U32_MAX) {
		priv->rsp_len = rsp_len;
		return VTPM_STATE_COMPLETE;
	}

	/* START is decided at once: a refused command leaves the card IDLE */
	state = vtpm_state(priv);
	if (state != VTPM_STATE_EXECUTING && state != VTPM_STATE_COMPLETE) {
		dev_err(&priv->pdev->dev, "command refused, error %u\n",
			vtpm_read(priv, VTPM_ERROR));
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_ABORT);
		return -EIO;
	}
	return state;
}

/*
 * Wait for the command started last, which left the card in @state, to
 * complete.  One that does not within @timeout, or whose caller is
 * killed, is cancelled: the next command waits for it to finish.
 */
static int vtpm_wait(struct vtpm_pci *priv, u32 state, unsigned long timeout)
{
	long rc;

	/* Done within START: nothing to wait for, no interrupt to take */
	if (state != VTPM_STATE_EXECUTING)
		return 0;

	if (priv->use_irq) {
		/*
		 * Clear what earlier commands left in INT_STATUS; a
		 * completion from here on raises the interrupt once it is
		 * enabled, and one before is seen by the wait's first look
		 * at STATUS.
		 */
		vtpm_write(priv, VTPM_INT_STATUS, VTPM_INT_COMPLETE);
		vtpm_write(priv, VTPM_INT_ENABLE, VTPM_INT_COMPLETE);
		rc = wait_event_killable_timeout(priv->wq,
						 vtpm_state(priv) != VTPM_STATE_EXECUTING,
						 timeout);
		vtpm_write(priv, VTPM_INT_ENABLE, 0);
		if (rc > 0)
			return 0;
		rc = rc ? -EINTR : -ETIME;
	} else {
		if (!vtpm_poll_done(priv, jiffies_to_usecs(timeout)))
			return 0;
		rc = -ETIME;
	}

	/* The command still completes: the next one waits for it */
	vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_CANCEL);
	priv->unsettled = true;
	return rc;
}

/* Read the response of a completed command into buf */
static int vtpm_read_response(struct vtpm_pci *priv, u8 *buf, size_t count)
{
	/* What START left in RSP_SIZE, or RSP_SIZE now: 0 unless complete */
	u32 len = priv->rsp_len ?: vtpm_read(priv, VTPM_RSP_SIZE);

	priv->rsp_len = 0;
	if (!len)
		return -EIO;
	if (len < TPM_HEADER_SIZE || len > count ||
	    (priv->buf && len > priv->buf_size)) {
		dev_err(&priv->pdev->dev, "response of %u bytes, room for %zu\n",
			len, count);
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_ABORT);
		return -EIO;
	}

	if (priv->buf) {
		/*
		 * The card stays COMPLETE, which the next START_BUFFER takes:
		 * no access to return it to IDLE
		 */
		rmb();	/* RSP_SIZE before the response: see above */
		memcpy_fromio(buf, priv->buf, len);
		return len;
	}

	/* Reading the last byte returns the card to IDLE */
	vtpm_read_data(priv, buf, len);
	return len;
}

/*
 * Run a command of the driver's own, outside the TPM core: the interrupt
 * test at probe time, and TPM startup at resume.  Returns the TPM's
 * response code.
 */
static int vtpm_transmit(struct vtpm_pci *priv, const u8 *cmd, size_t len)
{
	u8 rsp[TPM_HEADER_SIZE + 64];
	int rc;

	rc = vtpm_start(priv, cmd, len);
	if (rc < 0)
		return rc;
	rc = vtpm_wait(priv, rc, usecs_to_jiffies(VTPM_TEST_TIMEOUT_US));
	if (rc)
		return rc;
	rc = vtpm_read_response(priv, rsp, sizeof(rsp));
	if (rc < 0)
		return rc;
	return be32_to_cpu(((struct tpm_header *)rsp)->return_code);
}

/* TPM core operations */

/*
 * Start a command; unless the core waits for it (it polls STATUS when the
 * chip has neither TPM_CHIP_FLAG_IRQ nor TPM_CHIP_FLAG_SYNC), wait for it
 * to complete.
 */
static int vtpm_pci_start_cmd(struct tpm_chip *chip, u8 *buf, size_t len)
{
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);
	u32 ordinal = be32_to_cpu(((struct tpm_header *)buf)->ordinal);
	int rc;

	rc = vtpm_start(priv, buf, len);
	if (rc < 0)
		return rc;
	if (!priv->use_irq && !priv->sync)
		return 0;

	return vtpm_wait(priv, rc, tpm_calc_ordinal_duration(chip, ordinal));
}

#ifdef TPM_SEND_HAS_BUFSIZ
static int vtpm_pci_send(struct tpm_chip *chip, u8 *buf, size_t bufsiz,
			 size_t len)
{
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);
	int rc;

	rc = vtpm_pci_start_cmd(chip, buf, len);
	if (rc || !priv->sync)
		return rc;

	/* TPM_CHIP_FLAG_SYNC: the response's length, or an error */
	return vtpm_read_response(priv, buf, bufsiz);
}
#else
static int vtpm_pci_send(struct tpm_chip *chip, u8 *buf, size_t len)
{
	return vtpm_pci_start_cmd(chip, buf, len);
}
#endif

static int vtpm_pci_recv(struct tpm_chip *chip, u8 *buf, size_t count)
{
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);

	return vtpm_read_response(priv, buf, count);
}

static u8 vtpm_pci_status(struct tpm_chip *chip)
{
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);

	/*
	 * Through BAR 2, a command that RSP_SIZE found complete stays so
	 * until the driver starts the next: the core, polling without SYNC,
	 * then needs no look at STATUS
	 */
	if (priv->buf && priv->rsp_len)
		return VTPM_STATE_COMPLETE;
	return vtpm_read(priv, VTPM_STATUS) & VTPM_STATUS_STATE;
}

/* A command neither executing nor complete was dropped, by a reset */
static bool vtpm_pci_req_canceled(struct tpm_chip *chip, u8 status)
{
	return status != VTPM_STATE_EXECUTING && status != VTPM_STATE_COMPLETE;
}

static void vtpm_pci_cancel(struct tpm_chip *chip)
{
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);

	/* The command still completes, with TPM_RC_CANCELED or its result */
	if (vtpm_state(priv) == VTPM_STATE_EXECUTING) {
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_CANCEL);
		priv->unsettled = true;
	}
}

static int vtpm_pci_request_locality(struct tpm_chip *chip, int loc)
{
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);
	int rc;

	rc = vtpm_make_idle(priv);
	if (rc)
		return rc;
	vtpm_write(priv, VTPM_LOCALITY, loc);
	return vtpm_read(priv, VTPM_LOCALITY) == loc ? loc : -EINVAL;
}

static const struct tpm_class_ops vtpm_pci_ops = {
	.flags = TPM_OPS_AUTO_STARTUP,
	.status = vtpm_pci_status,
	.recv = vtpm_pci_recv,
	.send = vtpm_pci_send,
	.cancel = vtpm_pci_cancel,
	.req_complete_mask = VTPM_STATUS_STATE,
	.req_complete_val = VTPM_STATE_COMPLETE,
	.req_canceled = vtpm_pci_req_canceled,
	.request_locality = vtpm_pci_request_locality,
};

/*
 * Read-only commands for the interrupt test, valid before and after the
 * TPM's startup: TPM2_GetCapability(TPM_PT_MANUFACTURER) and
 * TPM_GetCapability(TPM_CAP_PROP_MANUFACTURER).
 */
static const u8 vtpm_tpm2_getcap[] = {
	0x80, 0x01, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x01, 0x7a,
	0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x01,
};

static const u8 vtpm_tpm12_getcap[] = {
	0x00, 0xc1, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x65,
	0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x03,
};

/*
 * Set up the completion interrupt and check that it arrives.  Returns
 * false when the driver must poll instead.
 */
static bool vtpm_setup_irq(struct vtpm_pci *priv)
{
	struct pci_dev *pdev = priv->pdev;
	const u8 *cmd;
	size_t len;
	int rc, irq;

	rc = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_ALL_TYPES);
	if (rc < 0) {
		dev_info(&pdev->dev, "no interrupt vector (%d)\n", rc);
		return false;
	}
	irq = pci_irq_vector(pdev, 0);
	rc = devm_request_irq(&pdev->dev, irq, vtpm_pci_isr, IRQF_SHARED,
			      KBUILD_MODNAME, priv);
	if (rc) {
		dev_info(&pdev->dev, "cannot get IRQ %d (%d)\n", irq, rc);
		goto err_vectors;
	}

	if (priv->family == VTPM_FAMILY_TPM20) {
		cmd = vtpm_tpm2_getcap;
		len = sizeof(vtpm_tpm2_getcap);
	} else {
		cmd = vtpm_tpm12_getcap;
		len = sizeof(vtpm_tpm12_getcap);
	}

	/* Any answer of the TPM completes the command and raises the IRQ */
	WRITE_ONCE(priv->irq_seen, false);
	vtpm_write(priv, VTPM_INT_ENABLE, VTPM_INT_COMPLETE);
	rc = vtpm_start(priv, cmd, len);
	if (rc >= 0)
		rc = vtpm_poll_done(priv, VTPM_TEST_TIMEOUT_US);
	if (!rc && wait_event_timeout(priv->wq, READ_ONCE(priv->irq_seen),
				      msecs_to_jiffies(VTPM_IRQ_LATENCY_MS))) {
		/* From now on, enabled only while a command is awaited */
		vtpm_write(priv, VTPM_INT_ENABLE, 0);
		vtpm_write(priv, VTPM_CONTROL, VTPM_CONTROL_ABORT);
		return true;
	}

	dev_info(&pdev->dev, "IRQ %d does not work (%d)\n", irq, rc);
	vtpm_write(priv, VTPM_INT_ENABLE, 0);
	vtpm_make_idle(priv);
	devm_free_irq(&pdev->dev, irq, priv);
err_vectors:
	pci_free_irq_vectors(pdev);
	return false;
}

/* Request BAR 0's ports and map them, managed */
static void __iomem *vtpm_iomap_regs(struct pci_dev *pdev)
{
#ifdef PCIM_HAS_IOMAP_REGION
	return pcim_iomap_region(pdev, 0, KBUILD_MODNAME);
#else
	int rc = pcim_iomap_regions(pdev, BIT(0), KBUILD_MODNAME);

	return rc ? IOMEM_ERR_PTR(rc) : pcim_iomap_table(pdev)[0];
#endif
}

/*
 * Map BAR 2, the buffer of a card whose FEATURES offer one, for commands to
 * move through it.  It is plain memory, prefetchable, so it is mapped
 * write-combining as driver-api/device-io.rst allows for such a BAR: a
 * command is copied in a few wide writes rather than one uncached write
 * per word.  No pcim_*() function maps write-combining.  A BAR 2 the
 * driver cannot use leaves it with DATA.
 */
static int vtpm_map_buffer(struct vtpm_pci *priv)
{
	struct pci_dev *pdev = priv->pdev;
	struct device *dev = &pdev->dev;
	struct resource *res = pci_resource_n(pdev, VTPM_BUFFER_BAR);

	if (resource_type(res) != IORESOURCE_MEM ||
	    resource_size(res) < priv->buf_size) {
		dev_warn(dev, "BAR 2 is %pR, not a buffer of %u bytes: commands go through DATA\n",
			 res, priv->buf_size);
		return 0;
	}
	if (!devm_request_mem_region(dev, res->start, resource_size(res),
				     KBUILD_MODNAME))
		return -EBUSY;
	if (res->flags & IORESOURCE_PREFETCH)
		priv->buf = devm_ioremap_wc(dev, res->start, resource_size(res));
	else
		priv->buf = devm_ioremap(dev, res->start, resource_size(res));
	return priv->buf ? 0 : -ENOMEM;
}

static int vtpm_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct tpm_chip *chip;
	struct vtpm_pci *priv;
	u32 version, major, minor, status, bar, features = 0;
	int rc;

	rc = pcim_enable_device(pdev);
	if (rc)
		return rc;

	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_IO) ||
	    pci_resource_len(pdev, 0) < VTPM_REGS_SIZE) {
		dev_err(dev, "BAR 0 is not a block of I/O ports\n");
		return -ENODEV;
	}
	/*
	 * A card pinned at fixed ports (QEMU's iobase=) stays there whatever
	 * is written to BAR 0.  If the PCI core "moved" it, because another
	 * device that firmware placed on those ports claimed them first, the
	 * resource is not where the card answers: refuse, rather than drive
	 * someone else's ports.
	 */
	pci_read_config_dword(pdev, PCI_BASE_ADDRESS_0, &bar);
	bar &= PCI_BASE_ADDRESS_IO_MASK;
	if (bar != pci_resource_start(pdev, 0)) {
		dev_err(dev, "BAR 0 is pinned at 0x%04x, but the PCI core placed it at %pR: another device holds the card's ports\n",
			bar, &pdev->resource[0]);
		return -EBUSY;
	}

	priv = devm_kzalloc(dev, sizeof(*priv), GFP_KERNEL);
	if (!priv)
		return -ENOMEM;
	priv->pdev = pdev;
	init_waitqueue_head(&priv->wq);
	priv->regs = vtpm_iomap_regs(pdev);
	if (IS_ERR(priv->regs))
		return PTR_ERR(priv->regs);

	version = vtpm_read(priv, VTPM_VERSION);
	major = FIELD_GET(VTPM_VERSION_MAJOR, version);
	minor = FIELD_GET(VTPM_VERSION_MINOR, version);
	if (vtpm_read(priv, VTPM_ID) != VTPM_ID_MAGIC || major != 1) {
		dev_err(dev, "not a vtpm-pci card of interface version 1\n");
		return -ENODEV;
	}
	status = vtpm_read(priv, VTPM_STATUS);
	priv->family = FIELD_GET(VTPM_STATUS_FAMILY, status);
	if (priv->family != VTPM_FAMILY_TPM12 &&
	    priv->family != VTPM_FAMILY_TPM20) {
		dev_err(dev, "unknown TPM family\n");
		return -ENODEV;
	}
	priv->buf_size = vtpm_read(priv, VTPM_BUF_SIZE);
	if (priv->buf_size < TPM_HEADER_SIZE) {
		dev_err(dev, "buffer of %u bytes\n", priv->buf_size);
		return -ENODEV;
	}
	/* Offset 0x34 was reserved in interface 1.0 */
	if (minor >= 1)
		features = vtpm_read(priv, VTPM_FEATURES);
	if ((features & VTPM_FEATURES_BUFFER) && !port) {
		rc = vtpm_map_buffer(priv);
		if (rc)
			return rc;
	}

	/* The TPM's MSI(-X) messages are memory writes: allow them */
	pci_set_master(pdev);
	vtpm_write(priv, VTPM_INT_ENABLE, 0);
	rc = vtpm_make_idle(priv);
	if (rc)
		return rc;
	priv->use_irq = !poll && vtpm_setup_irq(priv);

	chip = tpmm_chip_alloc(dev, &vtpm_pci_ops);
	if (IS_ERR(chip)) {
		rc = PTR_ERR(chip);
		goto err_irq;
	}
	dev_set_drvdata(&chip->dev, priv);
	if (priv->family == VTPM_FAMILY_TPM20)
		chip->flags |= TPM_CHIP_FLAG_TPM2;
	if (priv->use_irq)
		chip->flags |= TPM_CHIP_FLAG_IRQ;
#ifdef TPM_HAS_CHIP_FLAG_SYNC
	priv->sync = sync_send;
	if (priv->sync)
		chip->flags |= TPM_CHIP_FLAG_SYNC;
#endif

	rc = tpm_chip_register(chip);
	if (rc)
		goto err_irq;

	dev_info(dev, "TPM %s, interface %u.%u, %s, %s%s\n",
		 priv->family == VTPM_FAMILY_TPM20 ? "2.0" : "1.2",
		 major, minor,
		 priv->buf ? "commands in BAR 2" : "commands through DATA",
		 priv->use_irq ? "interrupt driven" : "polling",
		 priv->sync ? ", synchronous send" : "");
	return 0;

err_irq:
	vtpm_write(priv, VTPM_INT_ENABLE, 0);
	return rc;
}

static void vtpm_pci_remove(struct pci_dev *pdev)
{
	struct tpm_chip *chip = pci_get_drvdata(pdev);
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);

	tpm_chip_unregister(chip);
	vtpm_write(priv, VTPM_INT_ENABLE, 0);
	/* IDLE, as found: a command through BAR 2 leaves the card COMPLETE */
	vtpm_make_idle(priv);
	vtpm_write(priv, VTPM_INT_STATUS, VTPM_INT_COMPLETE);
}

static int vtpm_pci_suspend(struct device *dev)
{
	struct tpm_chip *chip = dev_get_drvdata(dev);
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);
	int rc;

	/* TPM2_Shutdown(TPM_SU_STATE) or TPM_SaveState */
	rc = tpm_pm_suspend(dev);
	if (rc)
		return rc;
	vtpm_write(priv, VTPM_INT_ENABLE, 0);
	return 0;
}

/*
 * TPM2_Startup(TPM_SU_STATE), then TPM2_Startup(TPM_SU_CLEAR) if there is
 * no state to resume, and their TPM 1.2 equivalents
 */
static const u8 vtpm_tpm2_startup[2][12] = {
	{ 0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44, 0x00, 0x01 },
	{ 0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44, 0x00, 0x00 },
};

static const u8 vtpm_tpm12_startup[2][12] = {
	{ 0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99, 0x00, 0x02 },
	{ 0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99, 0x00, 0x01 },
};

#define TPM2_RC_INITIALIZE_DONE	0x100	/* TPM2_Startup when already started */
#define TPM12_INVALID_POSTINIT	0x26	/* TPM_Startup when already started */

/*
 * No firmware starts this TPM: when resuming from a sleep state that reset
 * the machine, the card's TPM waits for a Startup command.  Send it, as
 * firmware does for a TIS or CRB TPM.
 */
static void vtpm_startup(struct vtpm_pci *priv)
{
	bool tpm2 = priv->family == VTPM_FAMILY_TPM20;
	const u8 (*cmds)[12] = tpm2 ? vtpm_tpm2_startup : vtpm_tpm12_startup;
	int started = tpm2 ? TPM2_RC_INITIALIZE_DONE : TPM12_INVALID_POSTINIT;
	int i, rc = 0;

	for (i = 0; i < 2; i++) {
		rc = vtpm_transmit(priv, cmds[i], sizeof(cmds[i]));
		if (rc == 0 || rc == started)
			return;
	}
	dev_err(&priv->pdev->dev, "TPM startup after resume failed (%d)\n", rc);
}

static int vtpm_pci_resume(struct device *dev)
{
	struct tpm_chip *chip = dev_get_drvdata(dev);
	struct vtpm_pci *priv = dev_get_drvdata(&chip->dev);

	/* Whatever the sleep did to the card, look before START_BUFFER */
	priv->unsettled = true;
	vtpm_startup(priv);
	return tpm_pm_resume(dev);
}

static DEFINE_SIMPLE_DEV_PM_OPS(vtpm_pci_pm, vtpm_pci_suspend,
				vtpm_pci_resume);

static const struct pci_device_id vtpm_pci_ids[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_VTPM) },
	{ }
};
MODULE_DEVICE_TABLE(pci, vtpm_pci_ids);

static struct pci_driver vtpm_pci_driver = {
	.name = KBUILD_MODNAME,
	.id_table = vtpm_pci_ids,
	.probe = vtpm_pci_probe,
	.remove = vtpm_pci_remove,
	.driver = {
		.pm = pm_sleep_ptr(&vtpm_pci_pm),
	},
};
module_pci_driver(vtpm_pci_driver);

MODULE_DESCRIPTION("TPM driver for QEMU's vtpm-pci card");
MODULE_AUTHOR("The vtpm-pci authors");
MODULE_LICENSE("GPL");
