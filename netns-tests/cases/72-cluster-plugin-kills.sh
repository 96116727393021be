# Cluster IPAM under kill -9 (real 3-member etcd; on three hosts at once, the IPAM plugin and,
# for a third of the containers, the full plugin with its in-process IPAM; 10.88.0.0/24 in
# /30 blocks, so that blocks are claimed and returned all the time).
# Each host runs rounds of: an ADD of a new container or a DEL of a live one, SIGKILLed after
# a random delay (uniform in [0, 1.3 x the median of a local ADD] or, every other time, of a
# claiming ADD with its cold connect: so before, during and after the etcd claim, between the
# claim and the local record, in the middle of a block's return), a killed DEL retried until
# it succeeds, as a runtime does. Until at least NT_CLUSTER_KILLS (default 120) runs were
# killed in all; at least some while the plugin's etcd helper was running.
# Then: no helper outlives its killed plugin; no address is held twice; every address is in
# its host's blocks in etcd. Then DEL of everything and a GC on each host: every store empty,
# each host's usage report in etcd says 0 used, no block stranded (every block etcd gives a
# host is recorded by that host, and at most one, a spare, is left per host), and a fourth
# host takes every address outside those spares (most of the /24), then gets code 101 and
# STATUS 50.
source "$NT_DIR/etcd.sh"
need_cluster
KILLS=${NT_CLUSTER_KILLS:-120}
cluster_lan
for h in A B C D; do cluster_host $h; done
etcd_start
net=mt-cl72
declare -A conf=()
# timeoutMs 10 s: three kill loops and their helpers share 2 cores (with another case beside
# this one in CI); timeouts are case 71's subject, not this one's
for h in A B C D; do conf[$h]=$(cluster_conf $h $net '.ipam.cluster.blockSize = 30 | .ipam.cluster.timeoutMs = 10000 | .ipam.lockTimeout = 60000'); done
mkfifo "$T/never"
exec 7<>"$T/never"
nap() { read -r -t "$1" -u 7 _ 2>/dev/null; return 0; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

# A container ID ending in "f" is run with the full plugin (in-process IPAM; its link goes
# into the host's container netns under the interface name k<ID's middle>), the others with
# the IPAM plugin (ifname eth0).
plugin_of() { [[ $1 == *f ]] && echo "$PLUGIN" || echo "$IPAM_PLUGIN"; }
ifname_of() { if [[ $1 == *f ]]; then local m=${1#mt-k-}; echo "k${m%f}"; else echo eth0; fi; }
# start_bg HOST CMD CID: the plugin in the background for CID (PID in $pid)
start_bg() {
    ip netns exec "${HNS[$1]}" env -i PATH="$SAFE_PATH" CNI_COMMAND="$2" CNI_PATH="$CNI_PATH_DIRS" \
        CNI_IFNAME="$(ifname_of "$3")" CNI_CONTAINERID="$3" CNI_NETNS="/run/netns/${HCNS[$1]}" \
        "$(plugin_of "$3")" <"${conf[$1]}" >"$T/bg-$1.out" 2>&1 &
    pid=$!
}
# del HOST CID: an unkilled DEL of CID (sets RC)
del() { on "$1" DEL "${conf[$1]}" bin="$(plugin_of "$2")" if="$(ifname_of "$2")" cid="$2"; }

# ---- calibration on host A: claiming ADDs (a fresh node each: cold connect, list, create
# txn, record) and local ADDs (room in an owned block)
declare -a tclaim=() tlocal=()
for i in 1 2 3 4 5; do
    cal=$(cluster_conf A mt-cl72cal '.ipam.cluster.blockSize = 30 | .ipam.cluster.timeoutMs = 10000 | .ipam.cluster.nodeName = $n | .ipam.dataDir = $d' \
        --arg n "cal-$i" --arg d "$T/cal-$i")
    timed A ADD "$cal" bin=ipam cid=mt-cal-$i
    assert_ok "calibration ADD $i (claims)" || die "calibration failed"
    tclaim+=("$MS")
    timed A ADD "$cal" bin=ipam cid=mt-cal-$i-b
    assert_ok "calibration ADD $i (local)"
    tlocal+=("$MS")
done
MED_CLAIM=$(($(median "${tclaim[@]}") * 1000))
MED_LOCAL=$(($(median "${tlocal[@]}") * 1000 + 500))
log "median claiming ADD $((MED_CLAIM / 1000)) ms, local ADD $((MED_LOCAL / 1000)) ms (with ip netns exec)"

# ---- the kill loops, one per host, at the same time
kill_loop() { # kill_loop HOST: until HOST's share of KILLS was killed; counts in $T/kills-HOST
    local h=$1 share=$(((KILLS + 2) / 3)) kills=0 runs=0 during=0 n=0 rc d med kids r
    local -a live=()
    local pending=""
    while ((kills < share && runs < share * 6)); do
        r=$((RANDOM % 10))
        if ((${#live[@]} < 3 || (${#live[@]} < 14 && r < 6))); then
            n=$((n + 1))
            local cid=mt-k-$h$n
            ((RANDOM % 3 == 0)) && cid+=f
            live+=("$cid")
            start_bg "$h" ADD "$cid"
        else
            r=$((RANDOM % ${#live[@]}))
            local cid=${live[$r]}
            live=("${live[@]:0:$r}" "${live[@]:$((r + 1))}")
            start_bg "$h" DEL "$cid"
            pending=$cid
        fi
        med=$MED_LOCAL
        ((RANDOM % 2)) && med=$MED_CLAIM
        d=$(((RANDOM * 32768 + RANDOM) % (med * 13 / 10 + 1)))
        nap "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
        kids=""
        read -r kids <"/proc/$pid/task/$pid/children" 2>/dev/null
        kill -9 "$pid" 2>/dev/null
        wait "$pid"
        rc=$?
        runs=$((runs + 1))
        if ((rc == 137)); then
            kills=$((kills + 1))
            [[ -n $kids ]] && during=$((during + 1))
        fi
        # a DEL that was started is retried until it succeeds, as a runtime does
        if [[ -n $pending ]]; then
            local t
            for t in 1 2 3 4 5; do
                del "$h" "$pending"
                [[ $RC == 0 ]] && break
            done
            [[ $RC == 0 ]] || fail "host $h: DEL of $pending after a kill failed 5 times: $(_last)"
            pending=""
        fi
    done
    printf '%s\n' "${live[@]}" >"$T/live-$h"
    echo "$kills $runs $during" >"$T/kills-$h"
}
t0=$SECONDS
for h in A B C; do kill_loop $h 2>>"$T/kill-$h.log" & done
wait
kills=0 runs=0 during=0
for h in A B C; do
    read -r k r d <"$T/kills-$h" || die "host $h's kill loop left no count"
    kills=$((kills + k)) runs=$((runs + r)) during=$((during + d))
done
log "$kills of $runs plugin runs killed ($during while the etcd helper ran) in $((SECONDS - t0)) s"
((kills >= KILLS)) || fail "only $kills runs were killed (wanted $KILLS)"
((during >= 5)) || fail "only $during kills hit the plugin while its etcd helper ran: the delays miss the claims"

# no helper outlives its plugin for long (it sees EOF on stdin when the parent dies)
sleep 1
for h in A B C; do
    left=$(ip netns pids "${HNS[$h]}" 2>/dev/null | while read -r p; do printf '%s:%s ' "$p" "$(cat /proc/$p/comm 2>/dev/null)"; done)
    if [[ -n $left ]]; then
        fail "host $h: processes left 1 s after the kill loop: $left"
        for p in $(ip netns pids "${HNS[$h]}"); do kill -9 "$p" 2>/dev/null; done
    fi
done
cluster_check $net A B C

# ---- DEL everything, GC
for h in A B C; do
    while read -r cid; do
        [[ -n $cid ]] || continue
        del $h "$cid"
        assert_ok_empty "final DEL of $cid on $h"
    done <"$T/live-$h"
    # (links of killed full-plugin ADDs are the plugin's rollback business, case 63/53; here
    # only the addresses and blocks count)
done
for h in A B C; do
    on $h GC "$(conf_edit "${conf[$h]}" '.["cni.dev/valid-attachments"] = []')" -CNI_IFNAME -CNI_NETNS
    assert_ok_empty "GC on host $h"
    DATA=${HDATA[$h]} assert_store_empty $net
    used=$(ectl get --print-value-only "$CLUSTER_PREFIX/networks/$net/nodes/${HNODE[$h]}" | jq -r '.used // "none"')
    assert_eq "$used" 0 "host $h's usage report in etcd after DEL of everything and GC"
done
blocks=$(etcd_blocks $net)
log "blocks left: $(echo $blocks)"
cluster_check $net A B C
held=0
for h in A B C; do
    mine=$(awk -v n="${HNODE[$h]}" '$2 == n {print $1}' <<<"$blocks")
    (($(grep -c . <<<"$mine") <= 1)) || fail "host $h owns $(echo $mine) after DEL of everything and GC (one spare at most)"
    for b in $mine; do
        host_blocks $h $net | grep -qxF "$b" || fail "block $b is stranded: node ${HNODE[$h]} owns it in etcd, host $h does not record it"
        for ((k = 0; k < 4; k++)); do
            ip=$(nth "$b" $k)
            [[ $ip == 10.88.0.0 || $ip == 10.88.0.1 || $ip == 10.88.0.255 ]] || held=$((held + 1))
        done
    done
done
other=$(grep -vE ' node-[abc]$' <<<"$blocks" | grep .)
[[ -z $other ]] || fail "blocks of other owners after the kill loops: $other"

# ---- a fourth host takes everything else: 253 usable addresses (.2-.254) minus the spares
want=$((253 - held))
got=$(ip netns exec "${HNS[D]}" bash -c '
    n=0
    while ((n < 300)); do
        env -i PATH="$1" CNI_COMMAND=ADD CNI_PATH="$2" CNI_IFNAME=eth0 CNI_CONTAINERID=mt-d-$n \
            CNI_NETNS="/run/netns/$3" "$4" <"$5" >"$6/d-last.out" 2>&1 || break
        n=$((n + 1))
    done
    echo "$n"' _ "$SAFE_PATH" "$CNI_PATH_DIRS" "${HCNS[D]}" "$IPAM_PLUGIN" "${conf[D]}" "$T")
log "host D took $got addresses (expected $want: 253 minus $held in the other hosts' spares)"
assert_eq "$got" "$want" "addresses a fourth host gets after the others gave everything back"
((got >= 200)) || fail "host D took only $got of the /24"
OUT=$(<"$T/d-last.out") RC=1
assert_code 101 'no free block' "ADD on D once the /24 is used up"
on D STATUS "${conf[D]}" -CNI_IFNAME -CNI_NETNS
assert_code 50 '' "STATUS on D with its blocks full and no free block"
cluster_check $net A B C D
