# The reference bridge plugin (/usr/lib/cni) with mactrunk-ipam as its IPAM (cniVersion
# 1.0.0, isGateway): two containers get addresses from mactrunk-ipam and a default route via
# the bridge, the bridge gets the gateway address, the containers reach each other and the
# gateway, CHECK passes, DEL releases the addresses and removes the veths. The bridge lives
# in the test's host netns (named mtabr0) and goes with it.
[[ $NT_REFERENCE == 1 ]] && skip "needs mactrunk-ipam"

BR=mtabr0
conf=$(_newconf bridge)
jq -n --arg data "$DATA" --arg br "$BR" '{
    cniVersion: "1.0.0", name: "mt-refbr", type: "bridge", bridge: $br,
    isGateway: true, ipMasq: false,
    ipam: {type: "mactrunk-ipam", dataDir: $data, subnet: "10.88.7.0/24",
           rangeStart: "10.88.7.10", rangeEnd: "10.88.7.20", routes: [{dst: "0.0.0.0/0"}]}
}' >"$conf"
net=mt-refbr
make_container_nses 2 C
BRP=/usr/lib/cni/bridge

for i in 1 2; do
    cni ADD "$conf" bin=$BRP cid=mt-rbr-$i ns="${C[$i]}" CNI_PATH="$NT_BIN_DIR"
    assert_ok "reference bridge + mactrunk-ipam ADD $i" || die "ADD $i failed"
    res[$i]=$OUT
    ip4[$i]=$(jqo '.ips[0].address')
    assert_eq "${ip4[$i]}" "10.88.7.$((9 + i))/24" "address of container $i"
    assert_json '.ips[0].gateway' 10.88.7.1 "gateway of container $i"
    assert_addr "${C[$i]}" eth0 "${ip4[$i]}"
    assert_default_route "${C[$i]}" 10.88.7.1 eth0
    assert_store_entry "$net" "${ip4[$i]%/*}" mt-rbr-$i eth0
done
assert_addr "$HOSTNS" "$BR" 10.88.7.1/24
nsx "${C[1]}" ping -c1 -W2 10.88.7.11 >/dev/null || fail "ping container 1 -> container 2"
nsx "${C[2]}" ping -c1 -W2 10.88.7.10 >/dev/null || fail "ping container 2 -> container 1"
nsx "${C[1]}" ping -c1 -W2 10.88.7.1 >/dev/null || fail "ping container 1 -> gateway (bridge)"

cni CHECK "$(with_prev "$conf" "${res[2]}")" bin=$BRP cid=mt-rbr-2 ns="${C[2]}" CNI_PATH="$NT_BIN_DIR"
assert_ok_empty "reference bridge CHECK"

# the bridge plugin's host-side veths: every veth but the parent pair (by exact name: the
# plugin's "vethXXXXXXXX" names may contain the parent's name, e.g. eth0)
bridge_veths() { ip -n "$HOSTNS" -j link show type veth | jq --arg a "$PARENT" --arg b "$PARENT_PEER" '[.[] | select(.ifname != $a and .ifname != $b)] | length'; }
veths_before=$(bridge_veths)
assert_eq "$veths_before" 2 "host-side veths while both containers are attached"
for i in 1 2; do
    cni DEL "$conf" bin=$BRP cid=mt-rbr-$i ns="${C[$i]}" CNI_PATH="$NT_BIN_DIR"
    assert_ok_empty "reference bridge DEL $i"
    assert_ns_clean "${C[$i]}"
done
assert_store_empty "$net"
assert_eq "$(bridge_veths)" 0 "host-side veths after DEL"
# the address is free again: the next ADD gets one of the range
cni ADD "$conf" bin=$BRP cid=mt-rbr-3 ns="${C[1]}" CNI_PATH="$NT_BIN_DIR"
assert_ok "ADD after DEL" && assert_jq '.ips[0].address | test("^10\\.88\\.7\\.(1[0-9]|20)/24$")' "address in range"
cni DEL "$conf" bin=$BRP cid=mt-rbr-3 ns="${C[1]}" CNI_PATH="$NT_BIN_DIR"
assert_store_empty "$net"
