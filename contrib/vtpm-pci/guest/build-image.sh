#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the guest test image from Debian packages, in $VTPM_CACHE/guest:
#
#   image/bzImage       Debian's kernel
#   image/initrd.cpio   busybox-static, lspci with its libraries, the
#                       tpm_vtpm_pci module built against Debian's headers
#                       for that kernel, vtpm-probe, tpm2c, and the test
#                       script as /init
#   image/abi           the kernel's ABI
#
# The kernel is the one linux-image-amd64 depends on today; its headers
# (linux-headers-<abi>) are installed by build-aux/setup-host.sh.  Debian
# packages are downloaded once into guest/debs and reused while the
# archive serves the same versions.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
contrib=$(dirname "$here")
: "${VTPM_CACHE:=$HOME/.cache/vtpm-pci}"
top=$VTPM_CACHE/guest
debs=$top/debs
image=$top/image
work=$top/work

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

abi=$("$here/kernel-abi.sh")
headers=/usr/src/linux-headers-$abi
[ -d "$headers" ] ||
    die "$headers is missing: run build-aux/setup-host.sh (as root)"

# Download PACKAGE... at their candidate versions, unless already there
fetch() {
    local pkg ver file
    mkdir -p "$debs"
    for pkg in "$@"; do
        ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null |
              sed -n 's/^Version: //p' | head -n 1)
        [ -n "$ver" ] || die "apt knows no package $pkg"
        file=$(printf '%s_%s_' "$pkg" "${ver//:/%3a}")
        if ! compgen -G "$debs/$file*.deb" > /dev/null; then
            log "downloading $pkg $ver"
            rm -f "$debs/${pkg}_"*.deb
            (cd "$debs" &&
             apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver") >&2 ||
                die "cannot download $pkg $ver"
        fi
        printf '%s\n' "$debs/$file"*.deb
    done
}

# The packages a program needs at run time, recursively
closure() {
    apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
        grep -v -e '^ ' -e '^<' | sort -u
}

mkdir -p "$image"

# --- the kernel -------------------------------------------------------------
# The bzImage, not an uncompressed vmlinux booted through PVH: under TCG
# both boot in the same time (the decompression takes a tenth of a
# second), and a PVH-booted kernel does not come back from S3.
if [ "$(cat "$image/abi" 2>/dev/null)" != "$abi" ] ||
   [ ! -f "$image/bzImage" ]; then
    kdeb=$(fetch "linux-image-$abi")
    log "extracting the kernel from linux-image-$abi"
    rm -rf "$work" && mkdir -p "$work"
    dpkg --fsys-tarfile "$kdeb" |
        tar -x -C "$work" "./boot/vmlinuz-$abi" "./boot/config-$abi"
    cp "$work/boot/config-$abi" "$image/config"
    mv "$work/boot/vmlinuz-$abi" "$image/bzImage"
    echo "$abi" > "$image/abi"
fi

# --- user space from Debian -------------------------------------------------
rm -rf "$work" && mkdir -p "$work/pkgs" "$work/root"
mapfile -t pkgs < <(closure busybox-static pciutils)
for deb in $(fetch "${pkgs[@]}"); do
    dpkg -x "$deb" "$work/pkgs"
done

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/share/misc,lib/x86_64-linux-gnu,lib64}
mkdir -p "$root"/{dev,proc,sys,tmp,lib/modules}
cp "$work/pkgs/bin/busybox" "$root/bin/"
cp "$work/pkgs/usr/bin/lspci" "$root/usr/bin/"
cp "$work/pkgs/usr/share/misc/pci.ids" "$root/usr/share/misc/"

# The shared libraries lspci needs, found by their sonames
libdirs=("$work/pkgs/lib/x86_64-linux-gnu" "$work/pkgs/usr/lib/x86_64-linux-gnu")
copy_libs() {
    local lib dir
    for lib in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -e "$root/lib/x86_64-linux-gnu/$lib" ] && continue
        for dir in "${libdirs[@]}"; do
            if [ -e "$dir/$lib" ]; then
                cp -L "$dir/$lib" "$root/lib/x86_64-linux-gnu/"
                copy_libs "$dir/$lib"
                continue 2
            fi
        done
        die "no $lib for $1 in the packages"
    done
}
copy_libs "$root/usr/bin/lspci"
cp -L "${libdirs[0]}/ld-linux-x86-64.so.2" "$root/lib64/"

# --- ours: the module, the tools, the test script ---------------------------
log "building tpm_vtpm_pci.ko against $headers"
cp -r "$contrib/linux" "$work/module"
make -s -C "$headers" M="$work/module" modules > "$work/module.log" 2>&1 || {
    cat "$work/module.log" >&2
    die "the module does not build"
}
grep -E 'warning|error' "$work/module.log" >&2 || true
cp "$work/module/tpm_vtpm_pci.ko" "$root/lib/modules/"

cflags=(-O2 -Wall -Wextra -Werror -static -I"$contrib/common")
gcc "${cflags[@]}" -o "$root/sbin/vtpm-probe" "$contrib/probe/vtpm-probe.c"
gcc "${cflags[@]}" -o "$root/sbin/tpm2c" "$here/tpm2c.c"
install -m 755 "$here/init" "$root/init"
mknod -m 600 "$root/dev/console" c 5 1

# Uncompressed: unpacking is a copy, faster under TCG than inflating
(cd "$root" && find . | LC_ALL=C sort |
     cpio -o -H newc -R 0:0 --quiet) > "$image/initrd.cpio.new"
mv "$image/initrd.cpio.new" "$image/initrd.cpio"
log "image ready: $image (kernel $abi)"
