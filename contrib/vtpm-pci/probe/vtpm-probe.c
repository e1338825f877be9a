/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vtpm-probe: find a vtpm-pci card, show its ports and registers, and talk
 * to its TPM from user space, without a kernel driver.
 *
 * The card is found through sysfs by its vendor and device IDs.  Its
 * registers are reached either with port I/O from user space (ioperm()
 * and inl/outl, --method=ports, the default) or through the device's
 * sysfs resource0 file, where the kernel turns each 1, 2 or 4 byte
 * pread/pwrite into one port access (--method=resource).  Both need root.
 * Commands and responses move through the DATA port, or, with --buffer,
 * through BAR 2, the buffer of interface 1.1 cards, mapped from the
 * device's sysfs resource2 file with mmap().
 *
 * The register interface is QEMU's docs/specs/vtpm-pci.rst.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#define _GNU_SOURCE    /* program_invocation_short_name */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "tpm2-cmd.h"

#define SYSFS_PCI           "/sys/bus/pci/devices"
#define VTPM_VENDOR         0x1b36  /* Red Hat, QEMU's devices */
#define VTPM_DEVICE         0x0015
#define VTPM_PORTS          0x40
#define VTPM_BUFFER_BAR     2

/* The flags of a sysfs "resource" line (Linux's include/linux/ioport.h) */
#define IORESOURCE_IO       0x00000100
#define IORESOURCE_MEM      0x00000200
#define IORESOURCE_PREFETCH 0x00002000
#define IORESOURCE_MEM_64   0x00100000

/* The PCI command register's decode bits */
#define PCI_COMMAND_IO      0x1
#define PCI_COMMAND_MEMORY  0x2

/* Registers (offsets into BAR 0) */
enum {
    VTPM_ID = 0x00,
    VTPM_VERSION = 0x04,
    VTPM_SCRATCH = 0x08,
    VTPM_STATUS = 0x0c,
    VTPM_CONTROL = 0x10,
    VTPM_CMD_SIZE = 0x14,
    VTPM_RSP_SIZE = 0x18,
    VTPM_BUF_SIZE = 0x1c,
    VTPM_LOCALITY = 0x20,
    VTPM_INT_ENABLE = 0x24,
    VTPM_INT_STATUS = 0x28,
    VTPM_ERROR = 0x2c,
    VTPM_DATA = 0x30,
    VTPM_FEATURES = 0x34,           /* interface 1.1 */
};

#define VTPM_ID_MAGIC       0x4d505456
#define STATE(status)       ((status) & 7)
#define STATUS_ERROR        (1u << 3)
#define FAMILY(status)      (((status) >> 8) & 3)
#define STATUS_FLAGS_VALID  (1u << 12)
#define STATUS_ENABLED      (1u << 13)
#define STATUS_ACTIVATED    (1u << 14)
#define STATUS_OWNED        (1u << 15)
#define VERSION_MINOR(ver)  ((ver) & 0xffff)
#define FEATURES_BUFFER     (1u << 0)

enum { IDLE, RECEIVING, EXECUTING, COMPLETE };

#define CONTROL_START       1
#define CONTROL_ABORT       4
#define CONTROL_QUERY       8
#define CONTROL_START_BUFFER 0x10
#define INT_COMPLETE        1

#define TPM2_CC_STARTUP     0x0144
#define TPM2_RC_INITIALIZE  0x100
#define COMMAND_TIMEOUT_MS  10000

static const char *const state_names[] = {
    "IDLE", "RECEIVING", "EXECUTING", "COMPLETE", "4?", "5?", "6?", "7?",
};
static const char *const family_names[] = {
    "unknown", "TPM 1.2", "TPM 2.0", "3?",
};
static const char *const error_names[] = {
    "NONE", "STATE", "OVERFLOW", "LENGTH", "UNDERRUN", "ACCESS", "VALUE",
};

