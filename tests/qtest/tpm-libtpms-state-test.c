/*
 * QTest testcase for the libtpms backend's state: the state file,
 * restarts, crashes, locking, migration and the reset lifecycle
 *
 * The TPM is driven through vtpm-pci's ports with TPM 2.0 commands, and
 * checked against what the TPM 2.0 Library specification says.
 *
 * Copyright (c) 2026 The vtpm-pci authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <glib/gstdio.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "hw/tpm/vtpm_pci.h"
#include "qemu/cutils.h"
#include "tpm-cmd-tests.h"
#include "tpm-util.h"
#include "vtpm-pci-util.h"

#define TPM2_ST_SESSIONS        0x8002
#define TPM2_RH_OWNER           0x40000001
#define TPM2_RH_NULL            0x40000007
#define TPM2_RH_ENDORSEMENT     0x4000000b
#define EK_HANDLE               0x81010001
#define TPM2_RS_PW              0x40000009
#define TPM2_PT_LOCKOUT_COUNTER 0x20e
#define TPM2_ALG_SHA256         0x000b

/* Where swtpm_setup stores the certificates it makes */
#define SWTPM_EK_CERT_RSA       0x01c00002
#define SWTPM_EK_CERT_ECC       0x01c00016
#define SWTPM_PLATFORM_CERT     0x01c08000

#define NV_DATA_INDEX           0x01500010
#define NV_COUNTER_INDEX        0x01500020

static char *tmp_dir;
/* The tests of a newer swtpm keep their files in a directory of their own */
static const char *state_subdir = "";

/* A TPM 2.0 command under construction */
typedef struct {
    uint8_t b[1024];
    size_t len;
} Cmd;

static void put16(Cmd *c, uint16_t v)
{
    stw_be_p(c->b + c->len, v);
    c->len += 2;
}

static void put32(Cmd *c, uint32_t v)
{
    stl_be_p(c->b + c->len, v);
    c->len += 4;
}

static void put_bytes(Cmd *c, const void *data, size_t len)
{
    memcpy(c->b + c->len, data, len);
    c->len += len;
}

/* A TPM2B: size, then the bytes */
static void put_tpm2b(Cmd *c, const void *data, uint16_t len)
{
    put16(c, len);
    put_bytes(c, data, len);
}

static void cmd_begin(Cmd *c, uint16_t tag, uint32_t code)
{
    c->len = 0;
    put16(c, tag);
    put32(c, 0);                /* size, set by cmd_send() */
    put32(c, code);
}

/* The authorization area: one password session with an empty password */
static void put_pw_session(Cmd *c)
{
    put32(c, 9);
    put32(c, TPM2_RS_PW);
    put16(c, 0);                /* nonce */
    c->b[c->len++] = 0;         /* attributes */
    put16(c, 0);                /* hmac */
}

/*
 * Send the command; returns the TPM's response code.  TPM_RC_RETRY asks
 * for the command again, as a TSS does: the TPM returns it, for one, the
 * first time a DA-protected object is used after an orderly start.
 */
static uint32_t cmd_send(QTestState *s, Cmd *c, uint8_t *rsp, size_t size)
{
    int tries = 0;

    stl_be_p(c->b + 2, c->len);
    do {
        memset(rsp, 0, size);
        vtpm_pci_transfer(s, c->b, c->len, rsp, size);
        g_assert_cmpuint(ldl_be_p(rsp + 2), <=, size);
    } while (ldl_be_p(rsp + 6) == TPM_RC_RETRY && ++tries < 3);
    return ldl_be_p(rsp + 6);
}

static void cmd_ok(QTestState *s, Cmd *c, uint8_t *rsp, size_t size)
{
    g_assert_cmphex(cmd_send(s, c, rsp, size), ==, TPM_RC_SUCCESS);
}

static uint32_t tpm_startup(QTestState *s, uint16_t type)
{
    uint8_t rsp[64];
    Cmd c;

    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x144);
    put16(&c, type);
    return cmd_send(s, &c, rsp, sizeof(rsp));
}

/*
 * TPM2_NV_DefineSpace of an index that its own (empty) auth reads and
 * writes, exempt from dictionary-attack protection
 */
static void nv_define(QTestState *s, uint32_t index, uint32_t type,
                      uint16_t size)
{
    uint8_t rsp[64];
    Cmd c;

    cmd_begin(&c, TPM2_ST_SESSIONS, 0x12a);
    put32(&c, TPM2_RH_OWNER);
    put_pw_session(&c);
    put16(&c, 0);                       /* auth */
    put16(&c, 14);                      /* TPM2B_NV_PUBLIC */
    put32(&c, index);
    put16(&c, TPM2_ALG_SHA256);
    /* AUTHREAD | AUTHWRITE | type | NO_DA: crashes must not lock it out */
    put32(&c, 0x02040004 | type << 4);
    put16(&c, 0);                       /* authPolicy */
    put16(&c, size);
    cmd_ok(s, &c, rsp, sizeof(rsp));
}

/* An NV command on @index, authorized by the index itself */
static void nv_cmd_begin(Cmd *c, uint32_t code, uint32_t index)
{
    cmd_begin(c, TPM2_ST_SESSIONS, code);
    put32(c, index);                    /* authHandle */
    put32(c, index);                    /* nvIndex */
    put_pw_session(c);
}

static void nv_write_cmd(Cmd *c, uint32_t index, const char *data)
{
    nv_cmd_begin(c, 0x137, index);
    put_tpm2b(c, data, strlen(data));
    put16(c, 0);                        /* offset */
}

static void nv_write(QTestState *s, uint32_t index, const char *data)
{
    uint8_t rsp[64];
    Cmd c;

    nv_write_cmd(&c, index, data);
    cmd_ok(s, &c, rsp, sizeof(rsp));
}

/* TPM2_NV_Read of @size bytes into @data */
static void nv_read(QTestState *s, uint32_t index, uint8_t *data,
                    uint16_t size)
{
    uint8_t rsp[128];
    Cmd c;

    nv_cmd_begin(&c, 0x14e, index);
    put16(&c, size);
    put16(&c, 0);                       /* offset */
    cmd_ok(s, &c, rsp, sizeof(rsp));
    /* parameterSize, then TPM2B_MAX_NV_BUFFER */
    g_assert_cmpuint(lduw_be_p(rsp + 14), ==, size);
    memcpy(data, rsp + 16, size);
}

static void nv_increment_start(QTestState *s, uint16_t port,
                               uint32_t index)
{
    Cmd c;

    nv_cmd_begin(&c, 0x134, index);
    stl_be_p(c.b + 2, c.len);
    vtpm_pci_write_command(s, port, c.b, c.len);
    qtest_outl(s, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
}

static void nv_increment(QTestState *s, uint32_t index)
{
    uint8_t rsp[64];
    Cmd c;

    nv_cmd_begin(&c, 0x134, index);
    cmd_ok(s, &c, rsp, sizeof(rsp));
}

static uint64_t nv_counter(QTestState *s)
{
    uint8_t value[8];

    nv_read(s, NV_COUNTER_INDEX, value, sizeof(value));
    return ldq_be_p(value);
}

/* Read the response of a command started by hand; returns its code */
static uint32_t finish(QTestState *s, uint16_t port)
{
    uint8_t rsp[VTPM_PCI_BUFFER_MAX];

    vtpm_pci_wait_done(s, port);
    vtpm_pci_read_response(s, port, rsp, sizeof(rsp));
    return ldl_be_p(rsp + 6);
}

static void pcr_extend(QTestState *s, const uint8_t *digest)
{
    uint8_t rsp[64];
    Cmd c;

    cmd_begin(&c, TPM2_ST_SESSIONS, 0x182);
    put32(&c, 10);
    put_pw_session(&c);
    put32(&c, 1);
    put16(&c, TPM2_ALG_SHA256);
    put_bytes(&c, digest, 32);
    cmd_ok(s, &c, rsp, sizeof(rsp));
}

static void pcr_read(QTestState *s, uint8_t *digest)
{
    static const uint8_t select[] = { 0x03, 0x00, 0x04, 0x00 };
    uint8_t rsp[128];
    Cmd c;

    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x17e);
    put32(&c, 1);
    put16(&c, TPM2_ALG_SHA256);
    put_bytes(&c, select, sizeof(select));
    cmd_ok(s, &c, rsp, sizeof(rsp));
    /* pcrUpdateCounter, TPML_PCR_SELECTION, then one TPM2B_DIGEST */
    g_assert_cmpuint(lduw_be_p(rsp + 28), ==, 32);
    memcpy(digest, rsp + 30, 32);
}

/* PCR 10 after one extend of @data from zeros: SHA-256(zeros || data) */
static void pcr_expected(const uint8_t *data, uint8_t *digest)
{
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t zeros[32] = { 0 };
    gsize len = 32;

    g_checksum_update(sha256, zeros, sizeof(zeros));
    g_checksum_update(sha256, data, 32);
    g_checksum_get_digest(sha256, digest, &len);
}

/*
 * TPM2_CreatePrimary of the endorsement key with the default RSA-2048
 * template of the TCG EK Credential Profile; returns its TPM2B_PUBLIC.
 */
static GBytes *create_ek(QTestState *s, uint32_t *handle)
{
    static const uint8_t policy[32] = {
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8,
        0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
        0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64,
        0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
    };
    static const uint8_t zeros[256];
    uint8_t rsp[VTPM_PCI_BUFFER_MAX];
    size_t pub_start, pub_len;
    Cmd c;

    cmd_begin(&c, TPM2_ST_SESSIONS, 0x131);
    put32(&c, TPM2_RH_ENDORSEMENT);
    put_pw_session(&c);
    put16(&c, 4);                       /* inSensitive */
    put16(&c, 0);
    put16(&c, 0);
    put16(&c, 2 + 2 + 4 + 2 + 32 + 6 + 2 + 2 + 4 + 2 + 256);
    put16(&c, 0x0001);                  /* TPM_ALG_RSA */
    put16(&c, TPM2_ALG_SHA256);
    put32(&c, 0x000300b2);
    put_tpm2b(&c, policy, sizeof(policy));
    put16(&c, 0x0006);                  /* AES-128-CFB */
    put16(&c, 128);
    put16(&c, 0x0043);
    put16(&c, 0x0010);                  /* no scheme */
    put16(&c, 2048);
    put32(&c, 0);                       /* exponent */
    put_tpm2b(&c, zeros, sizeof(zeros));
    put16(&c, 0);                       /* outsideInfo */
    put32(&c, 0);                       /* creationPCR */
    cmd_ok(s, &c, rsp, sizeof(rsp));

    /* objectHandle, parameterSize, then outPublic */
    if (handle) {
        *handle = ldl_be_p(rsp + TPM_RSP_HDR_SIZE);
    }
    pub_start = TPM_RSP_HDR_SIZE + 8;
    pub_len = 2 + lduw_be_p(rsp + pub_start);
    return g_bytes_new(rsp + pub_start, pub_len);
}

/* TPM2_EvictControl: the transient @object persists as @handle */
static void evict_control(QTestState *s, uint32_t object, uint32_t handle)
{
    uint8_t rsp[64];
    Cmd c;

    cmd_begin(&c, TPM2_ST_SESSIONS, 0x120);
    put32(&c, TPM2_RH_OWNER);
    put32(&c, object);
    put_pw_session(&c);
    put32(&c, handle);
    cmd_ok(s, &c, rsp, sizeof(rsp));
}

static char *state_path(const char *name)
{
    return g_build_filename(tmp_dir, state_subdir, name, NULL);
}

/* @extra: more options, of the tpmdev if it starts with a comma */
static QTestState *start_on(const char *path, const char *extra)
{
    return qtest_initf("-M q35 -tpmdev libtpms,id=t,path=%s%s "
                       "-device vtpm-pci,tpmdev=t %s", path,
                       extra[0] == ',' ? extra : "",
                       extra[0] == ',' ? "" : extra);
}

static char *file_digest(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;

    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (guchar *)data,
                                       len);
}

