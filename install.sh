#!/bin/bash
# install.sh: build and install the mactrunk CNI plugins, and optionally run a demo.
#
#   ./install.sh [--prebuilt DIR] [--bin-dir DIR] [--with-config[=FILE]] [--conf-dir DIR] [--no-apt]
#   ./install.sh --uninstall [--bin-dir DIR]
#   ./install.sh [--prebuilt DIR] [--no-apt] --demo
#
#   (no option)          build the static release binaries (./build.sh: no libc needed at run
#                        time), then install mactrunk, mactrunk-ipam and mactrunk-etcd (the
#                        cluster IPAM's etcd helper, docs/cluster.md) into /opt/cni/bin.
#                        Set-up first: a missing C linker (gcc, libc6-dev) is installed with
#                        apt-get (and musl-gcc, musl-tools, when a dependency has C code;
#                        protoc and the protobuf .proto files, protobuf-compiler and
#                        libprotobuf-dev, for mactrunk-etcd),
#                        rustup's musl target is added (without it the build is glibc,
#                        static). Under sudo, the build runs as the user who owns the
#                        checkout, with that user's Rust toolchain.
#   --prebuilt DIR       take the binaries from DIR instead of building (mactrunk-etcd is
#                        optional there: without it, only ipam.cluster does not work)
#   --bin-dir DIR        install the binaries into DIR (default /opt/cni/bin)
#   --with-config[=FILE] also install an example config from conf/ (default
#                        10-mactrunk-bridge.conf) into the config dir; an existing file of
#                        that name is never overwritten
#   --conf-dir DIR       the config dir (default /etc/cni/net.d)
#   --uninstall          remove the binaries from the bin dir (configs are never removed)
#   --demo               after installing, run the plugin: create throwaway namespaces
#                        mtdemo-<pid>-{host,a,b} (a veth pair in "host" is the macvlan
#                        parent), ADD two containers on a mactrunk network, show the result,
#                        ping between them, DEL both and remove everything (also on failure).
#                        Needs root; ip, jq and ping are installed with apt-get when missing
#                        (iproute2, jq, iputils-ping). The real host's links are not touched.
#   --no-apt             never install packages: fail with the list of what is missing
#   -h, --help           this text
#
# DESTDIR is honoured: files go to $DESTDIR/<bin dir> and $DESTDIR/<conf dir>. Running the
# script twice changes nothing the second time (binaries are replaced only when different).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prebuilt=""
bin_dir=/opt/cni/bin
conf_dir=/etc/cni/net.d
with_config=""
uninstall=0
demo=0
use_apt=1
BINARIES=(mactrunk mactrunk-ipam)
# installed when built or found in --prebuilt DIR: the plugins start it only for ipam.cluster
OPTIONAL=(mactrunk-etcd)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
    echo "install.sh: $*" >&2
    exit 1
}

while (($#)); do
    case $1 in
        --prebuilt) prebuilt=${2:?--prebuilt needs a directory}; shift ;;
        --prebuilt=*) prebuilt=${1#*=} ;;
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        --bin-dir=*) bin_dir=${1#*=} ;;
        --conf-dir) conf_dir=${2:?--conf-dir needs a directory}; shift ;;
        --conf-dir=*) conf_dir=${1#*=} ;;
        --with-config) with_config=10-mactrunk-bridge.conf ;;
        --with-config=*) with_config=${1#*=} ;;
        --uninstall) uninstall=1 ;;
        --demo) demo=1 ;;
        --no-apt) use_apt=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
((uninstall && demo)) && die "--uninstall and --demo do not go together"

dest_bin=${DESTDIR:-}$bin_dir
dest_conf=${DESTDIR:-}$conf_dir

