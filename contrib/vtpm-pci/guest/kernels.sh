#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The Debian kernels the guest side is built and tested on, one per line
# of Linux that Debian serves to this Debian 12 host:
#
#   6.1   bookworm's, what linux-image-amd64 depends on
#   6.12  bookworm-backports', what linux-image-amd64/bookworm-backports
#         depends on (built with gcc-12, like bookworm's)
#   7.x   trixie-backports', what linux-image-amd64/trixie-backports
#         depends on: the newest Debian builds with a compiler it also
#         ships for trixie (gcc-14).  sid's kernels need gcc-16.
#
# Each line's ABI is read from apt's lists at every run, never written
# down: old ABIs leave the archive.  The labels (6.1, 6.12, 7.3) come
# from the ABIs.
#
#   kernels.sh setup        install what the host needs (debootstrap, and
#                           pahole for BTF); for build-aux/setup-host.sh
#   kernels.sh prepare      fetch and unpack what every line needs, into
#                           $VTPM_CACHE/kernels (root: it builds a trixie
#                           tree); prints nothing when all is there, and
#                           does nothing with VTPM_KERNELS_PREPARED set
#                           (by a caller that just prepared)
#   kernels.sh lines        LABEL ABI VERSION BUILDER, oldest first, as
#                           resolved by the last prepare
#   kernels.sh build LABEL DIR
#                           build the module whose sources are in DIR
#                           against LABEL's headers, in DIR; the build's
#                           output on stdout and stderr
#   kernels.sh prototypes LABEL HEADER
#                           check that the functions HEADER declares
#                           have those prototypes in the kernel's BTF (the
#                           vmlinux its headers ship); exits 77 when they
#                           ship none
#   kernels.sh source LABEL PACKAGE DIR
#                           download LABEL's PACKAGE at LABEL's version
#                           into DIR (an empty directory)
#
# Nothing from trixie is installed on the host.  bookworm's and
# bookworm-backports' packages are downloaded with the host's apt and
# unpacked with dpkg-deb -x: the 6.12 headers package depends on its
# kernel image, which a build host has no use for.  trixie's are used
# inside a minimal trixie tree, $VTPM_CACHE/trixie-root, made with
# debootstrap: gcc-14, make, libelf1t64 and dwarves (for objtool and
# BTF), and the 7.x headers, installed there with its own apt.  Guest
# kernels are only ever unpacked, never installed.

set -euo pipefail

: "${VTPM_CACHE:=$HOME/.cache/vtpm-pci}"
top=$VTPM_CACHE/kernels
tree=$VTPM_CACHE/trixie-root
lines_file=$top/lines

# What the host needs, from bookworm: debootstrap for the trixie tree,
# pahole for the BTF of modules built against 6.12's headers (which ship
# a vmlinux to base it on)
HOST_PACKAGES=(debootstrap pahole)
# What the trixie tree holds besides its base system
TREE_PACKAGES=(gcc-14 make libelf1t64 dwarves)
TREE_SUITES=(trixie trixie-backports)

log() { printf 'kernels: %s\n' "$*" >&2; }
die() { printf 'kernels: %s\n' "$*" >&2; exit 1; }

# The mirror the host's apt uses for bookworm/main
archive_uri() {
    apt-cache policy |
        awk '$3 ~ /^bookworm\/main$/ && $4 == "amd64" { print $2; exit }'
}

# Run a command in the trixie tree, with /proc (objtool reads it) mounted
# in a mount namespace of its own: the mount ends with the command
in_tree() {
    unshare --mount --propagation private sh -c '
        root=$1
        shift
        mount -t proc proc "$root/proc" &&
        exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
    ' sh "$tree" "$@"
}

# host_apt|tree_apt COMMAND...: apt-cache or apt-get with the host's or
# the tree's lists
host_apt() { "$@"; }
tree_apt() { in_tree "$@"; }

# --- the trixie tree -----------------------------------------------------------

make_tree() {
    local uri new=$tree.new suite include
    command -v debootstrap > /dev/null ||
        die "no debootstrap: run build-aux/setup-host.sh (as root)"
    uri=$(archive_uri)
    [ -n "$uri" ] || die "no bookworm/main apt source to take the mirror from"
    log "making a trixie tree in $tree (debootstrap, from $uri)"
    rm -rf "$new"
    include=$(IFS=,; echo "${TREE_PACKAGES[*]}")
    nice debootstrap --variant=minbase --include="$include" \
        trixie "$new" "$uri" > "$top/debootstrap.log" 2>&1 || {
        tail -n 20 "$top/debootstrap.log" >&2
        die "debootstrap failed; its log: $top/debootstrap.log"
    }
    for suite in "${TREE_SUITES[@]}"; do
        echo "deb $uri $suite main"
    done > "$new/etc/apt/sources.list"
    mv "$new" "$tree"
    touch "$tree/.vtpm-pci-update"      # its lists are due for an update
}

