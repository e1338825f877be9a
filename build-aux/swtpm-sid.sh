#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A newer swtpm than Debian 12's, for the state tests: the TPMs of VMs
# today are made by swtpm 0.7 (Debian 12) and by swtpm 0.10 with libtpms
# 0.10 (sid, and what newer distributions ship), and -tpmdev libtpms
# must open both.  Nothing from sid is installed on the host: a minimal
# sid tree, $VTPM_CACHE/sid-root (debootstrap, as contrib/vtpm-pci's
# kernels.sh makes its trixie tree), holds swtpm, and
# $VTPM_CACHE/swtpm-newer/swtpm runs the tree's swtpm with the tree's
# dynamic loader and libraries, on the host's files and sockets.
#
#   swtpm-sid.sh prepare   make the tree, or bring it up to date once a
#                          day (as root); then check the wrapper runs
#   swtpm-sid.sh path      print the wrapper's path if it is there
#
# tests.sh sets QTEST_SWTPM_NEWER to the wrapper, which
# tpm-libtpms-state-test's /tpm-libtpms/swtpm-newer/ tests run.

set -euo pipefail
. "$(dirname "$0")/env.sh"

tree=$VTPM_CACHE/sid-root
wrapper=$VTPM_CACHE/swtpm-newer/swtpm
PACKAGES=(swtpm)

log() { printf 'swtpm-sid: %s\n' "$*" >&2; }
die() { printf 'swtpm-sid: %s\n' "$*" >&2; exit 1; }

# The mirror the host's apt uses for bookworm/main
mirror() {
    apt-cache policy |
        awk '$3 ~ /^bookworm\/main$/ && $4 == "amd64" { print $2; exit }'
}

in_tree() {
    chroot "$tree" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}

make_tree() {
    local uri new=$tree.new
    uri=$(mirror)
    [ -n "$uri" ] || die "no bookworm/main apt source to take the mirror from"
    command -v debootstrap > /dev/null ||
        die "no debootstrap: run build-aux/setup-host.sh (as root)"
    log "making a sid tree with ${PACKAGES[*]} in $tree (from $uri)"
    rm -rf "$new"
    nice debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        sid "$new" "$uri" > "$VTPM_CACHE/sid-debootstrap.log" 2>&1 || {
        tail -n 20 "$VTPM_CACHE/sid-debootstrap.log" >&2
        die "debootstrap failed; its log: $VTPM_CACHE/sid-debootstrap.log"
    }
    mv "$new" "$tree"
}

# Once a day: sid moves, and the tests should see the swtpm it ships
update_tree() {
    [ -n "$(find "$tree/var/lib/dpkg/status" -mmin +1440)" ] || return 0
    log "updating ${PACKAGES[*]} in $tree"
    { in_tree apt-get update -q &&
      in_tree apt-get install -q -y --no-install-recommends "${PACKAGES[@]}" &&
      touch "$tree/var/lib/dpkg/status"; } \
        > "$VTPM_CACHE/sid-update.log" 2>&1 ||
        log "could not update the tree (see $VTPM_CACHE/sid-update.log);" \
            "keeping the swtpm it has"
}

write_wrapper() {
    mkdir -p "$(dirname "$wrapper")"
    cat > "$wrapper.new" <<EOF
#!/bin/sh
# sid's swtpm from $tree, with the tree's loader and libraries
# (build-aux/swtpm-sid.sh)
exec "$tree/lib64/ld-linux-x86-64.so.2" \\
    --library-path "$tree/usr/lib/x86_64-linux-gnu/swtpm:$tree/usr/lib/x86_64-linux-gnu" \\
    "$tree/usr/bin/swtpm" "\$@"
EOF
    chmod +x "$wrapper.new"
    mv "$wrapper.new" "$wrapper"
}

case ${1:-} in
prepare)
    [ "$(id -u)" -eq 0 ] || die "prepare must run as root (debootstrap)"
    if [ -d "$tree" ]; then
        update_tree
    else
        make_tree
    fi
    write_wrapper
    version=$("$wrapper" --version 2>&1) || die "$wrapper does not run: $version"
    log "$version"
    ;;
path)
    [ -x "$wrapper" ] && echo "$wrapper"
    ;;
*)
    echo "usage: $0 prepare|path" >&2
    exit 2
    ;;
esac
