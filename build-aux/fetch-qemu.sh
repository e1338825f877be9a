#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch QEMU's source from Debian trixie's source package and unpack it
# (Debian's patches applied) into the cache:
#
#   $VTPM_CACHE/dl/               the .dsc and tarballs, kept
#   $VTPM_CACHE/qemu-pristine/    the unpacked tree, never modified
#   $VTPM_CACHE/qemu/             a copy that build-aux/overlay.sh edits
#
# The revision is whatever trixie serves today; it is recorded in
# $VTPM_CACHE/qemu-pristine/.debian-version.  When trixie moves on, the
# next run unpacks the new one and drops the old working copy and build.

set -euo pipefail
: "${VTPM_CACHE:?}"

dl=$VTPM_CACHE/dl
pristine=$VTPM_CACHE/qemu-pristine
work=$VTPM_CACHE/qemu
mkdir -p "$dl"

# "'URI' qemu_10.0.13+ds-0+deb13u1.dsc SIZE HASH" -> the .dsc's name
dsc=$(apt-get source --print-uris -q qemu/trixie 2>/dev/null |
      awk '$2 ~ /\.dsc$/ { print $2; exit }')
if [ -z "$dsc" ]; then
    echo "fetch-qemu: no qemu source package for trixie;" \
         "run build-aux/setup-host.sh first" >&2
    exit 1
fi
version=${dsc#qemu_}
version=${version%.dsc}

if [ "$(cat "$pristine/.debian-version" 2>/dev/null)" = "$version" ] &&
   [ -f "$work/.debian-version" ]; then
    exit 0
fi

echo "fetch-qemu: QEMU $version from Debian trixie"
if [ ! -f "$dl/$dsc" ]; then
    (cd "$dl" && apt-get source --download-only -q qemu/trixie)
fi

rm -rf "$pristine.tmp" "$pristine" "$work" "$VTPM_CACHE/build"
dpkg-source --no-copy -q -x "$dl/$dsc" "$pristine.tmp"
echo "$version" > "$pristine.tmp/.debian-version"
mv "$pristine.tmp" "$pristine"

cp -a "$pristine" "$work.tmp"
mv "$work.tmp" "$work"
