# L2-only networks: `"ipam": {}` (and no ipam key at all) gives an interface that is up with
# no global address and no routes; the result lists the interface and no IPs; CHECK passes;
# GC and STATUS (1.1.0) succeed without touching any store; DEL removes the link; no store
# directory is ever created. Two L2-only containers reach each other once given addresses by hand.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (the reference macvlan requires an ipam type)"

make_container_nses 2 C
for variant in empty absent; do
    CTX=$variant
    if [[ $variant == empty ]]; then
        conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-l2" | .ipam = {}')
    else
        conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-l2" | del(.ipam)')
    fi
    for i in 1 2; do
        cni ADD "$conf" cid=mt-l2-$i ns="${C[$i]}" -CNI_PATH
        if assert_ok "L2-only ADD $i"; then
            assert_jq '(.ips // []) | length == 0' "no IPs in the result"
            assert_jq '(.routes // []) | length == 0' "no routes in the result"
            assert_json '.interfaces[0].name' eth0
            assert_json '.interfaces[0].sandbox' "/run/netns/${C[$i]}"
            res[$i]=$OUT
        fi
        assert_link "${C[$i]}" eth0
        [[ $(ip -n "${C[$i]}" -j link show dev eth0 | jq -r '.[0].flags | index("UP") != null') == true ]] ||
            fail "eth0 in ${C[$i]} is not up"
        assert_eq "$(ns_addrs "${C[$i]}" eth0 | tr '\n' ' ')" "" "global addresses on eth0"
        assert_eq "$(ip -n "${C[$i]}" -4 route show | grep -c . || true)" 0 "IPv4 routes in the container"
    done
    # L2 works: give addresses by hand, ping
    ip -n "${C[1]}" addr add 198.51.100.1/24 dev eth0
    ip -n "${C[2]}" addr add 198.51.100.2/24 dev eth0
    nsx "${C[1]}" ping -c1 -W2 198.51.100.2 >/dev/null || fail "ping between the L2-only interfaces failed"

    cni CHECK "$(with_prev "$conf" "${res[1]}")" cid=mt-l2-1 ns="${C[1]}" -CNI_PATH
    assert_ok_empty "L2-only CHECK"
    g=$(conf_edit "$conf" '.cniVersion = "1.1.0" | .["cni.dev/valid-attachments"] = []')
    cni GC "$g" -CNI_IFNAME -CNI_PATH
    assert_ok_empty "L2-only GC"
    cni STATUS "$g" -CNI_IFNAME -CNI_PATH
    assert_ok_empty "L2-only STATUS"
    for i in 1 2; do
        cni DEL "$conf" cid=mt-l2-$i ns="${C[$i]}" -CNI_PATH
        assert_ok_empty "L2-only DEL $i"
        assert_ns_clean "${C[$i]}"
    done
    cni DEL "$conf" cid=mt-l2-1 ns="${C[1]}" -CNI_PATH
    assert_ok_empty "L2-only DEL again"
    assert_eq "$(find "$DATA" -mindepth 1 | head -n3 | tr '\n' ' ')" "" "files under dataDir"
    [[ -e /var/lib/cni/networks/mt-l2 ]] && fail "an L2-only network created /var/lib/cni/networks/mt-l2"
done
CTX=""
assert_host_clean
