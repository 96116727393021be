# cnitool (the CNI project's client, libcni) against conf/30-mactrunk-static-ip.conflist:
# ADD with CAP_ARGS ips + mac, CHECK, DEL; GC with a valid-attachments list releases an
# allocation libcni never cached, GC without a list releases nothing the plugin owns;
# STATUS.
need_cnitool
NETCONF=$T/netconf
mkdir -p "$NETCONF"
list=$(fixture 30-mactrunk-static-ip.conflist)
cp "$list" "$NETCONF/30-mactrunk-static-ip.conflist"
net=$(conf_name "$list")
make_container_nses 3 C

ct CNI_CONTAINERID=mt-ct-1 'CAP_ARGS={"ips": ["10.30.0.42/24"], "mac": "0e:00:00:00:19:01"}' add "$net" "/run/netns/${C[1]}"
if assert_ok "cnitool add"; then
    assert_json '.ips[0].address' 10.30.0.42/24 "cnitool add: static IP from CAP_ARGS"
    assert_json '.interfaces[0].mac' 0e:00:00:00:19:01 "cnitool add: static MAC from CAP_ARGS"
    assert_addr "${C[1]}" eth0 10.30.0.42/24
    assert_store_entry "$net" 10.30.0.42 mt-ct-1 eth0
fi
ct CNI_CONTAINERID=mt-ct-1 'CAP_ARGS={"ips": ["10.30.0.42/24"], "mac": "0e:00:00:00:19:01"}' check "$net" "/run/netns/${C[1]}"
assert_eq "$RC" 0 "cnitool check exit status (stderr: $ERR)"
ct CNI_CONTAINERID=mt-ct-1 del "$net" "/run/netns/${C[1]}"
assert_eq "$RC" 0 "cnitool del exit status (stderr: $ERR)"
assert_no_link "${C[1]}" eth0
assert_store_empty "$net"

# GC: mt-ct-1 is in libcni's cache ($T/cache), mt-ct-2 is not (other cache dir)
ct CNI_CONTAINERID=mt-ct-1 add "$net" "/run/netns/${C[1]}"
assert_ok "cnitool add mt-ct-1"
ip1=$(jqo '.ips[0].address' | cut -d/ -f1)
ct CNI_CONTAINERID=mt-ct-2 CNI_CACHE_DIR="$T/cache-other" add "$net" "/run/netns/${C[2]}"
assert_ok "cnitool add mt-ct-2 (not in the GC's cache)"
ip2=$(jqo '.ips[0].address' | cut -d/ -f1)
ct 'CNI_GC_VALID_ATTACHMENTS=[{"containerID": "mt-ct-1", "ifname": "eth0"}]' gc "$net"
assert_eq "$RC" 0 "cnitool gc exit status (stderr: $ERR)"
assert_store_entry "$net" "$ip1" mt-ct-1 eth0
assert_store_free "$net" mt-ct-2
[[ -e $DATA/$net/$ip2 ]] && fail "cnitool gc did not release $ip2 of mt-ct-2"

# GC without a list (upstream cnitool's own behaviour): libcni DELs its cached mt-ct-1, the
# plugin gets no valid-attachments key and must release nothing else (mt-ct-3 stays)
ct CNI_CONTAINERID=mt-ct-3 CNI_CACHE_DIR="$T/cache-other" add "$net" "/run/netns/${C[3]}"
assert_ok "cnitool add mt-ct-3 (not in the GC's cache)"
ip3=$(jqo '.ips[0].address' | cut -d/ -f1)
ct gc "$net"
assert_eq "$RC" 0 "cnitool gc without a list: exit status (stderr: $ERR)"
assert_store_free "$net" mt-ct-1
assert_store_entry "$net" "$ip3" mt-ct-3 eth0

ct status "$net"
assert_eq "$RC" 0 "cnitool status exit status (stderr: $ERR)"

ct CNI_CONTAINERID=mt-ct-3 CNI_CACHE_DIR="$T/cache-other" del "$net" "/run/netns/${C[3]}"
assert_eq "$RC" 0 "cnitool del mt-ct-3"
ct CNI_CONTAINERID=mt-ct-2 CNI_CACHE_DIR="$T/cache-other" del "$net" "/run/netns/${C[2]}"
assert_eq "$RC" 0 "cnitool del mt-ct-2 after GC released it"
assert_store_empty "$net"
assert_host_clean