static void test_restart(void)
{
    g_autofree char *path = state_path("restart");
    g_autoptr(GBytes) ek = NULL, ek2 = NULL;
    uint8_t data[32] = "measured", pcr[32], expected[32];
    uint8_t nv[8];
    QTestState *s;

    s = start_on(path, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "persist!");
    pcr_extend(s, data);
    ek = create_ek(s, NULL);
    /* QEMU quits without the guest shutting the TPM down */
    qtest_quit(s);
    g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));

    s = start_on(path, "");
    /*
     * QEMU sent TPM2_Shutdown(TPM_SU_STATE) at quit, so the TPM resumes,
     * with its PCRs
     */
    g_assert_cmphex(tpm_startup(s, TPM2_SU_STATE), ==, TPM_RC_SUCCESS);
    pcr_read(s, pcr);
    pcr_expected(data, expected);
    g_assert_cmpmem(pcr, 32, expected, 32);
    nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "persist!", 8);
    ek2 = create_ek(s, NULL);
    g_assert_true(g_bytes_equal(ek, ek2));
    qtest_quit(s);
}

/*
 * QEMU run by a shell that outlives it, so that the test can SIGKILL QEMU
 * while libqtest sees the shell exit normally.  The shell passes the
 * SIGTERM libqtest sends it on to QEMU.
 */
static QTestState *start_killable(const char *path)
{
    g_autofree char *wrapper = g_strdup_printf(
        "sh -c 'trap \"kill \\$pid\" TERM; \"$0\" \"$@\" & pid=$!; "
        "wait $pid; wait $pid; exit 0' %s", g_getenv("QTEST_QEMU_BINARY"));
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t",
        path);

    g_setenv("VTPM_KILLABLE_QEMU", wrapper, true);
    return qtest_init_ext("VTPM_KILLABLE_QEMU", args, NULL, true);
}

/* The one child of @parent: QEMU, under its shell */
static pid_t child_of(pid_t parent)
{
    GDir *proc = g_dir_open("/proc", 0, NULL);
    const char *name;
    pid_t child = 0;

    g_assert_nonnull(proc);
    while (!child && (name = g_dir_read_name(proc))) {
        g_autofree char *stat_path = g_strdup_printf("/proc/%s/stat", name);
        g_autofree char *stat = NULL;
        const char *p;

        if (!g_ascii_isdigit(name[0]) ||
            !g_file_get_contents(stat_path, &stat, NULL, NULL)) {
            continue;
        }
        /* pid (comm) state ppid ... */
        p = strrchr(stat, ')');
        if (p && atoi(p + 4) == parent) {
            child = atoi(name);
        }
    }
    g_dir_close(proc);
    g_assert_cmpint(child, >, 0);
    return child;
}

/*
 * SIGKILL QEMU at varied points of a loop of TPM2_NV_Increment: every
 * restart loads the file, and the counter is never behind what the test
 * saw acknowledged.
 */
static void test_crash(void)
{
    g_autofree char *path = state_path("crash");
    uint64_t acked = 0;
    int round;

    for (round = 0; round < 8; round++) {
        QTestState *s = start_killable(path);
        uint16_t port = vtpm_pci_port(s);
        uint64_t value;
        int i;

        /* The TPM may not have been shut down: a fresh start */
        g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
        if (round == 0) {
            /*
             * A counter reads only once incremented, and starts no lower
             * than any counter the TPM had: take what it says
             */
            nv_define(s, NV_COUNTER_INDEX, 1, 8);
            nv_increment(s, NV_COUNTER_INDEX);
            acked = nv_counter(s);
        } else {
            value = nv_counter(s);
            g_assert_cmpuint(value, >=, acked);
            /* At most the one increment in flight at the kill got in */
            g_assert_cmpuint(value, <=, acked + 1);
            acked = value;
        }
        for (i = 0; i < round; i++) {
            nv_increment(s, NV_COUNTER_INDEX);
            acked++;
        }
        /* One more, killed before, during or after it runs */
        nv_increment_start(s, port, NV_COUNTER_INDEX);
        if (round % 3 == 1) {
            g_assert_cmphex(finish(s, port), ==, TPM_RC_SUCCESS);
            acked++;
        } else if (round % 3 == 2) {
            vtpm_pci_wait_done(s, port);
        }
        kill(child_of(qtest_pid(s)), SIGKILL);
        qtest_quit(s);
    }
}

static void test_corrupt_files(void)
{
    g_autofree char *good = state_path("good");
    g_autofree char *img = NULL;
    gsize len;
    QTestState *s;
    size_t i;
    struct {
        const char *name;
        const char *message;
    } cases[] = {
        { "empty", "is empty" },
        { "truncated", "is truncated" },
        { "bitflip", "is corrupt: its checksum does not match" },
        { "format", "has format version 2; this QEMU reads version 1" },
        { "family", "holds a TPM 1.2, not a TPM 2.0" },
        { "foreign", "is not a TPM state file" },
        { "dir", "is a directory" },
    };

    /* QEMU's format; tpm-libtpms-swtpm-test corrupts swtpm's */
    s = start_on(good, ",format=qemu");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);
    g_assert_true(g_file_get_contents(good, &img, &len, NULL));
    g_assert_cmpuint(len, >, 100);

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = state_path(cases[i].name);
        g_autofree char *args = g_strdup_printf(
            "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t",
            path);
        g_autofree char *message = g_strdup_printf(
            "TPM state file '%s' %s", path, cases[i].message);
        g_autofree char *before = NULL, *after = NULL;
        g_autofree char *copy = g_memdup2(img, len);
        gsize copy_len = len;

        switch (i) {
        case 0:
            copy_len = 0;
            break;
        case 1:
            copy_len = len - 7;
            break;
        case 2:
            copy[len - 20] ^= 0x10;
            break;
        case 3:
            stl_be_p(copy + 8, 2);
            break;
        case 4:
            stl_be_p(copy + 12, 1);
            break;
        case 5:
            memcpy(copy, "NOTATPM!", 8);
            g_free(message);
            message = g_strdup_printf("'%s' %s", path, cases[i].message);
            break;
        }
        if (i == 6) {
            g_assert_cmpint(g_mkdir(path, 0700), ==, 0);
        } else {
            g_assert_true(g_file_set_contents(path, copy, copy_len, NULL));
            before = file_digest(path);
        }

        tpm_cmd_assert_qemu_refuses(args, message);
        /* Never repaired, never replaced by a new TPM */
        if (before) {
            after = file_digest(path);
            g_assert_cmpstr(before, ==, after);
        } else {
            g_assert_true(g_file_test(path, G_FILE_TEST_IS_DIR));
        }
    }

    /* Unreadable: a path through a file */
    {
        g_autofree char *path = g_build_filename(good, "state", NULL);
        g_autofree char *args = g_strdup_printf(
            "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t",
            path);

        tpm_cmd_assert_qemu_refuses(args, "cannot lock TPM state file");
    }
}

/*
 * The state file and its lock are opened as regular files only, and
 * never through a link: a link, a directory, a FIFO or a device in
 * either place is refused with a message that says so, and left alone.
 */
typedef enum HostileKind {
    HOSTILE_LINK,
    HOSTILE_DIR,
    HOSTILE_FIFO,
    HOSTILE_DEVICE,
} HostileKind;

static const char *const hostile_names[] = {
    [HOSTILE_LINK] = "symlink",
    [HOSTILE_DIR] = "dir",
    [HOSTILE_FIFO] = "fifo",
    [HOSTILE_DEVICE] = "device",
};

static const char *const hostile_messages[] = {
    [HOSTILE_LINK] = "is a symbolic link",
    [HOSTILE_DIR] = "is a directory",
    [HOSTILE_FIFO] = "is not a regular file",
    [HOSTILE_DEVICE] = "is not a regular file",
};

/* Make @path a @kind; false if this host does not let us */
static bool make_hostile(const char *path, HostileKind kind,
                         const char *target)
{
    switch (kind) {
    case HOSTILE_LINK:
        g_assert_cmpint(symlink(target, path), ==, 0);
        return true;
    case HOSTILE_DIR:
        g_assert_cmpint(g_mkdir(path, 0700), ==, 0);
        return true;
    case HOSTILE_FIFO:
        g_assert_cmpint(mkfifo(path, 0600), ==, 0);
        return true;
    case HOSTILE_DEVICE:
        /* /dev/null's numbers; only root may make one */
        return mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0;
    }
    g_assert_not_reached();
}

static void test_hostile_paths(void)
{
    g_autofree char *target = state_path("hostile-target");
    g_autofree char *target_digest = NULL;
    QTestState *s;
    int kind, lock;

    /* A good TPM, which a link must not lead QEMU to */
    s = start_on(target, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);
    target_digest = file_digest(target);

    for (lock = 0; lock < 2; lock++) {
        for (kind = HOSTILE_LINK; kind <= HOSTILE_DEVICE; kind++) {
            g_autofree char *path = g_strdup_printf(
                "%s/hostile-%s-%s", tmp_dir, lock ? "lock" : "state",
                hostile_names[kind]);
            g_autofree char *lock_path = g_strdup_printf("%s.lock", path);
            g_autofree char *lock_target = g_strdup_printf(
                "%s/hostile-lock-target-%d", tmp_dir, kind);
            g_autofree char *args = g_strdup_printf(
                "-M q35 -tpmdev libtpms,id=t,path=%s "
                "-device vtpm-pci,tpmdev=t", path);
            g_autofree char *message = g_strdup_printf(
                "TPM state %sfile '%s' %s", lock ? "lock " : "",
                lock ? lock_path : path, hostile_messages[kind]);
            g_autofree char *after = NULL;

            if (!make_hostile(lock ? lock_path : path, kind,
                              lock ? lock_target : target)) {
                g_test_message("cannot make a device node: not root?");
                continue;
            }
            tpm_cmd_assert_qemu_refuses(args, message);

            /* Nothing made or changed through the link */
            g_assert_false(g_file_test(lock_target, G_FILE_TEST_EXISTS));
            after = file_digest(target);
            g_assert_cmpstr(after, ==, target_digest);
            /* The state file was not created either */
            if (lock) {
                g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
            }
        }
    }
}

/*
 * Every rewrite of the state file keeps the owner, group and mode the
 * administrator gave it
 */
static void test_file_attributes(void)
{
    g_autofree char *path = state_path("attributes");
    g_autofree char *digest = NULL, *after = NULL;
    bool root = geteuid() == 0;
    struct stat st;
    QTestState *s;

    s = start_on(path, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);

    g_assert_cmpint(chmod(path, 0640), ==, 0);
    if (root) {
        g_assert_cmpint(chown(path, 1, 2), ==, 0);
    }
    digest = file_digest(path);

    s = start_on(path, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "attrs ok");
    qtest_quit(s);

    /* Rewritten (a new file), with the old one's attributes */
    after = file_digest(path);
    g_assert_cmpstr(after, !=, digest);
    g_assert_cmpint(lstat(path, &st), ==, 0);
    g_assert_true(S_ISREG(st.st_mode));
    g_assert_cmphex(st.st_mode & 07777, ==, 0640);
    if (root) {
        g_assert_cmpuint(st.st_uid, ==, 1);
        g_assert_cmpuint(st.st_gid, ==, 2);
    } else {
        g_test_message("owner and group not checked: not root");
    }
}

static void test_lock(void)
{
    g_autofree char *path = state_path("locked");
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t",
        path);
    g_autofree char *message = g_strdup_printf(
        "TPM state file '%s' is in use by another process", path);
    QTestState *s = start_on(path, "");

    tpm_cmd_assert_qemu_refuses(args, message);
    /* The first one is unharmed */
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);
}

static unsigned count_fds(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fd", pid);
    GDir *dir = g_dir_open(path, 0, NULL);
    unsigned n = 0;

    g_assert_nonnull(dir);
    while (g_dir_read_name(dir)) {
        n++;
    }
    g_dir_close(dir);
    return n;
}

/*
 * Resets the guest does not prepare for never count as attacks, and
 * leave no descriptor behind
 */
static void test_reset_lockout(void)
{
    g_autofree char *path = state_path("resets");
    QTestState *s = start_on(path, "");
    unsigned fds = 0;
    int i;

    for (i = 0; i < 10; i++) {
        g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
        g_assert_cmpuint(tpm_cmd_get_property(s, vtpm_pci_transfer,
                                              TPM2_PT_LOCKOUT_COUNTER),
                         ==, 0);
        qtest_system_reset(s);
        if (i == 1) {
            fds = count_fds(qtest_pid(s));
        }
    }
    g_assert_cmpuint(count_fds(qtest_pid(s)), ==, fds);
    qtest_quit(s);
}

