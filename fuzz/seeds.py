#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the seed corpora of the vtpm-pci fuzz targets.

The targets (tests/qtest/fuzz/vtpm_pci_fuzz.c, tpm_libtpms_fuzz.c) read
inputs in formats of their own; this writes, in those formats, inputs
that do what a real TPM client does, so that fuzzing starts from
commands that libtpms runs rather than from bytes it rejects:

  vtpm-pci-fuzz, vtpm-pci-tpm12-fuzz
      sequences of TPM 2.0 (1.2) commands: startup, random numbers,
      PCRs, capabilities, hashing, NV indices, sessions and policies,
      keys and signatures; and the card's own operations (the flags
      query, interrupts, cancellation, PCI configuration)
  tpm-libtpms-state-fuzz
      the state a TPM 2.0 and a TPM 1.2 write after such commands, as
      QEMU's file, swtpm's linear file and swtpm's directory, as they
      are and as lists of blobs; made by running QEMU (--qemu), which
      drives the card over the qtest protocol
  vtpm-pci-migration-fuzz
      each base stream unedited, and a few edits of each
  vtpm-pci-hotplug-fuzz
      cards plugged with each kind of property value, driven, reset and
      ejected, also while a command or the flags query runs

  seeds.py [--qemu QEMU] OUTDIR

writes OUTDIR/TARGET/NAME.  The committed corpus (fuzz/corpus) is this
script's output plus what fuzz campaigns added.
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile

# The register targets' actions (vtpm_pci_fuzz.c)
OP_COMMAND, OP_DATA_OUT, OP_DATA_IN, OP_REG_OUT, OP_REG_IN, OP_CONTROL, \
    OP_WAIT, OP_CONFIG, OP_RESET, OP_CANCEL, OP_BUFFER_COMMAND, \
    OP_BUFFER_WRITE = range(12)

# vtpm-pci registers (include/hw/tpm/vtpm_pci.h)
REG_STATUS, REG_CONTROL, REG_LOCALITY, REG_INT_ENABLE, REG_INT_STATUS, \
    REG_DATA = 0x0c, 0x10, 0x20, 0x24, 0x28, 0x30
CONTROL_START, CONTROL_CANCEL, CONTROL_ABORT, CONTROL_QUERY, \
    CONTROL_START_BUFFER = 1, 2, 4, 8, 0x10

# The migration target's flag: fix the TPM state's digests after the edits
MIGRATION_FIX_DIGESTS = 0x80

# The hotplug target's actions, its commands, and how it picks a tpmdev
# and a property's value (vtpm_pci_fuzz.c)
HP_PLUG, HP_EJECT, HP_COMMAND, HP_START, HP_CONTROL, HP_CONFIG, \
    HP_RESET = range(7)
HP_STARTUP, HP_GET_RANDOM, HP_SELF_TEST = range(3)
HP_TPM0, HP_OWN_TPM, HP_NO_SUCH_TPM = range(3)
HP_NONE, HP_TABLE, HP_HEX, HP_DECIMAL, HP_STRING = range(5)


def u8(v):
    return struct.pack('>B', v)


def u16(v):
    return struct.pack('>H', v)


def u32(v):
    return struct.pack('>I', v)


def b2(data=b''):
    """A TPM2B: a 16-bit size and the bytes"""
    return u16(len(data)) + data


# --- TPM 2.0 -----------------------------------------------------------

ST_NO_SESSIONS, ST_SESSIONS = 0x8001, 0x8002
RH_OWNER, RH_NULL, RH_LOCKOUT, RH_ENDORSEMENT = \
    0x40000001, 0x40000007, 0x4000000a, 0x4000000b
RS_PW = 0x40000009
ALG_SHA256, ALG_NULL, ALG_ECC, ALG_AES, ALG_CFB, ALG_ECDSA = \
    0x000b, 0x0010, 0x0023, 0x0006, 0x0043, 0x0018
ECC_NIST_P256 = 0x0003
NV_INDEX = 0x01500010
FIRST_TRANSIENT = 0x80000000
FIRST_HMAC_SESSION, FIRST_POLICY_SESSION = 0x02000000, 0x03000000


