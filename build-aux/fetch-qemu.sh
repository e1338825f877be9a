#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch QEMU's source from Debian's source package and unpack it (Debian's
# patches applied) into the cache:
#
#   $VTPM_CACHE/dl/               the .dsc and tarballs, kept
#   $VTPM_CACHE/qemu-pristine/    the unpacked tree, never modified
#   $VTPM_CACHE/qemu/             a copy, the working tree of the series'
#                                 git branch (build-aux/series.sh)
#
# The series is for one upstream release line, $QEMU_VERSION (env.sh):
# "10.2" takes the newest 10.2.x that any suite in apt's deb-src lists
# (trixie, trixie-backports, sid; see setup-host.sh) and whose files the
# archive actually serves, "10.2.2" exactly that release.  The Debian
# version used is recorded in $VTPM_CACHE/qemu-pristine/.debian-version;
# when it changes, the next run unpacks the new one and drops the old
# working copy and build.

set -euo pipefail
. "$(dirname "$0")/env.sh"

dl=$VTPM_CACHE/dl
pristine=$VTPM_CACHE/qemu-pristine
work=$VTPM_CACHE/qemu
mkdir -p "$dl"

# Every qemu source version apt knows, newest first: "1:10.2.2+ds-1"
mapfile -t listed < <(apt-cache showsrc qemu 2>/dev/null |
                      awk '$1 == "Version:" { print $2 }' |
                      sort -u | sort -r -V)
if [ ${#listed[@]} -eq 0 ]; then
    echo "fetch-qemu: apt lists no qemu source package;" \
         "run build-aux/setup-host.sh first" >&2
    exit 1
fi

# The upstream release of a Debian version: 1:10.2.2+ds-1 -> 10.2.2
upstream() {
    local v=${1#*:}
    v=${v%-*}
    echo "${v%%[+~]*}"
}

matches=()
for v in "${listed[@]}"; do
    u=$(upstream "$v")
    case $u in
    "$QEMU_VERSION" | "$QEMU_VERSION".*) matches+=("$v") ;;
    esac
done

# The newest version already downloaded, or else the newest the archive
# serves (a listed source can still answer 404)
version=
for v in "${matches[@]}"; do
    dsc=qemu_${v#*:}.dsc
    if [ -f "$dl/$dsc" ]; then
        version=$v
        break
    fi
    if (cd "$dl" && apt-get source --download-only -q "qemu=$v") \
        > "$dl/fetch.log" 2>&1; then
        version=$v
        break
    fi
    echo "fetch-qemu: qemu $v is listed but could not be downloaded:" \
         "$(grep -m1 -E 'Err|E:' "$dl/fetch.log" || echo unknown error)" >&2
done
if [ -z "$version" ]; then
    echo "fetch-qemu: no QEMU $QEMU_VERSION source can be fetched." >&2
    echo "fetch-qemu: apt lists: ${listed[*]}" >&2
    echo "fetch-qemu: set QEMU_VERSION (build-aux/env.sh) to one of them" >&2
    exit 1
fi
dsc=qemu_${version#*:}.dsc

if [ "$(cat "$pristine/.debian-version" 2>/dev/null)" != "${version#*:}" ]
then
    echo "fetch-qemu: QEMU ${version#*:} from Debian"
    rm -rf "$pristine.tmp" "$pristine" "$work" "$QEMU_BUILD"
    dpkg-source --no-copy -q -x "$dl/$dsc" "$pristine.tmp"
    echo "${version#*:}" > "$pristine.tmp/.debian-version"
    mv "$pristine.tmp" "$pristine"
fi

# The working tree, and the series repository around it.  (A tree laid
# out by the project's older tools, with no repository, is made anew.)
if [ ! -f "$work/.debian-version" ] || [ ! -d "$SERIES_GIT" ]; then
    rm -rf "$work" "$work.tmp"
    cp -a "$pristine" "$work.tmp"
    mv "$work.tmp" "$work"
    "$VTPM_TOP/build-aux/series.sh" init
fi
