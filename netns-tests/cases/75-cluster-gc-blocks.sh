# Cluster IPAM: blocks go back to the pool.
# 1. Host A takes 40 addresses (three or four /28 blocks); a GC that keeps 5 of them releases
#    the other 35 and returns every block left empty (at most one spare stays); the usage
#    report in etcd says 5 used. DELs that empty a block while A owns another return it at once.
# 2. A block owned by node-a in etcd that A does not record (as after a kill -9 between the
#    claim and the local record) is not stranded: A's next GC adopts it and returns it (or keeps
#    it as the spare, recorded). The same for A's next claiming ADD: it adopts such a block
#    before claiming a new one.
# 3. Without `cluster`, nothing changes and etcd is never touched: with the plugins copied to a
#    directory without mactrunk-etcd, a plain network works; a cluster network's claiming ADD
#    fails cleanly (not 999, nothing left) naming the missing helper, while its owned-block ADD
#    still works.
# 4. metrics on a cluster network: capacity is the addresses of the owned blocks.
# 5. Invalid cluster settings: code 7 naming the key (ipam.cluster.blockSize, ...).
source "$NT_DIR/etcd.sh"
need_cluster
cluster_lan
cluster_host A
etcd_start
net=mt-cl75
conf=$(cluster_conf A $net '.ipam.cluster.blockSize = 28')
mine() { etcd_blocks $net | awk '$2 == "node-a" {print $1}'; }
empty_blocks() { # the blocks of A holding none of A's addresses
    local b ip used
    for b in $(mine); do
        used=0
        for ip in $(host_ips A $net); do in_cidr "$ip" "$b" && { used=1; break; }; done
        ((used)) || echo "$b"
    done
}

# ---- 1. GC returns empty blocks
for ((i = 1; i <= 40; i++)); do
    on A ADD "$conf" bin=ipam cid=mt-gc-$i
    assert_ok "ADD $i" || die "ADD $i failed"
done
nb=$(mine | grep -c .)
log "40 addresses in $nb blocks: $(mine | tr '\n' ' ')"
((nb >= 3)) || fail "40 addresses in $nb /28 blocks"
keep=$(for i in 1 2 3 4 5; do echo "{\"containerID\": \"mt-gc-$i\", \"ifname\": \"eth0\"}"; done | jq -sc .)
on A GC "$(conf_edit "$conf" '.["cni.dev/valid-attachments"] = $k' --argjson k "$keep")" -CNI_IFNAME -CNI_NETNS
assert_ok_empty "GC keeping 5"
assert_eq "$(host_ips A $net | grep -c .)" 5 "addresses after GC"
e=$(empty_blocks | grep -c .)
((e <= 1)) || fail "after GC A owns $e empty blocks: $(empty_blocks | tr '\n' ' ')"
log "after GC: $(mine | tr '\n' ' ') ($e empty)"
used=$(ectl get --print-value-only "$CLUSTER_PREFIX/networks/$net/nodes/node-a" | jq -r '.used // "none"')
assert_eq "$used" 5 "node-a's usage report after GC"
cluster_check $net A
# DELs: a block that becomes empty goes back at once while another is owned
for ((i = 41; i <= 60; i++)); do on A ADD "$conf" bin=ipam cid=mt-gc-$i; assert_ok "ADD $i"; done
for ((i = 41; i <= 60; i++)); do on A DEL "$conf" bin=ipam cid=mt-gc-$i; assert_ok_empty "DEL $i"; done
e=$(empty_blocks | grep -c .)
((e <= 1)) || fail "after the DELs A owns $e empty blocks: $(empty_blocks | tr '\n' ' ')"
cluster_check $net A

# ---- 2. a block claimed in etcd but never recorded
planted() { # planted OFFSET: put a block owned by node-a (claimed a minute ago) at 10.88.0.OFFSET/28
    ectl put "$CLUSTER_PREFIX/networks/$net/blocks/10.88.0.$1-28" \
        "$(jq -nc --argjson t $(($(date +%s) - 60)) '{node: "node-a", claimed: $t, subnet: "10.88.0.0/24"}')" >/dev/null
}
free_off() { # a free /28 of the /24
    local b o
    b=$(etcd_blocks $net)
    for ((o = 240; o >= 0; o -= 16)); do grep -q "^10\.88\.0\.$o/" <<<"$b" || { echo $o; return 0; }; done
    return 1
}
o=$(free_off) || die "no free block"
planted "$o"
on A GC "$(conf_edit "$conf" '.["cni.dev/valid-attachments"] = $k' --argjson k "$keep")" -CNI_IFNAME -CNI_NETNS
assert_ok_empty "GC with a block in etcd A does not record"
if grep -qxF "10.88.0.$o/28 node-a" <<<"$(etcd_blocks $net)"; then
    host_blocks A $net | grep -qxF "10.88.0.$o/28" || fail "GC left 10.88.0.$o/28 stranded: node-a's in etcd, not recorded by A"
fi
e=$(empty_blocks | grep -c .)
((e <= 1)) || fail "after GC with a planted block A owns $e empty blocks: $(empty_blocks | tr '\n' ' ')"
cluster_check $net A
# a claiming ADD adopts it first: fill A's blocks, then plant one, then one more ADD
n=0
while :; do
    n=$((n + 1))
    ((n > 40)) && die "A's blocks never filled"
    before=$(mine | grep -c .)
    on A ADD "$conf" bin=ipam cid=mt-fill-$n
    assert_ok "fill $n" || break
    (($(mine | grep -c .) > before)) && break # that one claimed: the blocks before it are full
