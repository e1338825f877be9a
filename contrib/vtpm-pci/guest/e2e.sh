#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# End-to-end tests of vtpm-pci in a booted Linux guest.  Builds the guest
# images (build-image.sh), one for each kernel line of kernels.sh, boots
# them under TCG with the card in several configurations, and reports
# every check the guest made as "ok - NAME" or "not ok - NAME" (a skipped
# one as "skip - NAME"), one a line, for build-aux/check.sh to count.
# Names start with the kernel line and the configuration:
# "e2e/7.3/msi: ...".
#
#   e2e.sh [RUN...]
#
# where RUN is LINE/CONFIG (7.3/tpm12), LINE (its default set), or CONFIG
# (on every line).  Configurations: msi (the driver through BAR 2, then
# through DATA with port=1) nobuffer (a card without BAR 2) intx iobase
# swtpm tpm12; bridge,
# crowded and pxb: pinned ports behind bridges, and where firmware and
# Linux put other devices; bios and uefi: measured boot by SeaBIOS and by
# OVMF into tpm-crb's in-process TPM (-tpmdev libtpms, no card); ppi: a
# TPM clear through the physical presence interface, carried out by
# OVMF; vm: the card in a VM as users run one, beside a VGA, a virtio disk
# and a user-mode virtio NIC; move: a TPM that swtpm_setup provisioned
# moves from swtpm to the in-process TPM (behind the card, then tpm-crb)
# on swtpm's state directory, and back.  By default, the newest line
# runs all fourteen, the others msi and
# intx: the driver's paths that depend on the kernel (the TPM core's
# contract, the send() signature, TPM_CHIP_FLAG_SYNC, MSI and INTx) are
# on every line, and what depends on QEMU alone is tested once.
#
# Each boot has a time limit; QEMU's exit status, set by the guest through
# isa-debug-exit, says whether the guest saw every check pass.  The runs
# go VTPM_E2E_JOBS at a time (default: one a core); their reports come
# out in the order above all the same.

set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../../build-aux/env.sh"

images=$VTPM_CACHE/guest/image
# VTPM_E2E_LOGS: somewhere else for the serial logs, for runs side by side
logs=${VTPM_E2E_LOGS:-$VTPM_CACHE/guest/logs}
BOOT_TIMEOUT=${VTPM_E2E_TIMEOUT:-120}
GUEST_PASS=33           # (0x10 << 1) | 1, see init
CONFIGS=(msi nobuffer intx iobase bridge crowded pxb swtpm tpm12 bios uefi ppi vm
         move)
# Debian's ovmf: UEFI with TPM 2.0 measured boot
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
OTHER_LINES_CONFIGS=(msi intx)

report() {          # report NAME STATUS
    if [ "$2" -eq 0 ]; then
        echo "ok - $1"
    else
        echo "not ok - $1"
    fi
}

