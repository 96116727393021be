# The reference macvlan (/usr/lib/cni) with mactrunk-ipam as its IPAM, dual stack
# (cniVersion 1.0.0): two containers get one IPv4 and one IPv6 address each from
# mactrunk-ipam's store (records in the host-local format, owner index), reach each other
# over both families, CHECK passes, `mactrunk-ipam list` shows them, DEL releases
# everything and removes the links.
[[ $NT_REFERENCE == 1 ]] && skip "needs mactrunk-ipam"

conf=$(fixture 20-mactrunk-dualstack.conf '.name = "mt-refmv" | .cniVersion = "1.0.0" | .type = "macvlan"')
net=$(conf_name "$conf")
make_container_nses 2 C
MV=/usr/lib/cni/macvlan

declare -A v4 v6
for i in 1 2; do
    cni ADD "$conf" bin=$MV cid=mt-rmv-$i ns="${C[$i]}" CNI_PATH="$NT_BIN_DIR"
    assert_ok "reference macvlan + mactrunk-ipam ADD $i" || die "ADD $i failed"
    res[$i]=$OUT
    v4[$i]=$(jqo '.ips[] | select(.address | contains(".")) | .address')
    v6[$i]=$(jqo '.ips[] | select(.address | contains(":")) | .address')
    [[ -n ${v4[$i]} && -n ${v6[$i]} ]] || fail "ADD $i: expected an IPv4 and an IPv6 address, got $(jqo '[.ips[].address]')"
    assert_addr "${C[$i]}" eth0 "${v4[$i]}"
    assert_addr "${C[$i]}" eth0 "${v6[$i]}"
    assert_store_entry "$net" "${v4[$i]%/*}" mt-rmv-$i eth0
    assert_store_entry "$net" "${v6[$i]%/*}" mt-rmv-$i eth0
    [[ -d $DATA/$net/owners ]] || fail "no owner index: the store was not written by mactrunk-ipam"
done
[[ ${v4[1]} != "${v4[2]}" && ${v6[1]} != "${v6[2]}" ]] || fail "both containers got the same address"

nsx "${C[1]}" ping -c1 -W2 "${v4[2]%/*}" >/dev/null || fail "ping 1 -> 2 over IPv4"
ok6() { nsx "${C[2]}" ping -6 -c1 -W1 "${v6[1]%/*}"; }
wait_for 5 ok6 || fail "ping 2 -> 1 over IPv6"

cni CHECK "$(with_prev "$conf" "${res[1]}")" bin=$MV cid=mt-rmv-1 ns="${C[1]}" CNI_PATH="$NT_BIN_DIR"
assert_ok_empty "reference macvlan CHECK (calls mactrunk-ipam CHECK)"

out=$("$NT_BIN_DIR/mactrunk-ipam" list --data-dir "$DATA" "$net" --json)
assert_eq "$(jq -r '[.networks[0].allocations[].containerID] | sort | unique | join(" ")' <<<"$out")" "mt-rmv-1 mt-rmv-2" "mactrunk-ipam list"
assert_eq "$(jq '.networks[0].allocations | length' <<<"$out")" 4 "allocations listed"

for i in 1 2; do
    cni DEL "$conf" bin=$MV cid=mt-rmv-$i ns="${C[$i]}" CNI_PATH="$NT_BIN_DIR"
    assert_ok_empty "reference macvlan DEL $i"
    assert_ns_clean "${C[$i]}"
done
assert_store_empty "$net"
assert_host_clean
