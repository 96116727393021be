# linkType ipvlan (kernel 6.1 in the VM; skipped where the kernel has no ipvlan, as on the
# development hosts). l2: two containers on one parent reach each other, CHECK passes, and
# the link has the parent's MAC. A macvlan network on a parent carrying ipvlans is code 7
# naming linkType and the parent (the kernel's EBUSY), leaving nothing. The kernel keeps one
# ipvlan mode per parent and a new ipvlan sets it for all: an l3 network on the parent the l2
# network uses is code 7 naming mode and that network, and switches nothing; an ipvlan
# mactrunk did not make does switch them, which CHECK reports. DEL of the last user frees
# the parent (its record under the dataDir goes). l3: two containers of two networks in
# different subnets on that parent reach each other through the ipvlan's L3 switching, with
# default routes out of the device (no gateway, no ARP). l3s: the same on a real kernel, and
# GC removes the parent's record. On a VLAN parent mactrunk creates: two containers reach
# each other, DEL removes the VLAN.
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

# ---- l3 on the parent the l2 network uses: code 7 naming mode and that network; nothing
# switched, nothing left
port=$DATA/.mactrunk-ipvlans/$PARENT.json
assert_eq "$(jq -c '[.mode, .flags, (.users | length)]' "$port")" '["l2","bridge",2]' "the parent's port record"
l3a=$(conf_edit "$base" '.name = "mt-ipv-l3a" | .mode = "l3" | .ipam.subnet = "10.47.3.0/24" | del(.ipam.rangeStart, .ipam.rangeEnd, .ipam.gateway)')
l3b=$(conf_edit "$l3a" '.name = "mt-ipv-l3b" | .ipam.subnet = "10.47.4.0/24"')
cni ADD "$l3a" cid=mt-ipv-3 ns="${C[3]}"
assert_code 7 "^mode: l3 differs from the ipvlan mode l2 bridge that network \"mt-ipv-l2\" \(2 attachments\) uses on \"$PARENT\"" "l3 on the l2 network's parent"
assert_clean_failure mt-ipv-l3a mt-ipv-3 "${C[3]}"
assert_eq "$(link_json "${C[1]}" eth0 | jq -r .linkinfo.info_data.mode)" l2 "the l2 containers kept their mode"

# ---- an ipvlan mactrunk did not make switches the port: CHECK of the l2 network reports it
ip -n "$HOSTNS" link add mtivx link "$PARENT" type ipvlan mode l3
ip -n "$HOSTNS" link del mtivx
cni CHECK "$(with_prev "$l2" "${res[1]}")" cid=mt-ipv-1 ns="${C[1]}"
assert_code 104 "ipvlan mode is l3 bridge, config says l2 bridge" "l2 CHECK after a foreign l3 ipvlan on the same parent"

# ---- DEL of the last user frees the parent
for i in 1 2; do
    cni DEL "$l2" cid=mt-ipv-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i"
    assert_ns_clean "${C[$i]}"
done
[[ -e $port ]] && fail "the port record outlived its last user: $(cat "$port")"

# ---- l3: two networks, two subnets, one parent
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
for x in "3 $l3a" "4 $l3b"; do
    read -r i c <<<"$x"
    cni DEL "$c" cid=mt-ipv-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i"
    assert_ns_clean "${C[$i]}"
done

# ---- l3s (the parent's netfilter sees the containers' traffic): ADD, ping both ways, CHECK;
# GC without them removes the parent's record
l3s=$(conf_edit "$l3a" '.name = "mt-ipv-l3s" | .mode = "l3s" | .ipam.subnet = "10.47.5.0/24"')
for i in 3 4; do
    cni ADD "$l3s" cid=mt-ipv-s$i ns="${C[$i]}"
    assert_ok "l3s ADD $i" || die "l3s ADD $i failed"
    s4[$i]=$(jqo '.ips[0].address')
    sres[$i]=$OUT
done
assert_eq "$(link_json "${C[3]}" eth0 | jq -r '.linkinfo.info_kind + " " + .linkinfo.info_data.mode')" "ipvlan l3s" "l3s link kind and mode"
nsx "${C[3]}" ping -c1 -W3 "${s4[4]%/*}" >/dev/null || fail "l3s: ping 3 -> 4"
nsx "${C[4]}" ping -c1 -W3 "${s4[3]%/*}" >/dev/null || fail "l3s: ping 4 -> 3"
cni CHECK "$(with_prev "$l3s" "${sres[3]}")" cid=mt-ipv-s3 ns="${C[3]}"
assert_ok_empty "l3s CHECK"
assert_eq "$(jq -r .mode "$port")" l3s "the port record says l3s"
cni_str GC "$(jq -c '. + {"cni.dev/valid-attachments": []}' "$l3s")"
assert_ok_empty "l3s GC"
[[ -e $port ]] && fail "GC left the port record: $(cat "$port")"
for i in 3 4; do
    cni DEL "$l3s" cid=mt-ipv-s$i ns="${C[$i]}"
    assert_ok_empty "l3s DEL $i"
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
for n in mt-ipv-l2 mt-ipv-l3a mt-ipv-l3b mt-ipv-l3s mt-ipv-vlan; do assert_store_empty "$n"; done
[[ -n $(ls -A "$DATA/.mactrunk-ipvlans" 2>/dev/null | grep -v '^lock$') ]] && fail "port records left: $(ls -A "$DATA/.mactrunk-ipvlans")"
assert_host_clean
