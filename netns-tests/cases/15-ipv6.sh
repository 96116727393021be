# IPv6: dual stack (conf/20-mactrunk-dualstack.conf) and v6-only. Addresses are usable the
# moment ADD returns: ping6 between two containers with no wait, the address is neither
# tentative nor dadfailed; default routes for both families; no SLAAC / RA on the link.
conf=$(fixture 20-mactrunk-dualstack.conf)
net=$(conf_name "$conf")
make_container_ns A
make_container_ns B

v6_of() { jqo '.ips[] | select(.address | contains(":")) | .address'; }
v4_of() { jqo '.ips[] | select(.address | contains(":") | not) | .address'; }

cni ADD "$conf" cid=mt-v6-a ns="$A"
assert_ok "ADD A" || die "ADD A failed"
a6=$(v6_of) a4=$(v4_of)
cni ADD "$conf" cid=mt-v6-b ns="$B"
assert_ok "ADD B" || die "ADD B failed"
b6=$(v6_of) b4=$(v4_of)
# straight away, no sleep: one echo request, 2 s to answer
nsx "$B" ping -6 -c1 -W2 "${a6%/*}" >/dev/null || fail "ping6 B -> A (${a6%/*}) right after ADD failed"
nsx "$A" ping -6 -c1 -W2 "${b6%/*}" >/dev/null || fail "ping6 A -> B (${b6%/*}) failed"
nsx "$A" ping -4 -c1 -W2 "${b4%/*}" >/dev/null || fail "ping A -> B (${b4%/*}) failed"

for ns in "$A" "$B"; do
    CTX=$ns
    flags=$(ip -n "$ns" -6 -j addr show dev eth0 scope global | jq -r '[.[0].addr_info[] | select(.family == "inet6") | (.tentative // false), (.dadfailed // false)] | map(tostring) | join(",")')
    [[ $flags == *true* ]] && fail "IPv6 address tentative or dadfailed after ADD: $(ip -n "$ns" -6 addr show dev eth0 scope global | grep inet6)"
    assert_default_route "$ns" fd00:20::1 eth0 -6
    assert_default_route "$ns" 10.20.0.1 eth0 -4
    assert_eq "$(nsx "$ns" cat /proc/sys/net/ipv6/conf/eth0/accept_ra)" 0 "accept_ra on eth0"
    assert_eq "$(nsx "$ns" cat /proc/sys/net/ipv6/conf/eth0/autoconf)" 0 "autoconf (SLAAC) on eth0"
done
CTX=""
assert_addr "$A" eth0 "$a6"
assert_store_entry "$net" "${a6%/*}" mt-v6-a eth0
assert_store_entry "$net" "${a4%/*}" mt-v6-a eth0

# TCP over v6
(echo ok6 | nsx "$A" timeout 10 nc -6 -l -N "${a6%/*}" 5556 >"$T/recv6") &
listening() { nsx "$A" ss -Hltn "sport = :5556" | grep -q .; }
wait_for 5 listening || fail "nc -6 did not start listening in A"
reply=$(echo hi6 | nsx "$B" timeout 10 nc -6 -N "${a6%/*}" 5556)
wait
assert_eq "$(cat "$T/recv6")" hi6 "TCP over IPv6: message received by A"
assert_eq "$reply" ok6 "TCP over IPv6: reply received by B"

cni DEL "$conf" cid=mt-v6-a ns="$A"
assert_ok_empty "DEL A"
cni DEL "$conf" cid=mt-v6-b ns="$B"
assert_ok_empty "DEL B"
assert_store_empty "$net"

# v6 only, with a range and without a gateway key (gateway defaults to network+1)
v6=$(fixture 20-mactrunk-dualstack.conf '.name = "mt-v6only" | .ipam.ranges = [[{subnet: "fd00:66::/64", rangeStart: "fd00:66::10", rangeEnd: "fd00:66::20"}]] | .ipam.routes = [{dst: "::/0"}]')
net6=$(conf_name "$v6")
cni ADD "$v6" cid=mt-v6-c ns="$A"
assert_ok "ADD v6-only A" && {
    assert_json '.ips | length' 1
    assert_json '.ips[0].address' fd00:66::10/64
    assert_json '.ips[0].gateway' fd00:66::1
}
cni ADD "$v6" cid=mt-v6-d ns="$B"
assert_ok "ADD v6-only B" && assert_json '.ips[0].address' fd00:66::11/64
nsx "$B" ping -6 -c1 -W2 fd00:66::10 >/dev/null || fail "v6-only: ping6 B -> A right after ADD failed"
assert_default_route "$A" fd00:66::1 eth0 -6
cni DEL "$v6" cid=mt-v6-c ns="$A"
cni DEL "$v6" cid=mt-v6-d ns="$B"
assert_store_empty "$net6"
assert_host_clean
assert_ns_clean "$A"