struct card {
    char bdf[32];                   /* 0000:00:03.0 */
    char path[64];                  /* its sysfs directory */
    unsigned long long start, end;
    unsigned long long buf_start, buf_end, buf_flags;  /* BAR 2 */
    int revision;
    char driver[NAME_MAX + 1];      /* "" when none is bound */
    int use_resource;               /* else port I/O */
    int use_buffer;                 /* commands through BAR 2, else DATA */
    int fd;                         /* resource0 */
    uint8_t *buffer;                /* BAR 2, mapped */
    size_t buffer_len;
};

/* Read the first line of a sysfs attribute; returns 0 on success */
static int read_attr(const char *dir, const char *name, char *buf, size_t size)
{
    char path[PATH_MAX];
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    ok = fgets(buf, size, f) != NULL;
    fclose(f);
    return ok ? 0 : -1;
}

static unsigned long attr_number(const char *dir, const char *name)
{
    char buf[64];

    if (read_attr(dir, name, buf, sizeof(buf))) {
        return ULONG_MAX;
    }
    return strtoul(buf, NULL, 0);
}

/* BAR bar of the device at dir: its line of the sysfs "resource" file */
static int read_resource(const char *dir, int bar, unsigned long long *start,
                         unsigned long long *end, unsigned long long *flags)
{
    char path[PATH_MAX], line[128];
    FILE *f;
    int i, ok = 0;

    snprintf(path, sizeof(path), "%s/resource", dir);
    f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    for (i = 0; i <= bar && fgets(line, sizeof(line), f); i++) {
        ok = i == bar &&
             sscanf(line, "%llx %llx %llx", start, end, flags) == 3;
    }
    fclose(f);
    return ok ? 0 : -1;
}

/* The card's PCI command register */
static unsigned pci_command(struct card *c)
{
    char path[PATH_MAX];
    unsigned char cmd[2];
    int fd;

    snprintf(path, sizeof(path), "%s/config", c->path);
    fd = open(path, O_RDONLY);
    if (fd < 0 || pread(fd, cmd, 2, 4) != 2) {
        die("cannot read %s", path);
    }
    close(fd);
    return cmd[0] | cmd[1] << 8;
}

/* The card at bdf, or the first one found when bdf is NULL */
static void find_card(struct card *c, const char *bdf)
{
    char buf[PATH_MAX], link[PATH_MAX];
    unsigned long long flags;
    struct dirent *de;
    DIR *dir;
    ssize_t n;

    dir = opendir(SYSFS_PCI);
    if (!dir) {
        die("cannot read %s", SYSFS_PCI);
    }
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(c->bdf) ||
            (bdf && strcmp(de->d_name, bdf))) {
            continue;
        }
        snprintf(c->path, sizeof(c->path), SYSFS_PCI "/%.*s",
                 (int)sizeof(c->bdf) - 1, de->d_name);
        if (attr_number(c->path, "vendor") == VTPM_VENDOR &&
            attr_number(c->path, "device") == VTPM_DEVICE) {
            snprintf(c->bdf, sizeof(c->bdf), "%.*s",
                     (int)sizeof(c->bdf) - 1, de->d_name);
            break;
        }
    }
    closedir(dir);
    if (!c->bdf[0]) {
        die("no vtpm-pci card (%04x:%04x)%s%s", VTPM_VENDOR, VTPM_DEVICE,
            bdf ? " at " : "", bdf ? bdf : "");
    }

    c->revision = attr_number(c->path, "revision");
    if (read_resource(c->path, 0, &c->start, &c->end, &flags) ||
        !(flags & IORESOURCE_IO) || c->end - c->start + 1 != VTPM_PORTS) {
        die("%s: BAR 0 is not %d I/O ports", c->bdf, VTPM_PORTS);
    }
    /* All 0 on a card without BAR 2 */
    if (read_resource(c->path, VTPM_BUFFER_BAR, &c->buf_start, &c->buf_end,
                      &c->buf_flags)) {
        c->buf_flags = 0;
    }

    snprintf(buf, sizeof(buf), "%s/driver", c->path);
    n = readlink(buf, link, sizeof(link) - 1);
    if (n > 0) {
        link[n] = 0;
        snprintf(c->driver, sizeof(c->driver), "%s", strrchr(link, '/') + 1);
    }
}

