#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install what building and testing vtpm-pci needs on a Debian 12 host.
#
# Everything comes from Debian's archive, reached through the mirror the
# host's apt configuration already uses:
#   - bookworm:           compilers, glib, libtpms, firmware, swtpm
#   - bookworm-backports: meson >= 1.5 (QEMU 10.x needs it)
#   - trixie, trixie-backports, sid (deb-src only): QEMU's source package
#
# Idempotent: a second run only checks that the packages are there.

set -euo pipefail

PACKAGES=(
    build-essential ccache dpkg-dev pkg-config ninja-build python3-venv
    libglib2.0-dev libfdt-dev zlib1g-dev flex bison
    libtpms-dev
    libseccomp-dev              # -sandbox on
    libslirp-dev libpixman-1-dev    # -nic user, -vnc (make run)
    seabios ipxe-qemu qemu-system-data
    ovmf                        # UEFI, for the measured boot tests
    swtpm swtpm-tools
    openssl                     # e2e: swtpm_setup's certificates, verified
    cpio xz-utils               # the guest test image (contrib/vtpm-pci)
    expect                      # the test that drives "make run"
    gdb                         # a fuzz stall shows every thread (fuzz.c)
    gnuplot-nox                 # the benchmark's plot (bench/)
    libssl-dev                  # the benchmark's HMAC session (bench/)
    git git-absorb              # the series as a git branch (series.sh)
)
BACKPORTS_PACKAGES=(meson)
MESON_MIN=1.5

log() { printf 'setup-host: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: must run as root (it installs Debian packages)" >&2
    exit 1
fi
if ! grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then
    log "warning: written for Debian 12 (bookworm); carrying on"
fi

# The Debian mirror this host is already configured for: the URI apt reports
# for bookworm/main.
archive_uri() {
    apt-cache policy |
        awk '$3 ~ /^bookworm\/main$/ && $4 == "amd64" { print $2; exit }'
}

list=/etc/apt/sources.list.d/vtpm-pci.sources
need_update=
uri=$(archive_uri)
if [ -z "$uri" ]; then
    apt-get update -q
    uri=$(archive_uri)
fi
[ -n "$uri" ] || { echo "setup-host: no bookworm/main apt source" >&2; exit 1; }
want=$(cat <<SRC
# Added by vtpm-pci's build-aux/setup-host.sh.
# meson >= 1.5 for QEMU (installed explicitly with -t bookworm-backports)
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# QEMU's source package, from whichever suite serves the version
# build-aux/fetch-qemu.sh wants.  Sources only: binaries from these
# suites must never be installed on this Debian 12 host.
Types: deb-src
URIs: $uri
Suites: trixie trixie-backports sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)
if [ "$(cat "$list" 2>/dev/null)" != "$want" ]; then
    log "apt sources: bookworm-backports; trixie, trixie-backports and" \
        "sid deb-src, from $uri"
    printf '%s\n' "$want" > "$list"
    need_update=1
fi

# What the guest kernels contrib/vtpm-pci is tested on need on the host:
# debootstrap and pahole from bookworm.  The kernels themselves, one of
# each line of Linux Debian serves this host (bookworm's 6.1,
# bookworm-backports' 6.12, trixie-backports' 7.x), their headers and the
# trixie tree the newest's module is built in are fetched into
# $VTPM_CACHE where they are first needed (guest/kernels.sh prepare:
# "make run" before it boots, "make check" while QEMU builds); nothing
# from another release is installed here
"$(dirname "$0")/../contrib/vtpm-pci/guest/kernels.sh" setup

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        missing+=("$p")
done
meson_ok=
if command -v meson >/dev/null &&
   dpkg --compare-versions "$(meson --version)" ge "$MESON_MIN"; then
    meson_ok=1
fi

if [ ${#missing[@]} -eq 0 ] && [ -n "$meson_ok" ] && [ -z "$need_update" ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ -z "$meson_ok" ]; then
    log "installing meson from bookworm-backports"
    apt-get install -y -q --no-install-recommends \
        -t bookworm-backports "${BACKPORTS_PACKAGES[@]}"
fi