/* Make @dir immutable, or not: no file can be created in it, even by root */
static bool set_immutable(const char *dir, bool on)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int flags;
    bool ok = fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;

    if (ok) {
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/*
 * A state file that cannot be written: the guest gets a TPM failure,
 * QEMU stays up, and the file keeps the state it had
 */
static void test_storage_error(void)
{
    g_autofree char *dir = state_path("readonly");
    g_autofree char *path = g_build_filename(dir, "tpm", NULL);
    g_autofree char *before = NULL, *after = NULL;
    uint8_t rsp[64];
    QTestState *s;
    QDict *status;
    Cmd c;

    g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
    s = start_on(path, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    before = file_digest(path);
    if (!set_immutable(dir, true)) {
        g_test_skip("cannot make a directory immutable here");
        qtest_quit(s);
        return;
    }

    nv_write_cmd(&c, NV_DATA_INDEX, "lost!!!!");
    g_assert_cmphex(cmd_send(s, &c, rsp, sizeof(rsp)), !=, TPM_RC_SUCCESS);

    status = qtest_qmp(s, "{ 'execute': 'query-status' }");
    g_assert_true(qdict_get_bool(qdict_get_qdict(status, "return"),
                                 "running"));
    qobject_unref(status);
    after = file_digest(path);
    g_assert_cmpstr(before, ==, after);

    g_assert_true(set_immutable(dir, false));
    qtest_quit(s);
}

/* The lines of a file */
static unsigned count_lines(const char *path)
{
    g_autofree char *text = NULL;
    unsigned n = 0;
    char *p;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    for (p = text; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

/*
 * With the state file beyond writing, a guest that sends commands and
 * resets the machine as fast as it can gets one report into the host's
 * log for each thing that went wrong, not one per command or per reset:
 * the log has as many lines after a hundred rounds as after five.
 */
static void test_storage_error_log(void)
{
    g_autofree char *dir = state_path("readonly-log");
    g_autofree char *path = g_build_filename(dir, "tpm", NULL);
    g_autofree char *log = g_build_filename(tmp_dir, "readonly.log", NULL);
    g_autofree char *redirect = g_strdup_printf("2>%s", log);
    unsigned round, lines = 0;
    uint8_t rsp[64], random[8];
    QTestState *s;
    Cmd c;

    g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
    s = start_on(path, redirect);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    if (!set_immutable(dir, true)) {
        g_test_skip("cannot make a directory immutable here");
        qtest_quit(s);
        return;
    }

    for (round = 1; round <= 100; round++) {
        /*
         * A start, a command that writes the state, one that does not, a
         * reset: whatever fails, the guest goes on
         */
        tpm_startup(s, TPM2_SU_CLEAR);
        nv_write_cmd(&c, NV_DATA_INDEX, "lost!!!!");
        g_assert_cmphex(cmd_send(s, &c, rsp, sizeof(rsp)), !=,
                        TPM_RC_SUCCESS);
        cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x17b);      /* GetRandom */
        put16(&c, 8);
        cmd_send(s, &c, rsp, sizeof(rsp));
        /* As the guest resets the machine: the reset control register */
        qtest_outb(s, 0xcf9, 0x06);
        qtest_qmp_eventwait(s, "RESET");
        if (round == 5) {
            lines = count_lines(log);
            g_assert_cmpuint(lines, >, 0);
        }
    }
    g_assert_cmpuint(count_lines(log), ==, lines);

    /* The disk is back: the TPM starts at the next reset, and says so */
    g_assert_true(set_immutable(dir, false));
    qtest_system_reset(s);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    tpm_cmd_get_random(s, vtpm_pci_transfer, random, sizeof(random));
    g_assert_cmpuint(count_lines(log), >, lines);
    qtest_quit(s);
}

/* Migration: source and destination each with their own state file */

static char *mig_uri(void)
{
    return g_strdup_printf("unix:%s/mig.sock", tmp_dir);
}

static void mig_start(QTestState **src, QTestState **dst, const char *name)
{
    g_autofree char *src_path = g_strdup_printf("%s/%s-src", tmp_dir, name);
    g_autofree char *dst_path = g_strdup_printf("%s/%s-dst", tmp_dir, name);
    g_autofree char *uri = mig_uri();
    g_autofree char *incoming = g_strdup_printf("-incoming %s", uri);

    *src = start_on(src_path, "");
    *dst = start_on(dst_path, incoming);
}

static void mig_run(QTestState *src, QTestState *dst)
{
    g_autofree char *uri = mig_uri();

    tpm_util_migrate(src, uri);
    tpm_util_wait_for_migration_complete(dst);
}

static uint32_t rsp_handle(const uint8_t *rsp)
{
    return ldl_be_p(rsp + TPM_RSP_HDR_SIZE);
}

/* PCRs, NV, and the state file on the destination */
static void test_migrate_quiet(void)
{
    g_autofree char *dst_path = g_strdup_printf("%s/quiet-dst", tmp_dir);
    uint8_t data[32] = "before migration", pcr[32], expected[32], nv[8];
    QTestState *src, *dst;

    mig_start(&src, &dst, "quiet");
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    pcr_extend(src, data);
    nv_define(src, NV_DATA_INDEX, 0, 8);
    nv_write(src, NV_DATA_INDEX, "migrated");
    mig_run(src, dst);

    pcr_read(dst, pcr);
    pcr_expected(data, expected);
    g_assert_cmpmem(pcr, 32, expected, 32);
    qtest_quit(src);
    qtest_quit(dst);

    /* The destination's file holds the TPM now */
    dst = start_on(dst_path, "");
    g_assert_cmphex(tpm_startup(dst, TPM2_SU_STATE), ==, TPM_RC_SUCCESS);
    nv_read(dst, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "migrated", 8);
    pcr_read(dst, pcr);
    g_assert_cmpmem(pcr, 32, expected, 32);
    qtest_quit(dst);
}

/* A session, a transient object and a hash sequence live on */
static void test_migrate_objects(void)
{
    static const uint8_t nonce[16];
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t digest[32];
    gsize digest_len = sizeof(digest);
    uint32_t session, object, sequence;
    uint8_t rsp[VTPM_PCI_BUFFER_MAX];
    QTestState *src, *dst;
    Cmd c;

    mig_start(&src, &dst, "objects");
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);

    /* TPM2_StartAuthSession: an unbound, unsalted policy session */
    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x176);
    put32(&c, TPM2_RH_NULL);
    put32(&c, TPM2_RH_NULL);
    put_tpm2b(&c, nonce, sizeof(nonce));
    put16(&c, 0);                       /* encryptedSalt */
    c.b[c.len++] = 0x01;                /* TPM_SE_POLICY */
    put16(&c, 0x0010);                  /* no symmetric */
    put16(&c, TPM2_ALG_SHA256);
    cmd_ok(src, &c, rsp, sizeof(rsp));
    session = rsp_handle(rsp);

    /* A transient object */
    vtpm_pci_transfer(src, tpm2_create_primary_rsa2048,
                      tpm2_create_primary_rsa2048_size, rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    object = rsp_handle(rsp);

    /* TPM2_HashSequenceStart, and "abc" into it */
    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x186);
    put16(&c, 0);
    put16(&c, TPM2_ALG_SHA256);
    cmd_ok(src, &c, rsp, sizeof(rsp));
    sequence = rsp_handle(rsp);
    cmd_begin(&c, TPM2_ST_SESSIONS, 0x15c);
    put32(&c, sequence);
    put_pw_session(&c);
    put_tpm2b(&c, "abc", 3);
    cmd_ok(src, &c, rsp, sizeof(rsp));

    mig_run(src, dst);

    /* TPM2_PolicyGetDigest: a fresh policy session's digest is zeros */
    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x189);
    put32(&c, session);
    cmd_ok(dst, &c, rsp, sizeof(rsp));
    g_assert_cmpuint(lduw_be_p(rsp + TPM_RSP_HDR_SIZE), ==, 32);
    g_assert_true(buffer_is_zero(rsp + TPM_RSP_HDR_SIZE + 2, 32));

    /* TPM2_ReadPublic of the object */
    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x173);
    put32(&c, object);
    cmd_ok(dst, &c, rsp, sizeof(rsp));

    /* TPM2_SequenceComplete with "def": SHA-256("abcdef") */
    cmd_begin(&c, TPM2_ST_SESSIONS, 0x13e);
    put32(&c, sequence);
    put_pw_session(&c);
    put_tpm2b(&c, "def", 3);
    put32(&c, TPM2_RH_NULL);
    cmd_ok(dst, &c, rsp, sizeof(rsp));
    /* parameterSize, then TPM2B_DIGEST */
    g_assert_cmpuint(lduw_be_p(rsp + 14), ==, 32);
    g_checksum_update(sha256, (const guchar *)"abcdef", 6);
    g_checksum_get_digest(sha256, digest, &digest_len);
    g_assert_cmpmem(rsp + 16, 32, digest, 32);
    qtest_quit(src);
    qtest_quit(dst);
}

/* TPM2_NV_Increment counts once per call, in flight or not */
static void test_migrate_counter(void)
{
    QTestState *src, *dst;
    uint16_t port;
    uint64_t before;

    mig_start(&src, &dst, "counter");
    port = vtpm_pci_port(src);
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(src, NV_COUNTER_INDEX, 1, 8);
    nv_increment(src, NV_COUNTER_INDEX);
    before = nv_counter(src);

    nv_increment_start(src, port, NV_COUNTER_INDEX);
    mig_run(src, dst);
    g_assert_cmphex(finish(dst, port), ==, TPM_RC_SUCCESS);
    g_assert_cmpuint(nv_counter(dst), ==, before + 1);
    nv_increment(dst, NV_COUNTER_INDEX);
    g_assert_cmpuint(nv_counter(dst), ==, before + 2);
    qtest_quit(src);
    qtest_quit(dst);
}

/*
 * Migration in the middle of writing a command, of reading a response,
 * and with a long command (an RSA-3072 key) executing
 */
static void test_migrate_mid_command(void)
{
    static const uint8_t get_random[] = {
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b,
        0x00, 0x10,
    };
    uint8_t rsp[VTPM_PCI_BUFFER_MAX];
    QTestState *src, *dst;
    uint16_t port;
    uint32_t len;
    Cmd c;

    /* Half a command */
    mig_start(&src, &dst, "mid-write");
    port = vtpm_pci_port(src);
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    vtpm_pci_write_command(src, port, get_random, 6);
    mig_run(src, dst);
    g_assert_cmpuint(vtpm_pci_state(dst, port), ==, VTPM_STATE_RECEIVING);
    vtpm_pci_write_command(dst, port, get_random + 6, 6);
    qtest_outl(dst, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(dst, port);
    len = vtpm_pci_read_response(dst, port, rsp, sizeof(rsp));
    g_assert_cmpuint(len, ==, 12 + 16);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    qtest_quit(src);
    qtest_quit(dst);

    /* Half a response */
    mig_start(&src, &dst, "mid-read");
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    vtpm_pci_write_command(src, port, get_random, sizeof(get_random));
    qtest_outl(src, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    vtpm_pci_wait_done(src, port);
    stl_le_p(rsp, qtest_inl(src, port + A_VTPM_DATA));
    mig_run(src, dst);
    for (len = 4; len < 12 + 16; len += 4) {
        stl_le_p(rsp + len, qtest_inl(dst, port + A_VTPM_DATA));
    }
    g_assert_cmpuint(vtpm_pci_state(dst, port), ==, VTPM_STATE_IDLE);
    g_assert_cmphex(ldl_be_p(rsp + 2), ==, 12 + 16);
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_RC_SUCCESS);
    qtest_quit(src);
    qtest_quit(dst);

    /* TPM2_CreatePrimary of an RSA-3072 storage key, executing */
    mig_start(&src, &dst, "long");
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    memcpy(c.b, tpm2_create_primary_rsa2048,
           tpm2_create_primary_rsa2048_size);
    c.len = tpm2_create_primary_rsa2048_size;
    stw_be_p(c.b + 53, 3072);           /* keyBits */
    vtpm_pci_write_command(src, port, c.b, c.len);
    qtest_outl(src, port + A_VTPM_CONTROL, R_VTPM_CONTROL_START_MASK);
    mig_run(src, dst);
    g_assert_cmphex(finish(dst, port), ==, TPM_RC_SUCCESS);
    qtest_quit(src);
    qtest_quit(dst);
}

/* Poll query-migrate on @s until it reports @status */
static void mig_wait_status(QTestState *s, const char *status)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    for (;;) {
        QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-migrate' }");
        const char *now = qdict_get_try_str(qdict_get_qdict(rsp, "return"),
                                            "status");
        bool done = now && !strcmp(now, status);

        qobject_unref(rsp);
        if (done) {
            return;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
}

static void set_return_path(QTestState *s)
{
    qtest_qmp_assert_success(s, "{ 'execute': 'migrate-set-capabilities',"
                             "  'arguments': { 'capabilities': [ {"
                             "    'capability': 'return-path',"
                             "    'state': true } ] } }");
}

/* The reason query-migrate gives for a failed migration */
static char *mig_error(QTestState *s)
{
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-migrate' }");
    char *desc = g_strdup(qdict_get_try_str(qdict_get_qdict(rsp, "return"),
                                            "error-desc"));

    qobject_unref(rsp);
    return desc;
}

/*
 * A destination that refuses the state (here: a TPM 1.2 receiving a TPM
 * 2.0) fails the migration, and says why; the source carries on, with
 * its lock
 */
static void test_migrate_refused(void)
{
    g_autofree char *src_path = g_strdup_printf("%s/refused-src", tmp_dir);
    g_autofree char *uri = mig_uri();
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t",
        src_path);
    g_autofree char *lock_message = g_strdup_printf(
        "TPM state file '%s' is in use by another process", src_path);
    g_autofree char *reason = NULL;
    QTestState *src, *dst;
    uint8_t random[8];

    src = start_on(src_path, "");
    dst = qtest_initf("-M q35 -tpmdev libtpms,id=t,version=1.2,path=%s/"
                      "refused-dst -device vtpm-pci,tpmdev=t -incoming defer",
                      tmp_dir);
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);

    /* With a return path, the source learns that the destination failed */
    set_return_path(src);
    set_return_path(dst);
    qtest_qmp_assert_success(dst, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "                 'exit-on-error': false } }",
                             uri);
    tpm_util_migrate(src, uri);
    mig_wait_status(src, "failed");
    mig_wait_status(dst, "failed");
    reason = mig_error(dst);
    g_assert_nonnull(strstr(reason, "tpm-libtpms: the incoming state is of "
                            "a TPM 2.0, this one is a TPM 1.2"));
    qtest_quit(dst);

    qtest_qmp_assert_success(src, "{ 'execute': 'cont' }");
    tpm_cmd_get_random(src, vtpm_pci_transfer, random, sizeof(random));
    tpm_cmd_assert_qemu_refuses(args, lock_message);
    qtest_quit(src);
}