/*
 * Make the card decode what decode asks for (PCI_COMMAND_IO, _MEMORY), as
 * a driver's pci_enable_device() does, which turns on both
 */
static void enable_card(struct card *c, unsigned decode)
{
    char path[PATH_MAX];
    int fd;

    if ((pci_command(c) & decode) == decode) {
        return;
    }
    snprintf(path, sizeof(path), "%s/enable", c->path);
    fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, "1", 1) != 1) {
        die("cannot enable %s", c->bdf);
    }
    close(fd);
}

static void open_card(struct card *c)
{
    char path[PATH_MAX];

    enable_card(c, PCI_COMMAND_IO);
    if (c->use_resource) {
        snprintf(path, sizeof(path), "%s/resource0", c->path);
        c->fd = open(path, O_RDWR);
        if (c->fd < 0) {
            die("cannot open %s: %s", path, strerror(errno));
        }
    } else if (ioperm(c->start, VTPM_PORTS, 1)) {
        die("ioperm(0x%llx): %s", c->start, strerror(errno));
    }
}

static uint32_t reg_read(struct card *c, unsigned reg)
{
    uint32_t val;

    if (!c->use_resource) {
        return inl(c->start + reg);
    }
    if (pread(c->fd, &val, 4, reg) != 4) {
        die("read of register 0x%02x: %s", reg, strerror(errno));
    }
    return val;     /* x86: the kernel's inl() leaves it little-endian */
}

static void reg_write(struct card *c, unsigned reg, uint32_t val)
{
    if (!c->use_resource) {
        outl(val, c->start + reg);
    } else if (pwrite(c->fd, &val, 4, reg) != 4) {
        die("write of register 0x%02x: %s", reg, strerror(errno));
    }
}

/* DATA: string I/O with ports; through resource0, 4 bytes a pread/pwrite */
static void data_xfer(struct card *c, uint8_t *p, size_t n, int write)
{
    size_t chunk;
    ssize_t done;

    if (!c->use_resource) {
        if (write) {
            outsb(c->start + VTPM_DATA, p, n);
        } else {
            insb(c->start + VTPM_DATA, p, n);
        }
        return;
    }
    for (; n; n -= chunk, p += chunk) {
        chunk = n >= 4 ? 4 : 1;
        done = write ? pwrite(c->fd, p, chunk, VTPM_DATA)
                     : pread(c->fd, p, chunk, VTPM_DATA);
        if (done != (ssize_t)chunk) {
            die("DATA %s: %s", write ? "write" : "read", strerror(errno));
        }
    }
}

static const char *error_name(uint32_t err)
{
    return err < sizeof(error_names) / sizeof(error_names[0]) ?
           error_names[err] : "unknown";
}

static void print_status(uint32_t st)
{
    printf("state %s, family %s", state_names[STATE(st)],
           family_names[FAMILY(st)]);
    if (st & STATUS_ERROR) {
        printf(", error");
    }
    if (st & STATUS_FLAGS_VALID) {
        printf(", %senabled, %sactivated, %sowned",
               st & STATUS_ENABLED ? "" : "not ",
               st & STATUS_ACTIVATED ? "" : "not ",
               st & STATUS_OWNED ? "" : "not ");
    } else {
        printf(", flags not known (--query asks)");
    }
}

