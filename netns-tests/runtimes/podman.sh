#!/bin/bash
# netns-tests/runtimes/podman.sh: end-to-end test of mactrunk under podman's CNI backend.
#
#   netns-tests/runtimes/podman.sh [--bin-dir DIR] [--keep]
#
#   --bin-dir DIR  mactrunk and mactrunk-ipam from DIR (default: target/static, built by
#                  ./build.sh if missing)
#   --keep         keep the work directory (configs, podman's storage, logs)
#
# Runs real busybox containers (a rootfs made from Debian's busybox-static, no registry)
# with `podman run --network mactrunk-podman` and checks: each container gets its address
# from mactrunk's store, the two reach each other over the macvlan, `mactrunk-ipam list`
# names the containers, `podman stop`/`start` release and re-add, `--ip`/`--mac-address` reach
# mactrunk (capabilities ips, mac), and `podman rm` releases the address and removes the interface.
#
# Isolation: the whole test runs in a private mount namespace (unshare -m) with a tmpfs on
# /run/netns and temp dirs over /var/lib/cni, so podman's container netns and libcni's cache
# never show on the host; podman uses a private containers.conf (CONTAINERS_CONF), storage
# (--root/--runroot) and network config dir; podman itself runs in a throwaway netns
# (mtapd-h) whose veth pair is the macvlan parent. Nothing on the host changes.
# Needs root, podman, runc, busybox-static, containernetworking-plugins (Debian 12 packages).
# Output: one PASS/FAIL line per check, then "N passed, M failed"; exit 1 if M > 0.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=runtimes/common.sh
source "$here/common.sh"
rt_parse_args "$@"
rt_preflight podman runc busybox || exit 1
rt_private_mount_ns "$@"
rt_setup podman

# the example config, as shipped (only master and dataDir substituted)
rt_conf 50-mactrunk-podman.conflist "$WORK/net.d/50-mactrunk-podman.conflist"
cat >"$WORK/containers.conf" <<EOF
[containers]
netns = "private"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$BIN", "/usr/lib/cni"]
network_config_dir = "$WORK/net.d"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
runtime = "runc"
tmp_dir = "$WORK/tmp"
static_dir = "$WORK/storage/libpod"
volume_path = "$WORK/storage/volumes"
EOF
export CONTAINERS_CONF=$WORK/containers.conf

# pm ARGS...: podman with private storage, run in the test's host netns (nsenter, not
# `ip netns exec`: that remounts /sys, hiding the cgroup mounts runc needs)
pm() {
    timeout -k 5 120 nsenter --net="/run/netns/$RT_HOSTNS" podman --root "$WORK/storage" --runroot "$WORK/runroot" \
        --storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}
