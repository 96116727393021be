#!/bin/bash
# install.sh: build and install the mactrunk CNI plugins, and optionally run a demo.
#
#   ./install.sh [--prebuilt DIR] [--bin-dir DIR] [--with-config[=FILE]] [--conf-dir DIR]
#   ./install.sh --uninstall [--bin-dir DIR]
#   ./install.sh [--prebuilt DIR] --demo
#
#   (no option)          cargo build --release, then install mactrunk and mactrunk-ipam
#                        into /opt/cni/bin
#   --prebuilt DIR       take the two binaries from DIR instead of building
#   --bin-dir DIR        install the binaries into DIR (default /opt/cni/bin)
#   --with-config[=FILE] also install an example config from conf/ (default
#                        10-mactrunk-bridge.conf) into the config dir; an existing file of
#                        that name is never overwritten
#   --conf-dir DIR       the config dir (default /etc/cni/net.d)
#   --uninstall          remove the two binaries from the bin dir (configs are never removed)
#   --demo               after installing, run the plugin: create throwaway namespaces
#                        mtdemo-<pid>-{host,a,b} (a veth pair in "host" is the macvlan
#                        parent), ADD two containers on a mactrunk network, show the result,
#                        ping between them, DEL both and remove everything (also on failure).
#                        Needs root, ip, jq and ping; the real host's links are not touched.
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
BINARIES=(mactrunk mactrunk-ipam)

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
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
((uninstall && demo)) && die "--uninstall and --demo do not go together"

dest_bin=${DESTDIR:-}$bin_dir
dest_conf=${DESTDIR:-}$conf_dir

# ---------------------------------------------------------------- uninstall
if ((uninstall)); then
    for b in "${BINARIES[@]}"; do
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
if [[ -n $prebuilt ]]; then
    src=$(cd "$prebuilt" 2>/dev/null && pwd) || die "--prebuilt: no directory $prebuilt"
else
    command -v cargo >/dev/null || die "cargo not found (install Rust, or use --prebuilt DIR)"
    echo "building: cargo build --release" >&2
    (cd "$here" && cargo build --release) >&2 || die "cargo build --release failed"
    src=$here/target/release
fi
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
for t in ip jq ping; do command -v "$t" >/dev/null || die "--demo needs $t"; done

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
