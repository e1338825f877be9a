#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the guest test images from Debian packages, one for each kernel
# line of kernels.sh, in $VTPM_CACHE/guest/image/<line> (6.1, 6.12, 7.3):
#
#   bzImage       Debian's kernel of that line
#   initrd.cpio   busybox-static, lspci and tpm2-tools with their
#                 libraries (and the TSS's device TCTI, which it loads by
#                 name), the tpm_vtpm_pci module built against Debian's
#                 headers for that kernel, vtpm-probe, tpm2c, and the
#                 test script as /init (which also gives "make run" its
#                 shell)
#   abi           the kernel's ABI
#   module.log    what building the module printed (nothing, when clean)
#
#   build-image.sh [LINE...]     default: every line
#
# kernels.sh fetches the kernels and their headers (once per ABI);
# Debian's user-space packages are downloaded once into guest/debs and
# reused while the archive serves the same versions.  The module is
# rebuilt when its sources or the kernel change.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
contrib=$(dirname "$here")
: "${VTPM_CACHE:=$HOME/.cache/vtpm-pci}"
export VTPM_CACHE
top=$VTPM_CACHE/guest
debs=$top/debs
images=$top/image
work=$top/work

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

"$here/kernels.sh" prepare
mapfile -t lines < <("$here/kernels.sh" lines)
want=("$@")
if [ ${#want[@]} -eq 0 ]; then
    for l in "${lines[@]}"; do
        want+=("${l%% *}")
    done
fi

# Download PACKAGE... at their candidate versions, unless already there
# (one apt-cache call for all: one a package takes a minute for 80)
fetch() {
    local pkg ver file n=0
    mkdir -p "$debs"
    while read -r pkg ver; do
        file=$(printf '%s_%s_' "$pkg" "${ver//:/%3a}")
        if ! compgen -G "$debs/$file*.deb" > /dev/null; then
            log "downloading $pkg $ver"
            rm -f "$debs/${pkg}_"*.deb
            (cd "$debs" &&
             apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver") >&2 ||
                die "cannot download $pkg $ver"
        fi
        printf '%s\n' "$debs/$file"*.deb
        n=$((n + 1))
    done < <(apt-cache show --no-all-versions "$@" 2>/dev/null |
             awk '/^Package: /{p = $2} /^Version: /{print p, $2}')
    [ "$n" -eq $# ] || die "apt knows $n of the $# packages $*"
}

# The packages a program needs at run time, recursively
closure() {
    apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
        grep -v -e '^ ' -e '^<' | sort -u
}

# --- user space from Debian -------------------------------------------------
rm -rf "$work" && mkdir -p "$work/pkgs" "$work/root"
mapfile -t pkgs < <(closure busybox-static pciutils tpm2-tools \
                            libtss2-tcti-device0)
for deb in $(fetch "${pkgs[@]}"); do
    dpkg -x "$deb" "$work/pkgs"
done

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/share/misc,lib/x86_64-linux-gnu,lib64}
mkdir -p "$root"/{dev,proc,sys,tmp,lib/modules}
cp "$work/pkgs/bin/busybox" "$root/bin/"
cp "$work/pkgs/usr/bin/lspci" "$root/usr/bin/"
cp "$work/pkgs/usr/share/misc/pci.ids" "$root/usr/share/misc/"
# tpm2-tools is one program, tpm2, and a tpm2_* link to it per tool
cp -a "$work/pkgs/usr/bin/tpm2" "$work/pkgs/usr/bin/tpm2_"* "$root/usr/bin/"

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
copy_libs "$root/usr/bin/tpm2"
# The TCTI the TSS opens with dlopen() for device:/dev/tpmrm0
tcti=libtss2-tcti-device.so.0
cp -L "${libdirs[1]}/$tcti" "$root/lib/x86_64-linux-gnu/"
copy_libs "$root/lib/x86_64-linux-gnu/$tcti"
cp -L "${libdirs[0]}/ld-linux-x86-64.so.2" "$root/lib64/"

# --- ours: the tools and the test script ---------------------------------------
cflags=(-O2 -Wall -Wextra -Werror -static -I"$contrib/common")
gcc "${cflags[@]}" -o "$root/sbin/vtpm-probe" "$contrib/probe/vtpm-probe.c"
gcc "${cflags[@]}" -o "$root/sbin/tpm2c" "$here/tpm2c.c"
install -m 755 "$here/init" "$root/init"
mknod -m 600 "$root/dev/console" c 5 1

# cpio_of DIR: an uncompressed newc archive of DIR on stdout (unpacking is
# a copy, faster under TCG than inflating)
cpio_of() {
    (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}
cpio_of "$root" > "$work/base.cpio"

# --- the module and the image of each line -----------------------------------
rm -f "$images"/{bzImage,initrd.cpio,abi,config}   # one image, before lines
# The kernel unpacks concatenated archives in order: the base, then the
# module's
for label in "${want[@]}"; do
    read -r _ abi _ _ < <(printf '%s\n' "${lines[@]}" |
                          awk -v l="$label" '$1 == l') ||
        die "no kernel line $label (know: $(printf '%s\n' "${lines[@]}" |
                                           cut -d' ' -f1 | xargs))"
    image=$images/$label
    kdir=$VTPM_CACHE/kernels/$abi
    mkdir -p "$image"
    key=$( (echo "$abi"; cat "$kdir/stamp";
            cd "$contrib/linux" && cat -- *.c *.h Kbuild Makefile) |
          sha256sum | cut -d' ' -f1)
    if [ "$(cat "$image/module.key" 2>/dev/null)" != "$key" ] ||
       [ ! -f "$image/tpm_vtpm_pci.ko" ]; then
        log "$label: building tpm_vtpm_pci.ko against $abi"
        rm -rf "$work/module" && mkdir -p "$work/module"
        cp "$contrib/linux/"{*.c,*.h,Kbuild,Makefile} "$work/module/"
        "$here/kernels.sh" build "$label" "$work/module" \
            > "$work/module.log" 2>&1 || {
            cat "$work/module.log" >&2
            die "$label: the module does not build against $abi"
        }
        # make's own chatter is not the compiler's
        grep -v -e '^make\(\[[0-9]*\]\)\?: \(Entering\|Leaving\) directory' \
            "$work/module.log" > "$image/module.log" || true
        cp "$work/module/tpm_vtpm_pci.ko" "$image/"
        echo "$key" > "$image/module.key"
    fi
    if [ -s "$image/module.log" ]; then
        sed "s/^/build-image: $label: /" "$image/module.log" >&2
    fi

    rm -rf "$work/mod" && mkdir -p "$work/mod/lib/modules"
    mkdir "$work/mod/lib/modules/vm"
    cp "$image/tpm_vtpm_pci.ko" "$work/mod/lib/modules/"
    cp "$kdir/modules/"* "$work/mod/lib/modules/vm/"
    { cat "$work/base.cpio"; cpio_of "$work/mod"; } > "$image/initrd.cpio.new"
    mv "$image/initrd.cpio.new" "$image/initrd.cpio"
    cp "$kdir/bzImage" "$image/bzImage.new"
    mv "$image/bzImage.new" "$image/bzImage"
    cp "$kdir/config" "$image/config"
    echo "$abi" > "$image/abi"
    log "$label: image ready: $image (kernel $abi)"
done

# Images of lines that moved on (7.3 when trixie-backports serves 7.4)
for dir in "$images"/*/; do
    [ -d "$dir" ] || continue
    printf '%s\n' "${lines[@]}" | cut -d' ' -f1 | grep -qxF "$(basename "$dir")" ||
        rm -rf "$dir"
done