/*
 * Shared storage: source and destination on the same state file.  A
 * source resumed by hand after the migration completed ('cont') cannot
 * take the file back from the destination; its TPM fails every command
 * rather than overwrite the destination's state or lose what the guest
 * writes.
 */
static void test_migrate_resumed_source(void)
{
    g_autofree char *path = g_strdup_printf("%s/shared", tmp_dir);
    g_autofree char *uri = mig_uri();
    g_autofree char *incoming = g_strdup_printf("-incoming %s", uri);
    g_autofree char *migrated = NULL, *after = NULL;
    QTestState *src, *dst;
    uint8_t rsp[64], nv[8];
    QDict *status;
    Cmd c;

    src = start_on(path, "");
    dst = start_on(path, incoming);
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(src, NV_DATA_INDEX, 0, 8);
    nv_write(src, NV_DATA_INDEX, "migrated");
    mig_run(src, dst);
    migrated = file_digest(path);

    qtest_qmp_assert_success(src, "{ 'execute': 'cont' }");
    nv_write_cmd(&c, NV_DATA_INDEX, "clobber!");
    g_assert_cmphex(cmd_send(src, &c, rsp, sizeof(rsp)), ==,
                    TPM_RC_FAILURE);
    /* Not only writes: the TPM fails, so that the guest knows */
    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x17b);          /* GetRandom */
    put16(&c, 8);
    g_assert_cmphex(cmd_send(src, &c, rsp, sizeof(rsp)), ==,
                    TPM_RC_FAILURE);
    status = qtest_qmp(src, "{ 'execute': 'query-status' }");
    g_assert_true(qdict_get_bool(qdict_get_qdict(status, "return"),
                                 "running"));
    qobject_unref(status);
    qtest_quit(src);

    /* The file is the destination's, and so is the TPM */
    after = file_digest(path);
    g_assert_cmpstr(after, ==, migrated);
    nv_write(dst, NV_DATA_INDEX, "dst owns");
    nv_read(dst, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "dst owns", 8);
    qtest_quit(dst);
}

/*
 * Damage a TPM 2.0 permanent state of libtpms 0.9 or 0.10 so that its
 * parser reads past its end: the state ends in a block its parser skips
 * (present, 16-bit size 0) and a 4-byte magic; a size of 0xffff has the
 * parser read the magic 64 KiB past the end.
 */
static void permanent_overread(uint8_t *blob, size_t len)
{
    static const uint8_t tail[] = { 0x01, 0x00, 0x00 };

    g_assert_cmpuint(len, >, 7);
    g_assert_cmpmem(blob + len - 7, 3, tail, 3);
    stw_be_p(blob + len - 6, 0xffff);
}

/*
 * A damaged stream fails the incoming migration cleanly, and leaves the
 * destination's state file alone; so does one crafted, digests and all,
 * to make libtpms read past its permanent state
 * (vtpm-pci-migration-fuzz found one)
 */
static void test_migrate_corrupt(void)
{
    g_autofree char *src_path = g_strdup_printf("%s/stream-src", tmp_dir);
    g_autofree char *dst_path = g_strdup_printf("%s/stream-dst", tmp_dir);
    g_autofree char *stream = g_strdup_printf("%s/stream", tmp_dir);
    g_autofree char *bad = g_strdup_printf("%s/stream-bad", tmp_dir);
    g_autofree char *uri = g_strdup_printf("file:%s", stream);
    g_autofree char *img = NULL;
    const char *idstr = "tpm-libtpms";
    char *fields;
    gsize len;
    QTestState *src;
    int i;

    /*
     * -nodefaults, as the destinations below have, so that only the TPM's
     * section can be refused
     */
    src = start_on(src_path, "-nodefaults");
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    tpm_util_migrate(src, uri);
    mig_wait_status(src, "completed");
    qtest_quit(src);

    g_assert_true(g_file_get_contents(stream, &img, &len, NULL));
    fields = memmem(img, len, idstr, strlen(idstr));
    g_assert_nonnull(fields);
    /*
     * idstr, instance id, version; then family (4), running, needs_shutdown,
     * the permanent and volatile states' sizes (4 each) and SHA-256
     * digests, and the states
     */
    fields += strlen(idstr) + 8;
    g_assert_cmpuint(ldl_be_p(fields), ==, 2);

    for (i = 0; i < 4; i++) {
        g_autofree char *copy = g_memdup2(img, len);
        char *f = copy + (fields - img);
        uint32_t permanent_size = ldl_be_p(f + 6);
        g_autofree char *args = g_strdup_printf(
            "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t "
            "-incoming file:%s", dst_path, bad);
        static const char *const reasons[] = {
            "tpm-libtpms/state sizes",
            "the incoming TPM state is damaged: its checksum does not match",
            "libtpms refused the incoming TPM state",
            "libtpms refused the incoming TPM state",
        };

        if (i == 0) {
            /* An absurd size for the permanent state */
            stl_be_p(f + 6, 0x7fffffff);
        } else if (i < 3) {
            /* The permanent state's own header, mangled */
            g_assert_cmpuint(f + 78 + permanent_size - copy, <=, len);
            memset(f + 78, 0xa5, 8);
        } else {
            /* The permanent state made to be read past its end */
            g_assert_cmpuint(f + 78 + permanent_size - copy, <=, len);
            permanent_overread((uint8_t *)f + 78, permanent_size);
        }
        if (i >= 2) {
            /* ... and its digest made to match */
            gsize digest_len = 32;
            g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);

            g_checksum_update(sha256, (guchar *)f + 78, permanent_size);
            g_checksum_get_digest(sha256, (guint8 *)f + 14, &digest_len);
        }
        g_assert_true(g_file_set_contents(bad, copy, len, NULL));
        tpm_cmd_assert_qemu_refuses(args, reasons[i]);
        g_assert_false(g_file_test(dst_path, G_FILE_TEST_EXISTS));
    }
}

/* Wait for job @id to end, and dismiss it; its error, or NULL */
static char *job_end(QTestState *s, const char *id)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    char *error = NULL;

    for (;;) {
        QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-jobs' }");
        QList *jobs = qdict_get_qlist(rsp, "return");
        QDict *job = qobject_to(QDict, qlist_peek(jobs));
        bool done;

        g_assert_nonnull(job);
        g_assert_cmpstr(qdict_get_str(job, "id"), ==, id);
        done = !strcmp(qdict_get_str(job, "status"), "concluded");
        if (done) {
            error = g_strdup(qdict_get_try_str(job, "error"));
        }
        qobject_unref(rsp);
        if (done) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
    qtest_qmp_assert_success(s, "{ 'execute': 'job-dismiss',"
                             "  'arguments': { 'id': %s } }", id);
    return error;
}

/* Wait for job @id to succeed, and dismiss it */
static void job_wait(QTestState *s, const char *id)
{
    g_autofree char *error = job_end(s, id);

    g_assert_null(error);
}

/* A qcow2 image to hold snapshots, created or opened, as disk0 */
static void snapshot_disk(QTestState *s, const char *image, bool create)
{
    if (create) {
        g_assert_true(g_file_set_contents(image, "", 0, NULL));
    }
    qtest_qmp_assert_success(s, "{ 'execute': 'blockdev-add', 'arguments': {"
                             " 'driver': 'file', 'node-name': 'file0',"
                             " 'filename': %s } }", image);
    if (create) {
        qtest_qmp_assert_success(s, "{ 'execute': 'blockdev-create',"
                                 "  'arguments': { 'job-id': 'create',"
                                 "  'options': { 'driver': 'qcow2',"
                                 "  'file': 'file0', 'size': 1048576 } } }");
        job_wait(s, "create");
    }
    qtest_qmp_assert_success(s, "{ 'execute': 'blockdev-add', 'arguments': {"
                             " 'driver': 'qcow2', 'node-name': 'disk0',"
                             " 'file': 'file0' } }");
}

/*
 * snapshot-save or snapshot-load of the snapshot "snap" on disk0; the
 * job's error, or NULL
 */
static char *snapshot_run(QTestState *s, const char *what)
{
    g_autofree char *command = g_strdup_printf("snapshot-%s", what);

    qtest_qmp_assert_success(s, "{ 'execute': %s,"
                             "  'arguments': { 'job-id': 'snap-job',"
                             "  'tag': 'snap', 'vmstate': 'disk0',"
                             "  'devices': [ 'disk0' ] } }", command);
    return job_end(s, "snap-job");
}

static void snapshot_job(QTestState *s, const char *what)
{
    g_autofree char *error = snapshot_run(s, what);

    g_assert_null(error);
}

/*
 * A new TPM with "snapshot" in its NV index and @first extended into
 * PCR 10, saved as the snapshot "snap" in a new qcow2 @image
 */
static void snapshot_first(QTestState *s, const char *image,
                           const uint8_t *first)
{
    snapshot_disk(s, image, true);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "snapshot");
    pcr_extend(s, first);
    snapshot_job(s, "save");
}

/* A QEMU started on @path finds @data (8 bytes) in the TPM's NV index */
static void assert_state_nv(const char *path, const char *data)
{
    QTestState *s = start_on(path, "");
    uint8_t nv[8];

    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, data, 8);
    qtest_quit(s);
}

/*
 * savevm/loadvm: the TPM rolls back with the VM, and the state file
 * follows it
 */
static void test_snapshot(void)
{
    g_autofree char *path = state_path("snapshot");
    g_autofree char *image = state_path("snapshot.qcow2");
    uint8_t first[32] = "first", second[32] = "second";
    uint8_t pcr[32], expected[32], nv[8];
    QTestState *s = start_on(path, "");

    snapshot_first(s, image, first);

    nv_write(s, NV_DATA_INDEX, "changed!");
    pcr_extend(s, second);
    snapshot_job(s, "load");

    /* Back to the snapshot: one extend, the first NV contents */
    pcr_read(s, pcr);
    pcr_expected(first, expected);
    g_assert_cmpmem(pcr, 32, expected, 32);
    nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "snapshot", 8);
    qtest_quit(s);

    /* And so is the state file */
    assert_state_nv(path, "snapshot");
}

/* Another QEMU started on @path is refused: the TPM is in use */
static void assert_path_locked(const char *path)
{
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t",
        path);
    g_autofree char *message = g_strdup_printf(
        "TPM state file '%s' is in use by another process", path);

    tpm_cmd_assert_qemu_refuses(args, message);
}

/*
 * The lock stays with the TPM through every state of the VM that hands
 * nothing over: running, stopped, savevm and loadvm (stopped, then
 * running again)
 */