# The tree's lists: refreshed when new, when the host's lists were
# refreshed since (build-aux/setup-host.sh does it when it installs), and
# when asked to (update_tree)
refresh_tree() {
    # apt keeps the archive's dates as the lists' mtimes: their ctimes say
    # when it last fetched or checked them
    if [ -e "$tree/.vtpm-pci-update" ] ||
       [ ! -e "$tree/.vtpm-pci-lists" ] ||
       find /var/lib/apt/lists -maxdepth 1 -name '*InRelease' \
           -cnewer "$tree/.vtpm-pci-lists" | grep -q .
    then
        update_tree
    fi
}

update_tree() {
    log "updating the trixie tree's package lists"
    tree_apt apt-get update -q > "$top/tree-update.log" 2>&1 || {
        cat "$top/tree-update.log" >&2
        die "apt-get update failed in the trixie tree"
    }
    touch "$tree/.vtpm-pci-lists"
    rm -f "$tree/.vtpm-pci-update"
}

# --- resolving the lines ---------------------------------------------------------

# abis APT METAPACKAGE...: the ABI of the kernel image each depends on,
# one a line, in their order (apt-cache is slow on this host's lists: one
# call for them all)
abis() {
    local apt=$1
    shift
    { "$apt" apt-cache depends "$@" 2>/dev/null || true; } | awk '
        /^[^ ]/ { n++ }
        /^ *Depends: linux-image-[0-9].*-amd64$/ && !done[n]++ {
            sub(/.*linux-image-/, ""); print }'
}

# versions APT PACKAGE...: "PACKAGE VERSION" for those apt knows (their
# candidates)
versions() {
    local apt=$1
    shift
    { "$apt" apt-cache show --no-all-versions "$@" 2>/dev/null || true; } |
        awk '$1 == "Package:" { p = $2 } $1 == "Version:" { print p, $2 }'
}

# version_of APT PACKAGE: its candidate version, or nothing
version_of() {
    versions "$@" | awk '{ print $2 }'
}

# label ABI: 6.1.0-57-amd64 -> 6.1, 6.12.95+deb12-amd64 -> 6.12,
# 7.3.4+deb13-amd64 -> 7.3
label() {
    local v=${1%%[-+]*}
    echo "${v%.*}"
}