static void dump_registers(struct card *c)
{
    uint32_t id = reg_read(c, VTPM_ID);
    uint32_t ver = reg_read(c, VTPM_VERSION);
    uint32_t err = reg_read(c, VTPM_ERROR);
    uint32_t v;

    printf("registers:\n");
    printf("  0x00 ID          0x%08x  \"%c%c%c%c\"%s\n", id,
           id & 0xff, id >> 8 & 0xff, id >> 16 & 0xff, id >> 24,
           id == VTPM_ID_MAGIC ? "" : " (not a vtpm-pci card!)");
    printf("  0x04 VERSION     0x%08x  interface %u.%u\n", ver,
           ver >> 16, ver & 0xffff);
    printf("  0x08 SCRATCH     0x%08x\n", reg_read(c, VTPM_SCRATCH));
    v = reg_read(c, VTPM_STATUS);
    printf("  0x0c STATUS      0x%08x  ", v);
    print_status(v);
    printf("\n");
    printf("  0x10 CONTROL     (write-only)\n");
    v = reg_read(c, VTPM_CMD_SIZE);
    printf("  0x14 CMD_SIZE    0x%08x  %u command bytes\n", v, v);
    v = reg_read(c, VTPM_RSP_SIZE);
    printf("  0x18 RSP_SIZE    0x%08x  %u response bytes\n", v, v);
    v = reg_read(c, VTPM_BUF_SIZE);
    printf("  0x1c BUF_SIZE    0x%08x  %u bytes at most\n", v, v);
    v = reg_read(c, VTPM_LOCALITY);
    printf("  0x20 LOCALITY    0x%08x  locality %u\n", v, v);
    v = reg_read(c, VTPM_INT_ENABLE);
    printf("  0x24 INT_ENABLE  0x%08x  completion interrupt %s\n", v,
           v & INT_COMPLETE ? "enabled" : "disabled");
    v = reg_read(c, VTPM_INT_STATUS);
    printf("  0x28 INT_STATUS  0x%08x  completion %s\n", v,
           v & INT_COMPLETE ? "pending" : "not pending");
    printf("  0x2c ERROR       0x%08x  %s\n", err, error_name(err));
    printf("  0x30 DATA        (not read: a read takes bytes of a response)\n");
    /* A reserved offset before interface 1.1: not read */
    if (!VERSION_MINOR(ver)) {
        printf("  0x34 FEATURES    (none: interface 1.0)\n");
        return;
    }
    v = reg_read(c, VTPM_FEATURES);
    printf("  0x34 FEATURES    0x%08x  %s\n", v, v & FEATURES_BUFFER ?
           "BUFFER: commands can move through BAR 2 (--buffer)" :
           "no buffer BAR");
}

/* BAR 2 as sysfs has it, in the format of /proc/iomem */
static void print_buffer_bar(struct card *c)
{
    if (!(c->buf_flags & IORESOURCE_MEM)) {
        printf("BAR 2: none\n");
        return;
    }
    printf("BAR 2: %08llx-%08llx (%llu bytes, %s-bit %smemory), "
           "memory decode %s\n", c->buf_start, c->buf_end,
           c->buf_end - c->buf_start + 1,
           c->buf_flags & IORESOURCE_MEM_64 ? "64" : "32",
           c->buf_flags & IORESOURCE_PREFETCH ? "prefetchable " : "",
           pci_command(c) & PCI_COMMAND_MEMORY ? "on" : "off");
}

/* Bring an idle-looking card to IDLE, ready for a request */
static void claim_card(struct card *c)
{
    if (reg_read(c, VTPM_ID) != VTPM_ID_MAGIC) {
        die("%s does not answer as a vtpm-pci card", c->bdf);
    }
    if (STATE(reg_read(c, VTPM_STATUS)) == EXECUTING) {
        die("the card is executing a command: is a driver using it?");
    }
    reg_write(c, VTPM_CONTROL, CONTROL_ABORT);
}

/* Poll STATUS until the card stops executing; returns STATUS */
static uint32_t wait_done(struct card *c)
{
    struct timespec tick = { 0, 1000000 };
    uint32_t status;
    int ms;

    for (ms = 0; ; ms++) {
        status = reg_read(c, VTPM_STATUS);
        if (STATE(status) != EXECUTING) {
            return status;
        }
        if (ms == COMMAND_TIMEOUT_MS) {
            die("no response in %d ms", COMMAND_TIMEOUT_MS);
        }
        nanosleep(&tick, NULL);
    }
}