static void test_lock_states(void)
{
    g_autofree char *path = state_path("lock-states");
    g_autofree char *image = state_path("lock-states.qcow2");
    QTestState *s = start_on(path, "");

    snapshot_disk(s, image, true);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "locked!!");
    assert_path_locked(path);

    qtest_qmp_assert_success(s, "{ 'execute': 'stop' }");
    assert_path_locked(path);
    snapshot_job(s, "save");
    assert_path_locked(path);
    snapshot_job(s, "load");
    assert_path_locked(path);
    qtest_qmp_assert_success(s, "{ 'execute': 'cont' }");
    assert_path_locked(path);

    /* And the TPM saves its state all along */
    nv_write(s, NV_DATA_INDEX, "still ok");
    qtest_quit(s);
    assert_state_nv(path, "still ok");
}

/*
 * Make the persistent object whose TPM2B_PUBLIC is @pub, in a TPM 2.0
 * permanent state, one that crashes libtpms 0.9 and 0.10: its sensitive
 * part (which follows the public one, and its RSA modulus) of the type
 * TPM_ALG_ERROR, which they assert has no seed, while it keeps the
 * object's.  The failed assertion longjmp()s to a jump buffer that only
 * a command in progress sets.
 */
static void sensitive_crash(uint8_t *blob, size_t len, GBytes *pub)
{
    gsize pub_len;
    const uint8_t *p = g_bytes_get_data(pub, &pub_len);
    uint8_t *modulus;

    g_assert_cmpuint(pub_len, >, 256);
    modulus = memmem(blob, len, p + pub_len - 256, 256);
    g_assert_nonnull(modulus);
    g_assert_cmpuint(modulus + 256 + 2 - blob, <=, len);
    g_assert_cmphex(lduw_be_p(modulus + 256), ==, 0x0001); /* TPM_ALG_RSA */
    stw_be_p(modulus + 256, 0x0000);                       /* ..._ERROR */
}

/*
 * Change the TPM state in the snapshot in @image, in place (QEMU has the
 * image open): its family to @family, or with @family 0, the permanent
 * state's header, or with @ek too, the persistent object of that public
 * part (sensitive_crash()), with the digest made to match
 */
static void snapshot_tamper(const char *image, uint32_t family,
                            GBytes *ek)
{
    g_autofree char *img = NULL;
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    const char *idstr = "tpm-libtpms";
    gsize digest_len = 32;
    uint32_t permanent_size;
    char *f;
    gsize len;
    int fd;

    /*
     * As in test_migrate_corrupt: family (4), running, needs_shutdown,
     * the sizes (4 each), the digests (32 each), the permanent state
     */
    g_assert_true(g_file_get_contents(image, &img, &len, NULL));
    f = memmem(img, len, idstr, strlen(idstr));
    g_assert_nonnull(f);
    f += strlen(idstr) + 8;
    permanent_size = ldl_be_p(f + 6);
    g_assert_cmpuint(permanent_size, <, 64 * 1024);
    g_assert_cmpuint(f + 78 + permanent_size - img, <=, len);
    stl_be_p(f, family ? family : 2);
    if (!family) {
        if (ek) {
            sensitive_crash((uint8_t *)f + 78, permanent_size, ek);
        } else {
            memset(f + 78, 0xa5, 8);
        }
        g_checksum_update(sha256, (guchar *)f + 78, permanent_size);
        g_checksum_get_digest(sha256, (guint8 *)f + 14, &digest_len);
    }
    fd = open(image, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, f, 78 + permanent_size, f - img), ==,
                    78 + permanent_size);
    close(fd);
}

/*
 * A snapshot whose TPM state the backend or libtpms refuses fails to
 * load, and leaves the TPM as the reset before the load left it
 * (snapshot-load resets the machine first): running, its NV data as
 * before, its state file and its lock.  Before, a state that libtpms
 * refused left no TPM at all.
 */
static void test_snapshot_refused(void)
{
    g_autofree char *path = state_path("snapshot-refused");
    g_autofree char *image = state_path("snapshot-refused.qcow2");
    uint8_t first[32] = "first", second[32] = "second";
    uint8_t pcr[32], zeros[32] = { 0 }, nv[8];
    static const struct {
        uint32_t family;
        const char *error;
    } cases[] = {
        { 7, "the incoming state is of an unknown TPM family, 7" },
        { 0, "libtpms refused the incoming TPM state" },
    };
    QTestState *s = start_on(path, "");
    size_t i;

    snapshot_first(s, image, first);
    nv_write(s, NV_DATA_INDEX, "current!");
    pcr_extend(s, second);

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *error = NULL;

        snapshot_tamper(image, cases[i].family, NULL);
        error = snapshot_run(s, "load");
        g_assert_nonnull(error);
        g_assert_nonnull(strstr(error, cases[i].error));
        qtest_qmp_assert_success(s, "{ 'execute': 'cont' }");

        /* Reset, not gone: it starts up, and PCR 10 is back at zero */
        g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
        pcr_read(s, pcr);
        g_assert_cmpmem(pcr, 32, zeros, 32);
        pcr_extend(s, second);
        nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
        g_assert_cmpmem(nv, 8, "current!", 8);
        assert_path_locked(path);
    }
    qtest_quit(s);

    /* ... and so is its state file */
    assert_state_nv(path, "current!");
}

/* QEMU's seccomp sandbox, with everything it can deny denied */
#define SANDBOX_ARGS "-sandbox on,obsolete=deny,elevateprivileges=deny," \
                     "spawn=deny,resourcecontrol=deny"

/* Was QEMU built with seccomp (-sandbox)? */
static bool sandbox_built(void)
{
    QTestState *s = qtest_init("-M none");
    QDict *rsp = qtest_qmp(s, "{ 'execute': 'query-command-line-options',"
                           "  'arguments': { 'option': 'sandbox' } }");
    bool built = qdict_haskey(rsp, "return");

    qobject_unref(rsp);
    qtest_quit(s);
    return built;
}

/* How many times @path holds @text */
static unsigned count_text(const char *path, const char *text)
{
    g_autofree char *log = NULL;
    unsigned n = 0;
    char *p;

    g_assert_true(g_file_get_contents(path, &log, NULL, NULL));
    for (p = log; (p = strstr(p, text)); p++) {
        n++;
    }
    return n;
}

/*
 * Under the sandbox, the card and a libtpms TPM with a state file work:
 * commands, state writes, savevm and loadvm, and a migration to a QEMU
 * on the same file, sandboxed too.  The sandbox denies the child process
 * that tries a state from outside: the destination of the migration
 * says so once; the source, which loads a snapshot of its own, has
 * nothing to try.
 */
static void test_sandbox(void)
{
    g_autofree char *path = state_path("sandbox");
    g_autofree char *image = state_path("sandbox.qcow2");
    g_autofree char *src_log = state_path("sandbox-src.log");
    g_autofree char *dst_log = state_path("sandbox-dst.log");
    g_autofree char *uri = mig_uri();
    g_autofree char *source = g_strdup_printf(SANDBOX_ARGS " 2>%s", src_log);
    g_autofree char *incoming = g_strdup_printf(
        SANDBOX_ARGS " -incoming %s 2>%s", uri, dst_log);
    static const char untried[] = "cannot try TPM states in a child process";
    QTestState *src, *dst;
    uint8_t nv[8];

    if (!sandbox_built()) {
        /* The sanitizer builds; check.sh makes sure the product has it */
        g_test_skip("QEMU built without seccomp");
        return;
    }
    src = start_on(path, source);
    snapshot_disk(src, image, true);
    g_assert_cmphex(tpm_startup(src, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(src, NV_DATA_INDEX, 0, 8);
    nv_write(src, NV_DATA_INDEX, "sandbox1");
    snapshot_job(src, "save");
    nv_write(src, NV_DATA_INDEX, "sandbox2");
    snapshot_job(src, "load");
    nv_read(src, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "sandbox1", 8);

    dst = start_on(path, incoming);
    mig_run(src, dst);
    qtest_quit(src);
    nv_read(dst, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "sandbox1", 8);
    nv_write(dst, NV_DATA_INDEX, "sandbox3");
    qtest_quit(dst);
    g_assert_cmpuint(count_text(src_log, untried), ==, 0);
    g_assert_cmpuint(count_text(dst_log, untried), ==, 1);

    /* What the sandboxed TPM wrote is in the file */
    assert_state_nv(path, "sandbox3");
}

/* A state file holding one blob, laid out as tpm_nvfile.c does */
static void write_state(const char *path, uint32_t family, const char *name,
                        const void *blob, size_t len)
{
    g_autoptr(GChecksum) sha256 = g_checksum_new(G_CHECKSUM_SHA256);
    g_autoptr(GByteArray) img = g_byte_array_new();
    uint8_t header[52] = "QEMUTPMS", num[4];
    gsize digest_len = 32;

    g_byte_array_append(img, header, sizeof(header));
    stw_be_p(num, strlen(name));
    g_byte_array_append(img, num, 2);
    g_byte_array_append(img, (const guint8 *)name, strlen(name));
    stl_be_p(num, len);
    g_byte_array_append(img, num, 4);
    g_byte_array_append(img, blob, len);
    stl_be_p(img->data + 8, 1);                 /* format */
    stl_be_p(img->data + 12, family);
    stl_be_p(img->data + 16, img->len - sizeof(header));
    g_checksum_update(sha256, img->data + sizeof(header),
                      img->len - sizeof(header));
    g_checksum_get_digest(sha256, img->data + 20, &digest_len);
    g_assert_true(g_file_set_contents(path, (const char *)img->data,
                                      img->len, NULL));
}

/*
 * Blob @name of the state file at @path: QEMU's file, as write_state()
 * lays it out, or swtpm's linear file (of which the blob's slot, after
 * swtpm's header of 16 bytes)
 */
static GBytes *read_state_blob(const char *path, const char *name)
{
    static const char *const slots[] = {
        "permall", "volatilestate", "savestate",
    };
    g_autofree char *img = NULL;
    gsize len, pos = 52;
    int i;

    g_assert_true(g_file_get_contents(path, &img, &len, NULL));
    for (i = 0; !memcmp(img, "nilmptws", 8) && i < ARRAY_SIZE(slots); i++) {
        uint32_t offset = ldl_le_p(img + 12 + 12 * i);
        uint32_t size = ldl_le_p(img + 16 + 12 * i);

        if (!strcmp(name, slots[i])) {
            g_assert_cmpuint(offset, >=, 192);
            g_assert_cmpuint(size, >=, 16);
            g_assert_cmpuint(offset + size, <=, len);
            return g_bytes_new(img + offset + 16, size - 16);
        }
    }
    while (pos + 2 <= len) {
        size_t name_len = lduw_be_p(img + pos);
        size_t blob_len;

        g_assert_cmpuint(pos + 2 + name_len + 4, <=, len);
        blob_len = ldl_be_p(img + pos + 2 + name_len);
        g_assert_cmpuint(pos + 6 + name_len + blob_len, <=, len);
        if (name_len == strlen(name) && !memcmp(img + pos + 2, name,
                                                name_len)) {
            return g_bytes_new(img + pos + 6 + name_len, blob_len);
        }
        pos += 6 + name_len + blob_len;
    }
    g_assert_not_reached();
}

/*
 * A state file whose permanent state makes libtpms read 64 KiB past it
 * (tpm-libtpms-state-fuzz found it; see fuzz/libtpms/README.md): the
 * state reaches libtpms followed by zeros, the TPM fails as for any
 * state libtpms refuses, and the file is left as it is.  Under ASan the
 * read itself is the failure.
 */
static void test_libtpms_overread(void)
{
    g_autofree char *good = state_path("overread-good");
    g_autofree char *path = state_path("overread");
    g_autofree char *before = NULL, *after = NULL;
    g_autoptr(GBytes) permanent = NULL;
    g_autofree uint8_t *blob = NULL;
    gsize len;
    QTestState *s;

    s = start_on(good, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);
    permanent = read_state_blob(good, "permall");

    /* The good state loads as it is, and through the same path */
    write_state(path, 2, "permall", g_bytes_get_data(permanent, NULL),
                g_bytes_get_size(permanent));
    s = start_on(path, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);

    blob = g_bytes_unref_to_data(g_steal_pointer(&permanent), &len);
    permanent_overread(blob, len);
    write_state(path, 2, "permall", blob, len);
    before = file_digest(path);
    s = start_on(path, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_FAIL);
    qtest_quit(s);
    after = file_digest(path);
    g_assert_cmpstr(before, ==, after);
}

/*
 * A TPM state that crashes libtpms, in a snapshot or in a state file
 * (tpm-libtpms-state-fuzz found one): libtpms tries it in a child
 * process first, and QEMU refuses it.  The failed loadvm leaves the TPM
 * as the load found it; QEMU does not start on the state file, and
 * leaves it alone.
 */
static void test_libtpms_crash(void)
{
    g_autofree char *path = state_path("crash");
    g_autofree char *bad = state_path("crash-file");
    g_autofree char *image = state_path("crash.qcow2");
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t", bad);
    g_autofree char *message = g_strdup_printf(
        "TPM state file '%s' is refused: libtpms does not survive loading "
        "it", bad);
    g_autofree char *error = NULL, *before = NULL, *after = NULL;
    g_autoptr(GBytes) ek = NULL, permanent = NULL;
    g_autofree uint8_t *blob = NULL;
    uint32_t handle;
    uint8_t nv[8];
    gsize len;
    QTestState *s = start_on(path, "");

    snapshot_disk(s, image, true);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    ek = create_ek(s, &handle);
    evict_control(s, handle, EK_HANDLE);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "snapshot");
    snapshot_job(s, "save");
    nv_write(s, NV_DATA_INDEX, "current!");

    snapshot_tamper(image, 0, ek);
    error = snapshot_run(s, "load");
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error, "the incoming TPM state is refused: "
                            "libtpms does not survive loading it"));
    qtest_qmp_assert_success(s, "{ 'execute': 'cont' }");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "current!", 8);
    qtest_quit(s);

    permanent = read_state_blob(path, "permall");
    blob = g_bytes_unref_to_data(g_steal_pointer(&permanent), &len);
    sensitive_crash(blob, len, ek);
    write_state(bad, 2, "permall", blob, len);
    before = file_digest(bad);
    tpm_cmd_assert_qemu_refuses(args, message);
    after = file_digest(bad);
    g_assert_cmpstr(before, ==, after);
}

