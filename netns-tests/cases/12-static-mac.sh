# Static MAC: runtimeConfig.mac (capability "mac" of conf/30-...conflist), CNI_ARGS MAC=,
# config "mac"; priority runtimeConfig > CNI_ARGS > config; the link and the result carry it.
list=$(fixture 30-mactrunk-static-ip.conflist)
net=$(conf_name "$list")
make_container_nses 5 C

check_mac() { # check_MAC NS MAC WHAT
    assert_json '.interfaces[0].mac' "$2" "$3: result mac"
    assert_eq "$(link_json "$1" eth0 | jq -r .address)" "$2" "$3: link MAC"
}

rc=$(flatten "$list" 0 '{"mac": "0e:00:00:00:30:01"}')
cni ADD "$rc" cid=mt-mac-1 ns="${C[1]}"
assert_ok "ADD with runtimeConfig.mac" && check_mac "${C[1]}" 0e:00:00:00:30:01 runtimeConfig.mac

plain=$(flatten "$list")
cni ADD "$plain" cid=mt-mac-2 ns="${C[2]}" args="MAC=0e:00:00:00:30:02"
assert_ok "ADD with CNI_ARGS MAC=" && check_mac "${C[2]}" 0e:00:00:00:30:02 "CNI_ARGS MAC="

cfg=$(conf_edit "$plain" '.mac = "0e:00:00:00:30:03"')
cni ADD "$cfg" cid=mt-mac-3 ns="${C[3]}"
assert_ok "ADD with config mac" && check_mac "${C[3]}" 0e:00:00:00:30:03 "config mac"

# (a different MAC from mt-mac-1's: two macvlans on one parent cannot share a MAC)
all=$(conf_edit "$(flatten "$list" 0 '{"mac": "0e:00:00:00:30:41"}')" '.mac = "0e:00:00:00:30:43"')
cni ADD "$all" cid=mt-mac-4 ns="${C[4]}" args="IgnoreUnknown=1;MAC=0e:00:00:00:30:42"
assert_ok "ADD with all three MAC sources" && check_mac "${C[4]}" 0e:00:00:00:30:41 "all three: runtimeConfig wins"
cni DEL "$all" cid=mt-mac-4 ns="${C[4]}"

cni ADD "$cfg" cid=mt-mac-4 ns="${C[4]}" args="MAC=0e:00:00:00:30:42"
assert_ok "ADD with CNI_ARGS + config mac" && check_mac "${C[4]}" 0e:00:00:00:30:42 "CNI_ARGS beats config"

# a multicast MAC is refused
cni ADD "$(flatten "$list" 0 '{"mac": "01:00:5e:00:00:01"}')" cid=mt-mac-5 ns="${C[5]}"
assert_code 7 'mac' "ADD with a multicast runtimeConfig.mac"
assert_clean_failure "$net" mt-mac-5 "${C[5]}"

for i in 1 2 3 4; do
    cni DEL "$plain" cid=mt-mac-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i"
done
assert_store_empty "$net"
assert_host_clean