/* Run one command on the card through DATA, as the spec's example does */
static void transact_data(struct card *c, struct tpm2_buf *b)
{
    uint32_t status;

    claim_card(c);
    data_xfer(c, b->data, b->len, 1);
    reg_write(c, VTPM_CONTROL, CONTROL_START);
    status = wait_done(c);
    if (STATE(status) != COMPLETE) {
        die("command refused: ERROR %u", reg_read(c, VTPM_ERROR));
    }

    b->len = reg_read(c, VTPM_RSP_SIZE);
    if (b->len > sizeof(b->data)) {
        die("response of %zu bytes", b->len);
    }
    data_xfer(c, b->data, b->len, 0);
    reg_write(c, VTPM_INT_STATUS, INT_COMPLETE);
}

/*
 * Keep the copies to and from BAR 2 on their side of the register access
 * next to them.  The sysfs mapping of BAR 2 is uncached, and x86 keeps
 * uncached accesses and port I/O in program order, but the compiler need
 * not: glibc's inl() and outl() are asm statements that do not say they
 * touch memory.  The "memory" clobber orders the compiler, MFENCE the CPU
 * (which a write-combining mapping, resource2_wc, would need).
 */
static inline void buffer_fence(void)
{
    __asm__ __volatile__("mfence" ::: "memory");
}

/*
 * Run one command through BAR 2: the command at offset 0, START_BUFFER
 * (the card takes the length from the command's header), then RSP_SIZE,
 * whose length other than 0 says the response is in BAR 2.  Only a
 * command still executing needs STATUS, whose ERROR bit tells a refused
 * START_BUFFER from it.
 */
static void transact_buffer(struct card *c, struct tpm2_buf *b)
{
    uint32_t status, err, len;

    if (b->len > c->buffer_len) {
        die("a command of %zu bytes, for a buffer of %zu", b->len,
            c->buffer_len);
    }
    claim_card(c);
    memcpy(c->buffer, b->data, b->len);
    buffer_fence();
    reg_write(c, VTPM_CONTROL, CONTROL_START_BUFFER);
    len = reg_read(c, VTPM_RSP_SIZE);
    if (!len) {
        status = reg_read(c, VTPM_STATUS);
        if (status & STATUS_ERROR) {
            err = reg_read(c, VTPM_ERROR);
            die("START_BUFFER refused in state %s: ERROR %u (%s)",
                state_names[STATE(status)], err, error_name(err));
        }
        status = wait_done(c);
        len = reg_read(c, VTPM_RSP_SIZE);
        if (STATE(status) != COMPLETE || !len) {
            die("the command did not complete: STATUS 0x%08x", status);
        }
    }
    if (len > sizeof(b->data) || len > c->buffer_len) {
        die("response of %u bytes", len);
    }
    buffer_fence();
    memcpy(b->data, c->buffer, len);
    b->len = len;
    /*
     * The card keeps the response (COMPLETE) until the next command or an
     * ABORT: leave it IDLE, as reading the response from DATA does
     */
    reg_write(c, VTPM_CONTROL, CONTROL_ABORT);
    reg_write(c, VTPM_INT_STATUS, INT_COMPLETE);
}

static void transact(struct card *c, struct tpm2_buf *b)
{
    if (c->use_buffer) {
        transact_buffer(c, b);
    } else {
        transact_data(c, b);
    }
}

