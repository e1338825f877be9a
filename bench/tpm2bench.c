/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tpm2bench: how many TPM 2.0 commands a TPM answers per second.
 *
 * The same workloads run through a TPM character device in the guest
 * (/dev/tpm0, /dev/tpmrm0), or, built with -DHAVE_LIBTPMS, through
 * libtpms called directly on the host: the floor no virtual TPM can go
 * below.
 *
 *   tpm2bench [-t SECONDS] [-r RUNS] DEVICE|libtpms WORKLOAD...
 *   tpm2bench -p PORT [-n COUNT]
 *
 * Workloads:
 *   getrandom   TPM2_GetRandom(32)
 *   pcr         TPM2_PCR_Extend(16) then TPM2_PCR_Read(16): one pair
 *   large       TPM2_Hash of 1 KB, then TPM2_NV_Read of 1 KB: one pair,
 *               1 KB through the interface each way
 *
 * Each workload runs RUNS times for about SECONDS each (after a short
 * warm-up that also sizes the runs), every response is checked, and one
 * line is printed per workload:
 *
 *   BENCH WORKLOAD TARGET median_us ops_per_s min_us max_us runs iterations
 *
 * where an operation is one command, or one pair.  -p times COUNT 32-bit
 * reads of the read-only ID register at I/O port PORT (a vtpm-pci card's
 * BAR 0): the cost of one port access, as the guest sees it.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 */

#define _GNU_SOURCE    /* program_invocation_short_name */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBTPMS
#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_memory.h>
#include <libtpms/tpm_nvfilename.h>
#else
#include <sys/io.h>
#endif

#include "die.h"
#include "tpm2-cmd.h"

#define PCR             16          /* the debug PCR */
#define NV_INDEX        0x01000b0e  /* an owner index for the large pair */
#define LARGE           1024        /* bytes each way in the large pair */

/* Send the command in b, replace it with the response; 0 or -1 */
typedef int (*transact_fn)(struct tpm2_buf *b);

static transact_fn transact;

/* --- through a TPM character device --------------------------------------- */

static int tpm_fd = -1;

static int dev_transact(struct tpm2_buf *b)
{
    ssize_t n;

    n = write(tpm_fd, b->data, b->len);
    if (n != (ssize_t)b->len) {
        return -1;
    }
    n = read(tpm_fd, b->data, sizeof(b->data));
    if (n < 0) {
        return -1;
    }
    b->len = n;
    return 0;
}

/* --- through libtpms, on the host ----------------------------------------- */

#ifdef HAVE_LIBTPMS
/* NV state in memory, one blob per name, as QEMU's backend keeps it */
static struct {
    char name[64];
    unsigned char *data;
    uint32_t len;
} nv[8];

static int nv_slot(const char *name, int create)
{
    int i;

    for (i = 0; i < 8; i++) {
        if (nv[i].data && !strcmp(nv[i].name, name)) {
            return i;
        }
    }
    for (i = 0; create && i < 8; i++) {
        if (!nv[i].data) {
            snprintf(nv[i].name, sizeof(nv[i].name), "%s", name);
            return i;
        }
    }
    return -1;
}

