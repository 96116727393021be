# Cluster IPAM when etcd fails (real 3-member cluster, IPAM plugin on three hosts).
# 1. One member down: member 1 is made the leader (it is also the first endpoint of every
#    config), then killed with -9 while the three hosts run 24 ADDs each (blockSize 29: a
#    claim every few ADDs, some of them after the kill). Every ADD succeeds (timeoutMs 5000,
#    members with a 500 ms election timeout); no duplicates; every address in its host's
#    blocks.
# 2. All members down (kill -9): an ADD with room in an owned block succeeds (no etcd needed);
#    an ADD that needs a new block (the host's blocks full) and a static address in a free
#    block fail with code 11 within timeoutMs, naming the endpoints and ipam.cluster.timeoutMs,
#    and leave nothing (store, blocks, links in the container, no helper process); the full
#    plugin too. A DEL that empties a block and a GC still succeed.
# 3. Members restarted: the new-block ADD works; a GC returns the block emptied during the
#    outage.
# 4. One host cut off silently (its neighbour entries for the members point nowhere, so
#    connects hang instead of being refused): a static address in a free block fails 11
#    within timeoutMs, nothing left; ADDs in owned blocks still work.
source "$NT_DIR/etcd.sh"
need_cluster
# A leader's loss costs an election: with etcd's defaults (heartbeat 100 ms, election timeout
# 1000 ms) the followers wait 1-2 s before they elect, which is most of the default timeoutMs
# of an ADD that claims in that window. The members here elect within 0.5-1 s, as an operator
# tunes a cluster on a LAN; the client must still fail over and retry within timeoutMs.
ETCD_HEARTBEAT=50 ETCD_ELECTION=500
cluster_lan
for h in A B C; do cluster_host $h; done
etcd_start
net=mt-cl71
declare -A conf=() fast=()
for h in A B C; do
    # member-down phase: timeoutMs 5000, as the case may share 2 cores with another one in
    # CI (alone, the slowest ADD through the kill takes < 1 s with a client that fails over)
    conf[$h]=$(cluster_conf $h $net '.ipam.cluster.blockSize = 29 | .ipam.cluster.timeoutMs = 5000 | .ipam.lockTimeout = 60000')
    fast[$h]=$(conf_edit "${conf[$h]}" '.ipam.cluster.timeoutMs = 1000')
done
TMO=1000
SLACK=${NT_CLUSTER_SLACK_MS:-700} # process start, ip netns exec and the parent's kill of its helper

# ---- 1. one member down mid-run
etcd_move_leader 1 || fail "could not make member 1 the leader"
log "leader: member $(etcd_leader)"
N=24
for h in A B C; do
    (
        for ((i = 1; i <= N; i++)); do
            t0=${EPOCHREALTIME/./}
            on $h ADD "${conf[$h]}" bin=ipam cid=mt-d-$h$i
            printf '%s %s\n%s\n' "$RC" $((${EPOCHREALTIME/./} - t0)) "$OUT" >"$T/r1-$h$i"
        done
    ) 2>>"$T/bg.log" &
done
# kill the leader once a third of the ADDs are done
end=$((SECONDS + 60))
until (($(ls "$T" | grep -c '^r1-') >= N)) || ((SECONDS > end)); do sleep 0.05; done
etcd_kill 1
log "member 1 killed after $(ls "$T" | grep -c '^r1-') ADDs"
wait
log "leader after the kill: member $(etcd_leader)"
ok=0 worst=0
for h in A B C; do
    for ((i = 1; i <= N; i++)); do
        result "$T/r1-$h$i"
        CTX="member down, ADD $h$i" assert_ok "ADD" && ok=$((ok + 1))
        ((DUR > worst)) && worst=$DUR
    done
done
CTX=""
log "ADDs with one member down: $ok of $((3 * N)) ok, slowest $((worst / 1000)) ms"
assert_eq "$ok" $((3 * N)) "ADDs that succeeded around the kill of a member"
cluster_check $net A B C
etcd_restart 1

# ---- 2. all members down
# Host A: room in an owned block (DEL of one of its addresses, not the block's last).
# Host B: its blocks full (as many ADDs as they have room, while etcd is up).
# Host C: a block it owns holds exactly one address, and C owns another block (so a DEL of
# that address empties a block that would be returned).
on A DEL "${conf[A]}" bin=ipam cid=mt-d-A5
assert_ok_empty "DEL A5"
# fill B: as many ADDs as its blocks have room (a DEL keeps a block with room as the spare,
# so B is made full by counting, not by probing for a claim)
r=$(room B $net)
log "host B: room for $r more in $(host_blocks B $net | tr '\n' ' ')"
for ((i = 1; i <= r; i++)); do
    on B ADD "${conf[B]}" bin=ipam cid=mt-fill-B$i
    assert_ok "filling B ($i of $r)"
done
assert_eq "$(room B $net)" 0 "room left in B's blocks after filling them"
# C: a fresh block with a single address (a static address in a free block claims it)
blocks=$(etcd_blocks $net)
free_block() { # a /29 of the /24 that nobody claimed, not in the list of exceptions
    local o b
    for ((o = 0; o < 256; o += 8)); do
        b=10.88.0.$o/29
        grep -q "^$b " <<<"$blocks" && continue
        [[ " $* " == *" $b "* ]] && continue
        echo "$b"
        return 0
    done
    return 1
}
cblock=$(free_block) || die "no free block left for host C"
cip=$(nth "$cblock" 3)
on C ADD "${conf[C]}" bin=ipam cid=mt-lonely-C args="IP=$cip"
assert_ok "static $cip on C (claims $cblock)" && assert_json '.ips[0].address' "$cip/24"
blocks=$(etcd_blocks $net)
grep -qxF "$cblock node-c" <<<"$blocks" || fail "static $cip did not give $cblock to node-c: $(echo $blocks)"
fblock=$(free_block) || die "no free block left"
fip=$(nth "$fblock" 2)
cluster_check $net A B C
snapshot=$blocks

