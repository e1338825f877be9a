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
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "tpm2-cmd.h"

#define SYSFS_PCI           "/sys/bus/pci/devices"
#define VTPM_VENDOR         0x1b36  /* Red Hat, QEMU's devices */
#define VTPM_DEVICE         0x0015
#define VTPM_PORTS          0x40

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
};

#define VTPM_ID_MAGIC       0x4d505456
#define STATE(status)       ((status) & 7)
#define STATUS_ERROR        (1u << 3)
#define FAMILY(status)      (((status) >> 8) & 3)
#define STATUS_FLAGS_VALID  (1u << 12)
#define STATUS_ENABLED      (1u << 13)
#define STATUS_ACTIVATED    (1u << 14)
#define STATUS_OWNED        (1u << 15)

enum { IDLE, RECEIVING, EXECUTING, COMPLETE };

#define CONTROL_START       1
#define CONTROL_ABORT       4
#define CONTROL_QUERY       8
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
    int revision;
    char driver[NAME_MAX + 1];      /* "" when none is bound */
    int use_resource;               /* else port I/O */
    int fd;                         /* resource0 */
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
    /* The first line of "resource" is BAR 0: start, end, flags */
    if (read_attr(c->path, "resource", buf, sizeof(buf)) ||
        sscanf(buf, "%llx %llx %llx", &c->start, &c->end, &flags) != 3 ||
        !(flags & 0x100) || c->end - c->start + 1 != VTPM_PORTS) {
        die("%s: BAR 0 is not %d I/O ports", c->bdf, VTPM_PORTS);
    }

    snprintf(buf, sizeof(buf), "%s/driver", c->path);
    n = readlink(buf, link, sizeof(link) - 1);
    if (n > 0) {
        link[n] = 0;
        snprintf(c->driver, sizeof(c->driver), "%s", strrchr(link, '/') + 1);
    }
}

/* Make the card decode its ports, as a driver's pci_enable_device() does */
static void enable_card(struct card *c)
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
    if (cmd[0] & 1) {           /* PCI_COMMAND_IO */
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

    enable_card(c);
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
    printf("  0x2c ERROR       0x%08x  %s\n", err,
           err < sizeof(error_names) / sizeof(error_names[0]) ?
           error_names[err] : "unknown");
    printf("  0x30 DATA        (not read: a read takes bytes of a response)\n");
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

/* Run one command on the card, as the spec's example does */
static void transact(struct card *c, struct tpm2_buf *b)
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

    while ((opt = getopt_long(argc, argv, "s:m:g:Sqfh", options, NULL)) != -1) {
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

    open_card(&c);
    printf("access: %s\n", c.use_resource ? "sysfs resource0" :
           "port I/O (ioperm, inl/outl)");
    dump_registers(&c);

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