/*
 * A well-formed file whose TPM state libtpms refuses: QEMU runs, the TPM
 * fails every command, the file is left as it is, and loading a snapshot
 * brings the TPM back.  tpm-libtpms-state-fuzz found that a failed start
 * left libtpms unusable until QEMU exited, and that a TPM 1.2 given a
 * volatile state but no permanent one stored a new TPM in the file
 * before it failed.
 */
static void test_refused_state(void)
{
    g_autofree char *path = state_path("refused");
    g_autofree char *image = state_path("refused.qcow2");
    g_autofree char *before = NULL, *after = NULL;
    static const uint8_t startup12[] = {
        0x00, 0xc1, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x99,
        0x00, 0x01,
    };
    uint8_t nv[8], rsp[16];
    QTestState *s;

    write_state(path, 1, "volatilestate", "", 0);
    before = file_digest(path);
    s = qtest_initf("-M q35 -tpmdev libtpms,id=t,path=%s,version=1.2 "
                    "-device vtpm-pci,tpmdev=t", path);
    vtpm_pci_transfer(s, startup12, sizeof(startup12), rsp, sizeof(rsp));
    g_assert_cmphex(ldl_be_p(rsp + 6), ==, TPM_FAIL);
    qtest_quit(s);
    after = file_digest(path);
    g_assert_cmpstr(before, ==, after);
    g_clear_pointer(&before, g_free);
    g_clear_pointer(&after, g_free);
    g_unlink(path);

    s = start_on(path, "");

    snapshot_disk(s, image, true);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "snapshot");
    snapshot_job(s, "save");
    qtest_quit(s);

    write_state(path, 2, "permall", "not a TPM 2.0 state", 19);
    before = file_digest(path);
    s = start_on(path, "");
    snapshot_disk(s, image, false);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_FAIL);
    after = file_digest(path);
    g_assert_cmpstr(before, ==, after);

    snapshot_job(s, "load");
    nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, "snapshot", 8);
    qtest_quit(s);

    /* The file holds the snapshot's TPM now */
    assert_state_nv(path, "snapshot");
}

/*
 * swtpm's state: swtpm's linear file (path=) and its directory (dir=),
 * which swtpm 0.7.1 reads and writes as -tpmdev libtpms does
 */

#define SWTPM_LINEAR_HEADER     192
#define SWTPM_BLOB_HEADER       16      /* swtpm's header and its tag */

/*
 * The swtpm the test runs: Debian 12's (0.7.1) from PATH, or a newer one
 * that QTEST_SWTPM_NEWER names (build-aux/swtpm-sid.sh)
 */
static const char *swtpm_bin = "swtpm";

/*
 * swtpm on @tpmstate (its --tpmstate), with the arguments @args (or
 * NULL), its socket in tmp_dir
 */
static GPid swtpm_start_args(const char *tpmstate, const char *const *args,
                             char **sock)
{
    g_autoptr(SocketAddress) addr = NULL;
    g_autoptr(GError) err = NULL;
    GPid pid;

    if (!tpm_util_swtpm_start_state(swtpm_bin, tpmstate, tmp_dir, args,
                                    &pid, &addr, &err)) {
        g_error("cannot start swtpm: %s", err->message);
    }
    *sock = g_strdup(addr->u.q_unix.path);
    return pid;
}

/*
 * Stop the swtpm @pid on @tpmstate, and wait until it has let go of the
 * state: until its lock (the directory's, or swtpm 0.10's on its file)
 * is free, which the kernel frees when it has ended the process
 */
static void swtpm_stop(GPid pid, const char *tpmstate)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
    };
    g_autofree char *lock = NULL;
    int fd;

    tpm_util_swtpm_kill(pid);
    if (g_str_has_prefix(tpmstate, "dir=")) {
        lock = g_build_filename(tpmstate + strlen("dir="), ".lock", NULL);
    } else {
        g_assert_true(g_str_has_prefix(tpmstate, "backend-uri=file://"));
        lock = g_strndup(tpmstate + strlen("backend-uri=file://"),
                         strcspn(tpmstate + strlen("backend-uri=file://"),
                                 ","));
    }
    fd = open(lock, O_RDWR);
    if (fd >= 0) {
        g_assert_cmpint(RETRY_ON_EINTR(fcntl(fd, F_SETLKW, &fl)), ==, 0);
        close(fd);
    }
}

/*
 * swtpm started on @tpmstate, which QEMU holds, fails to lock it and
 * exits at once (timeout(1) ends it after a minute, should it not: a
 * lock that does not keep it out)
 */
static void swtpm_refused(const char *tpmstate)
{
    g_autofree char *server = g_strdup_printf("type=unixio,path=%s/lock-sock",
                                              tmp_dir);
    const char *argv[] = {
        "timeout", "60", swtpm_bin, "socket", "--tpm2", "--tpmstate",
        tpmstate, "--flags", "not-need-init,startup-clear", "--server",
        server, NULL,
    };
    g_autoptr(GError) gerr = NULL;
    g_autofree char *err = NULL;
    int status;

    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                               G_SPAWN_SEARCH_PATH |
                               G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                               &err, &status, &gerr));
    g_assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert_nonnull(strstr(err, "Could not lock"));
}

/* swtpm_start_args() with --flags @flags, or none */
static GPid swtpm_start(const char *tpmstate, const char *flags,
                        char **sock)
{
    const char *const args[] = { "--flags", flags, NULL };

    return swtpm_start_args(tpmstate, flags ? args : NULL, sock);
}

static QTestState *start_emulator(const char *sock)
{
    return qtest_initf("-M q35 -chardev socket,id=chr,path=%s "
                       "-tpmdev emulator,id=t,chardev=chr "
                       "-device vtpm-pci,tpmdev=t", sock);
}

/*
 * A TPM that swtpm kept, or this QEMU: after its last TPM2_Shutdown or
 * none, either takes TPM2_Startup(CLEAR), or a TPM restored from a
 * volatile state says it is initialized already
 */
static void startup_any(QTestState *s)
{
    uint32_t rc = tpm_startup(s, TPM2_SU_CLEAR);

    g_assert_true(rc == TPM_RC_SUCCESS || rc == TPM_RC_INITIALIZE);
}

/*
 * A swtpm that QEMU's emulator backend has started (CMD_INIT: the lock
 * is taken then, by swtpm 0.7 before it reads the state and by 0.10
 * after) on @tpmstate keeps a QEMU with @args out, with @message
 */
static void swtpm_holds_lock(const char *tpmstate, const char *args,
                             const char *message)
{
    g_autofree char *sock = NULL;
    GPid pid = swtpm_start_args(tpmstate, NULL, &sock);
    QTestState *s = start_emulator(sock);

    startup_any(s);
    tpm_cmd_assert_qemu_refuses(args, message);
    qtest_quit(s);
    swtpm_stop(pid, tpmstate);
}

/*
 * The TPM on @s has the NV index NV_DATA_INDEX holding @data, and the EK
 * @ek (the public part of TPM2_CreatePrimary's, from the endorsement
 * seed: the same TPM); then it writes @next there
 */
static void swtpm_round(QTestState *s, const char *data, GBytes *ek,
                        const char *next)
{
    g_autoptr(GBytes) pub = NULL;
    uint32_t handle;
    uint8_t nv[8];

    startup_any(s);
    nv_read(s, NV_DATA_INDEX, nv, sizeof(nv));
    g_assert_cmpmem(nv, 8, data, 8);
    pub = create_ek(s, &handle);
    g_assert_true(g_bytes_equal(pub, ek));
    tpm_cmd_flush(s, vtpm_pci_transfer, handle);
    nv_write(s, NV_DATA_INDEX, next);
    qtest_quit(s);
}

/* A new TPM on @s: its EK, and NV_DATA_INDEX holding @data */
static GBytes *swtpm_first(QTestState *s, const char *data)
{
    g_autoptr(GBytes) ek = NULL;
    uint32_t handle;

    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    ek = create_ek(s, &handle);
    tpm_cmd_flush(s, vtpm_pci_transfer, handle);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, data);
    qtest_quit(s);
    return g_steal_pointer(&ek);
}

/* swtpm_round() with swtpm on @tpmstate */
static void swtpm_round_in_swtpm(const char *tpmstate, const char *data,
                                 GBytes *ek, const char *next)
{
    g_autofree char *sock = NULL;
    GPid pid = swtpm_start(tpmstate, NULL, &sock);

    swtpm_round(start_emulator(sock), data, ek, next);
    swtpm_stop(pid, tpmstate);
}

static void assert_magic(const char *path, const char *magic)
{
    g_autofree char *img = NULL;
    gsize len;

    g_assert_true(g_file_get_contents(path, &img, &len, NULL));
    g_assert_cmpuint(len, >=, 8);
    g_assert_cmpmem(img, 8, magic, 8);
}

/*
 * A TPM moves from swtpm to -tpmdev libtpms and back, on swtpm's state
 * @tpmstate, which @libtpms_opt names for -tpmdev libtpms
 */
static void swtpm_both_ways(const char *tpmstate, const char *libtpms_opt)
{
    g_autoptr(GBytes) ek = NULL;
    g_autofree char *sock = NULL;
    QTestState *s;
    GPid pid;

    /* Made by swtpm */
    pid = swtpm_start(tpmstate, NULL, &sock);
    ek = swtpm_first(start_emulator(sock), "swtpm  1");
    swtpm_stop(pid, tpmstate);

    /* Opened in QEMU, changed, twice */
    s = qtest_initf("-M q35 -tpmdev libtpms,id=t,%s "
                    "-device vtpm-pci,tpmdev=t", libtpms_opt);
    swtpm_round(s, "swtpm  1", ek, "libtpms2");
    s = qtest_initf("-M q35 -tpmdev libtpms,id=t,%s "
                    "-device vtpm-pci,tpmdev=t", libtpms_opt);
    swtpm_round(s, "libtpms2", ek, "libtpms3");

    /* Back to swtpm, which sees the change */
    swtpm_round_in_swtpm(tpmstate, "libtpms3", ek, "swtpm  4");
}

static void test_swtpm_dir(void)
{
    g_autofree char *dir = state_path("swtpm-dir");
    g_autofree char *tpmstate = g_strdup_printf("dir=%s", dir);
    g_autofree char *permall = g_build_filename(dir, "tpm2-00.permall", NULL);
    g_autofree char *img = NULL;
    gsize len;

    g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
    swtpm_both_ways(tpmstate, tpmstate);

    /* swtpm's header, and the tag of its data, before libtpms' state */
    g_assert_true(g_file_get_contents(permall, &img, &len, NULL));
    g_assert_cmpuint(len, >, SWTPM_BLOB_HEADER);
    g_assert_cmpuint(ldl_be_p(img + 6), ==, len);
    g_assert_cmpuint(lduw_be_p(img + 10), ==, 1);
    g_assert_cmpuint(ldl_be_p(img + 12), ==, len - SWTPM_BLOB_HEADER);
}

