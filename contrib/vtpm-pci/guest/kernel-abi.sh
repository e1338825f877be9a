#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Print the ABI of the kernel that Debian's linux-image-amd64 depends on
# today (for example 6.1.0-56-amd64), as apt's lists know it.  Old ABIs
# leave the archive, so this is computed at each run, never written down.

abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
      sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n 1)
[ -n "$abi" ] || {
    echo "kernel-abi: linux-image-amd64 depends on no kernel image" >&2
    exit 1
}
echo "$abi"
