# Link options: mtu (applied, reported at 1.1.0; > parent MTU is code 7 naming mtu), a missing
# or absent master (code 7 naming master and the interface), the macvlan modes, bcqueuelen.
# Every refused ADD leaves nothing behind.
base=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$base")
make_container_nses 8 C

# mtu 1400 < parent 1500
c=$(conf_edit "$base" '.mtu = 1400')
cni ADD "$c" cid=mt-lo-1 ns="${C[1]}"
if assert_ok "ADD mtu 1400"; then
    [[ $(jq -r .cniVersion "$c") == 1.1.0 ]] && assert_json '.interfaces[0].mtu' 1400 "result mtu"
    assert_eq "$(link_json "${C[1]}" eth0 | jq -r .mtu)" 1400 "link mtu"
fi
cni DEL "$c" cid=mt-lo-1 ns="${C[1]}"

# mtu equal to the parent's is fine, bigger is code 7
c=$(conf_edit "$base" '.mtu = 1500')
cni ADD "$c" cid=mt-lo-2 ns="${C[2]}"
assert_ok "ADD mtu 1500 (= parent)"
cni DEL "$c" cid=mt-lo-2 ns="${C[2]}"
c=$(conf_edit "$base" '.mtu = 9000')
cni ADD "$c" cid=mt-lo-3 ns="${C[3]}"
assert_code 7 '^mtu' "ADD mtu 9000 > parent 1500"
assert_clean_failure "$net" mt-lo-3 "${C[3]}"

# missing master
c=$(conf_edit "$base" '.master = "mtnosuch9"')
cni ADD "$c" cid=mt-lo-4 ns="${C[4]}"
assert_code 7 '^master.*mtnosuch9' "ADD with a master that does not exist"
assert_clean_failure "$net" mt-lo-4 "${C[4]}"
# no master key and no default route in the host netns: nothing to default to
c=$(conf_edit "$base" 'del(.master)')
cni ADD "$c" cid=mt-lo-4 ns="${C[4]}"
assert_code 7 '^master' "ADD without master and without a default route"
assert_clean_failure "$net" mt-lo-4 "${C[4]}"
# ... with a default route via the parent, the parent is the default
ip -n "$HOSTNS" addr add 192.168.50.254/24 dev "$PARENT"
ip -n "$HOSTNS" route add default via 192.168.50.1 dev "$PARENT"
cni ADD "$c" cid=mt-lo-4 ns="${C[4]}"
assert_ok "ADD without master, default route via $PARENT" &&
    assert_eq "$(link_json "${C[4]}" eth0 | jq -r .link_index)" "$(ip -n "$HOSTNS" -j link show dev "$PARENT" | jq '.[0].ifindex')" "default master = default-route interface"
cni DEL "$c" cid=mt-lo-4 ns="${C[4]}"
ip -n "$HOSTNS" route del default
ip -n "$HOSTNS" addr flush dev "$PARENT"

# modes
i=5
for mode in private vepa passthru; do
    c=$(conf_edit "$base" '.mode = $m' --arg m "$mode")
    cni ADD "$c" cid=mt-lo-$i ns="${C[$i]}"
    assert_ok "ADD mode $mode" && assert_eq "$(link_json "${C[$i]}" eth0 | jq -r .linkinfo.info_data.mode)" "$mode" "link mode"
    cni DEL "$c" cid=mt-lo-$i ns="${C[$i]}"
    assert_ok_empty "DEL mode $mode"
    assert_ns_clean "${C[$i]}"
    i=$((i + 1))
done

# bcqueuelen
c=$(conf_edit "$base" '.bcqueuelen = 333')
cni ADD "$c" cid=mt-lo-8 ns="${C[8]}"
assert_ok "ADD bcqueuelen 333" && assert_eq "$(link_json "${C[8]}" eth0 | jq -r .linkinfo.info_data.bcqueuelen)" 333 "link bcqueuelen"
cni DEL "$c" cid=mt-lo-8 ns="${C[8]}"

assert_store_empty "$net"
assert_host_clean