# resolve: LABEL ABI VERSION BUILDER for each line, oldest first
resolve() {
    local host new abi ver builder
    mapfile -t host < <(abis host_apt linux-image-amd64 \
                            linux-image-amd64/bookworm-backports)
    mapfile -t new < <(abis tree_apt linux-image-amd64/trixie-backports)
    [ ${#host[@]} -eq 2 ] && [ ${#new[@]} -eq 1 ] || return 1
    for abi in "${host[@]}" "${new[@]}"; do
        if [ "$abi" = "${new[0]}" ]; then
            builder=tree
            ver=$(version_of tree_apt "linux-headers-$abi")
        else
            builder=host
            ver=$(versions host_apt "${host[@]/#/linux-headers-}" |
                  awk -v p="linux-headers-$abi" '$1 == p { print $2 }')
        fi
        [ -n "$ver" ] || return 1
        echo "$(label "$abi") $abi $ver $builder"
    done
}

# --- fetching ----------------------------------------------------------------------

# download APT DIR PACKAGE=VERSION...: into DIR, an empty directory
download() {
    local apt=$1 dir=$2 tmp
    shift 2
    if [ "$apt" = host_apt ]; then
        (cd "$dir" &&
         apt-get download -q -o APT::Sandbox::User=root "$@") > /dev/null
    else
        tmp=$(mktemp -d "$tree/tmp/download.XXXXXX")
        if in_tree sh -c 'cd "$1" && shift &&
                exec apt-get download -q -o APT::Sandbox::User=root "$@"' \
                sh "/tmp/${tmp##*/}" "$@" > /dev/null; then
            mv "$tmp"/*.deb "$dir/"
            rmdir "$tmp"
        else
            rm -rf "$tmp"
            return 1
        fi
    fi
}

# The headers packages of a host line's ABI: linux-headers-ABI and the
# common headers and kbuild packages it depends on, at their versions
headers_packages() {
    local abi=$1 ver=$2 pkg
    echo "linux-headers-$abi=$ver"
    for pkg in $(apt-cache depends "linux-headers-$abi=$ver" |
                 sed -n 's/^ *Depends: \(linux-\(headers\|kbuild\)-[^ ]*\)$/\1/p' |
                 sort -u); do
        echo "$pkg=$(apt-cache show "$pkg" | awk -v v="$ver" \
            '$1 == "Version:" && $2 == v { print v; exit }')"
    done
}

# The modules of a VM as users run one, beside the card (e2e.sh's "vm"):
# virtio-pci (built in since 6.12), a virtio disk and a virtio NIC, each
# with the modules it depends on
GUEST_MODULES=(virtio_pci virtio_blk virtio_net)

# guest_modules LABEL DEB DIR: GUEST_MODULES from the kernel package DEB
# into DIR, with DIR/order, their names in an order they load in
guest_modules() {
    local label=$1 deb=$2 dir=$3 list m

    rm -rf "$dir" && mkdir -p "$dir" || die "cannot make $dir"
    list=$(dpkg-deb --fsys-tarfile "$deb" | tar -t) ||
        die "$label: cannot list $deb"
    for m in "${GUEST_MODULES[@]}"; do
        if [ "$m" = virtio_pci ] && ! module_path "$m" > /dev/null; then
            continue
        fi
        guest_module "$m"
    done
}

# module_path M: where module M is in $list (guest_modules')
module_path() {
    grep -E "/kernel/.*/${1//_/[-_]}\.ko(\.xz|\.zst)?\$" <<< "$list"
}

# guest_module M: module M for guest_modules, uncompressed (busybox's
# insmod reads plain .ko files), after the modules it depends on (its
# .modinfo's "depends", as modinfo reads it)
guest_module() {
    local m=$1 path d

    [ -f "$dir/$m.ko" ] && return 0
    [ ! -f "$dir/$m.ko.new" ] || die "$label: $m depends on itself"
    path=$(module_path "$m") || die "$label: no $m module in $deb"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -O "$path" |
        case $path in
        *.xz) xz -dc ;;
        *.zst) zstd -dc ;;
        *) cat ;;
        esac > "$dir/$m.ko.new" || die "$label: cannot unpack $path"
    for d in $(objcopy -O binary --only-section=.modinfo "$dir/$m.ko.new" \
                   /dev/stdout | tr '\0' '\n' | sed -n 's/^depends=//p' |
               tr , ' '); do
        guest_module "$d"
    done
    mv "$dir/$m.ko.new" "$dir/$m.ko" && echo "$m" >> "$dir/order" ||
        die "cannot write $dir"
}