# boot NAME "KERNEL ARGS" QEMU-ARGS...: boot the image of $line, report
# its checks as e2e/$line/NAME.  With E2E_REBOOT=1, a reboot of the guest
# is one, not the end of QEMU; E2E_MACHINE=pc boots pc instead of q35.
boot() {
    local name=$line/$1 append=$2 log=$logs/$line-$1.log status t0
    local image=$images/$line
    local -a once=(-no-reboot)
    [ -z "${E2E_REBOOT:-}" ] || once=()
    shift 2
    t0=$SECONDS
    rm -f "$log.limit"
    # -nodefaults: SeaBIOS would wait 30 s for q35's default empty CD-ROM.
    # At the time limit, $log.limit records where the machine stood.
    # no_timer_check: under TCG on a loaded host the kernel's check of the
    # IO-APIC timer can miss its ticks and panic ("IO-APIC + timer doesn't
    # work!"), as it did beside fuzzers; a virtual timer needs no check.
    QEMU_SRC=$QEMU_SRC "$here/run-limited.py" "$BOOT_TIMEOUT" "$log.limit" \
        "$QEMU_BIN" -M "${E2E_MACHINE:-q35}" -nodefaults -m 256M -smp 1 \
        -display none -serial "file:$log" "${once[@]}" \
        -kernel "$image/bzImage" -initrd "$image/initrd.cpio" \
        -append "console=ttyS0 quiet no_timer_check panic=-1 \
                 hung_task_panic=1 sysctl.kernel.hung_task_timeout_secs=30 \
                 $append" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        "$@" < /dev/null
    status=$?
    # (a line may start with OVMF's screen codes)
    tr -d '\r' < "$log" |
        sed -n "s@^.*VTPM-E2E: \(not ok\|ok\) - @\1 - e2e/$name: @p"
    report "e2e/$name: the guest passed all its checks ($((SECONDS - t0)) s, $(cat "$image/abi"))" \
        $((status != GUEST_PASS))
    if [ $status -ne $GUEST_PASS ]; then
        echo "# QEMU exited with $status; the end of $log:"
        tr -d '\r' < "$log" | tail -n 60 | sed 's/^/#   /'
        if [ -f "$log.limit" ]; then
            echo "# at the time limit ($log.limit):"
            sed 's/^/#   /' "$log.limit"
        fi
    fi
}

# wait_unlocked DIR: until no process holds swtpm's lock on DIR/.lock
# (swtpm --terminate ends after QEMU, not with it)
wait_unlocked() {
    timeout 60 python3 -c 'import fcntl, sys
fcntl.lockf(open(sys.argv[1], "a"), fcntl.LOCK_EX)' "$1/.lock"
}

# swtpm_boot NAME APPEND DIR: boot NAME with swtpm, its state in DIR,
# behind the card; return once swtpm has let go of DIR
swtpm_boot() {
    local name=$1 append=$2 dir=$3 run
    run=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-swtpm.XXXXXX")
    # With --daemon, swtpm returns once its control socket listens;
    # --terminate ends it when QEMU disconnects.
    if ! swtpm socket --tpm2 --daemon --terminate \
            --tpmstate "dir=$dir" --pid "file=$run/pid" \
            --ctrl "type=unixio,path=$run/sock" --log "file=$run/log"; then
        report "e2e/$line/$name: start swtpm" 1
        rm -rf "$run"
        return 1
    fi
    boot "$name" "$append" \
        -chardev "socket,id=chrtpm,path=$run/sock" \
        -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device vtpm-pci,tpmdev=tpm0
    # Normally gone already (--terminate), with its pid file
    if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2> /dev/null; then
        kill "$(cat "$run/pid")"
    fi
    wait_unlocked "$dir"
    rm -rf "$run"
}

run_swtpm() {
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-swtpm.XXXXXX")
    swtpm_boot swtpm "vtpm.irq=msi" "$dir"
    rm -rf "$dir"
}

# provision DIR: a TPM 2.0 in DIR/tpm, made by swtpm_setup as libvirt has
# it make one, with an EK certificate and a platform certificate from a
# local CA in DIR/ca (swtpm-localca), its NV locked
provision() {
    local dir=$1
    mkdir "$dir/tpm" "$dir/ca" &&
    printf '%s\n' "create_certs_tool = swtpm_localca" \
        "create_certs_tool_config = $dir/localca.conf" \
        "create_certs_tool_options = $dir/localca.options" \
        > "$dir/swtpm_setup.conf" &&
    printf '%s\n' "statedir = $dir/ca" "signingkey = $dir/ca/signkey.pem" \
        "issuercert = $dir/ca/issuercert.pem" \
        "certserial = $dir/ca/certserial" > "$dir/localca.conf" &&
    printf '%s\n' "--platform-manufacturer QEMU" "--platform-version 2.1" \
        "--platform-model vtpm-pci" > "$dir/localca.options" &&
    swtpm_setup --tpm2 --tpmstate "dir://$dir/tpm" \
        --config "$dir/swtpm_setup.conf" --create-ek-cert \
        --create-platform-cert --lock-nvram
}

