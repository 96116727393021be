# cniVersion 0.1.0/0.2.0 results hold one IPv4 and one IPv6 address: a config with two
# IPv4 (or two IPv6) range sets is refused with code 1 before anything is allocated or
# created, by the plugin and by mactrunk-ipam alone; one of each family works.
make_container_ns C
for v in 0.1.0 0.2.0; do
    CTX="cniVersion $v"
    two4=$(fixture 10-mactrunk-bridge.conf '.cniVersion = $v | .ipam |= (del(.subnet, .rangeStart, .rangeEnd, .gateway) | .ranges = [[{subnet: "192.168.50.0/24"}], [{subnet: "192.168.51.0/24"}]])' --arg v "$v")
    net=$(conf_name "$two4")
    cni ADD "$two4" cid=mt-leg-1 ns="$C"
    assert_code 1 '^cniVersion: .*2 IPv4 range sets' "ADD, two IPv4 range sets"
    assert_clean_failure "$net" mt-leg-1 "$C"
    cni ADD "$two4" cid=mt-leg-1 ns="$C" bin=ipam
    assert_code 1 '^cniVersion: ' "mactrunk-ipam ADD, two IPv4 range sets"
    assert_store_free "$net" mt-leg-1
    two6=$(fixture 10-mactrunk-bridge.conf '.cniVersion = $v | .ipam |= (del(.subnet, .rangeStart, .rangeEnd, .gateway, .routes) | .ranges = [[{subnet: "fd00:50::/64"}], [{subnet: "fd00:51::/64"}]])' --arg v "$v")
    cni ADD "$two6" cid=mt-leg-2 ns="$C"
    assert_code 1 '2 IPv6 range sets' "ADD, two IPv6 range sets"
    assert_clean_failure "$net" mt-leg-2 "$C"
    dual=$(fixture 10-mactrunk-bridge.conf '.cniVersion = $v | .ipam |= (del(.subnet, .rangeStart, .rangeEnd, .gateway, .routes) | .ranges = [[{subnet: "192.168.50.0/24"}], [{subnet: "fd00:50::/64"}]])' --arg v "$v")
    cni ADD "$dual" cid=mt-leg-3 ns="$C"
    assert_ok "ADD, one range set per family" && {
        assert_jq '.ip4.ip and .ip6.ip' "ip4 and ip6 in the $v result"
    }
    cni DEL "$dual" cid=mt-leg-3 ns="$C"
    assert_ok_empty "DEL"
    assert_store_empty "$net"
    assert_ns_clean "$C"
done
