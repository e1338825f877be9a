# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the build-aux scripts: where things live, and the build's
# configuration.

: "${VTPM_CACHE:=$HOME/.cache/vtpm-pci}"
export VTPM_CACHE

# The QEMU release line the series is for: the newest Debian source of
# it is fetched (build-aux/fetch-qemu.sh).  "make check QEMU_VERSION=X"
# tries the series on another release that Debian's archive serves.
: "${QEMU_VERSION:=10.2}"
export QEMU_VERSION
VTPM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QEMU_SRC=$VTPM_CACHE/qemu
# The series as a git branch, QEMU_SRC its working tree (series.sh)
SERIES_GIT=$VTPM_CACHE/qemu.git
QEMU_BUILD=$VTPM_CACHE/build
QEMU_BIN=$QEMU_BUILD/qemu-system-x86_64

# ccache through Debian's compiler wrappers, its cache beside the build
export CCACHE_DIR=$VTPM_CACHE/ccache
case ":$PATH:" in
*:/usr/lib/ccache:*) ;;
*) PATH=/usr/lib/ccache:$PATH ;;
esac

# x86_64 only, TCG only, no optional features but TPM and libtpms.
# Debian's python3 is named so that configure finds Debian's meson.
QEMU_CONFIGURE_ARGS_COMMON=(
    --python=/usr/bin/python3
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-tcg
    --enable-tpm
    --enable-libtpms
    --disable-docs
    --disable-install-blobs
    --disable-download
)

# The QEMU that "make run" starts and "make check" tests: QEMU's default
# x86_64 device set (the card is in it), with user-mode networking and
# VNC, so that a VM a user already has boots beside the card.
QEMU_CONFIGURE_ARGS=(
    "${QEMU_CONFIGURE_ARGS_COMMON[@]}"
    --enable-slirp
    --enable-pixman
    --enable-vnc
)

# The builds that test the TPM devices alone (the fuzz and TSan builds,
# the build without libtpms, each commit of the series in series.sh and
# check-series.sh): the devices in build-aux/devices-x86_64.mak only (77
# Kconfig symbols of the default set's 228): 15% fewer objects in each
# of those builds (1,388 against 1,636), and about half the files to
# rebuild where a commit changes hw/pci/pci.h.
QEMU_CONFIGURE_ARGS_SMALL=(
    "${QEMU_CONFIGURE_ARGS_COMMON[@]}"
    --without-default-devices
    --with-devices-x86_64=vtpm-pci
)

# The small QEMU without libtpms (build-aux/check-nolibtpms.sh): the card
# must build, work with -tpmdev emulator and passthrough, and refuse
# "-device vtpm-pci" without tpmdev.  Its device list is the one above
# less the libtpms backend (series.sh lays it into the tree).  Debug
# information at gcc's level 1 (functions and line numbers, for a
# backtrace): that build only passes or fails, and compiles 11% faster.
QEMU_BUILD_NOLIBTPMS=$VTPM_CACHE/build-nolibtpms
QEMU_CONFIGURE_ARGS_NOLIBTPMS=("${QEMU_CONFIGURE_ARGS_SMALL[@]/#--enable-libtpms/--disable-libtpms}")
QEMU_CONFIGURE_ARGS_NOLIBTPMS=("${QEMU_CONFIGURE_ARGS_NOLIBTPMS[@]/#--with-devices-x86_64=vtpm-pci/--with-devices-x86_64=vtpm-pci-nolibtpms}"
                               --disable-debug-info --extra-cflags=-g1)

# Firmware that Debian strips from QEMU's tarball, from Debian's packages
FIRMWARE_DIRS=(/usr/share/seabios /usr/lib/ipxe/qemu /usr/share/qemu)

# configure_qemu BUILD LOG ARGS...: configure QEMU in BUILD with ARGS,
# unless BUILD was configured with exactly them; configure's output goes
# to LOG, and its end to stderr if it fails
configure_qemu() {
    local build=$1 log=$2 stamp=$1/.vtpm-configure-args want
    shift 2

    want=$(printf '%s\n' "$@")
    if [ -f "$build/build.ninja" ] &&
       [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "configuring QEMU in $build" >&2
    rm -rf "$build"
    mkdir -p "$build"
    if ! (cd "$build" && "$QEMU_SRC/configure" "$@") > "$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "configure failed; see $log" >&2
        return 1
    fi
    echo "$want" > "$stamp"
}

# Link that firmware where a QEMU run from build tree $1 looks for it
link_firmware() {
    local fw=$1/qemu-bundle/usr/local/share/qemu dir f

    mkdir -p "$fw"
    for dir in "${FIRMWARE_DIRS[@]}"; do
        for f in "$dir"/*.bin "$dir"/*.rom; do
            [ -e "$f" ] && [ ! -e "$fw/${f##*/}" ] && ln -s "$f" "$fw/"
        done
    done
    return 0
}

# install_debs PACKAGE...: install those of the bookworm packages that
# are missing, without recommends (build-aux/fuzz.sh, tsan.sh)
install_debs() {
    local p missing=()

    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
}

# replace_if_changed FILE: FILE takes standard input's content, unless it
# holds it already (a build reconfigures whenever a device list is
# written, even with the same content)
replace_if_changed() {
    cat > "$1.tmp"
    if cmp -s "$1.tmp" "$1"; then
        rm "$1.tmp"
    else
        mv "$1.tmp" "$1"
    fi
}

# series_devices TREE: the build's device set in TREE, less what TREE
# does not define yet (an early commit of the series, for check-series.sh
# and series.sh verify)
series_devices() {
    local line sym

    while read -r line; do
        case $line in
        CONFIG_*=y)
            sym=${line%%=*}
            sym=${sym#CONFIG_}
            if grep -rqs --include=Kconfig "^config $sym\$" "$1"; then
                echo "$line"
            fi
            ;;
        esac
    done < "$VTPM_TOP/build-aux/devices-x86_64.mak" |
        replace_if_changed "$1/configs/devices/x86_64-softmmu/vtpm-pci.mak"
}

# series_configure_args TREE: QEMU_CONFIGURE_ARGS_SMALL for a commit of the
# series in TREE, into series_args: without --enable-libtpms before the
# commit that adds the option (the first ones apply to QEMU as it is)
series_configure_args() {
    local a

    series_args=()
    for a in "${QEMU_CONFIGURE_ARGS_SMALL[@]}"; do
        if [ "$a" = --enable-libtpms ] &&
           ! grep -q "^option('libtpms'" "$1/meson_options.txt"; then
            continue
        fi
        series_args+=("$a")
    done
}
