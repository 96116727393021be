#!/bin/bash
# netns-tests/runtimes/ctr.sh: end-to-end test of mactrunk under containerd's `ctr run --cni`.
#
#   netns-tests/runtimes/ctr.sh [--bin-dir DIR] [--keep]
#
# `ctr run --cni` only reads /etc/cni/net.d (the first config) and /opt/cni/bin, and runs
# the CNI plugins itself (the client, not the daemon). The test therefore runs in a
# private mount namespace (unshare -m) with tmpfs mounts over /run, /etc/cni and /opt and a
# temp dir over /var/lib/cni: the host's real paths stay untouched. A private containerd (own socket, root and state dirs, CRI plugin off)
# runs for the duration of the test; ctr runs inside a throwaway netns (mtactr-h) whose
# veth pair is the macvlan parent; containers use a busybox rootfs (--rootfs), no images.
#
# Checks: two containers get addresses from mactrunk, reach each other; the store names
# them (<namespace>-<id>, as ctr passes CNI_CONTAINERID); when a task ends, the foreground
# `ctr run` calls CNI DEL (with an empty CNI_NETNS: the netns died with the task) and the
# address is released. Note: `ctr run --detach` never calls DEL (a ctr limitation), so
# the test keeps each `ctr run` in the foreground (as a background job) and kills the task.
# Output: one PASS/FAIL line per check, then "N passed, M failed"; exit 1 if M > 0.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=runtimes/common.sh
source "$here/common.sh"
rt_parse_args "$@"
rt_preflight ctr containerd containerd-shim-runc-v2 runc busybox nsenter || exit 1
rt_private_mount_ns "$@"
# /run: containerd's shims put their sockets in /run/containerd/s (fixed path); /etc/cni and
# /opt: ctr's fixed CNI paths (/opt/cni does not exist on a host without CNI plugins there)
rt_setup ctr /run /etc/cni /opt
mkdir -p /run/containerd /etc/cni/net.d /opt/cni/bin
ln -s "$BIN/mactrunk" /opt/cni/bin/mactrunk
ln -s "$BIN/mactrunk-ipam" /opt/cni/bin/mactrunk-ipam

# the example config, as shipped (only master and dataDir substituted); its loopback
# plugin brings up the container's lo (ctr, unlike the CRI plugin, does not)
rt_conf 50-mactrunk-containerd.conflist /etc/cni/net.d/50-mactrunk-containerd.conflist
ln -s /usr/lib/cni/loopback /opt/cni/bin/loopback

# ---- a private containerd
rt_start_containerd
CGPARENT=mtactr-$$
NS=mta
c() { timeout -k 5 60 ctr --address "$SOCK" --namespace "$NS" "$@"; }
declare -A RUN_PID=()
rt_cleanup_hook() {
    local id p
    for id in "${!RUN_PID[@]}"; do
        c task kill -s SIGKILL "$id" >/dev/null 2>&1
    done
    for p in "${RUN_PID[@]}"; do
        timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null
    done
    for id in "${!RUN_PID[@]}"; do
        c task delete -f "$id" >/dev/null 2>&1
        c container delete "$id" >/dev/null 2>&1
    done
    [[ -n ${CTD_PID:-} ]] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
    rt_rmdir_cgroups "$CGPARENT"
}

record() { [[ -n $1 && -f $WORK/data/$NET/${1%/*} ]]; }
no_record() { [[ -n $1 && ! -e $WORK/data/$NET/${1%/*} ]]; }
addr_of() { c task exec --exec-id "ip$RANDOM" "$1" /bin/ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}'; }
running() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id && $3 == "RUNNING"' | grep -q .; }

# crun ID: `ctr run --cni` in the foreground, as a background job of this script, in the
# test's host netns (nsenter: `ip netns exec` would remount /sys and hide the cgroups)
crun() {
    local id=$1
    cp -a "$ROOTFS" "$WORK/rootfs-$id"
    nsenter --net="/run/netns/$RT_HOSTNS" ctr --address "$SOCK" --namespace "$NS" run --cni \
        --cgroup "/$CGPARENT/$id" --rootfs "$WORK/rootfs-$id" "$id" /bin/sleep 600 \
        </dev/null >"$WORK/run-$id.log" 2>&1 &
    RUN_PID[$id]=$!
    local i
    for i in $(seq 100); do
        running "$id" && [[ -n $(addr_of "$id") ]] && return 0
        kill -0 "${RUN_PID[$id]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# cstop ID: kill the task; the foreground `ctr run` then runs CNI DEL and exits
cstop() {
    c task kill -s SIGKILL "$1" || return 1
    timeout 30 tail --pid="${RUN_PID[$1]}" -f /dev/null
    local rc=$?
    c container delete "$1" >/dev/null 2>&1
    unset "RUN_PID[$1]"
    return $rc
}

step "two containers with ctr run --cni"
t0=$(date +%s.%N)
check "ctr run A" crun mtactr-a
t1=$(date +%s.%N)
log "ctr run A until it had its address: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s"
check "ctr run B" crun mtactr-b
ip_a=$(addr_of mtactr-a)
ip_b=$(addr_of mtactr-b)
log "A: $ip_a  B: $ip_b"
check "A has an address of the range" in_range "$ip_a"
check "B has an address of the range" in_range "$ip_b"
check "A and B differ" test "${ip_a:-x}" != "${ip_b:-x}"
pid_a=$(c task ls 2>/dev/null | awk '$1 == "mtactr-a" {print $2}')
check "A's eth0 is a macvlan on the parent" eval "nsenter --net=/proc/${pid_a:-0}/ns/net ip -d -j link show dev eth0 | jq -e '.[0].linkinfo.info_kind == \"macvlan\"'"
check "A's lo is up (loopback plugin in the chain)" c task exec --exec-id lo mtactr-a /bin/ping -c1 -W2 127.0.0.1
check "A reaches B" c task exec --exec-id pingab mtactr-a /bin/ping -c1 -W2 "${ip_b%/*}"
check "B reaches A" c task exec --exec-id pingba mtactr-b /bin/ping -c1 -W2 "${ip_a%/*}"

step "mactrunk's store"
"$BIN/mactrunk-ipam" list --data-dir "$WORK/data" "$NET" --json >"$WORK/list.json" 2>>"$WORK/log"
owns() { # owns CIDR CONTAINER-ID: the listing has CIDR's address held by CONTAINER-ID eth0
    [[ -n $1 ]] && jq -e --arg ip "${1%/*}" --arg id "$2" \
        '.networks[0].allocations | any(.ip == $ip and .containerID == $id and .ifname == "eth0")' "$WORK/list.json"
}
check "store: A's address belongs to $NS-mtactr-a" owns "$ip_a" "$NS-mtactr-a"
check "store: B's address belongs to $NS-mtactr-b" owns "$ip_b" "$NS-mtactr-b"

step "the end of a task releases its address"
check "kill A; ctr run A returns" cstop mtactr-a
check "A's address is released" no_record "$ip_a"
check "B's address is kept" record "$ip_b"
check "ctr run C" crun mtactr-c
ip_c=$(addr_of mtactr-c)
check "C has an address of the range" in_range "$ip_c"
check "C reaches B" c task exec --exec-id pingcb mtactr-c /bin/ping -c1 -W2 "${ip_b%/*}"
check "kill B and C" eval "cstop mtactr-b && cstop mtactr-c"
check "store empty after every task ended" store_empty "$WORK/data/$NET"
check "no macvlan left in the host netns" eval "! ip -n $RT_HOSTNS -d link show type macvlan | grep -q ."

rt_finish