# move_certs LOG DIR EK: the certificates the guest printed (VTPM-E2E-CERT)
# verify against the local CA of provision DIR, and the EK certificate's
# public key is the EK whose digest (of its DER) is EK
move_certs() {
    local log=$1 dir=$2 ek=$3 name hex n=0 key
    while read -r name hex; do
        printf '%s' "$hex" | perl -ne 'print pack("H*", $_)' > "$dir/$name.der" &&
        openssl x509 -inform DER -in "$dir/$name.der" -out "$dir/$name.pem" &&
        openssl verify -CAfile "$dir/ca/swtpm-localca-rootca-cert.pem" \
            -untrusted "$dir/ca/issuercert.pem" "$dir/$name.pem" || return 1
        n=$((n + 1))
    done < <(tr -d '\r' < "$log" | sed -n 's/^.*VTPM-E2E-CERT: //p')
    [ $n -eq 3 ] || { echo "$n certificates, not 3"; return 1; }
    key=$(openssl x509 -in "$dir/rsa-ek.pem" -pubkey -noout |
          openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
    [ "$key" = "$ek" ] || { echo "the EK certificate's key is not the EK"; return 1; }
}

# A TPM that swtpm_setup provisioned moves, on swtpm's state directory:
# made in swtpm, used in QEMU's in-process TPM behind the card and then
# behind tpm-crb, and back in swtpm; each step checks what the one
# before left and changes it (init's vtpm.move)
run_move() {
    local dir ek key name status
    dir=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-move.XXXXXX")
    name="e2e/$line/move: swtpm_setup provisions a TPM 2.0 with EK and platform certificates"
    provision "$dir" > "$dir/setup.log" 2>&1
    status=$?
    report "$name" $status
    if [ $status -ne 0 ]; then
        tail -n 20 "$dir/setup.log" | sed 's/^/#   /'
        rm -rf "$dir"
        return
    fi
    swtpm_boot move-1 "vtpm.move=1" "$dir/tpm"
    ek=$(tr -d '\r' < "$logs/$line-move-1.log" | sed -n 's/^.*VTPM-E2E-EK: //p')
    key=$(tr -d '\r' < "$logs/$line-move-1.log" | sed -n 's/^.*VTPM-E2E-KEY: //p')
    if [ -z "$ek" ] || [ -z "$key" ]; then
        report "e2e/$line/move: step 1 gave the EK's and the key's digests" 1
        rm -rf "$dir"
        return
    fi
    set -- "vtpm.ek=$ek vtpm.key=$key" -tpmdev "libtpms,id=tpm0,dir=$dir/tpm"
    boot move-2 "vtpm.move=2 $1" "${@:2}" -device vtpm-pci,tpmdev=tpm0
    move_certs "$logs/$line-move-2.log" "$dir" "$ek" > "$dir/certs.log" 2>&1
    status=$?
    report "e2e/$line/move: the certificates the guest read verify against the local CA; the EK certificate's key is tpm2_createek's" $status
    [ $status -eq 0 ] || sed 's/^/#   /' "$dir/certs.log"
    boot move-3 "vtpm.move=3 $1" "${@:2}" -device tpm-crb,tpmdev=tpm0
    swtpm_boot move-4 "vtpm.move=4 $1" "$dir/tpm"
    rm -rf "$dir"
}

# Measured boot into the in-process TPM of tpm-crb (-tpmdev libtpms, its
# state in a file) by SeaBIOS (bios) or OVMF (uefi): the guest checks
# that the firmware's event log replays to the TPM's PCRs and reboots
# once; then QEMU starts again from the TPM's state file, for two boots
# more
run_mb() {
    local fw=$1 dir base
    local -a fwargs=()
    dir=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-mb.XXXXXX")
    if [ "$fw" = uefi ]; then
        ovmf "$dir" || { rm -rf "$dir"; return; }
        fwargs=("${OVMF_ARGS[@]}")
    fi
    for base in 0 2; do
        E2E_REBOOT=1 boot "$fw-$((base / 2 + 1))" "vtpm.mb=$base" \
            "${fwargs[@]}" -tpmdev "libtpms,id=tpm0,path=$dir/tpm.state" \
            -device tpm-crb,tpmdev=tpm0
    done
    rm -rf "$dir"
}

# ovmf DIR: OVMF_ARGS, the arguments for Debian's OVMF with a copy of its
# variable store in DIR
ovmf() {
    cp "$OVMF_VARS" "$1/vars.fd" || {
        report "e2e/$line/$config: Debian's OVMF is there ($OVMF_VARS)" 1
        return 1
    }
    OVMF_ARGS=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
               -drive "if=pflash,format=raw,unit=1,file=$1/vars.fd")
}

