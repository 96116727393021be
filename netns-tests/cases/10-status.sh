# STATUS (cniVersion 1.1.0, no container env): ok on a fresh network, 50 when the pool is
# exhausted, ok again after a DEL; 50 when the master is missing.
conf=$(fixture 10-mactrunk-bridge.conf '.cniVersion = "1.1.0" | .name = "mt-status" | .ipam |= {type, dataDir, subnet: "10.10.0.0/30"}')
net=$(conf_name "$conf")
make_container_ns C

cni STATUS "$conf" -CNI_IFNAME
assert_ok_empty "STATUS on a fresh network"

# /30: .2 is the only allocatable address
cni ADD "$conf" cid=mt-status-1 ns="$C"
assert_ok ADD && assert_json '.ips[0].address' 10.10.0.2/30
cni STATUS "$conf"
assert_code 50 '' "STATUS with the pool exhausted"
cni DEL "$conf" cid=mt-status-1 ns="$C"
assert_ok_empty DEL
cni STATUS "$conf"
assert_ok_empty "STATUS after the DEL"

cni STATUS "$(conf_edit "$conf" '.master = "mtnosuch9"')"
assert_code 50 'mtnosuch9' "STATUS with a missing master"

# dual stack: one exhausted range set is enough for 50
ds=$(fixture 20-mactrunk-dualstack.conf '.cniVersion = "1.1.0" | .ipam.ranges[1] = [{subnet: "fd00:31::/126"}]')
cni STATUS "$ds"
assert_ok_empty "STATUS dual stack, fresh"
cni ADD "$ds" cid=mt-status-2 ns="$C"
assert_ok "ADD dual stack /126 #1"
make_container_ns D
cni ADD "$ds" cid=mt-status-3 ns="$D"
assert_ok "ADD dual stack /126 #2"
cni STATUS "$ds"
assert_code 50 '' "STATUS with the v6 /126 range set exhausted"
cni DEL "$ds" cid=mt-status-2 ns="$C"
cni DEL "$ds" cid=mt-status-3 ns="$D"
assert_host_clean