static void test_swtpm_file(void)
{
    g_autofree char *path = state_path("swtpm-file");
    g_autofree char *tpmstate = g_strdup_printf("backend-uri=file://%s",
                                                path);
    g_autofree char *opt = g_strdup_printf("path=%s", path);

    swtpm_both_ways(tpmstate, opt);
}

/* A new path= is swtpm's linear file, which swtpm opens */
static void test_swtpm_new_file(void)
{
    g_autofree char *path = state_path("swtpm-new-file");
    g_autofree char *tpmstate = g_strdup_printf("backend-uri=file://%s",
                                                path);
    g_autoptr(GBytes) ek = swtpm_first(start_on(path, ""), "libtpms1");

    assert_magic(path, "nilmptws");
    swtpm_round_in_swtpm(tpmstate, "libtpms1", ek, "swtpm  2");
    swtpm_round(start_on(path, ""), "swtpm  2", ek, "libtpms3");
}

/* QEMU's file turns into swtpm's with format=swtpm, and back */
static void test_swtpm_convert(void)
{
    g_autofree char *path = state_path("swtpm-convert");
    g_autofree char *tpmstate = g_strdup_printf("backend-uri=file://%s",
                                                path);
    g_autoptr(GBytes) ek = swtpm_first(start_on(path, ",format=qemu"),
                                       "qemu   1");
    QTestState *s;

    assert_magic(path, "QEMUTPMS");

    /* Without format=, the file keeps its format */
    swtpm_round(start_on(path, ""), "qemu   1", ek, "qemu   2");
    assert_magic(path, "QEMUTPMS");

    /* Converted when QEMU starts, before the guest writes anything */
    s = start_on(path, ",format=swtpm");
    assert_magic(path, "nilmptws");
    qtest_quit(s);
    swtpm_round_in_swtpm(tpmstate, "qemu   2", ek, "swtpm  3");

    s = start_on(path, ",format=qemu");
    assert_magic(path, "QEMUTPMS");
    swtpm_round(s, "swtpm  3", ek, "qemu   4");
}

/*
 * swtpm and QEMU never open one TPM at once, whichever comes first: on
 * the directory, swtpm's lock; on the linear file, which swtpm 0.7.1
 * does not lock, the lock swtpm 0.10 takes (--tpmstate ...,lock), a
 * process-associated lock on the file itself, which this test takes
 */
static void test_swtpm_lock_dir(void)
{
    g_autofree char *dir = state_path("swtpm-lock-dir");
    g_autofree char *tpmstate = g_strdup_printf("dir=%s", dir);
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,dir=%s -device vtpm-pci,tpmdev=t", dir);
    g_autofree char *message = g_strdup_printf(
        "TPM state directory '%s' is in use by another process", dir);
    QTestState *s;

    g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);

    /* swtpm first */
    swtpm_holds_lock(tpmstate, args, message);

    /* QEMU first, and a second QEMU */
    s = qtest_initf("%s", args);
    startup_any(s);
    tpm_cmd_assert_qemu_refuses(args, message);
    swtpm_refused(tpmstate);
    /* QEMU's TPM is unharmed */
    nv_define(s, NV_DATA_INDEX, 0, 8);
    nv_write(s, NV_DATA_INDEX, "unharmd");
    qtest_quit(s);
}

/* The lock swtpm 0.10 takes on its linear file: of the whole file */
static int lock_file(const char *path, short type)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
    };
    int fd = open(path, O_RDWR);

    g_assert_cmpint(fd, >=, 0);
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        g_assert_true(errno == EAGAIN || errno == EACCES);
        close(fd);
        return -1;
    }
    return fd;
}

static void test_swtpm_lock_file(void)
{
    g_autofree char *path = state_path("swtpm-lock-file");
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t", path);
    g_autofree char *message = g_strdup_printf(
        "TPM state file '%s' is in use by another process (a lock on it)",
        path);
    QTestState *s;
    int fd;

    s = start_on(path, "");
    startup_any(s);
    /* Locked, and so is every file that replaces it */
    g_assert_cmpint(lock_file(path, F_WRLCK), ==, -1);
    nv_define(s, NV_DATA_INDEX, 0, 8);
    g_assert_cmpint(lock_file(path, F_WRLCK), ==, -1);
    nv_write(s, NV_DATA_INDEX, "locked 1");
    g_assert_cmpint(lock_file(path, F_WRLCK), ==, -1);
    qtest_quit(s);

    /* The other process first */
    fd = lock_file(path, F_WRLCK);
    g_assert_cmpint(fd, >=, 0);
    tpm_cmd_assert_qemu_refuses(args, message);
    close(fd);
    assert_state_nv(path, "locked 1");
}

/*
 * swtpm states QEMU does not read are refused with a message that says
 * why, and left as they are
 */
static void test_swtpm_corrupt(void)
{
    g_autofree char *good = state_path("swtpm-good");
    g_autofree char *img = NULL;
    uint32_t permall;
    QTestState *s;
    gsize len;
    size_t i;
    static const struct {
        const char *name;
        const char *message;
    } cases[] = {
        { "header-size", " has a header of 100 bytes; swtpm's is 192" },
        { "version", " has swtpm's format version 2; this QEMU reads "
          "version 1" },
        { "slot", " uses slot 3, which swtpm does not" },
        { "bounds", ": permall is out of bounds" },
        { "blob-size", ": permall is truncated: " },
        { "encrypted", ": permall is encrypted with swtpm's --key or "
          "--pwdfile option" },
        { "migration", ": permall is one of swtpm's migration blobs" },
        { "reader", ": permall needs a reader of swtpm's blob version 3" },
        { "tag", ": permall has an unexpected tag 2 at offset 10" },
        { "newer", " is refused: it was written by a newer libtpms" },
        { "tpm12", " is refused: it holds a TPM 2.0, not a TPM 1.2" },
    };

    s = start_on(good, "");
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);
    qtest_quit(s);
    g_assert_true(g_file_get_contents(good, &img, &len, NULL));
    permall = ldl_le_p(img + 12);
    g_assert_cmpuint(permall, >=, SWTPM_LINEAR_HEADER);
    g_assert_cmpuint(permall + SWTPM_BLOB_HEADER + 8, <=, len);

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = state_path(cases[i].name);
        g_autofree char *args = g_strdup_printf(
            "-M q35 -tpmdev libtpms,id=t,path=%s%s -device vtpm-pci,tpmdev=t",
            path, i == 10 ? ",version=1.2" : "");
        g_autofree char *message = g_strdup_printf(
            "TPM state file '%s'%s", path, cases[i].message);
        g_autofree char *before = NULL, *after = NULL;
        g_autofree uint8_t *copy = g_memdup2(img, len);
        uint8_t *blob = copy + permall;

        switch (i) {
        case 0:
            stw_le_p(copy + 10, 100);
            break;
        case 1:
            copy[8] = 2;
            break;
        case 2:
            memcpy(copy + 12 + 3 * 12, copy + 12, 12);
            break;
        case 3:
            stl_le_p(copy + 16, len);
            stl_le_p(copy + 20, len);
            break;
        case 4:
            stl_be_p(blob + 6, ldl_be_p(blob + 6) + 1);
            break;
        case 5:
            stw_be_p(blob + 4, 0x0001);
            break;
        case 6:
            stw_be_p(blob + 4, 0x0004);
            break;
        case 7:
            blob[1] = 3;
            break;
        case 8:
            stw_be_p(blob + 10, 2);
            break;
        case 9:
            /* libtpms' state: version, magic, the oldest reader's version */
            stw_be_p(blob + SWTPM_BLOB_HEADER, 9);
            stw_be_p(blob + SWTPM_BLOB_HEADER + 6, 9);
            break;
        }
        g_assert_true(g_file_set_contents(path, (char *)copy, len, NULL));
        before = file_digest(path);
        tpm_cmd_assert_qemu_refuses(args, message);
        after = file_digest(path);
        g_assert_cmpstr(before, ==, after);
    }
}

/* swtpm's directory: what it must be, and states it does not hold */
static void test_swtpm_dir_refused(void)
{
    g_autofree char *missing = state_path("swtpm-missing");
    g_autofree char *file = state_path("swtpm-not-dir");
    g_autofree char *tpm12 = state_path("swtpm-tpm12");
    g_autofree char *keyed = state_path("swtpm-keyed");
    g_autofree char *pwd = state_path("swtpm-keyed.pwd");
    g_autofree char *other = g_build_filename(tpm12, "tpm-00.permall", NULL);
    g_autofree char *permall = g_build_filename(keyed, "tpm2-00.permall",
                                                NULL);
    g_autofree char *setup_state = g_strdup_printf("dir://%s", keyed);
    const char *setup_argv[] = {
        "swtpm_setup", "--tpm2", "--tpmstate", setup_state, "--pwdfile", pwd,
        "--overwrite", NULL,
    };
    const char *dirs[] = { missing, file, tpm12, keyed };
    const char *messages[] = {
        "cannot use TPM state directory '%s': No such file or directory",
        "TPM state directory '%s' is not a directory",
        "TPM state directory '%s' holds a TPM 1.2 ('%s'), not a TPM 2.0",
        "TPM state file '%s' is encrypted with swtpm's --key or --pwdfile "
        "option",
    };
    g_autoptr(GError) gerr = NULL;
    g_autofree char *before = NULL, *after = NULL;
    int status, i;

    g_assert_true(g_file_set_contents(file, "", 0, NULL));
    g_assert_cmpint(g_mkdir(tpm12, 0700), ==, 0);
    g_assert_true(g_file_set_contents(other, "TPM 1.2", 7, NULL));

    /* A TPM swtpm_setup made with a key, from a password */
    g_assert_cmpint(g_mkdir(keyed, 0700), ==, 0);
    g_assert_true(g_file_set_contents(pwd, "a password", 10, NULL));
    g_assert_true(g_spawn_sync(NULL, (char **)setup_argv, NULL,
                               G_SPAWN_SEARCH_PATH |
                               G_SPAWN_STDOUT_TO_DEV_NULL |
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL,
                               NULL, &status, &gerr));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    before = file_digest(permall);

    for (i = 0; i < ARRAY_SIZE(dirs); i++) {
        g_autofree char *args = g_strdup_printf(
            "-M q35 -tpmdev libtpms,id=t,dir=%s -device vtpm-pci,tpmdev=t",
            dirs[i]);
        g_autofree char *message = g_strdup_printf(messages[i],
                                                   i == 3 ? permall : dirs[i],
                                                   other);

        tpm_cmd_assert_qemu_refuses(args, message);
    }
    after = file_digest(permall);
    g_assert_cmpstr(before, ==, after);

    /* Options that do not go together */
    tpm_cmd_assert_qemu_refuses("-tpmdev libtpms,id=t,path=a,dir=b",
                                "'path' and 'dir' cannot be used together");
    tpm_cmd_assert_qemu_refuses("-tpmdev libtpms,id=t,dir=b,format=swtpm",
                                "'format' is for 'path'");
    tpm_cmd_assert_qemu_refuses("-tpmdev libtpms,id=t,format=swtpm",
                                "'format' needs 'path'");
    tpm_cmd_assert_qemu_refuses("-tpmdev libtpms,id=t,path=a,format=raw",
                                "invalid format 'raw'");
}

/* TPM2_NV_ReadPublic: the size of @index's data */
static uint16_t nv_size(QTestState *s, uint32_t index)
{
    uint8_t rsp[256];
    size_t policy;
    Cmd c;

    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x169);
    put32(&c, index);
    cmd_ok(s, &c, rsp, sizeof(rsp));
    /* TPM2B_NV_PUBLIC: nvIndex, nameAlg, attributes, authPolicy, dataSize */
    g_assert_cmphex(ldl_be_p(rsp + 12), ==, index);
    policy = lduw_be_p(rsp + 22);
    return lduw_be_p(rsp + 24 + policy);
}