# containers (and conmon) go into cgroups under a parent of our own, removed at the end
CGPARENT=mtapd-$$
rt_cleanup_hook() {
    pm rm -f -t 0 -a >/dev/null 2>&1
    rt_rmdir_cgroups "$CGPARENT"
}

ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --cgroup-parent "/$CGPARENT")
record() { [[ -n $1 && -f $WORK/data/$NET/${1%/*} ]]; }   # record CIDR: the address is held
no_record() { [[ -n $1 && ! -e $WORK/data/$NET/${1%/*} ]]; }
addr_of() { pm exec "$1" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}'; }

prun() { # prun NAME: start a busybox container on the mactrunk network
    # --network must come before --rootfs PATH (everything after the path is the command)
    pm run -d --name "$1" --network "$NET" "${ULIMITS[@]}" --rootfs "$ROOTFS" sleep 600
}

step "podman sees the network"
pm network ls --format '{{.Name}}' >"$WORK/networks" 2>"$WORK/networks.err"
check "podman network ls lists $NET" grep -qx "$NET" "$WORK/networks"

step "two containers on $NET"
t0=$(date +%s.%N)
check "podman run A" prun mtapd-a
t1=$(date +%s.%N)
check "podman run B" prun mtapd-b
ip_a=$(addr_of mtapd-a)
ip_b=$(addr_of mtapd-b)
log "A: $ip_a  B: $ip_b  (podman run A took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s)"
check "A has an address of the range" in_range "$ip_a"
check "B has an address of the range" in_range "$ip_b"
check "A and B differ" test "${ip_a:-x}" != "${ip_b:-x}"
pid_a=$(pm inspect mtapd-a --format '{{.State.Pid}}' 2>/dev/null)
check "A's eth0 is a macvlan in bridge mode" eval "nsenter --net=/proc/${pid_a:-0}/ns/net ip -d -j link show dev eth0 | jq -e '.[0].linkinfo | .info_kind == \"macvlan\" and .info_data.mode == \"bridge\"'"
check "A reaches B" pm exec mtapd-a ping -c1 -W2 "${ip_b%/*}"
check "B reaches A" pm exec mtapd-b ping -c1 -W2 "${ip_a%/*}"
check "podman inspect reports A's address" eval "pm inspect mtapd-a --format '{{json .NetworkSettings.Networks}}' | grep -q '\"${ip_a%/*}\"'"

step "mactrunk's store"
"$BIN/mactrunk-ipam" list --data-dir "$WORK/data" "$NET" --json >"$WORK/list.json" 2>"$WORK/list.err"
id_a=$(pm inspect mtapd-a --format '{{.Id}}' 2>/dev/null)
id_b=$(pm inspect mtapd-b --format '{{.Id}}' 2>/dev/null)
owns() { # owns CIDR CONTAINER-ID: the listing has CIDR's address held by CONTAINER-ID eth0
    [[ -n $1 && -n $2 ]] && jq -e --arg ip "${1%/*}" --arg id "$2" \
        '.networks[0].allocations | any(.ip == $ip and .containerID == $id and .ifname == "eth0")' "$WORK/list.json"
}
check "store: A's address belongs to A's container ID" owns "$ip_a" "$id_a"
check "store: B's address belongs to B's container ID" owns "$ip_b" "$id_b"

step "removal releases"
t0=$(date +%s.%N)
check "podman rm -f A" pm rm -f -t 0 mtapd-a
t1=$(date +%s.%N)
log "podman rm -f A took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s"
check "A's address is released" no_record "$ip_a"
check "B's address is kept" record "$ip_b"
check "a new container C starts" prun mtapd-c
ip_c=$(addr_of mtapd-c)
check "C has an address of the range" in_range "$ip_c"
check "C reaches B" pm exec mtapd-c ping -c1 -W2 "${ip_b%/*}"
check "podman stop C" pm stop -t 0 mtapd-c
check "stop released C's address" no_record "$ip_c"
check "podman start C" pm start mtapd-c
ip_c2=$(addr_of mtapd-c)
check "C has an address again after start" record "$ip_c2"
check "C reaches B after restart" pm exec mtapd-c ping -c1 -W2 "${ip_b%/*}"

step "static IP and MAC (capabilities ips and mac: podman's --ip, --mac-address)"
static=${RANGE_START%.*}.$((${RANGE_END##*.} - 1))
check "podman run D --ip $static --mac-address 02:42:0a:63:00:28" \
    pm run -d --name mtapd-d --network "$NET" --ip "$static" --mac-address 02:42:0a:63:00:28 "${ULIMITS[@]}" --rootfs "$ROOTFS" sleep 600
check "D has $static/$RANGE_PREFIX" test "$(addr_of mtapd-d)" = "$static/$RANGE_PREFIX"
check "D has MAC 02:42:0a:63:00:28" eval "pm exec mtapd-d cat /sys/class/net/eth0/address | grep -qx 02:42:0a:63:00:28"
check "D reaches B" pm exec mtapd-d ping -c1 -W2 "${ip_b%/*}"
check "podman rm -f D" pm rm -f -t 0 mtapd-d
check "D's address is released" no_record "$static/$RANGE_PREFIX"

check "podman rm -f B C" pm rm -f -t 0 mtapd-b mtapd-c
check "store empty after removing every container" store_empty "$WORK/data/$NET"
check "no macvlan left in the host netns" eval "! ip -n $RT_HOSTNS -d link show type macvlan | grep -q ."

rt_finish