# prepare_line LABEL ABI VERSION BUILDER: its kernel image, its config,
# and the headers to build the module against.  Returns 1 when a package
# cannot be downloaded (lists older than the archive), dies on any other
# failure.  It runs where set -e does not act (prepare's "if"): each step
# says what failed itself.
prepare_line() {
    local label=$1 abi=$2 ver=$3 builder=$4
    local dir=$top/$abi apt=host_apt img mods img_ver path stamp pkgs=() dl
    # (the last word: what a line's directory holds; 2 since the guest's
    # virtio modules are in it)
    stamp="$ver $builder 2"
    [ "$(cat "$dir/stamp" 2>/dev/null)" != "$stamp" ] || return 0
    [ "$builder" = tree ] && apt=tree_apt

    log "$label: fetching Debian's $abi ($ver)"
    rm -rf "$dir" && mkdir -p "$dir/debs" || die "cannot make $dir"
    dl=$dir/debs

    # The kernel and its modules: linux-binary-ABI and linux-modules-ABI
    # since 7.x split them out of linux-image-ABI, which only depends on
    # them now
    img=linux-binary-$abi
    mods=linux-modules-$abi
    path=./usr/lib/modules/$abi/vmlinuz
    img_ver=$(version_of "$apt" "$img")
    if [ -z "$img_ver" ]; then
        img=linux-image-$abi
        mods=$img
        path=./boot/vmlinuz-$abi
        img_ver=$(version_of "$apt" "$img")
    fi
    download "$apt" "$dl" "$img=$img_ver" ||
        { log "$label: cannot download $img $img_ver"; return 1; }
    if [ "$mods" != "$img" ]; then
        download "$apt" "$dl" "$mods=$img_ver" ||
            { log "$label: cannot download $mods $img_ver"; return 1; }
    fi

    if [ "$builder" = host ]; then
        mapfile -t pkgs < <(headers_packages "$abi" "$ver")
        download host_apt "$dl" "${pkgs[@]}" ||
            { log "$label: cannot download ${pkgs[*]}"; return 1; }
        for deb in "$dl"/linux-headers-*.deb "$dl"/linux-kbuild-*.deb; do
            dpkg-deb -x "$deb" "$dir/root" || die "$label: cannot unpack $deb"
        done
        # The headers' Makefile includes the common one by its absolute
        # path under /usr/src: point it to the unpacked copy
        sed -i "s@^include /usr/src/@include $dir/root/usr/src/@" \
            "$dir/root/usr/src/linux-headers-$abi/Makefile" &&
            grep -q "^include $dir/root/usr/src/" \
                "$dir/root/usr/src/linux-headers-$abi/Makefile" ||
            die "$label: the headers' Makefile includes no /usr/src Makefile"
        ln -s "root/usr/src/linux-headers-$abi" "$dir/headers" ||
            die "cannot link $dir/headers"
    else
        log "$label: installing linux-headers-$abi in the trixie tree"
        tree_apt apt-get install -y -q --no-install-recommends \
            "linux-headers-$abi=$ver" > "$dir/install.log" 2>&1 || {
            tail -n 20 "$dir/install.log" >&2
            die "$label: cannot install linux-headers-$abi $ver in $tree"
        }
        ln -s "../../trixie-root/usr/src/linux-headers-$abi" "$dir/headers" ||
            die "cannot link $dir/headers"
    fi
    [ -f "$dir/headers/Makefile" ] && [ -f "$dir/headers/.config" ] ||
        die "$label: no kernel headers in $dir/headers"
    cp "$dir/headers/.config" "$dir/config" || die "cannot copy $abi's config"

    dpkg-deb --fsys-tarfile "$dl/${img}_"*.deb |
        tar -x -O "$path" > "$dir/bzImage.new" ||
        die "$label: no $path in $img"
    guest_modules "$label" "$dl/${mods}_"*.deb "$dir/modules"
    mv "$dir/bzImage.new" "$dir/bzImage" && rm -rf "$dl" &&
        echo "$stamp" > "$dir/stamp" || die "cannot write $dir"
}

# Headers of kernels no line uses any more, in the trixie tree; KEEP is
# the one it uses (7.3.4+deb13: the flavour's, common and kbuild packages)
clean_tree() {
    local keep=$1 old
    old=$(in_tree dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' \
              'linux-headers-*' 'linux-kbuild-*' 2>/dev/null |
          awk '$1 == "ii" { print $2 }' | grep -v -F "$keep" || true)
    [ -z "$old" ] && return 0
    log "removing ${old//$'\n'/ } from the trixie tree"
    # shellcheck disable=SC2086 # one package a word
    tree_apt apt-get purge -y -q $old > /dev/null ||
        log "warning: could not remove $old"
}

# prepare_lines LINES: prepare_line for each, stopping at a failure
prepare_lines() {
    local label abi ver builder
    while read -r label abi ver builder; do
        prepare_line "$label" "$abi" "$ver" "$builder" || return 1
    done <<< "$1"
}

