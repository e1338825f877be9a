#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Run the kernel's scripts/checkpatch.pl on the driver's sources.  Debian's
# headers packages do not ship checkpatch.pl: it comes from the
# linux-source package of the kernel that linux-image-amd64 depends on,
# downloaded once into $VTPM_CACHE/guest/checkpatch-<version>.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${VTPM_CACHE:=$HOME/.cache/vtpm-pci}"

abi=$("$here/../guest/kernel-abi.sh")
series=${abi%%-*}                       # 6.1.0
series=${series%.0}                     # 6.1
pkg=linux-source-$series
ver=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p')
dir=$VTPM_CACHE/guest/checkpatch-$ver

if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
    echo "checkpatch: fetching scripts/checkpatch.pl from $pkg $ver" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver")
    mkdir -p "$dir.new"
    dpkg --fsys-tarfile "$tmp"/*.deb |
        tar -x -O "./usr/src/linux-source-$series.tar.xz" |
        tar -xJ -C "$dir.new" --strip-components=1 \
            "linux-source-$series/scripts/checkpatch.pl" \
            "linux-source-$series/scripts/spelling.txt" \
            "linux-source-$series/scripts/const_structs.checkpatch"
    rm -rf "$dir" && mv "$dir.new" "$dir"
fi

cd "$here"
cp=(perl "$dir/scripts/checkpatch.pl" --no-tree --strict --no-color
    --no-summary --quiet -f)
status=0
"${cp[@]}" tpm_vtpm_pci.c Kbuild Makefile || status=1
# The one version test, which only an out-of-tree build needs
"${cp[@]}" --ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON tpm_compat.h ||
    status=1
exit $status