/* --buffer: check that the card has BAR 2 as a buffer, or say what is missing */
static void check_buffer(struct card *c)
{
    uint32_t ver = reg_read(c, VTPM_VERSION);
    uint32_t buf_size;

    if (!VERSION_MINOR(ver)) {
        die("--buffer: the card's interface is %u.0, which has no buffer "
            "BAR (FEATURES and BAR 2 came with 1.1)", ver >> 16);
    }
    if (!(reg_read(c, VTPM_FEATURES) & FEATURES_BUFFER)) {
        die("--buffer: the card has no buffer BAR: FEATURES.BUFFER is 0 "
            "(as with QEMU's -device vtpm-pci,buffer-bar=off)");
    }
    buf_size = reg_read(c, VTPM_BUF_SIZE);
    if (!(c->buf_flags & IORESOURCE_MEM) ||
        c->buf_end - c->buf_start + 1 < buf_size) {
        die("--buffer: FEATURES offers a buffer, but BAR 2 is not memory "
            "of BUF_SIZE (%u) bytes or more in %s/resource", buf_size,
            c->path);
    }
}

/* Map BAR 2 through sysfs resource2, as a user-space driver does */
static void map_buffer(struct card *c)
{
    char path[PATH_MAX];
    void *p;
    int fd;

    /*
     * Whoever set the card up (firmware, a driver's pci_enable_device())
     * turned its memory decode on; otherwise do as for its ports
     */
    enable_card(c, PCI_COMMAND_MEMORY);
    if (!(pci_command(c) & PCI_COMMAND_MEMORY)) {
        die("--buffer: the card's memory decode is off (PCI_COMMAND_MEMORY "
            "clear in its command register), so BAR 2 does not answer; "
            "writing 1 to %s/enable did not turn it on", c->path);
    }
    snprintf(path, sizeof(path), "%s/resource%d", c->path, VTPM_BUFFER_BAR);
    fd = open(path, O_RDWR);
    if (fd < 0) {
        die("cannot open %s: %s", path, strerror(errno));
    }
    c->buffer_len = c->buf_end - c->buf_start + 1;
    p = mmap(NULL, c->buffer_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        die("cannot map %s: %s", path, strerror(errno));
    }
    close(fd);
    c->buffer = p;
}

static long run_checked(struct card *c, struct tpm2_buf *b, const char *what)
{
    long rc;

    transact(c, b);
    rc = tpm2_check_header(b, TPM2_ST_NO_SESSIONS);
    if (rc < 0) {
        die("%s: malformed response", what);
    }
    return rc;
}

static void startup(struct card *c)
{
    struct tpm2_buf b;
    long rc;

    tpm2_begin(&b, TPM2_ST_NO_SESSIONS, TPM2_CC_STARTUP);
    tpm2_put(&b, 0, 2);         /* TPM_SU_CLEAR */
    tpm2_end(&b);
    rc = run_checked(c, &b, "TPM2_Startup");
    if (rc && rc != TPM2_RC_INITIALIZE) {
        die("TPM2_Startup: TPM error 0x%03lx", rc);
    }
    printf("TPM2_Startup: %s\n", rc ? "already started" : "done");
}

/* CONTROL.QUERY: the card asks its TPM for the enabled/owned flags */
static void query_flags(struct card *c)
{
    uint32_t status;

    claim_card(c);
    reg_write(c, VTPM_CONTROL, CONTROL_QUERY);
    status = wait_done(c);
    reg_write(c, VTPM_INT_STATUS, INT_COMPLETE);
    printf("flags query: ");
    print_status(status);
    printf("\n");
}

static void getrandom(struct card *c, unsigned count)
{
    const uint8_t *bytes = NULL;
    struct tpm2_buf b;
    long rc;
    int i, n;

    tpm2_getrandom_cmd(&b, count);
    rc = run_checked(c, &b, "TPM2_GetRandom");
    if (rc == TPM2_RC_INITIALIZE) {
        die("TPM2_GetRandom: the TPM is not started (try --startup)");
    } else if (rc) {
        die("TPM2_GetRandom: TPM error 0x%03lx", rc);
    }
    n = tpm2_getrandom_rsp(&b, &bytes);
    if (n < 0) {
        die("TPM2_GetRandom: malformed response");
    }
    printf("TPM2_GetRandom(%u): %d bytes:", count, n);
    for (i = 0; i < n; i++) {
        printf(" %02x", bytes[i]);
    }
    printf("\n");
}

