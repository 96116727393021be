# A failing ADD after the address was allocated undoes everything: the interface name is
# taken in the container (the existing link must survive), a route the kernel refuses.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_nses 2 C

# CNI_IFNAME already exists in the container (a veth of the container's own)
ip -n "${C[1]}" link add eth0 type veth peer name mtrbpeer
_links "${C[1]}" >"$T/ns/${C[1]}.links"
cni ADD "$conf" cid=mt-rb-1 ns="${C[1]}"
assert_code 4 '^CNI_IFNAME: ' "ADD with CNI_IFNAME already taken"
assert_eq "$(link_json "${C[1]}" eth0 | jq -r .linkinfo.info_kind)" veth "the container's own eth0 after the failed ADD"
assert_clean_failure "$net" mt-rb-1 "${C[1]}"

# a route whose gateway is not reachable on the link
rt=$(conf_edit "$conf" '.ipam.routes += [{dst: "10.200.0.0/16", gw: "172.31.255.1"}]')
cni ADD "$rt" cid=mt-rb-2 ns="${C[2]}"
assert_code 100 'route' "ADD with a route the kernel refuses"
assert_clean_failure "$net" mt-rb-2 "${C[2]}"
assert_store_empty "$net"

# and the same attachment works afterwards
cni ADD "$conf" cid=mt-rb-2 ns="${C[2]}"
assert_ok "ADD after the rollbacks" && assert_jq '.ips[0].address | test("^192\\.168\\.50\\.1[0-9][0-9]/24$")' "an address of the range"
assert_eq "$(store_count "$net")" 1 "IP files after the ADD that followed the rollbacks"
cni DEL "$conf" cid=mt-rb-2 ns="${C[2]}"
assert_store_empty "$net"