# A TPM clear through the physical presence interface, carried out by
# OVMF at the next boot once the user confirms it at its prompt: the
# guest asks (vtpm.ppi=1), the user refuses with ESC, the guest asks
# again, the user confirms with F12.  The keys go to the machine's
# keyboard from QEMU's monitor (sendkey) as the prompts appear on the
# serial console.
run_ppi() {
    local dir log=$logs/$line-ppi.log keys
    dir=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-ppi.XXXXXX")
    ovmf "$dir" || { rm -rf "$dir"; return; }
    # -chardev pipe: QEMU reads the monitor's commands from mon.in
    mkfifo "$dir/mon.in" "$dir/mon.out"
    rm -f "$log"
    # (the last line of a prompt; tail -F waits for QEMU to create the log)
    tail -n +1 -F "$log" 2> /dev/null | {
        n=0
        while IFS= read -r text; do
            case $text in
            *"Press ESC to reject this change request"*)
                n=$((n + 1))
                if [ $n -eq 1 ]; then
                    echo "sendkey esc"
                else
                    echo "sendkey f12"
                fi ;;
            esac
        done
    } > "$dir/mon.in" &
    # (tail, the job's first process, and the loop, its last)
    keys="$(jobs -p %%) $!"
    # (four passes through the firmware: its clear resets the machine)
    BOOT_TIMEOUT=$((BOOT_TIMEOUT * 2)) E2E_REBOOT=1 \
        boot ppi "vtpm.ppi=1" "${OVMF_ARGS[@]}" \
        -tpmdev "libtpms,id=tpm0,path=$dir/tpm.state" \
        -device tpm-crb,tpmdev=tpm0 \
        -chardev "pipe,id=mon,path=$dir/mon" -mon chardev=mon
    # shellcheck disable=SC2086
    kill $keys 2> /dev/null
    wait
    rm -rf "$dir"
}

is_config() {
    local c
    for c in "${CONFIGS[@]}"; do
        [ "$c" = "$1" ] && return 0
    done
    return 1
}

t0=$SECONDS
# VTPM_E2E_IMAGES_BUILT=1: the images are built (runs side by side)
if [ -z "${VTPM_E2E_IMAGES_BUILT:-}" ]; then
    "$here/build-image.sh"
    status=$?
    report "e2e: build the guest images, the driver and the tools" $status
    [ $status -eq 0 ] || exit 1
fi
mkdir -p "$logs"

mapfile -t lines < <("$here/kernels.sh" lines | cut -d' ' -f1)
newest=${lines[-1]}
defaults() {        # defaults LINE: its configurations, one a line
    if [ "$1" = "$newest" ]; then
        printf '%s\n' "${CONFIGS[@]}"
    else
        printf '%s\n' "${OTHER_LINES_CONFIGS[@]}"
    fi
}