static TPM_RESULT cb_nvram_init(void)
{
    return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_loaddata(unsigned char **data, uint32_t *length,
                                    uint32_t tpm_number, const char *name)
{
    int i = nv_slot(name, 0);

    if (i < 0) {
        return TPM_RETRY;
    }
    if (TPM_Malloc(data, nv[i].len) != TPM_SUCCESS) {
        return TPM_FAIL;
    }
    memcpy(*data, nv[i].data, nv[i].len);
    *length = nv[i].len;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_storedata(const unsigned char *data,
                                     uint32_t length, uint32_t tpm_number,
                                     const char *name)
{
    int i = nv_slot(name, 1);
    unsigned char *copy = malloc(length ? length : 1);

    if (i < 0 || !copy) {
        free(copy);
        return TPM_FAIL;
    }
    memcpy(copy, data, length);
    free(nv[i].data);
    nv[i].data = copy;
    nv[i].len = length;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_deletename(uint32_t tpm_number, const char *name,
                                      TPM_BOOL must_exist)
{
    int i = nv_slot(name, 0);

    if (i < 0) {
        return must_exist ? TPM_FAIL : TPM_SUCCESS;
    }
    free(nv[i].data);
    nv[i].data = NULL;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_io_init(void)
{
    return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getlocality(TPM_MODIFIER_INDICATOR *locty,
                                    uint32_t tpm_number)
{
    *locty = 0;
    return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getphysicalpresence(TPM_BOOL *present,
                                            uint32_t tpm_number)
{
    *present = FALSE;
    return TPM_SUCCESS;
}

static struct libtpms_callbacks callbacks = {
    .sizeOfStruct = sizeof(struct libtpms_callbacks),
    .tpm_nvram_init = cb_nvram_init,
    .tpm_nvram_loaddata = cb_nvram_loaddata,
    .tpm_nvram_storedata = cb_nvram_storedata,
    .tpm_nvram_deletename = cb_nvram_deletename,
    .tpm_io_init = cb_io_init,
    .tpm_io_getlocality = cb_io_getlocality,
    .tpm_io_getphysicalpresence = cb_io_getphysicalpresence,
};

static unsigned char *lib_rsp;
static uint32_t lib_rsp_size;

/*
 * What QEMU's backend does around TPMLIB_Process for each command: a copy
 * of the command, and a copy of the response into the device's buffer
 */
static int lib_transact(struct tpm2_buf *b)
{
    unsigned char cmd[TPM2_BUFFER_MAX];
    uint32_t len = 0;

    memcpy(cmd, b->data, b->len);
    if (TPMLIB_Process(&lib_rsp, &len, &lib_rsp_size, cmd, b->len) !=
        TPM_SUCCESS || len > sizeof(b->data)) {
        return -1;
    }
    memcpy(b->data, lib_rsp, len);
    b->len = len;
    return 0;
}

static void lib_open(void)
{
    struct tpm2_buf b;

    if (TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2) != TPM_SUCCESS ||
        TPMLIB_RegisterCallbacks(&callbacks) != TPM_SUCCESS ||
        TPMLIB_MainInit() != TPM_SUCCESS) {
        die("cannot start libtpms");
    }
    transact = lib_transact;
    tpm2_startup_cmd(&b, TPM2_SU_CLEAR);
    if (transact(&b) || tpm2_check_header(&b, TPM2_ST_NO_SESSIONS)) {
        die("TPM2_Startup failed");
    }
}
#endif

/* --- the workloads -------------------------------------------------------- */

/* Run the command in b, and check its response header; dies on an error */
static void run(struct tpm2_buf *b, uint16_t tag, const char *what)
{
    long rc;

    if (transact(b)) {
        die("%s: %s", what, strerror(errno));
    }
    rc = tpm2_check_header(b, tag);
    if (rc) {
        die("%s: %s 0x%03lx", what,
            rc < 0 ? "malformed response" : "TPM error", rc);
    }
}

static void op_getrandom(void)
{
    struct tpm2_buf b;
    const uint8_t *bytes;

    tpm2_getrandom_cmd(&b, 32);
    run(&b, TPM2_ST_NO_SESSIONS, "GetRandom");
    if (tpm2_getrandom_rsp(&b, &bytes) != 32) {
        die("GetRandom: not 32 bytes");
    }
}

static void op_pcr(void)
{
    static const uint8_t digest[TPM2_SHA256_SIZE] = { 0x76, 0x54 };
    struct tpm2_buf b;

    tpm2_pcr_extend_cmd(&b, PCR, digest);
    run(&b, TPM2_ST_SESSIONS, "PCR_Extend");
    tpm2_pcr_read_cmd(&b, PCR);
    run(&b, TPM2_ST_NO_SESSIONS, "PCR_Read");
    /* counter, selection (10 bytes), one digest */
    if (b.len != TPM2_HEADER_SIZE + 4 + 10 + 4 + 2 + TPM2_SHA256_SIZE) {
        die("PCR_Read: %zu bytes", b.len);
    }
}

static uint8_t large_data[LARGE];

static void op_large(void)
{
    struct tpm2_buf b;

    tpm2_hash_cmd(&b, large_data, LARGE);
    run(&b, TPM2_ST_NO_SESSIONS, "Hash");
    if (tpm2_get(&b, 2) != TPM2_SHA256_SIZE) {
        die("Hash: no SHA-256 digest");
    }
    tpm2_nv_read_cmd(&b, NV_INDEX, LARGE, 0);
    run(&b, TPM2_ST_SESSIONS, "NV_Read");
    if (tpm2_sessions_rsp_params(&b) != 2 + LARGE ||
        tpm2_get(&b, 2) != LARGE ||
        memcmp(b.data + b.pos, large_data, LARGE)) {
        die("NV_Read: not the %d bytes written", LARGE);
    }
}

/* The index op_large reads, defined and written once per TPM */
static void setup_large(void)
{
    struct tpm2_buf b;
    long rc;
    int i;

    for (i = 0; i < LARGE; i++) {
        large_data[i] = i * 7 + 1;
    }
    tpm2_nv_define_cmd(&b, NV_INDEX, LARGE);
    if (transact(&b)) {
        die("NV_DefineSpace: %s", strerror(errno));
    }
    rc = tpm2_check_header(&b, TPM2_ST_SESSIONS);
    if (rc && (rc & 0xfff) != TPM2_RC_NV_DEFINED) {
        die("NV_DefineSpace: %s 0x%03lx",
            rc < 0 ? "malformed response" : "TPM error", rc);
    }
    tpm2_nv_write_cmd(&b, NV_INDEX, large_data, LARGE, 0);
    run(&b, TPM2_ST_SESSIONS, "NV_Write");
}

static const struct workload {
    const char *name;
    void (*setup)(void);
    void (*op)(void);
} workloads[] = {
    { "getrandom", NULL, op_getrandom },
    { "pcr", NULL, op_pcr },
    { "large", setup_large, op_large },
};

/* --- timing --------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds for n operations */
static double time_ops(void (*op)(void), unsigned long n)
{
    double t0 = now();

    while (n--) {
        op();
    }
    return now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

#define MAX_RUNS 64

static void bench(const struct workload *w, const char *target,
                  double seconds, int runs)
{
    double us[MAX_RUNS], t, median;
    unsigned long n = 1;
    int i;

    if (w->setup) {
        w->setup();
    }
    /* Warm up for about a tenth of a run, and size the runs */
    for (t = 0; t < seconds / 10 && n < 1UL << 30; n *= 2) {
        t = time_ops(w->op, n);
    }
    n = (unsigned long)(n / 2 * seconds / (t > 0 ? t : 0.000001)) + 1;

    for (i = 0; i < runs; i++) {
        us[i] = time_ops(w->op, n) * 1e6 / n;
    }
    qsort(us, runs, sizeof(us[0]), cmp_double);
    median = runs % 2 ? us[runs / 2] : (us[runs / 2 - 1] + us[runs / 2]) / 2;
    printf("BENCH %s %s %.2f %.1f %.2f %.2f %d %lu\n", w->name, target,
           median, 1e6 / median, us[0], us[runs - 1], runs, n);
    fflush(stdout);
}

#ifndef HAVE_LIBTPMS
/* The cost of one port access: reads of the card's ID register */
static void port_cost(unsigned long port, unsigned long n)
{
    unsigned long i;
    double t;

    if (ioperm(port, 4, 1)) {
        die("ioperm(0x%lx): %s", port, strerror(errno));
    }
    inl(port);
    t = now();
    for (i = 0; i < n; i++) {
        inl(port);
    }
    t = now() - t;
    printf("PORTCOST inl %.3f %lu\n", t * 1e6 / n, n);
}
#endif

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr,
            "usage: tpm2bench [-t SECONDS] [-r RUNS] DEVICE|libtpms "
            "WORKLOAD...\n"
            "       tpm2bench -p PORT [-n COUNT]\n"
            "workloads: getrandom pcr large\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 1;
    unsigned long port = 0, count = 100000;
    int runs = 5, opt, i, j;

    while ((opt = getopt(argc, argv, "t:r:p:n:")) != -1) {
        switch (opt) {
        case 't':
            seconds = atof(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'p':
            port = strtoul(optarg, NULL, 0);
            break;
        case 'n':
            count = strtoul(optarg, NULL, 0);
            break;
        default:
            usage();
        }
    }
    if (seconds <= 0 || runs < 1 || runs > MAX_RUNS || !count) {
        usage();
    }
    if (port) {
#ifdef HAVE_LIBTPMS
        die("no port access in the host build");
#else
        port_cost(port, count);
        return 0;
#endif
    }
    if (argc - optind < 2) {
        usage();
    }

    if (!strcmp(argv[optind], "libtpms")) {
#ifdef HAVE_LIBTPMS
        lib_open();
#else
        die("built without libtpms");
#endif
    } else {
        tpm_fd = open(argv[optind], O_RDWR);
        if (tpm_fd < 0) {
            die("cannot open %s: %s", argv[optind], strerror(errno));
        }
        transact = dev_transact;
    }

    for (i = optind + 1; i < argc; i++) {
        for (j = 0; j < (int)(sizeof(workloads) / sizeof(workloads[0])); j++) {
            if (!strcmp(argv[i], workloads[j].name)) {
                bench(&workloads[j], argv[optind], seconds, runs);
                break;
            }
        }
        if (j == (int)(sizeof(workloads) / sizeof(workloads[0]))) {
            usage();
        }
    }
    return 0;
}
