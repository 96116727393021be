#!/bin/bash
# netns-tests/vm/vm.sh: run one command as root in a throwaway qemu VM that boots Debian 12's
# own kernel (linux-image-cloud-amd64, 6.1). mactrunk's tests use it for what the host kernel
# cannot show: 802.1Q VLANs (the CI host's kernel has none) and the behaviour of the kernel
# operators actually run.
#
#   netns-tests/vm/vm.sh [OPTION...] -- COMMAND [ARG...]
#
#   --dir SRC:DEST   copy the directory SRC into the VM at DEST (an absolute path); repeatable
#   --bin PROG       copy a host program (a path, or a name looked up in PATH) into the VM's
#                    /usr/local/bin, with the shared libraries it needs; repeatable
#   --env NAME=VAL   set a variable for COMMAND (nothing else is passed from the host); repeatable
#   --cpus N         vCPUs (default 2)
#   --mem SIZE       guest memory, qemu syntax (default 1G); the root filesystem is in RAM
#   --timeout SECS   power the VM off after SECS (default 600): exit status 124
#   --prepare        only fill the cache (download the kernel, build the base image) and exit
#   -v               also copy the VM's console (kernel messages) to stderr
#
# COMMAND runs under busybox sh in /, with stdin from /dev/null; its stdout and stderr come
# back merged, in order, on this script's stdout (one virtio-serial port written to a plain
# file: qemu has stored each write before the guest's write() returns, so nothing is lost at
# power-off). Exit status: COMMAND's; 124 on timeout; 125 if the VM failed (the end of its
# console is printed on stderr).
#
# In the VM: the kernel with veth, macvlan, ipvlan, dummy, 8021q and bridge loaded; Debian's
# busybox (all applets); bash and iproute2's ip from the host; glibc and the libraries Rust,
# Go and C programs usually need; /proc, /sys, /dev, /run (for `ip netns`), /dev/fd. No
# network to the outside, no disk.
#
# First run (needs apt access; as root it runs `apt-get update` once if a download fails):
# `apt-get download` of the kernel package and busybox into the cache (not installed: /boot
# and the host's busybox stay as they are), `dpkg-deb -x`, busybox depmod, the ELF vmlinux
# cut out of the bzImage (qemu boots it through its PVH entry point, which skips the real-mode
# setup and the in-guest decompression), then a base initramfs. Later runs only pack the
# per-run files, append them to the base image and boot (about 1.5 s under TCG).
#
# Host needs: qemu-system-x86 (qemu-system-x86_64, qboot.rom), apt, dpkg, xz-utils or lz4
# or zstd (whichever the kernel image uses), bash, iproute2.
#
# Environment: MTVM_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/mactrunk-vm),
# MTVM_KERNEL_PKG (default linux-image-cloud-amd64), MTVM_ACCEL (kvm|tcg; default: kvm when
# /dev/kvm is usable and is not PVM - a stock kernel hangs on PVM - else tcg; a VM that does
# not boot under kvm is retried under tcg), MTVM_BOOT_TIMEOUT (seconds until the guest's init
# must have started, default 60; one retry).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MTVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mactrunk-vm}
kernel_pkg=${MTVM_KERNEL_PKG:-linux-image-cloud-amd64}
boot_timeout=${MTVM_BOOT_TIMEOUT:-60}
# Loaded at boot with their dependencies (the tests create these link types).
modules="virtio_pci virtio_console veth macvlan ipvlan dummy 8021q bridge"
# Host programs in every image; further ones per run with --bin.
base_progs="bash ip"
# Libraries Rust/Go/C test binaries commonly load beyond what busybox, bash and ip need.
extra_libs="libgcc_s.so.1 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2 libutil.so.1"
cmdline="console=ttyS0 quiet panic=-1 mitigations=off cryptomgr.notests"
PATH=$PATH:/usr/sbin:/sbin

dirs=() bins=() envs=() cmd=()
cpus=2 mem=1G timeout=600 prepare=0 verbose=0

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
say() { printf 'vm.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 125; }

while (($#)); do
    case $1 in
        --dir) dirs+=("${2:?--dir needs SRC:DEST}"); shift ;;
        --bin) bins+=("${2:?--bin needs a program}"); shift ;;
        --env) envs+=("${2:?--env needs NAME=VALUE}"); shift ;;
        --cpus) cpus=${2:?}; shift ;;
        --mem) mem=${2:?}; shift ;;
        --timeout) timeout=${2:?}; shift ;;
        --prepare) prepare=1 ;;
        -v | --verbose) verbose=1 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; cmd=("$@"); break ;;
        *) die "unknown argument $1 (the command goes after --; see --help)" ;;
    esac
    shift
