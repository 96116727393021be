# DEL is idempotent and best-effort: DEL twice, DEL of an attachment that never existed,
# DEL when the parent (master) no longer exists, DEL with a config whose master is bogus.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C

cni ADD "$conf" cid=mt-del-1 ns="$C"
assert_ok ADD || die "ADD failed"
cni DEL "$conf" cid=mt-del-1 ns="$C"
assert_ok_empty "first DEL"
cni DEL "$conf" cid=mt-del-1 ns="$C"
assert_ok_empty "second DEL"
assert_no_link "$C" eth0
assert_store_empty "$net"

cni DEL "$conf" cid=mt-never-added ns="$C"
assert_ok_empty "DEL of an attachment that was never added"

# DEL with a config whose master does not exist (DEL needs only name + dataDir)
make_container_ns C2
cni ADD "$conf" cid=mt-del-2 ns="$C2"
assert_ok "ADD 2" || die "ADD 2 failed"
bogus=$(conf_edit "$conf" '.master = "mtnosuch9"')
cni DEL "$bogus" cid=mt-del-2 ns="$C2"
assert_ok_empty "DEL with a master that does not exist"
assert_no_link "$C2" eth0
assert_store_free "$net" mt-del-2

# DEL after the parent link was deleted: the macvlan goes with it, the IP must still be released
make_container_ns C3
cni ADD "$conf" cid=mt-del-3 ns="$C3"
assert_ok "ADD 3" || die "ADD 3 failed"
ip -n "$HOSTNS" link del "$PARENT"
cni DEL "$conf" cid=mt-del-3 ns="$C3"
assert_ok_empty "DEL after the parent was deleted"
assert_store_free "$net" mt-del-3
assert_store_empty "$net"
assert_ns_clean "$C3"
assert_ns_clean "$C"
