# The reference ipvlan (/usr/lib/cni) with mactrunk-ipam as its IPAM: ADD gives the
# container an address from mactrunk-ipam, two containers reach each other, DEL releases.
# Skipped where the kernel has no ipvlan (the development hosts: no ipvlan module).
[[ $NT_REFERENCE == 1 ]] && skip "needs mactrunk-ipam"
if ! ip -n "$HOSTNS" link add mtaipvprobe link "$PARENT" type ipvlan mode l2 2>/dev/null; then
    skip "kernel without ipvlan"
fi
ip -n "$HOSTNS" link del mtaipvprobe

conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-refipv" | .cniVersion = "1.0.0" | .type = "ipvlan" | .mode = "l2" | del(.ipam.routes)')
net=$(conf_name "$conf")
make_container_nses 2 C
IPV=/usr/lib/cni/ipvlan
for i in 1 2; do
    cni ADD "$conf" bin=$IPV cid=mt-ripv-$i ns="${C[$i]}" CNI_PATH="$NT_BIN_DIR"
    assert_ok "reference ipvlan + mactrunk-ipam ADD $i" || die "ADD $i failed"
    ip4[$i]=$(jqo '.ips[0].address')
    assert_addr "${C[$i]}" eth0 "${ip4[$i]}"
    assert_store_entry "$net" "${ip4[$i]%/*}" mt-ripv-$i eth0
done
nsx "${C[1]}" ping -c1 -W2 "${ip4[2]%/*}" >/dev/null || fail "ping 1 -> 2 over ipvlan"
for i in 1 2; do
    cni DEL "$conf" bin=$IPV cid=mt-ripv-$i ns="${C[$i]}" CNI_PATH="$NT_BIN_DIR"
    assert_ok_empty "reference ipvlan DEL $i"
    assert_ns_clean "${C[$i]}"
done
assert_store_empty "$net"
assert_host_clean
