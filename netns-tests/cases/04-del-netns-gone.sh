# DEL after the container netns was deleted: success, and the IP is released
# (the next ADD can have it again); also for a CNI_NETNS path that never existed.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C

cni ADD "$conf" cid=mt-gone-1 ns="$C"
assert_ok ADD || die "ADD failed"
ip=$(jqo '.ips[0].address' | cut -d/ -f1)
assert_store_entry "$net" "$ip" mt-gone-1 eth0
delete_ns "$C"

cni DEL "$conf" cid=mt-gone-1 ns="$C"
assert_ok_empty "DEL with the netns deleted"
assert_store_free "$net" mt-gone-1
assert_store_empty "$net"
assert_host_clean

cni DEL "$conf" cid=mt-gone-2 netns=/run/netns/mt-does-not-exist-$RANDOM
assert_ok_empty "DEL with a CNI_NETNS path that never existed"

# the released address can be allocated again: ask for it explicitly
make_container_ns D
cni ADD "$conf" cid=mt-gone-3 ns="$D" args="IgnoreUnknown=1;IP=$ip"
assert_ok "ADD asking for the released address $ip"
assert_json '.ips[0].address' "$ip/24"
cni DEL "$conf" cid=mt-gone-3 ns="$D"
assert_ok_empty "DEL 3"
assert_store_empty "$net"