prepare() {
    local lines abi
    # Resolved once a run: build-aux/check.sh prepares, then its e2e
    # tests and the benchmark build their images
    if [ -n "${VTPM_KERNELS_PREPARED:-}" ] && [ -f "$lines_file" ]; then
        return 0
    fi
    mkdir -p "$top"
    [ -e "$tree/usr/bin/gcc-14" ] || make_tree
    refresh_tree
    # Lists that predate a suite name no kernel; lists older than the
    # archive name packages it no longer serves: refresh them, once
    if ! lines=$(resolve) || ! prepare_lines "$lines"; then
        log "refreshing apt's lists, the host's and the trixie tree's"
        apt-get update -q > "$top/host-update.log" 2>&1 || {
            cat "$top/host-update.log" >&2
            die "apt-get update failed"
        }
        update_tree
        lines=$(resolve) ||
            die "cannot resolve the kernel lines from apt's lists (bookworm, bookworm-backports, trixie-backports)"
        prepare_lines "$lines" || die "cannot fetch the kernels"
    fi
    abi=$(awk '$4 == "tree" { print $2 }' <<< "$lines")
    clean_tree "${abi%-amd64}"
    for dir in "$top"/*/; do
        [ -e "$dir/stamp" ] || continue
        grep -q -F " $(basename "$dir") " <<< "$lines" || rm -rf "$dir"
    done
    echo "$lines" > "$lines_file.new"
    mv "$lines_file.new" "$lines_file"
}

# line LABEL: sets abi, ver and builder from the last prepare
line() {
    [ -f "$lines_file" ] || die "no $lines_file: run kernels.sh prepare"
    read -r _ abi ver builder < <(awk -v l="$1" '$1 == l' "$lines_file") ||
        die "no kernel line $1 (know: $(cut -d' ' -f1 "$lines_file" | xargs))"
}

build() {
    local src=$2 tmp
    line "$1"
    if [ "$builder" = host ]; then
        make -s -C "$top/$abi/headers/" M="$src" modules
    else
        tmp=$(mktemp -d "$tree/tmp/module.XXXXXX")
        cp -r "$src/." "$tmp/"
        in_tree make -s -C "/usr/src/linux-headers-$abi" M="/tmp/${tmp##*/}" \
            modules || { rm -rf "$tmp"; return 1; }
        cp "$tmp"/*.ko "$src/"
        rm -rf "$tmp"
    fi
}

# Declarations as C text, one a line, with no space and the type names
# BTF uses: "unsigned long f(struct x *p)" -> "longunsignedintf(structx*p);"
normalize() {
    sed -e 's/unsigned long/long unsigned int/g' -e 's/[[:space:]]//g'
}

prototypes() {
    local header=$2 vmlinux tmp raw have decl name status=0
    local -a want
    line "$1"
    vmlinux=$top/$abi/headers/vmlinux
    [ -f "$vmlinux" ] || { log "$1: the headers ship no vmlinux"; return 77; }
    # The declarations: from a line that starts with a type to its ";"
    mapfile -t want < <(awk '
        !d && /^[a-z].*\(/ { d = 1; s = "" }
        d { s = s " " $0 }
        d && /;[[:space:]]*$/ { print s; d = 0 }' "$header")
    [ ${#want[@]} -gt 0 ] || die "no function declarations in $header"
    # pfunct (dwarves, in the tree) prints prototypes from BTF
    tmp=$(mktemp "$tree/tmp/vmlinux.XXXXXX")
    cp "$vmlinux" "$tmp"
    raw=$(in_tree pfunct -F btf -P "/tmp/${tmp##*/}" 2>/dev/null)
    rm -f "$tmp"
    have=$(normalize <<< "$raw")
    for decl in "${want[@]}"; do
        name=$(grep -o '[a-z_][a-z0-9_]*(' <<< "$decl" | head -n 1)
        name=${name%(}
        if grep -qxF "$(normalize <<< "$decl")" <<< "$have"; then
            echo "$name: as in $abi"
        else
            echo "$name: not as in $abi, which has:"
            grep -E "[ *]$name\(" <<< "$raw" | sed 's/^/  /' || echo "  nothing"
            status=1
        fi
    done
    return $status
}

source_pkg() {
    local pkg=$2 dir=$3 apt=host_apt
    line "$1"
    [ "$builder" = tree ] && apt=tree_apt
    download "$apt" "$dir" "$pkg=$ver"
}

setup() {
    local missing=() p
    [ "$(id -u)" -eq 0 ] || die "setup must run as root (it installs packages)"
    for p in "${HOST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p/bookworm")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}" > "$top/install.log" 2>&1 || {
            cat "$top/install.log" >&2
            die "cannot install ${missing[*]}"
        }
    fi
}

case ${1:-} in
setup) mkdir -p "$top"; setup ;;
prepare) prepare ;;
lines) [ -f "$lines_file" ] || die "no $lines_file: run kernels.sh prepare"
       cat "$lines_file" ;;
build) [ $# -eq 3 ] || die "usage: kernels.sh build LABEL DIR"
       build "$2" "$(cd "$3" && pwd)" ;;
prototypes) [ $# -eq 3 ] || die "usage: kernels.sh prototypes LABEL HEADER"
            prototypes "$2" "$3" ;;
source) [ $# -eq 4 ] || die "usage: kernels.sh source LABEL PACKAGE DIR"
        source_pkg "$2" "$3" "$(cd "$4" && pwd)" ;;
*) die "usage: kernels.sh setup|prepare|lines|build LABEL DIR|source LABEL PACKAGE DIR" ;;
esac
