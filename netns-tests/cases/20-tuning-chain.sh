# conf/40-mactrunk-tuning.conflist through cnitool: mactrunk, then the reference tuning
# plugin chained on its result (sysctls and allmulti applied in the container), CHECK
# passes with tuning's changes, DEL cleans up.
need_cnitool
NETCONF=$T/netconf
mkdir -p "$NETCONF"
list=$(fixture 40-mactrunk-tuning.conflist)
cp "$list" "$NETCONF/40-mactrunk-tuning.conflist"
net=$(conf_name "$list")
make_container_ns C

ct CNI_CONTAINERID=mt-tune-1 add "$net" "/run/netns/$C"
if assert_ok "cnitool add (mactrunk + tuning)"; then
    assert_json '.interfaces[0].name' eth0
    assert_jq '.ips[0].address | startswith("10.40.0.")' "address from the conflist's subnet"
    assert_addr "$C" eth0 "$(jqo '.ips[0].address')"
    assert_eq "$(nsx "$C" cat /proc/sys/net/core/somaxconn)" 1024 "somaxconn set by tuning"
    assert_eq "$(nsx "$C" cat /proc/sys/net/ipv4/conf/all/arp_ignore)" 1 "arp_ignore set by tuning"
    assert_eq "$(link_json "$C" eth0 | jq -r '.flags | index("ALLMULTI") != null')" true "ALLMULTI set by tuning"
fi
ct CNI_CONTAINERID=mt-tune-1 check "$net" "/run/netns/$C"
assert_eq "$RC" 0 "cnitool check after tuning (stderr: $ERR)"
ct CNI_CONTAINERID=mt-tune-1 del "$net" "/run/netns/$C"
assert_eq "$RC" 0 "cnitool del (stderr: $ERR)"
assert_no_link "$C" eth0
assert_store_empty "$net"
assert_host_clean
