# The host (the plugin's netns) has a link named like CNI_IFNAME, as every real host has
# eth0 and Kubernetes asks for eth0: ADD, CHECK and DEL must work. Before Linux ~6.14 the
# kernel checks IFLA_IFNAME in the sender's netns even when the link is created in another
# one (IFLA_NET_NS_FD), so this case is the regression test of the temporary-name path on
# the kernels operators run (it runs in the VM suite on 6.1 too). The master itself is the
# host's "eth0" here (the harness's parent, or one the case adds).
make_container_nses 2 C
# The harness names the parent eth0 already; with NT_PARENT set otherwise, add an eth0.
if [[ $PARENT != eth0 ]]; then
    ip -n "$HOSTNS" link add eth0 type veth peer name mtethpeer || die "cannot add eth0 to $HOSTNS"
    ip -n "$HOSTNS" link set eth0 up
    ip -n "$HOSTNS" link set mtethpeer up
    _links "$HOSTNS" >"$T/ns/$HOSTNS.links"
fi
conf=$(fixture 10-mactrunk-bridge.conf '.master = "eth0"')
net=$(conf_name "$conf")

for i in 1 2; do
    cni ADD "$conf" cid=mt-eth-$i ns="${C[$i]}" if=eth0
    assert_ok "ADD $i with a host link named eth0" || continue
    assert_json '.interfaces[0].name' eth0 "interface name in the result"
    assert_eq "$(link_json "${C[$i]}" eth0 | jq -r .linkinfo.info_kind)" macvlan "eth0 in container $i"
    assert_eq "$(link_json "${C[$i]}" eth0 | jq -r '.ifalias // empty')" "mactrunk:$net:mt-eth-$i" "tag of eth0 in container $i"
    assert_eq "$(ip -n "${C[$i]}" -o link show | grep -c '^[0-9]*: mt')" 0 "temporary names left in container $i"
    cni CHECK "$(with_prev "$conf")" cid=mt-eth-$i ns="${C[$i]}" if=eth0
    assert_ok_empty "CHECK $i"
done
assert_host_clean
assert_eq "$(link_json "$HOSTNS" eth0 | jq -r '.linkinfo.info_kind // "veth"')" veth "the host's eth0 is untouched"

# the two containers reach each other over the host's eth0
ip1=$(store_ips_of "$net" mt-eth-1 | head -n1)
ip2=$(store_ips_of "$net" mt-eth-2 | head -n1)
nsx "${C[1]}" ping -c 1 -W 2 "$ip2" >/dev/null || fail "container 1 cannot ping container 2 ($ip2)"

for i in 1 2; do
    cni DEL "$conf" cid=mt-eth-$i ns="${C[$i]}" if=eth0
    assert_ok_empty "DEL $i"
    assert_no_link "${C[$i]}" eth0
done
assert_store_empty "$net"
assert_link "$HOSTNS" eth0
