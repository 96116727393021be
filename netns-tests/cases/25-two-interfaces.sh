# Two attachments of one network in one container (eth0 and net1, as multus does): both ADDs
# succeed with distinct addresses and each gets its default route via the gateway (the
# reference adds the second one too); DEL of one leaves the other intact.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C
make_container_ns P

cni ADD "$conf" cid=mt-two-1 ns="$C"
assert_ok "ADD eth0" || die "ADD eth0 failed"
ip0=$(jqo '.ips[0].address')
cni ADD "$conf" cid=mt-two-1 ns="$C" if=net1
if assert_ok "ADD net1 in the same container"; then
    ip1=$(jqo '.ips[0].address')
    [[ $ip0 != "$ip1" ]] || fail "eth0 and net1 got the same address $ip0"
    assert_json '.interfaces[0].name' net1
    assert_addr "$C" net1 "$ip1"
    assert_default_route "$C" 192.168.50.1 net1
    assert_store_entry "$net" "${ip1%/*}" mt-two-1 net1
fi
assert_addr "$C" eth0 "$ip0"
assert_default_route "$C" 192.168.50.1 eth0

# a peer reaches both addresses
cni ADD "$conf" cid=mt-two-peer ns="$P"
assert_ok "ADD peer"
nsx "$P" ping -c1 -W2 "${ip0%/*}" >/dev/null || fail "peer cannot ping eth0's ${ip0%/*}"
[[ -n ${ip1:-} ]] && { nsx "$P" ping -c1 -W2 "${ip1%/*}" >/dev/null || fail "peer cannot ping net1's ${ip1%/*}"; }

cni DEL "$conf" cid=mt-two-1 ns="$C" if=net1
assert_ok_empty "DEL net1"
assert_no_link "$C" net1
assert_link "$C" eth0
assert_addr "$C" eth0 "$ip0"
assert_store_entry "$net" "${ip0%/*}" mt-two-1 eth0
cni DEL "$conf" cid=mt-two-1 ns="$C"
assert_ok_empty "DEL eth0"
cni DEL "$conf" cid=mt-two-peer ns="$P"
assert_store_empty "$net"
assert_ns_clean "$C"