done
((${#cmd[@]} || prepare)) || die "no command (see --help)"

# ------------------------------------------------------------------ helpers

# /bin, /sbin, /lib, /lib64 are symlinks into /usr in the image (merged /usr)
canon() {
    case $1 in
        /bin/* | /sbin/* | /lib/* | /lib64/*) printf '/usr%s' "$1" ;;
        *) printf '%s' "$1" ;;
    esac
}

# libs_of PROG: the absolute paths of the shared libraries (and loader) PROG needs
libs_of() { ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; }

# put ROOT SRC DEST: copy file SRC to ROOT/DEST (symlinks resolved), mode kept
put() {
    local d=$1$(canon "$3")
    mkdir -p "${d%/*}"
    rm -f "$d"
    cp -L --preserve=mode "$2" "$d"
}

# put_prog ROOT SRC DEST [SKIP-LIST]: a program and the libraries it needs (except those
# listed, one per line, in the file SKIP-LIST: they are in the base image already)
put_prog() {
    local root=$1 src=$2 dest=$3 skip=${4:-/dev/null} lib
    [[ -f $src && -x $src ]] || die "not an executable file: $src"
    put "$root" "$src" "$dest"
    ldd "$src" 2>/dev/null | grep -q 'not found' && say "warning: $src needs libraries the host lacks"
    for lib in $(libs_of "$src"); do
        lib=$(canon "$lib")
        grep -qxF "$lib" "$skip" || [[ -e $root$lib ]] || put "$root" "$lib" "$lib"
    done
}

# newc archive of directory $1 on stdout, everything owned by root
pack() { (cd "$1" && find . -mindepth 1 | "$bb" cpio -o -H newc -R 0:0 2>/dev/null); }

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo -n "$@"; fi
}

# ------------------------------------------------------------------ cache: kernel + busybox

# Cache layout:
#   kernels/<kernel .deb name>/   vmlinux (or vmlinuz), kver, lib/modules/<kver>/, busybox
#   <kernel package> -> kernels/<...>        which one the package name resolved to
#   base-<hash>.cpio (in the kernel dir)     the base image; the hash covers this script,
#                                            the guest init and the host programs it holds
#                                            (images unused for 7 days are removed)

# elf_from_bzimage BZIMAGE OUT: the uncompressed kernel ELF (payload_offset and
# payload_length of the boot protocol header give the compressed payload; its last 4 bytes
# are the uncompressed size)
elf_from_bzimage() {
    local img=$1 out=$2 hdr sects off len start magic size tool
    hdr=$(od -An -c -j 514 -N4 "$img" | tr -d ' ')
    [[ $hdr == HdrS ]] || return 1
    sects=$(od -An -tu1 -j 497 -N1 "$img" | tr -d ' ')
    ((sects == 0)) && sects=4
    off=$(od -An -tu4 -j 584 -N4 "$img" | tr -d ' ')
    len=$(od -An -tu4 -j 588 -N4 "$img" | tr -d ' ')
    start=$(((sects + 1) * 512 + off))
    size=$(od -An -tu4 -j $((start + len - 4)) -N4 "$img" | tr -d ' ')
    magic=$(od -An -tx1 -j "$start" -N4 "$img" | tr -d ' ')
    case $magic in
        fd377a58) tool="xz -dc" ;;
        02214c18) tool="lz4 -dc" ;;
        28b52ffd) tool="zstd -dcq" ;;
        1f8b*) tool="gzip -dc" ;;
        *) return 1 ;;
    esac
    command -v "${tool%% *}" >/dev/null || { say "no ${tool%% *} to unpack the kernel: booting the bzImage (slower)"; return 1; }
    tail -c +$((start + 1)) "$img" | head -c "$len" | $tool >"$out" 2>/dev/null
    [[ $(stat -c %s "$out") == "$size" && $(od -An -tx1 -N4 "$out" | tr -d ' ') == 7f454c46 ]] || { rm -f "$out"; return 1; }
}

apt_download() { # apt_download DIR PKG...: into DIR; refresh the lists once if needed
    local dir=$1
    shift
    (cd "$dir" && apt-get download -q "$@") >>"$cache/apt.log" 2>&1 && return 0
    say "apt-get download $* failed; running apt-get update once"
    as_root apt-get update -q >>"$cache/apt.log" 2>&1
    (cd "$dir" && apt-get download -q "$@") >>"$cache/apt.log" 2>&1
}

fetch_kernel() {
    local pkg=$kernel_pkg tmp deb kver moddir
    if [[ $pkg != linux-image-[0-9]* ]]; then # a metapackage: the image it depends on
        pkg=$(apt-cache depends "$kernel_pkg" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        if [[ -z $pkg ]]; then
            as_root apt-get update -q >>"$cache/apt.log" 2>&1
            pkg=$(apt-cache depends "$kernel_pkg" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        fi
        [[ -n $pkg ]] || die "apt knows no $kernel_pkg (see $cache/apt.log)"
    fi
    say "downloading $pkg and busybox (once)"
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    chmod 755 "$tmp" # apt-get download drops to the _apt user
    apt_download "$tmp" "$pkg" busybox || { rm -rf "$tmp"; die "apt-get download $pkg busybox failed (see $cache/apt.log)"; }
    deb=$(echo "$tmp/${pkg}"_*.deb)
    dpkg-deb -x "$deb" "$tmp/k" && dpkg-deb -x "$tmp"/busybox_*.deb "$tmp/b" || { rm -rf "$tmp"; die "dpkg-deb -x failed"; }
    mkdir -p "$tmp/out/lib/modules"
    for moddir in "$tmp/k/lib/modules" "$tmp/k/usr/lib/modules"; do [[ -d $moddir ]] && break; done
    kver=$(ls "$moddir")
    mv "$moddir/$kver" "$tmp/out/lib/modules/"
    echo "$kver" >"$tmp/out/kver"
    cp "$tmp/k/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"
    cp "$tmp/b/bin/busybox" "$tmp/out/busybox" 2>/dev/null || cp "$tmp/b/usr/bin/busybox" "$tmp/out/busybox"
    "$tmp/out/busybox" depmod -b "$tmp/out" "$kver" || { rm -rf "$tmp"; die "depmod failed"; }
    elf_from_bzimage "$tmp/out/vmlinuz" "$tmp/out/vmlinux" && rm "$tmp/out/vmlinuz"
    local name
    name=$(basename "$deb" .deb)
    mkdir -p "$cache/kernels"
    rm -rf "${cache:?}/kernels/$name"
    mv "$tmp/out" "$cache/kernels/$name"
    rm -rf "$tmp"
    ln -sfn "kernels/$name" "$cache/$kernel_pkg"
}

# module_paths KDIR NAME...: module files (relative to the modules dir) of NAMEs and their
# dependencies; built-in ones give nothing
module_paths() {
    local m=$1/lib/modules/$(cat "$1/kver")
    shift
    awk -v want="$*" -v bi="$m/modules.builtin" '
        function base(p) { sub(/.*\//, "", p); sub(/\.ko(\..*)?$/, "", p); gsub(/-/, "_", p); return p }
        function add(n,   i, k, d) {
            if (n in seen) return
            seen[n] = 1
            k = split(deps[n], d, " ")
            for (i = 1; i <= k; i++) add(base(d[i]))
            print path[n]
        }
        BEGIN { while ((getline l < bi) > 0) builtin[base(l)] = 1 }
        { f = $1; sub(/:$/, "", f); n = base(f); path[n] = f; $1 = ""; deps[n] = $0 }
        END {
            k = split(want, w, " ")
            for (i = 1; i <= k; i++) {
                n = w[i]; gsub(/-/, "_", n)
                if (n in builtin) continue
                if (!(n in path)) { print "unknown module " w[i] > "/dev/stderr"; bad = 1; continue }
                add(n)
            }
            exit bad
        }' "$m/modules.dep"
}

build_base() { # build_base KDIR OUT
    local kdir=$1 out=$2 root a p lib libdir kver
    say "building the base image"
    kver=$(cat "$kdir/kver")
    root=$(mktemp -d "$cache/.root.XXXXXX")
    mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,run,tmp,root,etc/mtvm,mtvm}
    for a in bin sbin lib lib64; do ln -s "usr/$a" "$root/$a"; done
    mkdir -p "$root/var/lib"
    ln -s ../run "$root/var/run"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"

    put_prog "$root" "$kdir/busybox" /usr/bin/busybox
    for a in $("$kdir/busybox" --list-full); do
        a=$(canon "/$a")
        [[ -e $root$a ]] || ln -s /usr/bin/busybox "$root$a"
    done
    for p in $base_progs; do # the host's program replaces busybox's applet of that name
        a=$(command -v "$p") || die "host program $p not found"
        rm -f "$root/usr/bin/$p" "$root/usr/sbin/$p"
        put_prog "$root" "$(realpath "$a")" "/usr/bin/$p"
        ln -s ../bin/"$p" "$root/usr/sbin/$p"
    done
    libdir=$(libs_of "$(command -v bash)" | grep '/libc\.so\.6$')
    libdir=${libdir%/*}
    for lib in $extra_libs; do
        [[ -e $libdir/$lib ]] && put "$root" "$libdir/$lib" "$(canon "$libdir/$lib")"
    done

    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    printf '127.0.0.1\tlocalhost mtvm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    : >"$root/etc/resolv.conf"

    local list
    list=$(module_paths "$kdir" $modules) || die "cannot resolve the kernel modules $modules"
    for p in $list; do
        mkdir -p "$root/usr/lib/modules/$kver/${p%/*}"
        cp "$kdir/lib/modules/$kver/$p" "$root/usr/lib/modules/$kver/$p"
    done
    cp "$kdir/lib/modules/$kver"/modules.{dep,alias,symbols,builtin} "$root/usr/lib/modules/$kver/"
    echo "$modules" >"$root/etc/mtvm/modules"
    install -m 755 "$here/init" "$root/init"

    (cd "$root" && find . ! -type d | sed 's/^\.//') >"$out.files"
    pack "$root" >"$out.tmp" && mv "$out.tmp" "$out"
    rm -rf "$root"
}

prepare_cache() { # sets kdir, base, bb, kernel
    mkdir -p "$cache" || die "cannot create the cache $cache"
    local key
    key=$(
        cat "$0" "$here/init"
        for p in $base_progs; do stat -L -c '%n %s %Y' "$(command -v "$p")"; done
    ) 2>/dev/null
    key=$(sha256sum <<<"$key" | cut -c1-16)
    kdir=$cache/$kernel_pkg
    base=$kdir/base-$key.cpio
    bb=$kdir/busybox
    if [[ ! -f $base ]]; then
        command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null || die "needs apt-get and dpkg-deb (Debian)"
        exec 8>"$cache/.lock"
        flock 8
        rm -rf "$cache"/.fetch.* "$cache"/.root.* # left by an interrupted build
        [[ -f $kdir/kver && -x $kdir/busybox ]] || fetch_kernel
        [[ -f $kdir/kver && -x $kdir/busybox && ( -f $kdir/vmlinux || -f $kdir/vmlinuz ) ]] ||
            die "the kernel cache $kdir is incomplete (remove it and retry)"
        if [[ ! -f $base ]]; then
            # other versions of this script (other checkouts) may still use theirs
            find "$kdir/" -maxdepth 1 -name 'base-*.cpio*' -mtime +7 -delete
            build_base "$kdir" "$base"
        fi
        exec 8>&-
    fi
    touch "$base" "$base.files" 2>/dev/null # in use (see the clean-up above)
    kernel=$kdir/vmlinux
    [[ -f $kernel ]] || kernel=$kdir/vmlinuz
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
}

prepare_cache
if ((prepare)); then
    say "ready: kernel $(cat "$kdir/kver"), cache $cache"
    exit 0
fi

# ------------------------------------------------------------------ the per-run archive

run=$(mktemp -d "${TMPDIR:-/tmp}/mtvm.XXXXXX")
qemu_pid=""
cleanup() {
    [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
    rm -rf "$run"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT
trap 'say terminated; exit 143' TERM

squote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

stage=$run/stage
mkdir -p "$stage/mtvm"
for spec in ${dirs[@]+"${dirs[@]}"}; do
    src=${spec%%:*}
    dest=${spec#*:}
    [[ $spec == *:* && $dest == /* ]] || die "--dir $spec: want SRC:/ABSOLUTE/DEST"
    [[ -d $src ]] || die "--dir $spec: $src is not a directory"
    dest=$(canon "$dest")
    mkdir -p "$stage$dest"
    cp -a "$src/." "$stage$dest/" || die "--dir $spec: copy failed"
done
for p in ${bins[@]+"${bins[@]}"}; do
    [[ $p == */* ]] || p=$(command -v "$p") || die "--bin: no program ${p##*/} on this host"
    put_prog "$stage" "$(realpath "$p")" "/usr/local/bin/${p##*/}" "$base.files"
done
{
    echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root MTVM=1"
    for e in ${envs[@]+"${envs[@]}"}; do
        [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env $e: want NAME=VALUE"
        echo "export $(squote "$e")"
    done
    echo "cd /"
    printf 'exec'
    for a in "${cmd[@]}"; do printf ' %s' "$(squote "$a")"; done
    echo
} >"$stage/mtvm/cmd"
pack "$stage" >"$run/run.cpio" || die "packing the run archive failed"
cat "$base" "$run/run.cpio" >"$run/initrd" || die "cannot read the base image $base"
rm -rf "$stage" "$run/run.cpio"

# ------------------------------------------------------------------ boot

accel=${MTVM_ACCEL:-}
if [[ -z $accel ]]; then
    accel=tcg
    # PVM ("kvm_pvm", page-table based nested virtualisation) only runs PVM guest kernels
    [[ -r /dev/kvm && -w /dev/kvm && ! -d /sys/module/kvm_pvm ]] && accel=kvm
fi

# boot ACCEL: run the VM; sets status (COMMAND's exit status) or why (what went wrong)
boot() {
    local a=$1 args follow=() i
    status="" why=""
    : >"$run/console" && : >"$run/out" && : >"$run/qemu.log"
    rm -f "$run/noboot"
    args=(-M q35 -smp "$cpus" -m "$mem" -nodefaults -no-user-config -display none -nic none -no-reboot)
    [[ -f /usr/share/qemu/qboot.rom ]] && args+=(-bios /usr/share/qemu/qboot.rom)
    if [[ $a == kvm ]]; then args+=(-accel kvm -cpu host); else args+=(-accel tcg,thread=multi); fi
    args+=(-chardev "file,id=con,path=$run/console" -serial chardev:con
        -device virtio-serial-pci,ioeventfd=off
        -chardev "file,id=out,path=$run/out" -device virtserialport,chardev=out,name=mtvm.out
        -kernel "$kernel" -initrd "$run/initrd" -append "$cmdline")
    timeout -k 5 "$timeout" qemu-system-x86_64 "${args[@]}" </dev/null >"$run/qemu.log" 2>&1 &
    qemu_pid=$!
    tail -q -c +1 -s 0.05 --pid="$qemu_pid" -f "$run/out" &
    follow+=($!)
    if ((verbose)); then
        tail -q -c +1 -s 0.05 --pid="$qemu_pid" -f "$run/console" >&2 &
        follow+=($!)
    fi
    ( # boot watchdog: the guest's init prints "mtvm: up" on the console
        for ((i = 0; i < boot_timeout * 5; i++)); do
            grep -q 'mtvm: up' "$run/console" 2>/dev/null && exit 0
            kill -0 "$qemu_pid" 2>/dev/null || exit 0
            sleep 0.2
        done
        touch "$run/noboot"
        kill "$qemu_pid" 2>/dev/null
    ) &
    local watchdog=$! rc=0
    wait "$qemu_pid" 2>/dev/null || rc=$?
    qemu_pid=""
    wait "${follow[@]}" 2>/dev/null
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    status=$(sed -n 's/.*mtvm-exit=\([0-9]*\).*/\1/p' "$run/console" | tail -n1)
    [[ -n $status ]] && return 0
    if grep -q 'mtvm-error=' "$run/console"; then
        why=$(sed -n 's/.*mtvm-error=//p' "$run/console" | tr -d '\r' | tail -n1)
    elif [[ -e $run/noboot ]]; then
        why=noboot
    elif ((rc == 124 || rc == 137)); then
        why=timeout
    elif grep -q 'Kernel panic' "$run/console"; then
        why="the guest kernel panicked"
    else
        why="the VM stopped without an exit status (qemu exit status $rc)"
    fi
}

boot "$accel"
if [[ $why == noboot ]]; then
    if [[ $accel == kvm ]]; then
        say "the guest did not boot under KVM within ${boot_timeout}s; retrying under TCG"
        accel=tcg
    else
        say "the guest did not boot within ${boot_timeout}s; retrying once (busy host?)"
    fi
    boot "$accel"
fi
[[ -n $status ]] && exit "$status"
case $why in
    timeout) say "timed out after ${timeout}s"; rc=124 ;;
    noboot) say "the guest did not boot within ${boot_timeout}s"; rc=125 ;;
    *) say "$why"; rc=125 ;;
esac
[[ -s $run/qemu.log ]] && { say "qemu said:"; tail -n 20 "$run/qemu.log" >&2; }
if ((!verbose)) && [[ -s $run/console ]]; then
    say "last lines of the VM's console:"
    tail -n 30 "$run/console" | tr -d '\r' >&2
fi
exit "$rc"