/* All of @index's data, which the index's (empty) auth reads */
static GBytes *nv_read_all(QTestState *s, uint32_t index)
{
    uint16_t size = nv_size(s, index), off, n;
    g_autofree uint8_t *data = g_malloc(size);
    uint8_t rsp[1024];
    Cmd c;

    for (off = 0; off < size; off += n) {
        n = MIN(size - off, 512);
        nv_cmd_begin(&c, 0x14e, index);
        put16(&c, n);
        put16(&c, off);
        cmd_ok(s, &c, rsp, sizeof(rsp));
        g_assert_cmpuint(lduw_be_p(rsp + 14), ==, n);
        memcpy(data + off, rsp + 16, n);
    }
    return g_bytes_new_take(g_steal_pointer(&data), size);
}

/* @cert is one DER-encoded certificate: a SEQUENCE, all of it */
static void assert_der(GBytes *cert)
{
    size_t len;
    const uint8_t *p = g_bytes_get_data(cert, &len);

    g_assert_cmpuint(len, >, 4);
    g_assert_cmphex(p[0], ==, 0x30);
    g_assert_cmphex(p[1], ==, 0x82);
    g_assert_cmpuint(4 + lduw_be_p(p + 2), ==, len);
}

/*
 * A TPM that swtpm_setup provisioned, with an EK certificate from its
 * local CA and a platform certificate, opened in QEMU: the certificates
 * are in their NV indices, and the EK certificate's key is the EK's
 */
static void test_swtpm_provisioned(void)
{
    g_autofree char *dir = state_path("swtpm-provisioned");
    g_autofree char *ca = state_path("localca");
    g_autofree char *conf = state_path("swtpm_setup.conf");
    g_autofree char *ca_conf = state_path("swtpm-localca.conf");
    g_autofree char *ca_options = state_path("swtpm-localca.options");
    g_autofree char *tpmstate = g_strdup_printf("dir://%s", dir);
    g_autofree char *conf_text = g_strdup_printf(
        "create_certs_tool = swtpm_localca\n"
        "create_certs_tool_config = %s\n"
        "create_certs_tool_options = %s\n", ca_conf, ca_options);
    g_autofree char *ca_text = g_strdup_printf(
        "statedir = %s\nsigningkey = %s/signkey.pem\n"
        "issuercert = %s/issuercert.pem\ncertserial = %s/certserial\n",
        ca, ca, ca, ca);
    static const char options[] = "--platform-manufacturer QEMU\n"
        "--platform-version 2.1\n--platform-model vtpm-pci\n";
    const char *argv[] = {
        "swtpm_setup", "--tpm2", "--tpmstate", tpmstate, "--config", conf,
        "--create-ek-cert", "--create-platform-cert", "--lock-nvram", NULL,
    };
    g_autoptr(GBytes) ek = NULL, cert = NULL, ecc = NULL, platform = NULL;
    g_autoptr(GError) gerr = NULL;
    uint8_t rsp[VTPM_PCI_BUFFER_MAX];
    size_t ek_len;
    const uint8_t *ek_pub;
    uint32_t handle;
    QTestState *s;
    int status;
    Cmd c;

    g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
    g_assert_cmpint(g_mkdir(ca, 0700), ==, 0);
    g_assert_true(g_file_set_contents(conf, conf_text, -1, NULL));
    g_assert_true(g_file_set_contents(ca_conf, ca_text, -1, NULL));
    g_assert_true(g_file_set_contents(ca_options, options, -1, NULL));
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
                               G_SPAWN_SEARCH_PATH |
                               G_SPAWN_STDOUT_TO_DEV_NULL |
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL,
                               NULL, &status, &gerr));
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    s = qtest_initf("-M q35 -tpmdev libtpms,id=t,dir=%s "
                    "-device vtpm-pci,tpmdev=t", dir);
    g_assert_cmphex(tpm_startup(s, TPM2_SU_CLEAR), ==, TPM_RC_SUCCESS);

    /* The EK from the TCG template, and the one swtpm_setup persisted */
    ek = create_ek(s, &handle);
    tpm_cmd_flush(s, vtpm_pci_transfer, handle);
    ek_pub = g_bytes_get_data(ek, &ek_len);
    cmd_begin(&c, TPM2_ST_NO_SESSIONS, 0x173);
    put32(&c, EK_HANDLE);
    cmd_ok(s, &c, rsp, sizeof(rsp));
    g_assert_cmpmem(rsp + TPM_RSP_HDR_SIZE, ek_len, ek_pub, ek_len);

    /* The certificates, and the EK's modulus (the public's end) in its */
    cert = nv_read_all(s, SWTPM_EK_CERT_RSA);
    assert_der(cert);
    g_assert_nonnull(memmem(g_bytes_get_data(cert, NULL),
                            g_bytes_get_size(cert), ek_pub + ek_len - 256,
                            256));
    ecc = nv_read_all(s, SWTPM_EK_CERT_ECC);
    assert_der(ecc);
    platform = nv_read_all(s, SWTPM_PLATFORM_CERT);
    assert_der(platform);
    qtest_quit(s);
}

/*
 * swtpm 0.10 locks its linear file itself with --tpmstate ...,lock: it
 * and QEMU keep each other out, whichever starts first, and swtpm's
 * failed start leaves QEMU's state as QEMU wrote it
 */
static void test_swtpm_locked_file(void)
{
    g_autofree char *path = state_path("swtpm-locked-file");
    g_autofree char *tpmstate = g_strdup_printf("backend-uri=file://%s,lock",
                                                path);
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,path=%s -device vtpm-pci,tpmdev=t", path);
    g_autofree char *message = g_strdup_printf(
        "TPM state file '%s' is in use by another process (a lock on it)",
        path);
    g_autoptr(GBytes) ek = NULL;
    QTestState *s;

    ek = swtpm_first(start_on(path, ""), "locked 1");

    /* swtpm first */
    swtpm_holds_lock(tpmstate, args, message);

    /* QEMU first: swtpm fails to lock and exits */
    s = start_on(path, "");
    startup_any(s);
    swtpm_refused(tpmstate);
    qtest_quit(s);
    swtpm_round(start_on(path, ""), "locked 1", ek, "locked 2");
}

/*
 * A TPM that swtpm 0.10 made with a profile is a state libtpms 0.9
 * cannot read: QEMU refuses it, saying so, and leaves it as it is
 */
static void test_swtpm_profile(void)
{
    g_autofree char *dir = state_path("swtpm-profile");
    g_autofree char *tpmstate = g_strdup_printf("dir=%s", dir);
    g_autofree char *permall = g_build_filename(dir, "tpm2-00.permall", NULL);
    g_autofree char *args = g_strdup_printf(
        "-M q35 -tpmdev libtpms,id=t,dir=%s -device vtpm-pci,tpmdev=t", dir);
    g_autofree char *message = g_strdup_printf(
        "TPM state directory '%s' is refused: it was written by a newer "
        "libtpms than this QEMU's", dir);
    const char *const profile[] = { "--profile", "name=default-v1", NULL };
    g_autofree char *before = NULL, *after = NULL, *sock = NULL;
    g_autoptr(GBytes) ek = NULL;
    GPid pid;

    /* swtpm makes the TPM, with the profile, at QEMU's CMD_INIT */
    g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
    pid = swtpm_start_args(tpmstate, profile, &sock);
    ek = swtpm_first(start_emulator(sock), "profile1");
    swtpm_stop(pid, tpmstate);
    before = file_digest(permall);
    tpm_cmd_assert_qemu_refuses(args, message);
    after = file_digest(permall);
    g_assert_cmpstr(before, ==, after);
}

static void remove_tree(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *child = g_build_filename(path, name, NULL);

        if (g_file_test(child, G_FILE_TEST_IS_DIR)) {
            remove_tree(child);
        } else {
            g_unlink(child);
        }
    }
    if (dir) {
        g_dir_close(dir);
    }
    g_rmdir(path);
}

/* A test of what a swtpm writes and locks, and which swtpm */
typedef struct SwtpmTest {
    const char *swtpm;
    const char *subdir;
    void (*fn)(void);
} SwtpmTest;

static void swtpm_test(const void *opaque)
{
    const SwtpmTest *t = opaque;

    swtpm_bin = t->swtpm;
    state_subdir = t->subdir;
    t->fn();
    swtpm_bin = "swtpm";
    state_subdir = "";
}

/*
 * The tests of what the swtpm @swtpm writes and locks, under
 * /tpm-libtpms/@dir/, and with @newer those of swtpm 0.10
 */
static void add_swtpm_tests(const char *dir, const char *swtpm, bool newer)
{
    static const struct {
        const char *name;
        void (*fn)(void);
        bool newer;
    } tests[] = {
        { "dir", test_swtpm_dir },
        { "file", test_swtpm_file },
        { "new-file", test_swtpm_new_file },
        { "convert", test_swtpm_convert },
        { "lock-dir", test_swtpm_lock_dir },
        { "locked-file", test_swtpm_locked_file, true },
        { "profile", test_swtpm_profile, true },
    };
    g_autofree char *subdir = g_build_filename(tmp_dir, dir, NULL);
    int i;

    g_assert_cmpint(g_mkdir(subdir, 0700), ==, 0);
    for (i = 0; i < ARRAY_SIZE(tests); i++) {
        g_autofree char *path = g_strdup_printf("/tpm-libtpms/%s/%s", dir,
                                                tests[i].name);
        SwtpmTest *t = g_new(SwtpmTest, 1);

        if (tests[i].newer && !newer) {
            continue;
        }
        *t = (SwtpmTest) { swtpm, dir, tests[i].fn };
        qtest_add_data_func_full(path, t, swtpm_test, g_free);
    }
}

int main(int argc, char **argv)
{
    const char *newer = getenv("QTEST_SWTPM_NEWER");
    int ret;

    tmp_dir = g_dir_make_tmp("tpm-libtpms-state.XXXXXX", NULL);
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/tpm-libtpms/state/restart", test_restart);
    qtest_add_func("/tpm-libtpms/state/crash", test_crash);
    qtest_add_func("/tpm-libtpms/state/corrupt-files", test_corrupt_files);
    qtest_add_func("/tpm-libtpms/state/lock", test_lock);
    qtest_add_func("/tpm-libtpms/state/lock-states", test_lock_states);
    qtest_add_func("/tpm-libtpms/state/hostile-paths", test_hostile_paths);
    qtest_add_func("/tpm-libtpms/state/file-attributes",
                   test_file_attributes);
    qtest_add_func("/tpm-libtpms/state/reset-lockout", test_reset_lockout);
    qtest_add_func("/tpm-libtpms/state/snapshot", test_snapshot);
    qtest_add_func("/tpm-libtpms/state/snapshot-refused",
                   test_snapshot_refused);
    qtest_add_func("/tpm-libtpms/state/sandbox", test_sandbox);
    qtest_add_func("/tpm-libtpms/state/refused-state", test_refused_state);
    qtest_add_func("/tpm-libtpms/state/libtpms-overread",
                   test_libtpms_overread);
    qtest_add_func("/tpm-libtpms/state/libtpms-crash", test_libtpms_crash);
    qtest_add_func("/tpm-libtpms/state/storage-error", test_storage_error);
    qtest_add_func("/tpm-libtpms/state/storage-error-log",
                   test_storage_error_log);
    if (tpm_util_swtpm_has_tpm2()) {
        add_swtpm_tests("swtpm", "swtpm", false);
        qtest_add_func("/tpm-libtpms/swtpm/provisioned",
                       test_swtpm_provisioned);
        qtest_add_func("/tpm-libtpms/swtpm/dir-refused",
                       test_swtpm_dir_refused);
    }
    if (newer && *newer) {
        add_swtpm_tests("swtpm-newer", newer, true);
    }
    qtest_add_func("/tpm-libtpms/swtpm/lock-file", test_swtpm_lock_file);
    qtest_add_func("/tpm-libtpms/swtpm/corrupt", test_swtpm_corrupt);
    qtest_add_func("/tpm-libtpms/migrate/quiet", test_migrate_quiet);
    qtest_add_func("/tpm-libtpms/migrate/objects", test_migrate_objects);
    qtest_add_func("/tpm-libtpms/migrate/counter", test_migrate_counter);
    qtest_add_func("/tpm-libtpms/migrate/mid-command",
                   test_migrate_mid_command);
    qtest_add_func("/tpm-libtpms/migrate/refused", test_migrate_refused);
    qtest_add_func("/tpm-libtpms/migrate/resumed-source",
                   test_migrate_resumed_source);
    qtest_add_func("/tpm-libtpms/migrate/corrupt-stream",
                   test_migrate_corrupt);
    ret = g_test_run();

    remove_tree(tmp_dir);
    g_free(tmp_dir);
    return ret;
}
