# linkType ipvlan (kernel 6.1 in the VM; skipped where the kernel has no ipvlan, as on the
# development hosts). l2: two containers on one parent reach each other, CHECK passes, and
# the link has the parent's MAC. A macvlan network on a parent carrying ipvlans is code 7
# naming linkType and the parent (the kernel's EBUSY), leaving nothing. l3: two containers of
# two networks in different subnets on that parent reach each other through the ipvlan's L3
# switching, with default routes out of the device (no gateway, no ARP); and since the kernel
# keeps one mode per parent, the l2 attachments now run in l3, which their CHECK reports.
# On a VLAN parent mactrunk creates: two containers reach each other, DEL removes the VLAN.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (linkType)"
if ! ip -n "$HOSTNS" link add mtipvprobe link "$PARENT" type ipvlan mode l2 2>/dev/null; then
    skip "kernel without ipvlan"
fi
ip -n "$HOSTNS" link del mtipvprobe

base=$(fixture 10-mactrunk-bridge.conf '.linkType = "ipvlan" | del(.mode) | .cniVersion = "1.1.0"')
l2=$(conf_edit "$base" '.name = "mt-ipv-l2" | .mode = "l2" | .ipam.subnet = "10.47.2.0/24" | del(.ipam.rangeStart, .ipam.rangeEnd, .ipam.gateway)')
make_container_nses 6 C
parent_mac=$(link_json "$HOSTNS" "$PARENT" | jq -r .address)

# ---- l2
for i in 1 2; do
    cni ADD "$l2" cid=mt-ipv-$i ns="${C[$i]}"
    assert_ok "l2 ADD $i" || die "l2 ADD $i failed"
    res[$i]=$OUT
    ip4[$i]=$(jqo '.ips[0].address')
done
l=$(link_json "${C[1]}" eth0)
assert_eq "$(jq -r '.linkinfo.info_kind + " " + .linkinfo.info_data.mode' <<<"$l")" "ipvlan l2" "l2 link kind and mode"
assert_eq "$(jq -r .address <<<"$l")" "$parent_mac" "an ipvlan has its parent's MAC"
assert_eq "$(jq -r .ifalias <<<"$l")" "mactrunk:mt-ipv-l2:mt-ipv-1" "tag"
OUT=${res[1]}
assert_json '.interfaces[0].mac' "$parent_mac" "result MAC"
nsx "${C[1]}" ping -c1 -W3 "${ip4[2]%/*}" >/dev/null || fail "l2: ping 1 -> 2"
cni CHECK "$(with_prev "$l2" "${res[1]}")" cid=mt-ipv-1 ns="${C[1]}"
assert_ok_empty "l2 CHECK"

# ---- a macvlan network on the same parent: code 7 naming linkType and the parent
mv=$(fixture 10-mactrunk-bridge.conf '.name = "mt-ipv-mv" | .cniVersion = "1.1.0"')
cni ADD "$mv" cid=mt-ipv-mv ns="${C[3]}"
assert_code 7 "^linkType: cannot put a macvlan on \"$PARENT\": .*EBUSY.*carries ipvlan links" "macvlan on an ipvlan parent"
assert_clean_failure mt-ipv-mv mt-ipv-mv "${C[3]}"

# ---- l3: two networks, two subnets, one parent
l3a=$(conf_edit "$base" '.name = "mt-ipv-l3a" | .mode = "l3" | .ipam.subnet = "10.47.3.0/24" | del(.ipam.rangeStart, .ipam.rangeEnd, .ipam.gateway)')
l3b=$(conf_edit "$l3a" '.name = "mt-ipv-l3b" | .ipam.subnet = "10.47.4.0/24"')
cni ADD "$l3a" cid=mt-ipv-3 ns="${C[3]}"
assert_ok "l3 ADD 3" || die "l3 ADD 3 failed"
a3=$(jqo '.ips[0].address')
res3=$OUT
cni ADD "$l3b" cid=mt-ipv-4 ns="${C[4]}"
assert_ok "l3 ADD 4" || die "l3 ADD 4 failed"
a4=$(jqo '.ips[0].address')
assert_eq "$(ip -n "${C[3]}" -j route show default | jq -r '.[0] | "\(.gateway // "-") \(.dev)"')" "- eth0" "l3: default route out of the device"
assert_match "$(ip -n "${C[3]}" -d link show eth0)" "NOARP" "l3: no ARP"
nsx "${C[3]}" ping -c1 -W3 "${a4%/*}" >/dev/null || fail "l3: ping 10.47.3.x -> 10.47.4.x"
nsx "${C[4]}" ping -c1 -W3 "${a3%/*}" >/dev/null || fail "l3: ping 10.47.4.x -> 10.47.3.x"
cni CHECK "$(with_prev "$l3a" "$res3")" cid=mt-ipv-3 ns="${C[3]}"
assert_ok_empty "l3 CHECK"
# one mode per parent: the l2 network's links were switched to l3
cni CHECK "$(with_prev "$l2" "${res[1]}")" cid=mt-ipv-1 ns="${C[1]}"
assert_code 104 "ipvlan mode is l3 bridge, config says l2 bridge" "l2 CHECK after an l3 ipvlan on the same parent"

for x in "1 $l2" "2 $l2" "3 $l3a" "4 $l3b"; do
    read -r i c <<<"$x"
    cni DEL "$c" cid=mt-ipv-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i"
    assert_ns_clean "${C[$i]}"
done

# ---- on a VLAN parent mactrunk creates (eth0.47)
vl=$(conf_edit "$l2" '.name = "mt-ipv-vlan" | .vlan = 47')
for i in 5 6; do
    cni ADD "$vl" cid=mt-ipv-$i ns="${C[$i]}"
    assert_ok "VLAN ADD $i" || die "VLAN ADD $i failed"
    v4[$i]=$(jqo '.ips[0].address')
done
assert_eq "$(link_json "$HOSTNS" "$PARENT.47" | jq -r '.linkinfo.info_data.id')" 47 "VLAN parent created"
assert_eq "$(link_json "${C[5]}" eth0 | jq -r .link_index)" "$(link_json "$HOSTNS" "$PARENT.47" | jq -r .ifindex)" "the ipvlan sits on the VLAN"
nsx "${C[5]}" ping -c1 -W3 "${v4[6]%/*}" >/dev/null || fail "VLAN: ping 5 -> 6"
for i in 5 6; do
    cni DEL "$vl" cid=mt-ipv-$i ns="${C[$i]}"
    assert_ok_empty "VLAN DEL $i"
done
assert_no_link "$HOSTNS" "$PARENT.47"
for n in mt-ipv-l2 mt-ipv-l3a mt-ipv-l3b mt-ipv-vlan; do assert_store_empty "$n"; done
assert_host_clean
