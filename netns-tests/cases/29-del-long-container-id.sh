# A container ID the store cannot record (253+ bytes: its index file name would pass
# NAME_MAX) is refused by ADD with code 4 and nothing left behind; a DEL for it holds
# nothing, so it succeeds (a failing DEL makes a runtime retry it forever).
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C
long=c$(printf 'x%.0s' $(seq 1 299))

cni ADD "$conf" cid="$long" ns="$C"
assert_code 4 '' "ADD with a 300-byte container ID"
assert_clean_failure "$net" "$long" "$C"
cni DEL "$conf" cid="$long" ns="$C"
assert_ok_empty "DEL with a 300-byte container ID that was never added"
cni DEL "$conf" cid="$long" ns=
assert_ok_empty "DEL with a 300-byte container ID, no netns"
cni DEL "$conf" cid="$long" ns="$C" bin=ipam
assert_ok_empty "mactrunk-ipam DEL with a 300-byte container ID"
assert_store_empty "$net"