# need WHY TOOL=PACKAGE...: make sure each TOOL is on PATH (or, if it is an absolute path,
# exists), installing the PACKAGEs of missing ones with apt-get (Debian, Ubuntu), as .ci/run
# does; dies naming what is missing otherwise
have() { if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null; fi; }
need() {
    local t missing=() pkgs=() why=$1
    shift
    for t in "$@"; do
        have "${t%%=*}" || { missing+=("${t%%=*}"); pkgs+=("${t#*=}"); }
    done
    ((${#missing[@]})) || return 0
    local hint="missing ${missing[*]} (Debian/Ubuntu: apt-get install ${pkgs[*]})"
    ((use_apt)) || die "$why: $hint; --no-apt given"
    [[ $(id -u) == 0 ]] || die "$why: $hint; run as root to install them"
    command -v apt-get >/dev/null || die "$why: $hint; no apt-get here: install them yourself"
    echo "install.sh: $why: installing ${pkgs[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${pkgs[@]}"; } >&2 ||
        die "$why: apt-get install ${pkgs[*]} failed"
    for t in "${missing[@]}"; do
        have "$t" || die "$why: $t still missing after apt-get install ${pkgs[*]}"
    done
}

# ---------------------------------------------------------------- uninstall
if ((uninstall)); then
    for b in "${BINARIES[@]}" "${OPTIONAL[@]}"; do
        if [[ -e $dest_bin/$b ]]; then
            rm -f "$dest_bin/$b"
            echo "removed $dest_bin/$b"
        else
            echo "not installed: $dest_bin/$b"
        fi
    done
    exit 0
fi

# ---------------------------------------------------------------- build or take prebuilt
# as_builder CMD...: run CMD as the user who owns the checkout when we run under sudo (their
# Rust toolchain, their file ownership in target/), else as we are
as_builder() {
    if [[ $(id -u) == 0 && -n ${SUDO_USER:-} && $SUDO_USER != root ]] &&
        [[ $(stat -c %U "$here") == "$SUDO_USER" ]] && command -v sudo >/dev/null; then
        local home
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        sudo -u "$SUDO_USER" env HOME="$home" PATH="$home/.cargo/bin:$PATH" "$@"
    else
        "$@"
    fi
}
if [[ -n $prebuilt ]]; then
    src=$(cd "$prebuilt" 2>/dev/null && pwd) || die "--prebuilt: no directory $prebuilt"
else
    as_builder sh -c 'command -v cargo' >/dev/null ||
        die "cargo not found (install Rust: https://rustup.rs, or use --prebuilt DIR)"
    # the linker Rust calls, and glibc's files it links build scripts (and a gnu build) with
    need "building" cc=gcc /usr/include/stdio.h=libc6-dev
    musl=$(uname -m)-unknown-linux-musl
    if [[ $(as_builder "$here/build.sh" --target) != "$musl" ]] && as_builder sh -c 'command -v rustup' >/dev/null; then
        echo "install.sh: rustup target add $musl (for static musl binaries)" >&2
        as_builder rustup target add "$musl" >&2 ||
            echo "install.sh: could not add $musl; building static glibc binaries instead" >&2
    fi
    # C code in a dependency (the cc crate builds it) needs musl's headers for musl
    if [[ $(as_builder "$here/build.sh" --target) == "$musl" ]] && grep -q '^name = "cc"$' "$here/Cargo.lock"; then
        need "building C code for musl" musl-gcc=musl-tools
    fi
    # mactrunk-etcd's etcd-client compiles etcd's .proto files at build time
    need "building mactrunk-etcd" protoc=protobuf-compiler \
        /usr/include/google/protobuf/descriptor.proto=libprotobuf-dev
    as_builder "$here/build.sh" >&2 || die "./build.sh failed"
    src=$here/target/static
fi
for b in "${OPTIONAL[@]}"; do
    if [[ -f $src/$b && -x $src/$b ]]; then
        BINARIES+=("$b")
    else
        echo "install.sh: $src/$b not found: not installed (only ipam.cluster needs it)" >&2
    fi
done
for b in "${BINARIES[@]}"; do
    [[ -f $src/$b && -x $src/$b ]] || die "$src/$b not found or not executable"
done

# ---------------------------------------------------------------- install binaries
install -d -m 0755 "$dest_bin"
for b in "${BINARIES[@]}"; do
    if [[ -f $dest_bin/$b ]] && cmp -s "$src/$b" "$dest_bin/$b"; then
        echo "unchanged $dest_bin/$b"
        continue
    fi
    # copy beside, then rename: a plugin that is running keeps its old inode
    tmp=$(mktemp "$dest_bin/.$b.XXXXXX")
    cp "$src/$b" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$dest_bin/$b"
    echo "installed $dest_bin/$b"
done

# ---------------------------------------------------------------- example config
if [[ -n $with_config ]]; then
    cfg=$here/conf/$(basename "$with_config")
    [[ -f $cfg ]] || die "--with-config: no example config $cfg (have: $(cd "$here/conf" && echo *))"
    install -d -m 0755 "$dest_conf"
    target=$dest_conf/$(basename "$cfg")
    if [[ -e $target ]]; then
        echo "kept existing $target (not overwritten)"
    else
        install -m 0644 "$cfg" "$target"
        echo "installed $target (edit \"master\" to your host's parent interface)"
    fi
fi

((demo)) || exit 0

# ---------------------------------------------------------------- demo
[[ $(id -u) == 0 ]] || die "--demo needs root (it creates network namespaces)"
need "--demo" ip=iproute2 jq=jq ping=iputils-ping

plugin=$dest_bin/mactrunk
tag=mtdemo-$$
hostns=$tag-host
nsa=$tag-a
nsb=$tag-b
parent=mtdemo0
data=$(mktemp -d /tmp/mtdemo-data.XXXXXX)
conf=$data/mtdemo.conf

cleanup() {
    set +e
    for ns in "$nsa" "$nsb" "$hostns"; do
        ip netns delete "$ns" 2>/dev/null
    done
    rm -rf "$data"
    echo "demo: removed namespaces $hostns $nsa $nsb and $data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }

step "namespaces: $hostns (parent $parent, a veth), containers $nsa and $nsb"
ip netns add "$hostns"
ip -n "$hostns" link set lo up
ip -n "$hostns" link add "$parent" type veth peer name "${parent}p"
ip -n "$hostns" link set "$parent" up
ip -n "$hostns" link set "${parent}p" up
ip netns add "$nsa"
ip netns add "$nsb"

cat >"$conf" <<EOF
{
  "cniVersion": "1.1.0",
  "name": "mtdemo",
  "type": "mactrunk",
  "master": "$parent",
  "mode": "bridge",
  "ipam": {
    "type": "mactrunk-ipam",
    "subnet": "10.99.0.0/24",
    "gateway": "10.99.0.1",
    "routes": [ { "dst": "0.0.0.0/0" } ],
    "dataDir": "$data/store"
  }
}
EOF
step "network config"
cat "$conf"

# cni CMD NS CID: run the plugin inside the host netns; result on stdout
cni() {
    ip netns exec "$hostns" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$3" \
        CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$dest_bin" "$plugin" <"$conf"
}

step "ADD $nsa"
res_a=$(cni ADD "$nsa" demo-a) || die "ADD $nsa failed: $res_a"
jq . <<<"$res_a"
step "ADD $nsb"
res_b=$(cni ADD "$nsb" demo-b) || die "ADD $nsb failed: $res_b"
jq . <<<"$res_b"
ip_a=$(jq -r '.ips[0].address' <<<"$res_a")
ip_b=$(jq -r '.ips[0].address' <<<"$res_b")

step "$nsa: ip addr show eth0"
ip -n "$nsa" addr show dev eth0
step "ping from $nsa (${ip_a%/*}) to $nsb (${ip_b%/*})"
ip netns exec "$nsa" ping -c 3 -i 0.2 -W 2 "${ip_b%/*}" || die "ping failed"

step "store: $data/store/mtdemo"
ls -l "$data/store/mtdemo"

step "DEL both"
out=$(cni DEL "$nsa" demo-a) || die "DEL $nsa failed: $out"
out=$(cni DEL "$nsb" demo-b) || die "DEL $nsb failed: $out"
echo "ok"
step "demo: OK"
