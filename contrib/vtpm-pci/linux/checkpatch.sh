#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Run the kernel's scripts/checkpatch.pl --strict on the driver's sources,
# as each kernel line of guest/kernels.sh has it (its rules change from
# one release to the next).
#
#   checkpatch.sh [LINE...]     default: every line (6.1 6.12 7.3)
#
# Debian's headers packages do not ship checkpatch.pl: it comes from the
# linux-source package of the line's kernel, at the kernel's version,
# downloaded once into $VTPM_CACHE/guest/checkpatch-<version>.  The lines
# are those of the last "kernels.sh prepare".

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kernels=$here/../guest/kernels.sh
: "${VTPM_CACHE:=$HOME/.cache/vtpm-pci}"
export VTPM_CACHE

die() { printf 'checkpatch: %s\n' "$*" >&2; exit 1; }

# fetch LINE VERSION: the directory holding that kernel's checkpatch.pl
fetch() {
    local line=$1 ver=$2 pkg=linux-source-$1 dir tmp
    dir=$VTPM_CACHE/guest/checkpatch-$ver
    if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
        echo "checkpatch: fetching scripts/checkpatch.pl from $pkg $ver" >&2
        tmp=$(mktemp -d)
        "$kernels" source "$line" "$pkg" "$tmp" ||
            { rm -rf "$tmp"; die "cannot download $pkg $ver"; }
        rm -rf "$dir.new" && mkdir -p "$dir.new"
        if ! dpkg --fsys-tarfile "$tmp"/*.deb |
                tar -x -O "./usr/src/linux-source-$line.tar.xz" |
                tar -xJ -C "$dir.new" --strip-components=1 \
                    "linux-source-$line/scripts/checkpatch.pl" \
                    "linux-source-$line/scripts/spelling.txt" \
                    "linux-source-$line/scripts/const_structs.checkpatch"
        then
            rm -rf "$tmp" "$dir.new"
            die "no checkpatch.pl in $pkg $ver"
        fi
        rm -rf "$tmp" "$dir"
        mv "$dir.new" "$dir"
    fi
    echo "$dir"
}

lines=$("$kernels" lines)
want=("$@")
[ ${#want[@]} -gt 0 ] || mapfile -t want < <(cut -d' ' -f1 <<< "$lines")

status=0
for line in "${want[@]}"; do
    ver=$(awk -v l="$line" '$1 == l { print $3 }' <<< "$lines")
    [ -n "$ver" ] || die "no kernel line $line (know: $(cut -d' ' -f1 <<< "$lines" | xargs))"
    dir=$(fetch "$line" "$ver")
    cp=(perl "$dir/scripts/checkpatch.pl" --no-tree --strict --no-color
        --no-summary --quiet -f)
    echo "checkpatch: $line (linux-source-$line $ver)"
    (cd "$here" && "${cp[@]}" tpm_vtpm_pci.c Kbuild Makefile) || status=1
    # The one version test, which only an out-of-tree build needs
    (cd "$here" &&
     "${cp[@]}" --ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON tpm_compat.h) ||
        status=1
done
exit $status