static void __attribute__((noreturn)) usage(int status)
{
    fprintf(status ? stderr : stdout,
"usage: vtpm-probe [OPTION]...\n"
"Find a vtpm-pci card (%04x:%04x), print its I/O ports as /proc/ioports\n"
"shows them and its registers, decoded; optionally run TPM commands.\n"
"\n"
"  -s, --slot=BDF         the card at this PCI address (default: the first)\n"
"  -m, --method=METHOD    how to reach the ports: 'ports' (ioperm and\n"
"                         inl/outl, the default) or 'resource' (the sysfs\n"
"                         resource0 file)\n"
"  -b, --buffer           move commands and responses through BAR 2 (the\n"
"                         sysfs resource2 file, mapped) rather than DATA;\n"
"                         the registers are still reached as METHOD says\n"
"  -g, --getrandom=COUNT  send TPM2_GetRandom for COUNT bytes (1 to 32)\n"
"  -S, --startup          send TPM2_Startup(TPM_SU_CLEAR) first\n"
"  -q, --query            ask the TPM for its enabled, activated and owned\n"
"                         flags (CONTROL.QUERY)\n"
"  -f, --force            send commands even while a driver is bound\n"
"  -h, --help             show this help\n",
            VTPM_VENDOR, VTPM_DEVICE);
    exit(status);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "slot", required_argument, NULL, 's' },
        { "method", required_argument, NULL, 'm' },
        { "buffer", no_argument, NULL, 'b' },
        { "getrandom", required_argument, NULL, 'g' },
        { "startup", no_argument, NULL, 'S' },
        { "query", no_argument, NULL, 'q' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { },
    };
    struct card c = { .fd = -1 };
    const char *slot = NULL;
    int opt, force = 0, do_startup = 0, do_query = 0;
    long count = 0;
    char *end;

    while ((opt = getopt_long(argc, argv, "s:m:bg:Sqfh", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            slot = optarg;
            break;
        case 'm':
            if (!strcmp(optarg, "resource")) {
                c.use_resource = 1;
            } else if (strcmp(optarg, "ports")) {
                usage(2);
            }
            break;
        case 'b':
            c.use_buffer = 1;
            break;
        case 'g':
            count = strtol(optarg, &end, 0);
            if (*end || count < 1 || count > 32) {
                usage(2);
            }
            break;
        case 'S':
            do_startup = 1;
            break;
        case 'q':
            do_query = 1;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage(0);
        default:
            usage(2);
        }
    }
    if (optind != argc) {
        usage(2);
    }

    find_card(&c, slot);
    printf("vtpm-pci %s (%04x:%04x rev %02x), driver: %s\n", c.bdf,
           VTPM_VENDOR, VTPM_DEVICE, c.revision,
           c.driver[0] ? c.driver : "none");
    /* The format of /proc/ioports */
    printf("  %04llx-%04llx : %s\n", c.start, c.end, c.bdf);
    print_buffer_bar(&c);

    open_card(&c);
    printf("access: %s; commands through %s\n",
           c.use_resource ? "sysfs resource0" : "port I/O (ioperm, inl/outl)",
           c.use_buffer ? "BAR 2 (sysfs resource2, mmap)" : "DATA");
    dump_registers(&c);
    if (c.use_buffer) {
        check_buffer(&c);
    }

    if (do_startup || do_query || count) {
        if (c.driver[0] && !force) {
            die("%s drives the card: unbind it first, or use --force",
                c.driver);
        }
    }
    /* The flags query is the card's own, for either family */
    if ((do_startup || count) && FAMILY(reg_read(&c, VTPM_STATUS)) != 2) {
        die("the card's TPM is not a TPM 2.0: --startup and --getrandom "
            "send TPM 2.0 commands");
    }
    if (c.use_buffer && (do_startup || count)) {
        map_buffer(&c);
    }
    if (do_startup) {
        startup(&c);
    }
    if (do_query) {
        query_flags(&c);
    }
    if (count) {
        getrandom(&c, count);
    }
    return 0;
}
