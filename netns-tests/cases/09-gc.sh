# GC (cniVersion 1.1.0): cni.dev/valid-attachments releases exactly the allocations not in
# the list; no key releases nothing; the legacy key cni.dev/attachments works too; an empty
# list releases everything. GC gets only CNI_COMMAND and CNI_PATH.
conf=$(fixture 10-mactrunk-bridge.conf '.cniVersion = "1.1.0"')
net=$(conf_name "$conf")
make_container_nses 3 C
declare -A ipof=()
for i in 1 2 3; do
    cni ADD "$conf" cid=mt-gc-$i ns="${C[$i]}"
    assert_ok "ADD $i" || die "ADD $i failed"
    ipof[$i]=$(jqo '.ips[0].address' | cut -d/ -f1)
done
# a second interface of container 1 (same container ID, other ifname; no routes, so it
# does not depend on two default routes in one netns, see 25-two-interfaces)
cni ADD "$(conf_edit "$conf" 'del(.ipam.routes)')" cid=mt-gc-1 ns="${C[1]}" if=net1
assert_ok "ADD 1/net1" || die "ADD 1/net1 failed"
ip_1net1=$(jqo '.ips[0].address' | cut -d/ -f1)
assert_eq "$(store_count "$net")" 4 "IP files before GC"

gc() { # gc JQ-EXPR-FOR-THE-KEYS
    cni GC "$(conf_edit "$conf" "$1")" -CNI_IFNAME
}

gc '.'
assert_ok_empty "GC without a valid-attachments key"
assert_eq "$(store_count "$net")" 4 "IP files after GC without a key (nothing released)"

gc '.["cni.dev/valid-attachments"] = [{containerID: "mt-gc-1", ifname: "eth0"}, {containerID: "mt-gc-3", ifname: "eth0"}, {containerID: "mt-gc-1", ifname: "net1"}]'
assert_ok_empty "GC keeping 1, 3 and 1/net1"
assert_store_entry "$net" "${ipof[1]}" mt-gc-1 eth0
assert_store_entry "$net" "${ipof[3]}" mt-gc-3 eth0
assert_store_entry "$net" "$ip_1net1" mt-gc-1 net1
assert_store_free "$net" mt-gc-2
assert_eq "$(store_count "$net")" 3 "IP files after GC (only mt-gc-2 released)"

# only the (containerID, ifname) pair counts: keeping mt-gc-1/eth0 releases mt-gc-1/net1
gc '.["cni.dev/valid-attachments"] = [{containerID: "mt-gc-1", ifname: "eth0"}, {containerID: "mt-gc-3", ifname: "eth0"}]'
assert_ok_empty "GC keeping 1/eth0 and 3"
assert_eq "$(store_ips_of "$net" mt-gc-1 | tr '\n' ' ')" "${ipof[1]} " "mt-gc-1 keeps only its eth0 address"
[[ -e $DATA/$net/$ip_1net1 ]] && fail "GC did not release mt-gc-1/net1 ($ip_1net1)"

# legacy key
gc '.["cni.dev/attachments"] = [{containerID: "mt-gc-1", ifname: "eth0"}]'
assert_ok_empty "GC with the legacy cni.dev/attachments key"
assert_store_entry "$net" "${ipof[1]}" mt-gc-1 eth0
assert_store_free "$net" mt-gc-3
assert_eq "$(store_count "$net")" 1 "IP files after the legacy GC"

# an empty list: everything is stale
gc '.["cni.dev/valid-attachments"] = []'
assert_ok_empty "GC with an empty list"
assert_store_empty "$net"

# released addresses are allocatable again, DEL after GC is fine
cni DEL "$conf" cid=mt-gc-2 ns="${C[2]}"
assert_ok_empty "DEL of an attachment GC already released"
assert_host_clean