def tpm2(code, body=b'', handles=b'', sessions=False):
    """A TPM 2.0 command; with sessions, one empty password session"""
    if sessions:
        auth = u32(RS_PW) + b2() + u8(1) + b2()
        body = handles + u32(len(auth)) + auth + body
        tag = ST_SESSIONS
    else:
        body = handles + body
        tag = ST_NO_SESSIONS
    return u16(tag) + u32(10 + len(body)) + u32(code) + body


def pcr_selection(*pcrs):
    select = bytearray(3)
    for p in pcrs:
        select[p // 8] |= 1 << (p % 8)
    return u32(1) + u16(ALG_SHA256) + u8(3) + bytes(select)


def ecc_public(attributes, scheme, symmetric):
    params = symmetric + scheme + u16(ECC_NIST_P256) + u16(ALG_NULL)
    public = (u16(ALG_ECC) + u16(ALG_SHA256) + u32(attributes) + b2() +
              params + b2() + b2())
    return b2(public)


# Object attributes: fixedTPM, fixedParent, sensitiveDataOrigin,
# userWithAuth, and restricted|decrypt (a storage key) or sign
STORAGE_KEY = 0x00030072
SIGNING_KEY = 0x00040072

STARTUP = tpm2(0x144, u16(0))


def tpm2_sequences():
    sensitive = b2(b2() + b2())
    storage = ecc_public(STORAGE_KEY, u16(ALG_NULL),
                         u16(ALG_AES) + u16(128) + u16(ALG_CFB))
    signing = ecc_public(SIGNING_KEY, u16(ALG_ECDSA) + u16(ALG_SHA256),
                         u16(ALG_NULL))
    nv_public = b2(u32(NV_INDEX) + u16(ALG_SHA256) + u32(0x02040004) +
                   b2() + u16(16))
    digest = bytes(range(32))
    return {
        'startup': [STARTUP],
        'random': [STARTUP, tpm2(0x17b, u16(16)), tpm2(0x17b, u16(64))],
        'pcr': [STARTUP,
                tpm2(0x17e, pcr_selection(0, 1, 2, 3, 4, 5, 6, 7)),
                tpm2(0x182, u32(1) + u16(ALG_SHA256) + digest,
                     handles=u32(16), sessions=True),
                tpm2(0x17e, pcr_selection(16)),
                tpm2(0x13d, u32(16), sessions=True)],       # PCR_Reset
        'capability': [STARTUP,
                       tpm2(0x17a, u32(6) + u32(0x100) + u32(64)),
                       tpm2(0x17a, u32(6) + u32(0x200) + u32(64)),
                       tpm2(0x17a, u32(0) + u32(0) + u32(64)),
                       tpm2(0x17a, u32(2) + u32(0x11f) + u32(128)),
                       tpm2(0x17a, u32(5) + u32(0) + u32(8)),
                       tpm2(0x17a, u32(1) + u32(0x80000000) + u32(8))],
        'hash': [STARTUP,
                 tpm2(0x17d, b2(b'abc') + u16(ALG_SHA256) + u32(RH_OWNER)),
                 tpm2(0x186, b2() + u16(ALG_SHA256)),
                 tpm2(0x15c, b2(b'a' * 100), handles=u32(FIRST_TRANSIENT),
                      sessions=True),
                 tpm2(0x13e, b2(b'b' * 10) + u32(RH_OWNER),
                      handles=u32(FIRST_TRANSIENT), sessions=True)],
        'nv': [STARTUP,
               tpm2(0x12a, b2() + nv_public, handles=u32(RH_OWNER),
                    sessions=True),
               tpm2(0x137, b2(b'sixteen bytes!!!') + u16(0),
                    handles=u32(NV_INDEX) + u32(NV_INDEX), sessions=True),
               tpm2(0x14e, u16(16) + u16(0),
                    handles=u32(NV_INDEX) + u32(NV_INDEX), sessions=True),
               tpm2(0x169, handles=u32(NV_INDEX)),
               tpm2(0x122, handles=u32(RH_OWNER) + u32(NV_INDEX),
                    sessions=True)],
        'sessions': [STARTUP,
                     tpm2(0x176, b2(bytes(16)) + b2() + u8(0) +
                          u16(ALG_NULL) + u16(ALG_SHA256),
                          handles=u32(RH_NULL) + u32(RH_NULL)),
                     tpm2(0x176, b2(bytes(16)) + b2() + u8(1) +
                          u16(ALG_NULL) + u16(ALG_SHA256),
                          handles=u32(RH_NULL) + u32(RH_NULL)),
                     tpm2(0x17f, b2() + pcr_selection(0),
                          handles=u32(FIRST_POLICY_SESSION + 1)),
                     tpm2(0x16c, u32(0x17b),
                          handles=u32(FIRST_POLICY_SESSION + 1)),
                     tpm2(0x16b, handles=u32(FIRST_POLICY_SESSION + 1)),
                     tpm2(0x189, handles=u32(FIRST_POLICY_SESSION + 1)),
                     tpm2(0x165, handles=u32(FIRST_HMAC_SESSION))],
        'keys': [STARTUP,
                 tpm2(0x131, sensitive + storage + b2() + u32(0),
                      handles=u32(RH_OWNER), sessions=True),
                 tpm2(0x173, handles=u32(FIRST_TRANSIENT)),
                 tpm2(0x131, sensitive + signing + b2() + u32(0),
                      handles=u32(RH_ENDORSEMENT), sessions=True),
                 tpm2(0x15d, b2(digest) + u16(ALG_ECDSA) + u16(ALG_SHA256) +
                      u16(0x8024) + u32(RH_NULL) + b2(),
                      handles=u32(FIRST_TRANSIENT + 1), sessions=True),
                 tpm2(0x162, handles=u32(FIRST_TRANSIENT)),
                 tpm2(0x120, u32(0x81000001),
                      handles=u32(RH_OWNER) + u32(FIRST_TRANSIENT),
                      sessions=True),
                 tpm2(0x165, handles=u32(FIRST_TRANSIENT + 1))],
        'selftest': [STARTUP, tpm2(0x143, u8(1)), tpm2(0x17c),
                     tpm2(0x181),
                     tpm2(0x18a, u16(ALG_ECC) + u16(ALG_NULL) +
                          u16(ALG_NULL) + u16(ECC_NIST_P256) +
                          u16(ALG_NULL))],
        'hierarchy': [STARTUP,
                      tpm2(0x139, handles=u32(RH_LOCKOUT), sessions=True),
                      tpm2(0x129, b2(b'owner'), handles=u32(RH_OWNER),
                           sessions=True),
                      tpm2(0x126, handles=u32(RH_LOCKOUT), sessions=True),
                      tpm2(0x127, u8(1), handles=u32(RH_LOCKOUT),
                           sessions=True)],
        'shutdown': [STARTUP, tpm2(0x145, u16(1)), tpm2(0x144, u16(1))],
        'before-startup': [tpm2(0x17b, u16(8)), STARTUP, STARTUP],
    }


# --- TPM 1.2 -----------------------------------------------------------

TAG_RQU_COMMAND = 0x00c1


def tpm12(ordinal, body=b''):
    return u16(TAG_RQU_COMMAND) + u32(10 + len(body)) + u32(ordinal) + body


STARTUP12 = tpm12(0x99, u16(1))


def tpm12_sequences():
    block = bytes(range(64))
    return {
        'startup': [STARTUP12],
        'capability': [STARTUP12,
                       tpm12(0x65, u32(0x1a) + u32(0)),
                       tpm12(0x65, u32(5) + u32(4) + u32(0x101)),
                       tpm12(0x65, u32(4) + u32(4) + u32(0x108)),
                       tpm12(0x65, u32(5) + u32(4) + u32(0x111))],
        'pcr': [STARTUP12, tpm12(0x15, u32(0)),
                tpm12(0x14, u32(10) + bytes(20)), tpm12(0x15, u32(10))],
        'sha1': [STARTUP12, tpm12(0x46, u32(16)), tpm12(0xa0),
                 tpm12(0xa1, u32(64) + block),
                 tpm12(0xa2, u32(3) + b'abc'),
                 tpm12(0xa0), tpm12(0xa3, u32(11) + u32(3) + b'abc')],
        'presence': [STARTUP12,
                     tpm12(0x4000000a, u16(0x0020)),
                     tpm12(0x4000000a, u16(0x0008)),
                     tpm12(0x6f), tpm12(0x72, u8(0)),
                     tpm12(0x7c, bytes(20)), tpm12(0x5d)],
        'selftest': [STARTUP12, tpm12(0x53), tpm12(0x50), tpm12(0x54)],
        'sessions': [STARTUP12, tpm12(0x0a), tpm12(0x0a),
                     tpm12(0xba, u32(0x02000000) + u32(2))],
        'savestate': [STARTUP12, tpm12(0x98), tpm12(0x99, u16(2))],
    }


# --- The register targets' inputs --------------------------------------

def op_command(frame):
    return u8(OP_COMMAND) + u16(len(frame)) + frame


def register_input(frames):
    return b''.join(op_command(f) for f in frames)


def op_buffer_command(frame):
    return u8(OP_BUFFER_COMMAND) + u16(len(frame)) + frame


def buffer_inputs(sequences, startup):
    """The same sequences through BAR 2, and the two ways mixed"""
    inputs = {'buffer-' + k: b''.join(op_buffer_command(f) for f in v)
              for k, v in sequences.items()}
    # Every other command through the DATA port
    inputs.update({'buffer-mixed-' + k: b''.join(
        (op_buffer_command if i % 2 else op_command)(f)
        for i, f in enumerate(v)) for k, v in sequences.items()})
    start = op_buffer_command(startup)
    inputs.update({
        # BAR 2 written while the command runs, then a command again
        'buffer-overwrite': u8(OP_BUFFER_WRITE) + u16(0) + u8(len(startup)) +
        startup + u8(OP_CONTROL) + u8(CONTROL_START_BUFFER) +
        u8(OP_BUFFER_WRITE) + u16(2) + u8(4) + u32(0xffffffff) +
        u8(OP_WAIT) + start,
        # START_BUFFER with a command half written on DATA, then ABORT
        'buffer-receiving': u8(OP_DATA_OUT) + u8(2) + u8(1) + startup[:4] +
        u8(OP_CONTROL) + u8(CONTROL_START_BUFFER) + u8(OP_CONTROL) +
        u8(CONTROL_ABORT) + start,
        # BAR 2 moved, turned off and on (memory decode)
        'buffer-config': start + u8(OP_CONFIG) + u8(0x18) + u8(2) +
        u32(0xe2000000)[::-1] + start + u8(OP_CONFIG) + u8(0x04) + u8(1) +
        u32(1)[::-1] + start + u8(OP_CONFIG) + u8(0x18) + u8(2) +
        u32(0xe1000000)[::-1] + u8(OP_CONFIG) + u8(0x04) + u8(1) +
        u32(3)[::-1] + start,
    })
    return inputs


def card_inputs(startup):
    """The card's own operations, around a started TPM"""
    start = op_command(startup)
    get_random = tpm2(0x17b, u16(8))
    return {
        'card-query': start + u8(OP_CONTROL) + u8(CONTROL_QUERY) +
        u8(OP_WAIT) + u8(OP_REG_IN) + u8(REG_STATUS) + u8(2),
        'card-interrupt': u8(OP_REG_OUT) + u8(REG_INT_ENABLE) + u8(2) +
        u32(1)[::-1] + start + u8(OP_REG_IN) + u8(REG_INT_STATUS) + u8(2) +
        u8(OP_REG_OUT) + u8(REG_INT_STATUS) + u8(2) + u32(1)[::-1],
        'card-locality': u8(OP_REG_OUT) + u8(REG_LOCALITY) + u8(2) +
        u32(3)[::-1] + start,
        'card-bytewise': u8(OP_DATA_OUT) + u8(0) + u8(len(startup)) +
        startup + u8(OP_CONTROL) + u8(CONTROL_START) + u8(OP_WAIT) +
        u8(OP_DATA_IN) + u8(0) + u8(10),
        'card-abort': u8(OP_DATA_OUT) + u8(2) + u8(1) + startup[:4] +
        u8(OP_CONTROL) + u8(CONTROL_ABORT) + start,
        'card-cancel': start + u8(OP_DATA_OUT) + u8(2) + u8(3) +
        get_random + u8(OP_CANCEL) + u8(OP_DATA_IN) + u8(2) + u8(4),
        'card-config': u8(OP_CONFIG) + u8(0x04) + u8(1) + u32(0)[::-1] +
        u8(OP_CONFIG) + u8(0x10) + u8(2) + u32(0xd001)[::-1] +
        u8(OP_CONFIG) + u8(0x04) + u8(1) + u32(1)[::-1] + start,
        'card-reset': start + u8(OP_RESET) + start,
    }


def oversize_inputs(startup):
    """Commands longer than the card's buffer, whole and bytewise"""
    frame = tpm2(0x17b, u16(8))
    big = frame + bytes(4200 - len(frame))
    return {
        'card-oversize': op_command(startup) + u8(OP_COMMAND) +
        u16(0x8000 | len(big)) + big + op_command(frame),
        'card-oversize-sized': u8(OP_COMMAND) + u16(len(big)) + big +
        op_command(startup),
        'card-abort-executing': u8(OP_DATA_OUT) + u8(0) + u8(len(startup)) +
        startup + u8(OP_CONTROL) + u8(CONTROL_START) + u8(OP_CONTROL) +
        u8(CONTROL_ABORT) + u8(OP_WAIT) + u8(OP_DATA_IN) + u8(2) + u8(4),
    }


# --- The hotplug target's inputs ----------------------------------------

def hp_value(kind=HP_NONE, value=0):
    if kind == HP_STRING:
        return u8(kind) + value
    return u8(kind) + u32(value)[::-1]


def hp_plug(port, tpmdev=HP_TPM0, iobase=hp_value(), poll=hp_value()):
    return u8(HP_PLUG) + u8(port) + u8(tpmdev) + iobase + poll


def hp_command(port, which):
    return u8(HP_COMMAND) + u8(port) + u8(which)


def hotplug_inputs():
    started = hp_command(0, HP_GET_RANDOM) + hp_command(0, HP_STARTUP)
    refused = b''.join(hp_plug(1, iobase=hp_value(HP_TABLE, i))
                       for i in range(10))
    return {
        'plug-commands': hp_plug(0) + started + hp_command(0, HP_STARTUP) +
        hp_command(0, HP_GET_RANDOM) + hp_command(0, HP_SELF_TEST) +
        u8(HP_EJECT) + u8(0),
        # Pinned, and not: each iobase of the table, while tpm0 is taken
        # and while it is free
        'plug-iobases': hp_plug(0) + refused + u8(HP_EJECT) + u8(0) +
        b''.join(hp_plug(0, iobase=hp_value(HP_TABLE, i)) + started +
                 u8(HP_EJECT) + u8(0) for i in range(10)),
        'plug-refused': hp_plug(0, HP_OWN_TPM) + hp_plug(0, HP_NO_SUCH_TPM) +
        hp_plug(0, poll=hp_value(HP_TABLE, 4)) +
        hp_plug(0, poll=hp_value(HP_DECIMAL, 1000001)) +
        hp_plug(0, iobase=hp_value(HP_HEX, 0xc010)) +
        hp_plug(0, iobase=hp_value(HP_STRING, b'0xc0')) +
        hp_plug(0, poll=hp_value(HP_STRING, b'-1\0\0')) +
        hp_plug(1, poll=hp_value(HP_DECIMAL, 1000000)) + hp_plug(1) +
        hp_plug(0, HP_OWN_TPM, iobase=hp_value(HP_TABLE, 1)) +
        hp_command(1, HP_STARTUP),
        'eject-executing': hp_plug(0, poll=hp_value(HP_TABLE, 0)) +
        u8(HP_START) + u8(0) + u8(HP_EJECT) + u8(0) + hp_plug(0) + started,
        'eject-query': hp_plug(1) + hp_command(1, HP_STARTUP) +
        u8(HP_CONTROL) + u8(1) + u8(CONTROL_QUERY) + u8(HP_EJECT) + u8(1),
        'plug-reset': hp_plug(0, iobase=hp_value(HP_TABLE, 0)) + started +
        u8(HP_RESET) + started + u8(HP_CONFIG) + u8(0) + u8(0x10) + u8(2) +
        u32(0xc101)[::-1] + hp_command(0, HP_GET_RANDOM),
        'plug-config': hp_plug(1) + u8(HP_CONFIG) + u8(1) + u8(0x04) +
        u8(1) + u32(0)[::-1] + hp_command(1, HP_STARTUP) + u8(HP_CONFIG) +
        u8(1) + u8(0x04) + u8(1) + u32(1)[::-1] + hp_command(1, HP_STARTUP),
    }


# --- The state files, written by QEMU ----------------------------------

class Qtest:
    """QEMU with -qtest stdio: the card's ports, one command at a time"""

    def __init__(self, qemu, args):
        self.p = subprocess.Popen(
            [qemu, '-M', 'q35', '-nodefaults', '-display', 'none',
             '-accel', 'qtest', '-qtest', 'stdio'] + args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.port = self.find_card()

    def cmd(self, line):
        self.p.stdin.write(line + '\n')
        self.p.stdin.flush()
        while True:
            reply = self.p.stdout.readline()
            if not reply:
                raise RuntimeError('QEMU exited')
            if reply.startswith('OK'):
                return reply.split()[1:]
            if reply.startswith('FAIL') or reply.startswith('ERR'):
                raise RuntimeError('qtest: %s: %s' % (line, reply))

    def inl(self, port):
        return int(self.cmd('inl 0x%x' % port)[0], 16)

    def outl(self, port, val):
        self.cmd('outl 0x%x 0x%x' % (port, val))

    def find_card(self):
        for devfn in range(256):
            self.outl(0xcf8, 0x80000000 | devfn << 8)
            if self.inl(0xcfc) == 0x00151b36:
                self.outl(0xcf8, 0x80000000 | devfn << 8 | 0x10)
                self.outl(0xcfc, 0xc000)
                self.outl(0xcf8, 0x80000000 | devfn << 8 | 0x04)
                self.outl(0xcfc, 1)
                return 0xc000
        raise RuntimeError('no vtpm-pci card')

    def transfer(self, frame):
        for i in range(0, len(frame), 4):
            chunk = frame[i:i + 4]
            if len(chunk) == 4:
                self.outl(self.port + REG_DATA,
                          struct.unpack('<I', chunk)[0])
            else:
                for b in chunk:
                    self.cmd('outb 0x%x 0x%x' % (self.port + REG_DATA, b))
        self.outl(self.port + REG_CONTROL, CONTROL_START)
        while self.inl(self.port + REG_STATUS) & 7 == 2:
            pass
        size = self.inl(self.port + 0x18)
        rsp = b''.join(struct.pack('<I', self.inl(self.port + REG_DATA))
                       for _ in range((size + 3) // 4))
        return rsp[:size]

    def quit(self):
        # SIGTERM: QEMU shuts down as on "quit", and the TPM saves its state
        self.p.terminate()
        self.p.wait(timeout=60)


STATE_BLOBS = ('permall', 'volatilestate', 'savestate')
# The target's flags (tpm_libtpms_fuzz.c)
STATE_TPM12, STATE_AS_BLOBS, STATE_SWTPM, STATE_DIR = 0x01, 0x02, 0x04, 0x08


def swtpm_blob(blob):
    """@blob with swtpm's header (version 2, reader 1) and data tag"""
    return (u8(2) + u8(1) + u16(10) + u16(0) + u32(16 + len(blob)) +
            u16(1) + u32(len(blob)) + blob)


def swtpm_linear(blobs):
    """swtpm's linear file of @blobs (name -> blob), sections a power of 2"""
    header = bytearray(192)
    struct.pack_into('<QBBH', header, 0, 0x737774706d6c696e, 1, 0, 192)
    body = b''
    for i, name in enumerate(STATE_BLOBS):
        if name not in blobs:
            continue
        data = swtpm_blob(blobs[name])
        section = 1 << (len(data) - 1).bit_length()
        struct.pack_into('<III', header, 12 + 12 * i, 192 + len(body),
                         len(data), section)
        body += data + bytes(section - len(data))
    return bytes(header) + body


def state_inputs(qemu, name, version, frames):
    """The state after @frames in every form tpm_libtpms_fuzz.c reads"""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'tpm.state')
        q = Qtest(qemu, ['-tpmdev', 'libtpms,id=t,path=%s,version=%s,'
                         'format=qemu' % (path, version),
                         '-device', 'vtpm-pci,tpmdev=t'])
        for f in frames:
            q.transfer(f)
        q.quit()
        img = open(path, 'rb').read()
    flags = STATE_TPM12 if version == '1.2' else 0
    blobs = {}
    p = 52
    while p < len(img):
        n = struct.unpack('>H', img[p:p + 2])[0]
        blob_name = img[p + 2:p + 2 + n].decode()
        size = struct.unpack('>I', img[p + 2 + n:p + 6 + n])[0]
        blobs[blob_name] = img[p + 6 + n:p + 6 + n + size]
        p += 6 + n + size

    def listed(wrap):
        return b''.join(u8(STATE_BLOBS.index(n)) + u16(len(wrap(b))) +
                        wrap(b) for n, b in blobs.items())
    return {
        name + '-file': u8(flags) + img,
        name + '-blobs': u8(flags | STATE_AS_BLOBS) + listed(bytes),
        name + '-swtpm-file': u8(flags) + swtpm_linear(blobs),
        name + '-swtpm-blobs': (u8(flags | STATE_AS_BLOBS | STATE_SWTPM) +
                                listed(bytes)),
        name + '-dir': u8(flags | STATE_DIR) + listed(swtpm_blob),
        name + '-dir-blobs': (u8(flags | STATE_DIR | STATE_AS_BLOBS) +
                              listed(bytes)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--qemu', help='qemu-system-x86_64 with the card, '
                        'for the state file seeds')
    parser.add_argument('outdir')
    args = parser.parse_args()

    corpora = {
        'vtpm-pci-fuzz': {k: register_input(v)
                          for k, v in tpm2_sequences().items()},
        'vtpm-pci-tpm12-fuzz': {k: register_input(v)
                                for k, v in tpm12_sequences().items()},
        'vtpm-pci-migration-fuzz': {
            'base-%d' % b: u8(b) for b in range(3)},
        'tpm-libtpms-state-fuzz': {
            'empty-tpm2': u8(0x02), 'empty-tpm12': u8(0x03),
            'empty-dir-tpm2': u8(0x08), 'empty-dir-tpm12': u8(0x09)},
    }
    corpora['vtpm-pci-fuzz'].update(card_inputs(STARTUP))
    corpora['vtpm-pci-tpm12-fuzz'].update(card_inputs(STARTUP12))
    corpora['vtpm-pci-fuzz'].update(buffer_inputs(tpm2_sequences(),
                                                  STARTUP))
    corpora['vtpm-pci-tpm12-fuzz'].update(buffer_inputs(tpm12_sequences(),
                                                        STARTUP12))
    corpora['vtpm-pci-fuzz'].update(oversize_inputs(STARTUP))
    corpora['vtpm-pci-tpm12-fuzz'].update(oversize_inputs(STARTUP12))
    corpora['vtpm-pci-hotplug-fuzz'] = hotplug_inputs()
    for b in range(3):
        # The family, the running flag, a state size, the card's state
        corpora['vtpm-pci-migration-fuzz']['edits-%d' % b] = (
            u8(b) + u8(0) + u16(40) + u8(1) + u8(1) + u16(45) + u8(0) +
            u8(3) + u16(300) + u8(0))
        # The TPM's state blobs themselves, their digests fixed up: a
        # byte of the permanent state's header, one further in, one of
        # the volatile state
        corpora['vtpm-pci-migration-fuzz']['blobs-%d' % b] = (
            u8(MIGRATION_FIX_DIGESTS | b) + u8(0) + u16(110) + u8(0x01) +
            u8(1) + u16(700) + u8(0xff) + u8(0) + u16(2000) + u8(0x80))
    if args.qemu:
        seq2, seq12 = tpm2_sequences(), tpm12_sequences()
        corpora['tpm-libtpms-state-fuzz'].update(state_inputs(
            args.qemu, 'tpm2', '2.0',
            seq2['nv'][:4] + seq2['keys'][1:2] + seq2['keys'][6:7]))
        corpora['tpm-libtpms-state-fuzz'].update(state_inputs(
            args.qemu, 'tpm12', '1.2', seq12['presence']))

    for target, inputs in corpora.items():
        d = os.path.join(args.outdir, target)
        os.makedirs(d, exist_ok=True)
        for name, data in inputs.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)
        print('%s: %d inputs' % (target, len(inputs)), file=sys.stderr)


if __name__ == '__main__':
    main()