done
# use up the block just claimed too, then plant one and ADD again
while :; do
    n=$((n + 1))
    ((n > 80)) && die "A's new block never filled"
    before=$(mine | grep -c .)
    o=$(free_off) || die "no free block"
    planted "$o"
    on A ADD "$conf" bin=ipam cid=mt-fill-$n
    assert_ok "fill $n" || break
    ip=$(jqo '.ips[0].address' | cut -d/ -f1)
    if in_cidr "$ip" "10.88.0.$o/28"; then
        log "the claiming ADD adopted the planted block 10.88.0.$o/28 ($ip)"
        break
    fi
    # no claim needed yet: take the planted block back out of etcd and go on (unless A
    # adopted it already, which is allowed: then it is recorded)
    if host_blocks A $net | grep -qxF "10.88.0.$o/28"; then
        log "ADD $n adopted the planted 10.88.0.$o/28 without needing a block"
        break
    fi
    ectl del "$CLUSTER_PREFIX/networks/$net/blocks/10.88.0.$o-28" >/dev/null
done
cluster_check $net A

# ---- 3. no etcd helper
mkdir -p "$T/bin"
cp "$NT_BIN_DIR/mactrunk" "$NT_BIN_DIR/mactrunk-ipam" "$T/bin/"
plain=$(fixture 10-mactrunk-bridge.conf '.name = "mt-plain75" | .master = "eth0"')
make_container_ns CP
on A ADD "$plain" cid=mt-plain ns="$CP" bin="$T/bin/mactrunk" CNI_PATH="$T/bin"
assert_ok "plain network without mactrunk-etcd next to the plugin"
on A DEL "$plain" cid=mt-plain ns="$CP" bin="$T/bin/mactrunk" CNI_PATH="$T/bin"
assert_ok_empty "plain DEL without mactrunk-etcd"
on A ADD "$conf" bin="$T/bin/mactrunk-ipam" cid=mt-nohelper-1
assert_ok "owned-block ADD without mactrunk-etcd (no etcd needed)"
o=$(free_off) || die "no free block"
before=$(host_ips A $net | tr '\n' ' ')
on A ADD "$conf" bin="$T/bin/mactrunk-ipam" cid=mt-nohelper-2 args="IP=10.88.0.$((o + 3))"
assert_code any 'mactrunk-etcd' "claiming ADD without mactrunk-etcd"
assert_eq "$(host_ips A $net | tr '\n' ' ')" "$before" "store after the ADD without the helper"
grep -q "^10\.88\.0\.$o/" <<<"$(etcd_blocks $net)" && fail "10.88.0.$o/28 was claimed by an ADD that failed"

# ---- 4. metrics
used=$(host_ips A $net | grep -c .)
cap=0
for b in $(mine); do
    for ((k = 0; k < 16; k++)); do
        ip=$(nth "$b" $k)
        [[ $ip == 10.88.0.0 || $ip == 10.88.0.1 || $ip == 10.88.0.255 ]] || cap=$((cap + 1))
    done
done
mkdir -p "$T/confs"
cp "$conf" "$T/confs/10-cl75.conf"
out=$(ip netns exec "${HNS[A]}" env -i PATH="$SAFE_PATH" "$IPAM_PLUGIN" metrics --data-dir "${HDATA[A]}" \
    --conf-dir "$T/confs" --no-netns-check 2>"$T/metrics.err")
log "metrics: $(grep -v '^#' <<<"$out" | grep "$net" | tr '\n' ';')"
grep -E "^mactrunk_ipam_range_capacity\{[^}]*network=\"$net\"[^}]*\} $cap\$" <<<"$out" >/dev/null ||
    fail "metrics: no capacity $cap (the addresses of A's $(mine | grep -c .) blocks) for $net: $(grep capacity <<<"$out" | grep "$net")"
grep -E "^mactrunk_ipam_range_used\{[^}]*network=\"$net\"[^}]*\} $used\$" <<<"$out" >/dev/null ||
    fail "metrics: no used $used for $net: $(grep _used <<<"$out" | grep "$net")"
grep -E "^mactrunk_ipam_[a-z_]*blocks[a-z_]*\{[^}]*network=\"$net\"" <<<"$out" >/dev/null ||
    fail "metrics: no blocks gauge for $net"

# ---- 5. invalid cluster settings: code 7 naming the key, nothing written
make_container_ns CV
for bad in '.ipam.cluster.etcdEndpoints = []|etcdEndpoints' \
    '.ipam.cluster.etcdEndpoints = ["10.254.0.11:2379"]|etcdEndpoints' \
    '.ipam.cluster.blockSize = 33|blockSize' \
    '.ipam.cluster.blockSize = "28"|blockSize' \
    '.ipam.cluster.timeoutMs = 50|timeoutMs' \
    '.ipam.cluster.prefix = "mactrunk"|prefix' \
    '.ipam.cluster.prefix = "/a/../b"|prefix' \
    '.ipam.cluster.nodeName = "node a"|nodeName' \
    '.ipam.cluster.nodeName = ""|nodeName' \
    '.ipam.cluster.tls = {cert: "/x.pem"}|tls' \
    '.ipam.cluster.blocksize = 28|blocksize'; do
    f=${bad%|*} key=${bad##*|}
    c=$(conf_edit "$conf" "$f | .name = \"mt-cl75bad\" | .ipam.dataDir = \$d" --arg d "$T/data-bad")
    on A ADD "$c" cid=mt-bad ns="$CV"
    assert_code 7 "ipam\\.cluster\\.$key" "ADD with $f"
    assert_ns_clean "$CV"
    [[ -e $T/data-bad/mt-cl75bad/.cluster-blocks ]] && fail "$f: a .cluster-blocks was written"
done
