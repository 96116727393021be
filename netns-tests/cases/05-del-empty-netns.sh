# DEL with an empty or unset CNI_NETNS (allowed for DEL): success and the IP is released.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C

cni ADD "$conf" cid=mt-empty-1 ns="$C"
assert_ok ADD || die "ADD failed"
cni DEL "$conf" cid=mt-empty-1 ns=
assert_ok_empty "DEL with CNI_NETNS=''"
assert_store_free "$net" mt-empty-1

make_container_ns D
cni ADD "$conf" cid=mt-empty-2 ns="$D" if=net1
assert_ok "ADD 2" || die "ADD 2 failed"
cni DEL "$conf" cid=mt-empty-2 if=net1 -CNI_NETNS
assert_ok_empty "DEL with CNI_NETNS unset"
assert_store_free "$net" mt-empty-2
assert_store_empty "$net"
assert_host_clean
