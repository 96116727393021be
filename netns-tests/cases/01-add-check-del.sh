# ADD / CHECK / DEL happy path with conf/10-mactrunk-bridge.conf: result shape, the link in
# the container (IP, MAC, mode, MTU, parent, default route), the store file, CHECK, DEL.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
ver=$(jq -r .cniVersion "$conf")
make_container_ns C
cid=mt-happy-1

cni ADD "$conf" cid=$cid ns="$C"
assert_ok ADD || die "ADD failed, nothing more to check"
result=$OUT
assert_json .cniVersion "$ver"
assert_json '.interfaces | length' 1
assert_json '.interfaces[0].name' eth0
assert_json '.interfaces[0].sandbox' "/run/netns/$C"
assert_jq '.interfaces[0].mac | test("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")' "interfaces[0].mac is a MAC"
assert_json '.ips | length' 1
assert_json '.ips[0].interface' 0
assert_json '.ips[0].address' 192.168.50.100/24
assert_json '.ips[0].gateway' 192.168.50.1
assert_jq '.ips[0] | has("version") | not' "no ips[].version at $ver"
assert_jq '.routes | any(.dst == "0.0.0.0/0")' "default route in result"
[[ $ver == 1.1.0 ]] && assert_json '.interfaces[0].mtu' 1500 "1.1.0 result carries the interface mtu"
mac=$(jqo '.interfaces[0].mac')

# the link in the container
lj=$(link_json "$C" eth0)
if [[ -z $lj || $lj == null ]]; then
    fail "no eth0 in container netns $C"
else
    assert_eq "$(jq -r .linkinfo.info_kind <<<"$lj")" macvlan "eth0 kind"
    assert_eq "$(jq -r .linkinfo.info_data.mode <<<"$lj")" bridge "eth0 macvlan mode"
    assert_eq "$(jq -r .address <<<"$lj")" "$mac" "eth0 MAC vs result"
    assert_eq "$(jq -r .mtu <<<"$lj")" 1500 "eth0 MTU"
    assert_eq "$(jq -r '.flags | index("UP") != null' <<<"$lj")" true "eth0 is up"
    parent_idx=$(ip -n "$HOSTNS" -j link show dev "$PARENT" | jq '.[0].ifindex')
    assert_eq "$(jq -r '.link_index' <<<"$lj")" "$parent_idx" "eth0 parent ifindex (= $PARENT in host netns)"
fi
assert_addr "$C" eth0 192.168.50.100/24
assert_default_route "$C" 192.168.50.1 eth0
assert_host_clean

# the store
assert_store_entry "$net" 192.168.50.100 "$cid" eth0
assert_eq "$(store_count "$net")" 1 "number of IP files"
lr=$(cat "$DATA/$net/last_reserved_ip.0" 2>/dev/null)
assert_eq "$lr" 192.168.50.100 "last_reserved_ip.0"
if [[ $NT_REFERENCE != 1 ]]; then
    assert_eq "$(stat -c %a "$DATA/$net" 2>/dev/null)" 700 "mode of the store dir"
    assert_eq "$(stat -c %a "$DATA/$net/192.168.50.100" 2>/dev/null)" 600 "mode of the IP file"
    own=$(find "$DATA/$net/owners" -mindepth 1 -name "*$cid*" 2>/dev/null)
    if [[ $(grep -c . <<<"$own") != 1 ]]; then
        fail "owners/: expected one record for $cid, found: $(ls -A "$DATA/$net/owners" 2>/dev/null | tr '\n' ' ')"
    else
        grep -qxF 192.168.50.100 "$own" || fail "owner record $(basename "$own") does not list 192.168.50.100: $(cat "$own")"
    fi
fi

# CHECK with the ADD result
checkconf=$(with_prev "$conf" "$result")
cni CHECK "$checkconf" cid=$cid ns="$C"
assert_ok_empty "CHECK right after ADD"

# CHECK without prevResult is an error
cni CHECK "$conf" cid=$cid ns="$C"
assert_code 7 '^prevResult' "CHECK without prevResult"

# CHECK after the address was removed behind the plugin's back: mismatch (104)
ip -n "$C" addr del 192.168.50.100/24 dev eth0
cni CHECK "$checkconf" cid=$cid ns="$C"
assert_code 104 '' "CHECK with the address gone"

# DEL
cni DEL "$conf" cid=$cid ns="$C"
assert_ok_empty DEL
assert_no_link "$C" eth0
assert_ns_clean "$C"
assert_host_clean
assert_store_free "$net" "$cid"
assert_store_empty "$net"
