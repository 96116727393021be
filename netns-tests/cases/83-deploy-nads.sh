# The NetworkAttachmentDefinitions of deploy/ work as shipped: each config is taken out of
# its YAML (only master and dataDir substituted), and a pod's address comes as Multus passes
# it (runtimeConfig.ips, the "ips" capability): the VLAN trunk's vlan50 and vlan60 put two
# containers on eth0.50 and eth0.60 (created by the first ADD, removed by the last DEL), the
# ipvlan one gives an ipvlan l2 with the parent's MAC; ADD, CHECK and DEL each, and the
# containers of one network reach each other. Needs 802.1Q and ipvlan: the VM (skipped on a
# host kernel without them). The cluster IPAM one is covered by the cluster cases (etcd).
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (deploy/)"
DEPLOY=$ROOT/deploy
[[ -d $DEPLOY ]] || die "no deploy/ beside netns-tests"
has_vlan=0 has_ipvlan=0
ip -n "$HOSTNS" link add link "$PARENT" name mtvlprobe type vlan id 9 2>/dev/null && has_vlan=1 &&
    ip -n "$HOSTNS" link del mtvlprobe
ip -n "$HOSTNS" link add mtipvprobe link "$PARENT" type ipvlan mode l2 2>/dev/null && has_ipvlan=1 &&
    ip -n "$HOSTNS" link del mtipvprobe
if ((!has_vlan && !has_ipvlan)); then
    [[ ${MTVM:-} == 1 ]] && die "the test VM's kernel has neither 802.1Q nor ipvlan"
    skip "kernel without 802.1Q and ipvlan (runs in the VM)"
fi

# nad FILE NAME: the spec.config of NetworkAttachmentDefinition NAME in deploy/FILE, with
# master and dataDir set for this case
nad() {
    local f
    f=$(_newconf "nad-$2")
    awk -v want="$2" '
        /^---/ { name = ""; inconf = 0; next }
        inconf && (/^    / || /^$/) { if (name == want) print substr($0, 5); next }
        { inconf = 0 }
        /^  name: / && name == "" { name = $2 }
        /^  config: \|/ { inconf = 1 }' "$DEPLOY/$1" |
        jq --arg m "$PARENT" --arg d "$DATA" '.master = $m | .ipam.dataDir = $d' >"$f" ||
        die "cannot take the config of $2 out of deploy/$1"
    [[ $(jq -r .name "$f") == "$2" ]] || die "deploy/$1: no NetworkAttachmentDefinition $2"
    echo "$f"
}
# with_ips CONF CIDR: the config as Multus hands it with a pod's "ips" (capability ips)
with_ips() {
    local out
    out=$(_newconf ips)
    jq --arg ip "$2" 'if .capabilities.ips then .runtimeConfig.ips = [$ip] else error("no ips capability") end' \
        "$1" >"$out" || die "with_ips: $1"
    echo "$out"
}

# attach NAME CONF KIND: two containers with .10 and .11 of the config's subnet; checks the
# link kind, the address, CHECK, reachability; leaves the containers attached
attach() {
    local name=$1 conf=$2 kind=$3 i c ip
    local subnet
    subnet=$(jq -r .ipam.subnet "$conf")
    make_container_nses 2 A
    for i in 1 2; do
        c=${A[$i]}
        ip=${subnet%.0/*}.1$((i - 1))/${subnet#*/}
        cni ADD "$(with_ips "$conf" "$ip")" cid="mt-nad-$name-$i" ns="$c"
        assert_ok "$name: ADD $i" || return 1
        assert_json '.ips[0].address' "$ip" "$name: address $i"
        assert_eq "$(link_json "$c" eth0 | jq -r .linkinfo.info_kind)" "$kind" "$name: link kind $i"
        cni CHECK "$(with_prev "$(with_ips "$conf" "$ip")" "$OUT")" cid="mt-nad-$name-$i" ns="$c"
        assert_ok_empty "$name: CHECK $i"
        eval "${name//-/_}_ns[$i]=\$c"
    done
    ip netns exec "${A[1]}" ping -c1 -W3 "${subnet%.0/*}.11" >/dev/null 2>&1 ||
        fail "$name: container 1 does not reach container 2"
}
detach() { # detach NAME CONF
    local i ns
    for i in 1 2; do
        eval "ns=\${${1//-/_}_ns[$i]}"
        cni DEL "$2" cid="mt-nad-$1-$i" ns="$ns"
        assert_ok_empty "$1: DEL $i"
    done
}

if ((has_vlan)); then
    v50=$(nad nad-vlan-trunk.yaml vlan50)
    v60=$(nad nad-vlan-trunk.yaml vlan60)
    assert_eq "$(jq -r .vlan "$v50") $(jq -r .vlan "$v60")" "50 60" "the trunk's VLANs"
    attach vlan50 "$v50" macvlan
    attach vlan60 "$v60" macvlan
    assert_eq "$(link_json "$HOSTNS" "$PARENT.50" | jq -r '.linkinfo.info_kind + " " + (.linkinfo.info_data.id | tostring)')" "vlan 50" "$PARENT.50 created"
    assert_eq "$(link_json "$HOSTNS" "$PARENT.60" | jq -r '.linkinfo.info_kind + " " + (.linkinfo.info_data.id | tostring)')" "vlan 60" "$PARENT.60 created"
    detach vlan50 "$v50"
    detach vlan60 "$v60"
    assert_no_link "$HOSTNS" "$PARENT.50" "eth0.50 after the last DEL"
    assert_no_link "$HOSTNS" "$PARENT.60" "eth0.60 after the last DEL"
else
    [[ ${MTVM:-} == 1 ]] && fail "no 802.1Q in the test VM's kernel"
    log "no 802.1Q here: the VLAN trunk NADs are run in the VM"
fi

if ((has_ipvlan)); then
    ipv=$(nad nad-ipvlan.yaml lan-ipvlan)
    attach lan-ipvlan "$ipv" ipvlan
    assert_eq "$(link_json "${lan_ipvlan_ns[1]}" eth0 | jq -r '.linkinfo.info_data.mode')" l2 "ipvlan mode"
    assert_eq "$(link_json "${lan_ipvlan_ns[1]}" eth0 | jq -r .address)" "$(link_json "$HOSTNS" "$PARENT" | jq -r .address)" "the parent's MAC"
    detach lan-ipvlan "$ipv"
else
    [[ ${MTVM:-} == 1 ]] && fail "no ipvlan in the test VM's kernel"
    log "no ipvlan here: the ipvlan NAD is run in the VM"
fi
assert_host_clean
