#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Extract the uncompressed ELF vmlinux from an x86 bzImage.

Under TCG, decompressing the kernel is a good part of its boot time.  A
bzImage's setup header says where its compressed payload is
(payload_offset and payload_length, boot protocol 2.08 and later): this
decompresses it with the matching tool.  QEMU boots the result through
its PVH entry point, which Debian's kernels have (CONFIG_PVH).

usage: extract-vmlinux.py BZIMAGE VMLINUX
"""

import struct
import subprocess
import sys

DECOMPRESSORS = [
    (b'\xfd7zXZ\x00', ['xz', '-dc', '--single-stream']),
    (b'\x28\xb5\x2f\xfd', ['zstd', '-dcq']),
    (b'\x1f\x8b', ['gzip', '-dc']),
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    image = open(sys.argv[1], 'rb').read()
    if image[0x202:0x206] != b'HdrS':
        sys.exit(f'{sys.argv[1]}: not a bzImage')
    version, = struct.unpack_from('<H', image, 0x206)
    if version < 0x208:
        sys.exit(f'{sys.argv[1]}: boot protocol {version:#x} has no payload')
    setup_sects = image[0x1f1] or 4
    offset, length = struct.unpack_from('<II', image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start:start + length]

    for magic, command in DECOMPRESSORS:
        if payload.startswith(magic):
            break
    else:
        sys.exit(f'{sys.argv[1]}: unknown compression {payload[:6].hex()}')
    # Some formats are followed by the decompressed size: xz and zstd
    # stop at the end of their stream, gzip warns about trailing bytes.
    with open(sys.argv[2], 'wb') as out:
        result = subprocess.run(command, input=payload, stdout=out,
                                stderr=subprocess.PIPE)
    if result.returncode != 0 and b'trailing garbage' not in result.stderr:
        sys.exit(f'{command[0]}: {result.stderr.decode().strip()}')
    with open(sys.argv[2], 'rb') as f:
        if f.read(4) != b'\x7fELF':
            sys.exit(f'{sys.argv[2]}: the payload is not an ELF file')


if __name__ == '__main__':
    main()