etcd_kill_all
log "all members killed"

# owned-block ADD on A: works, inside A's blocks, fast
timed A ADD "${fast[A]}" bin=ipam cid=mt-down-A1
if assert_ok "owned-block ADD on A with etcd down"; then
    ip=$(jqo '.ips[0].address' | cut -d/ -f1)
    ok=0
    for b in $(awk '$2 == "node-a" {print $1}' <<<"$snapshot"); do in_cidr "$ip" "$b" && ok=1; done
    ((ok)) || fail "owned-block ADD on A got $ip, outside A's blocks"
    ((MS < TMO)) || fail "owned-block ADD with etcd down took $MS ms (no etcd needed: expected well under timeoutMs)"
fi
# new-block ADD on B: 11 within timeoutMs, nothing left
down_fails() { # down_fails HOST WHAT OPTION...: an ADD that needs etcd fails cleanly
    local h=$1 what=$2 before after
    shift 2
    before=$(host_ips $h $net | tr '\n' ' ')
    local lb_before
    lb_before=$(host_blocks $h $net | tr '\n' ' ')
    timed $h ADD "${fast[$h]}" "$@"
    assert_code 11 'timeoutMs' "$what with etcd down"
    assert_match "$_MSG" "10\.254\.0\.1[123]" "$what: the message names the endpoints"
    ((MS <= TMO + SLACK)) || fail "$what with etcd down took $MS ms (timeoutMs $TMO)"
    after=$(host_ips $h $net | tr '\n' ' ')
    assert_eq "$after" "$before" "$what: host $h's store after the failed ADD"
    assert_eq "$(host_blocks $h $net | tr '\n' ' ')" "$lb_before" "$what: host $h's own blocks after the failed ADD"
    sleep 0.2
    local left
    left=$(ip netns pids "${HNS[$h]}" 2>/dev/null | while read -r p; do cat /proc/$p/comm 2>/dev/null; done | tr '\n' ' ')
    [[ -z $left ]] || fail "$what: processes left in host $h: $left"
    log "$what: failed in $MS ms"
}
down_fails B "new-block ADD on B (IPAM plugin)" bin=ipam cid=mt-down-B1
make_container_ns CB
down_fails B "new-block ADD on B (full plugin)" cid=mt-down-B2 ns="$CB"
assert_ns_clean "$CB"
down_fails A "static $fip in a free block on A" bin=ipam cid=mt-down-A2 args="IP=$fip"

# DEL that empties C's single-address block, and GC: both succeed
timed C DEL "${fast[C]}" bin=ipam cid=mt-lonely-C
assert_ok_empty "DEL emptying a block with etcd down"
log "DEL emptying a block with etcd down: $MS ms"
((MS <= TMO + SLACK)) || fail "DEL with etcd down took $MS ms"
[[ -n $(host_ips C $net | grep -xF "$cip") ]] && fail "DEL with etcd down did not release $cip"
timed A GC "$(gc_keep_all A "${fast[A]}" $net)" -CNI_IFNAME -CNI_NETNS
assert_ok_empty "GC on A with etcd down (local part only)"
log "GC with etcd down: $MS ms; stderr: ${ERR:0:200}"

# ---- 3. members back
etcd_restart_all
on B ADD "${fast[B]}" bin=ipam cid=mt-up-B1
assert_ok "new-block ADD on B after etcd is back"
on C GC "$(gc_keep_all C "${fast[C]}" $net)" -CNI_IFNAME -CNI_NETNS
assert_ok_empty "GC on C after etcd is back"
blocks=$(etcd_blocks $net)
# C's emptied block goes back (C owns others with addresses in them, so it is not needed as
# a spare... unless GC keeps it as the spare, in which case C records it as its own)
if grep -qxF "$cblock node-c" <<<"$blocks"; then
    cspare=0
    for b in $(awk '$2 == "node-c" {print $1}' <<<"$blocks"); do
        used=0
        for ip in $(host_ips C $net); do in_cidr "$ip" "$b" && used=1; done
        ((used)) || cspare=$((cspare + 1))
    done
    ((cspare <= 1)) || fail "after GC host C owns $cspare empty blocks (the one emptied during the outage among them)"
    host_blocks C $net | grep -qxF "$cblock" || fail "block $cblock emptied during the outage is stranded: owned by node-c in etcd, not recorded by C"
fi
cluster_check $net A B C

# ---- 4. host C cut off silently
for i in 1 2 3; do
    ip -n "${HNS[C]}" neigh replace "${ETCD_IPS[$((i - 1))]}" lladdr 02:00:5e:00:00:0$i dev eth0 nud permanent
done
nsx "${HNS[C]}" ping -c1 -W1 "${ETCD_IPS[0]}" >/dev/null 2>&1 && fail "the silent cut did not cut"
blocks=$(etcd_blocks $net)
sblock=$(free_block) || die "no free block left"
sip=$(nth "$sblock" 2)
down_fails C "static $sip in a free block on C, etcd silently unreachable" bin=ipam cid=mt-cut-C1 args="IP=$sip"
for i in 1 2 3; do ip -n "${HNS[C]}" neigh del "${ETCD_IPS[$((i - 1))]}" dev eth0; done
on C ADD "${fast[C]}" bin=ipam cid=mt-cut-C2 args="IP=$sip"
assert_ok "the same static address once C reaches etcd again"
cluster_check $net A B C
