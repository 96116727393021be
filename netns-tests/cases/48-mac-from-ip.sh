# macFromIP: the MAC is 02:6d + the four bytes of the first IPv4 address, on the link and in
# the result; a container re-created with the same static IP gets the same MAC, announced by
# a gratuitous ARP the other side sees; CHECK passes; macFromIP with a static MAC is code 7.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (macFromIP)"

conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-macip" | .cniVersion = "1.1.0" | .macFromIP = true')
net=$(conf_name "$conf")
make_container_nses 3 C

# dynamic: 192.168.50.100 -> 02:6d:c0:a8:32:64
cni ADD "$conf" cid=mt-macip-1 ns="${C[1]}"
assert_ok "ADD dynamic" || die "ADD failed"
assert_json '.ips[0].address' 192.168.50.100/24
assert_json '.interfaces[0].mac' 02:6d:c0:a8:32:64 "result MAC"
assert_eq "$(link_json "${C[1]}" eth0 | jq -r .address)" 02:6d:c0:a8:32:64 "link MAC"
cni CHECK "$(with_prev "$conf" "$OUT")" cid=mt-macip-1 ns="${C[1]}"
assert_ok_empty "CHECK"

# static 192.168.50.150, twice in a row under different container IDs (a re-created
# container): the same MAC, so the neighbour entry the peer learnt for the first container
# is still right for the second one
static=$(conf_edit "$conf" '.runtimeConfig = {"ips": ["192.168.50.150/24"]}')
ip -n "$HOSTNS" addr add 192.168.50.1/24 dev "$PARENT_PEER"
for i in 2 3; do
    cni ADD "$static" cid=mt-macip-$i ns="${C[$i]}"
    assert_ok "ADD static $i" || die "ADD static $i failed"
    assert_json '.interfaces[0].mac' 02:6d:c0:a8:32:96 "static $i: result MAC"
    assert_eq "$(link_json "${C[$i]}" eth0 | jq -r .address)" 02:6d:c0:a8:32:96 "static $i: link MAC"
    if ((i == 3)); then
        assert_eq "$(ip -n "$HOSTNS" -j neigh show 192.168.50.150 dev "$PARENT_PEER" | jq -r '.[0].lladdr')" \
            02:6d:c0:a8:32:96 "the peer's entry from the first container, before any traffic to the second"
    fi
    ip netns exec "$HOSTNS" ping -c1 -W3 192.168.50.150 >/dev/null || fail "static $i: the peer pings the container"
    cni DEL "$static" cid=mt-macip-$i ns="${C[$i]}"
    assert_ok_empty "DEL static $i"
done
ip -n "$HOSTNS" addr del 192.168.50.1/24 dev "$PARENT_PEER"

# code 7: macFromIP with a static MAC
cni ADD "$conf" cid=mt-macip-4 ns="${C[2]}" args="MAC=02:00:00:00:00:01"
assert_code 7 '^macFromIP: cannot be combined with a static MAC \(CNI_ARGS MAC is set\)' "macFromIP + CNI_ARGS MAC"
assert_clean_failure "$net" mt-macip-4 "${C[2]}"

cni DEL "$conf" cid=mt-macip-1 ns="${C[1]}"
assert_ok_empty "DEL 1"
assert_store_empty "$net"
assert_host_clean
