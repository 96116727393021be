# Cluster IPAM: static addresses are unique cluster-wide, and the admin commands for blocks.
# 1. Static race: the same static address (CNI_ARGS IP=) in a free block, asked on two hosts
#    at the same instant, NT_CLUSTER_RACES times (default 8, a new free block each time):
#    exactly one host gets it; the other gets code 102 naming the winner's node; the block is
#    the winner's in etcd. Also runtimeConfig.ips (full plugin, capability "ips").
# 2. A static address in another node's block is refused (102, naming the owner node and the
#    block); one in the host's own block is allocated locally.
# 3. `mactrunk-ipam blocks NET --data-dir D [--json]` on a host lists every block of the
#    network with its owner and claim time, and used/free for the host's own blocks.
# 4. Dead node: host C holds addresses, then is gone (its netns deleted). `release-node NET
#    node-c` from A refuses without --force (C's usage report says used > 0); with --force
#    C's blocks are free again and A can claim them; release-node refuses this node's own name
#    without --force; a node whose report says 0 used is released without --force (and once
#    it has no block, release-node fails with 1).
source "$NT_DIR/etcd.sh"
need_cluster
RACES=${NT_CLUSTER_RACES:-8}
cluster_lan
for h in A B C; do cluster_host $h; done
etcd_start
net=mt-cl74
declare -A conf=()
for h in A B C; do conf[$h]=$(cluster_conf $h $net '.ipam.cluster.blockSize = 28'); done

# adm NAME ARGS...: the admin CLI inside host NAME's netns (reaches etcd); sets RC, OUT, ERR
adm() {
    local h=$1
    shift
    local base=$T/calls/$((++_NCALL))-adm
    ip netns exec "${HNS[$h]}" env -i PATH="$SAFE_PATH" "$IPAM_PLUGIN" "$@" >"$base.out" 2>"$base.err" </dev/null
    RC=$?
    OUT=$(<"$base.out")
    ERR=$(<"$base.err")
    printf '$ [%s] mactrunk-ipam %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$h" "$*" "$RC" "$OUT" "$ERR" >&2
}
free_blocks() { # the /28s nobody owns, in a random order
    local b o
    b=$(etcd_blocks $net)
    for ((o = 0; o < 256; o += 16)); do
        grep -q "^10\.88\.0\.$o/" <<<"$b" || echo "10.88.0.$o/28"
    done | shuf
}