# The runs, LINE CONFIG a line, in the order of the lines
runs=()
if [ $# -eq 0 ]; then
    set -- "${lines[@]}"
fi
for line in "${lines[@]}"; do
    for arg in "$@"; do
        case $arg in
        "$line") mapfile -t -O ${#runs[@]} runs < <(defaults "$line" |
                                                     sed "s@^@$line @") ;;
        "$line"/*) runs+=("$line ${arg#*/}") ;;
        */*) ;;
        *) is_config "$arg" && runs+=("$line $arg") ;;
        esac
    done
done
for arg in "$@"; do
    l=${arg%%/*}
    c=${arg#"$l"}
    c=${c#/}
    if ! printf '%s\n' "${lines[@]}" | grep -qxF "$l" &&
       { [ -n "$c" ] || ! is_config "$l"; }; then
        echo "e2e: $arg: no kernel line ${l} (lines: ${lines[*]};" \
             "configurations: ${CONFIGS[*]})" >&2
        exit 2
    fi
    if [ -n "$c" ] && ! is_config "$c"; then
        echo "e2e: $arg: no configuration $c (know: ${CONFIGS[*]})" >&2
        exit 2
    fi
done

# The module built without a word from the compiler or kbuild.  6.1's
# headers ship no vmlinux, so kbuild says it leaves BTF out: that is the
# headers package's, not a warning about the driver.
for line in "${lines[@]}"; do
    printf '%s\n' "${runs[@]}" | grep -q "^$line " || continue
    image=$images/$line
    out=$(grep -v 'Skipping BTF generation for .* due to unavailability of vmlinux$' \
          "$image/module.log")
    # (the status first: the name's $(cat) would set $? to its own)
    [ -z "$out" ]
    status=$?
    report "e2e/$line: tpm_vtpm_pci.ko builds with no warning against $(cat "$image/abi")" $status
    [ -z "$out" ] || sed 's/^/#   /' <<< "$out"

    # tpm_compat.h declares the TPM core's exports itself: a prototype
    # the kernel changed would build, and break at run time
    name="e2e/$line: tpm_compat.h declares the TPM core's functions as the kernel's BTF has them"
    out=$("$here/kernels.sh" prototypes "$line" "$here/../linux/tpm_compat.h" 2>&1)
    case $? in
    0) report "$name" 0 ;;
    77) echo "skip - $name: ${out#kernels: }" ;;
    *) report "$name" 1
       sed 's/^/#   /' <<< "$out" ;;
    esac
done

# run LINE CONFIG: the boots of one configuration on one line
run() {
    line=$1
    config=$2
    case $config in
    msi)
        boot msi "vtpm.irq=msi vtpm.tools=1" -device vtpm-pci
        ;;
    vm)
        # The README's own VM beside the card: its disk starts with a
        # token, which slirp's guestfwd also answers
        token=vtpm-e2e-$RANDOM$RANDOM
        disk=$(mktemp "${TMPDIR:-/tmp}/vtpm-e2e-disk.XXXXXX")
        printf '%s' "$token" > "$disk" && truncate -s 1M "$disk"
        boot vm "vtpm.irq=msi vtpm.vm=$token" \
            -device VGA -drive "file=$disk,format=raw,if=virtio" \
            -nic "user,model=virtio-net-pci,guestfwd=tcp:10.0.2.100:80-cmd:printf $token" \
            -device vtpm-pci
        rm -f "$disk"
        ;;
    nobuffer)
        # A card without BAR 2: the driver moves commands through DATA
        boot nobuffer "vtpm.irq=msi vtpm.buffer=0" \
            -device vtpm-pci,buffer-bar=off
        ;;
    intx)
        boot intx "vtpm.irq=intx pci=nomsi" -device vtpm-pci
        ;;
    iobase)
        if "$QEMU_BIN" -device vtpm-pci,help 2>&1 | grep -q '^  iobase='; then
            boot iobase "vtpm.iobase=0x2000" -device vtpm-pci,iobase=0x2000
        else
            echo "skip - e2e/$line/iobase: this QEMU's vtpm-pci has no iobase property"
        fi
        ;;
    bridge)
        # A pinned card behind a pci-bridge whose I/O window is pinned,
        # beside an unpinned NIC, whose ports must end up in the window
        for m in q35 pc; do
            E2E_MACHINE=$m boot "bridge-$m" \
                "vtpm.iobase=0x2000 vtpm.window=2000-2fff" \
                -device pci-bridge,id=br,chassis_nr=1,io-base=0x2000 \
                -device vtpm-pci,bus=br,addr=1.0,iobase=0x2000 \
                -device e1000,bus=br,addr=2.0
        done
        ;;
    crowded)
        # Pinned inside SeaBIOS's own range (from 0xc000), beside a NIC
        # with an I/O BAR.  SeaBIOS places BARs of one size in slot
        # order: the card first, so nothing else lands on its ports.
        for m in q35 pc; do
            E2E_MACHINE=$m boot "crowded-$m" "vtpm.iobase=0xc000" \
                -device vtpm-pci,addr=2.0,iobase=0xc000 \
                -device e1000,addr=3.0
        done
        # The NIC first: SeaBIOS gives it 0xc000, Linux claims it there
        # before the card, and "moves" the card, whose BAR stays: the
        # driver must see that and refuse the card
        boot conflict "vtpm.iobase=0xc000 vtpm.conflict=1" \
            -device e1000,addr=3.0 -device vtpm-pci,addr=0x10,iobase=0xc000
        ;;
    pxb)
        # Pinned ports that are a host bridge's own: a pinned root port
        # on a PCI expander bridge, whose window ACPI gives that host
        # bridge and takes from the main one.  Firmware puts the NIC in
        # the window (SeaBIOS allocates from 0xc000, the window first,
        # at its own choice; OVMF from 0x6000), and Linux moves it out.
        pxb_args=(-device e1000,bus=pcie.0,addr=3.0
                  -device pxb-pcie,id=pxb,bus_nr=0x80,bus=pcie.0,addr=0x10)
        boot pxb-bios "vtpm.iobase=0xd000 vtpm.window=d000-dfff vtpm.moved=1" \
            "${pxb_args[@]}" \
            -device pcie-root-port,id=rp,bus=pxb,chassis=2,io-base=0xd000 \
            -device vtpm-pci,bus=rp,iobase=0xd000
        dir=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-pxb.XXXXXX")
        if ovmf "$dir"; then
            boot pxb-uefi "vtpm.iobase=0x6000 vtpm.window=6000-6fff vtpm.moved=1" \
                "${OVMF_ARGS[@]}" "${pxb_args[@]}" \
                -device pcie-root-port,id=rp,bus=pxb,chassis=2,io-base=0x6000 \
                -device vtpm-pci,bus=rp,iobase=0x6000
        fi
        rm -rf "$dir"
        ;;
    swtpm)
        run_swtpm
        ;;
    tpm12)
        boot tpm12 "vtpm.family=1.2" \
            -tpmdev libtpms,id=tpm0,version=1.2 -device vtpm-pci,tpmdev=tpm0
        ;;
    bios|uefi)
        run_mb "$config"
        ;;
    ppi)
        run_ppi
        ;;
    move)
        run_move
        ;;
    esac
}

# The runs, VTPM_E2E_JOBS at a time (default: one a core, as a guest with
# one vCPU under TCG keeps one core busy).  Each run reports into a file
# of its own, printed once the run is over, in the order of the runs.
jobs_max=${VTPM_E2E_JOBS:-$(nproc)}
reports=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-e2e-reports.XXXXXX")
next=0
flush() {
    while [ $next -lt ${#runs[@]} ] && [ -f "$reports/$next" ]; do
        cat "$reports/$next"
        next=$((next + 1))
    done
}
for i in "${!runs[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n
        flush
    done
    # shellcheck disable=SC2086
    (run ${runs[$i]} > "$reports/$i.part" 2>&1
     mv "$reports/$i.part" "$reports/$i") &
done
wait
flush
rm -rf "$reports"
echo "# e2e: $((SECONDS - t0)) s"