# ---- 1. static race
mapfile -t fb < <(free_blocks)
((${#fb[@]} >= RACES + 4)) || die "only ${#fb[@]} free blocks"
wins_a=0 wins_b=0
for ((r = 0; r < RACES; r++)); do
    blk=${fb[$r]}
    sip=$(nth "$blk" $((2 + RANDOM % 12)))
    bg "$T/race-$r-A" A ADD "${conf[A]}" bin=ipam cid=mt-race-$r-a args="IP=$sip"
    bg "$T/race-$r-B" B ADD "${conf[B]}" bin=ipam cid=mt-race-$r-b args="IP=$sip"
    wait
    CTX="race $r for $sip"
    result "$T/race-$r-A"
    rca=$RC outa=$OUT
    result "$T/race-$r-B"
    rcb=$RC outb=$OUT
    if [[ $rca == 0 && $rcb != 0 ]]; then
        winner=A loser=B
        OUT=$outb RC=$rcb
        wins_a=$((wins_a + 1))
    elif [[ $rcb == 0 && $rca != 0 ]]; then
        winner=B loser=A
        OUT=$outa RC=$rca
        wins_b=$((wins_b + 1))
    else
        fail "exactly one host must get $sip: A rc=$rca ($outa), B rc=$rcb ($outb)"
        continue
    fi
    assert_code 102 "${HNODE[$winner]}" "the loser ($loser)"
    [[ $winner == A ]] && OUT=$outa || OUT=$outb
    assert_json '.ips[0].address' "$sip/24" "the winner ($winner)"
    grep -qxF "$blk ${HNODE[$winner]}" <<<"$(etcd_blocks $net)" || fail "block $blk is not the winner's in etcd: $(etcd_blocks $net | grep "^$blk ")"
done
CTX=""
log "static races: A won $wins_a, B won $wins_b"
cluster_check $net A B

# runtimeConfig.ips (the capability the full plugin declares) goes the same way
make_container_ns CA
blk=${fb[$RACES]}
sip=$(nth "$blk" 4)
rc=$(conf_edit "${conf[A]}" '.runtimeConfig = {ips: [$ip]}' --arg ip "$sip/24")
on A ADD "$rc" cid=mt-rtc-a ns="$CA"
assert_ok "runtimeConfig.ips $sip on A (claims $blk)" && assert_json '.ips[0].address' "$sip/24"
assert_addr "$CA" eth0 "$sip/24"

# ---- 2. static in another node's block / in the own block
oip=$(nth "$blk" 5)
make_container_ns CB
before=$(etcd_blocks $net | tr '\n' ' ')
on B ADD "$(conf_edit "${conf[B]}" '.runtimeConfig = {ips: [$ip]}' --arg ip "$oip/24")" cid=mt-rtc-b ns="$CB"
assert_code 102 "node-a" "runtimeConfig.ips $oip (in A's block $blk) on B"
assert_match "$_MSG" "${blk//./\\.}|${blk%/*}" "the refusal names the block"
assert_ns_clean "$CB"
assert_eq "$(etcd_blocks $net | tr '\n' ' ')" "$before" "blocks after the refused static address"
on B ADD "${conf[B]}" bin=ipam cid=mt-oth-b args="IP=$oip"
assert_code 102 "node-a" "CNI_ARGS IP=$oip (in A's block) on B"
on A ADD "${conf[A]}" bin=ipam cid=mt-own-a args="IP=$oip"
assert_ok "static $oip in A's own block on A" && assert_json '.ips[0].address' "$oip/24"

# ---- 3. blocks listing
for i in 1 2 3; do # C gets 3 addresses (one block)
    on C ADD "${conf[C]}" bin=ipam cid=mt-c-$i
    assert_ok "ADD $i on C"
done
etcdb=$(etcd_blocks $net)
adm A blocks $net --data-dir "${HDATA[A]}" --json
if [[ $RC == 0 ]]; then
    got=$(jqo '.blocks[] | "\(.block) \(.node)"' | sort -V)
    assert_eq "$got" "$etcdb" "blocks --json: every block of the network with its owner"
    assert_jq '.blocks | all(.claimed | type == "string" and test("^[0-9-]+T[0-9:.]+Z$"))' "blocks --json: claim times"
    assert_jq '.thisNode == "node-a"' "blocks --json: this node"
    assert_jq '[.blocks[] | select(.node != "node-a")] | all(has("used") | not)' "blocks --json: no used/free for other nodes' blocks"
    assert_jq '[.blocks[] | select(.node == "node-a")] | all((.used | type) == "number" and (.free | type) == "number")' "blocks --json: used/free of A's own blocks"
    used_a=$(jqo '[.blocks[] | select(.node == "node-a") | .used] | add')
    assert_eq "$used_a" "$(host_ips A $net | grep -c .)" "blocks --json: addresses used in A's blocks"
else
    fail "blocks --json on A: exit status $RC: ${ERR:0:300}"
fi
adm A blocks $net --data-dir "${HDATA[A]}"
assert_eq "$RC" 0 "blocks (table) on A"
while read -r b n; do
    grep -qE "^${b//./\\.} +$n( |$)" <<<"$OUT" || fail "blocks table: no row '$b $n'"
done <<<"$etcdb"

# ---- 4. dead node
delete_ns "${HNS[C]}" # host C is gone, its blocks and addresses stay
cblocks=$(awk '$2 == "node-c" {print $1}' <<<"$(etcd_blocks $net)")
[[ -n $cblocks ]] || fail "node-c owns no block"
adm A release-node $net node-c --data-dir "${HDATA[A]}"
[[ $RC != 0 ]] || fail "release-node of node-c (3 addresses in use) succeeded without --force"
assert_match "$OUT$ERR" "force|in use|used" "release-node refusal says why"
assert_eq "$(etcd_blocks $net | awk '$2 == "node-c" {print $1}')" "$cblocks" "node-c's blocks after the refused release"
adm A release-node $net node-a --data-dir "${HDATA[A]}"
[[ $RC != 0 ]] || fail "release-node of this node's own name succeeded without --force"
grep -q ' node-a$' <<<"$(etcd_blocks $net)" || fail "release-node of its own name without --force removed A's blocks"
adm A release-node $net node-c --data-dir "${HDATA[A]}" --force
assert_eq "$RC" 0 "release-node node-c --force (stderr: ${ERR:0:300})"
grep -q ' node-c$' <<<"$(etcd_blocks $net)" && fail "node-c still owns blocks after release-node --force"
# A can claim C's former block now
cb=$(head -n1 <<<"$cblocks")
cip=$(nth "$cb" 7)
on A ADD "${conf[A]}" bin=ipam cid=mt-after-c args="IP=$cip"
if assert_ok "static $cip in node-c's released block on A"; then
    grep -qxF "$cb node-a" <<<"$(etcd_blocks $net)" || fail "$cb is not A's after the claim: $(etcd_blocks $net | grep "^$cb ")"
fi
# B gives everything back and is gone; its last usage report said 0 used (a DEL that keeps
# the node's last block as its spare does not talk to etcd, so the report is planted here as
# a GC would have left it, without GC returning the blocks): no --force needed
for ((r = 0; r < RACES; r++)); do on B DEL "${conf[B]}" bin=ipam cid=mt-race-$r-b; done
DATA=${HDATA[B]} assert_store_empty $net
bblocks=$(etcd_blocks $net | awk '$2 == "node-b" {print $1}')
[[ -n $bblocks ]] || fail "node-b owns no block before its release"
ectl put "$CLUSTER_PREFIX/networks/$net/nodes/node-b" \
    "$(jq -nc --argjson t "$(date +%s)" --argjson b "$(jq -Rnc '[inputs]' <<<"$bblocks")" '{used: 0, blocks: $b, updated: $t}')" >/dev/null
adm A release-node $net node-b --data-dir "${HDATA[A]}"
assert_eq "$RC" 0 "release-node node-b (0 used) without --force (stderr: ${ERR:0:300})"
grep -q ' node-b$' <<<"$(etcd_blocks $net)" && fail "node-b still owns blocks after release-node"
adm A release-node $net node-b --data-dir "${HDATA[A]}"
[[ $RC == 1 ]] || fail "release-node of a node without blocks: exit status $RC, expected 1"
cluster_check $net A
