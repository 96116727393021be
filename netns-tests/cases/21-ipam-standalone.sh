# mactrunk-ipam on its own (as an IPAM plugin that a main plugin execs): IPAM result shape
# (no interfaces, no ips[].interface), ADD for an existing (containerID, ifname) returns the
# same address, another ifname gets another one, CHECK, DEL per (containerID, ifname);
# exclude; dns merged from resolvConf; delegation both ways (reference macvlan -> mactrunk-ipam,
# mactrunk -> reference host-local).
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C

cni ADD "$conf" bin=ipam cid=mt-ipam-1 ns="$C"
if assert_ok "IPAM ADD"; then
    assert_jq 'has("interfaces") | not' "IPAM result has no interfaces"
    assert_jq '.ips | all(has("interface") | not)' "IPAM result has no ips[].interface"
    assert_json '.ips[0].address' 192.168.50.100/24
    assert_json '.ips[0].gateway' 192.168.50.1
    assert_jq '.routes | any(.dst == "0.0.0.0/0")' "IPAM routes"
fi
first=$OUT
assert_store_entry "$net" 192.168.50.100 mt-ipam-1 eth0
assert_ns_clean "$C"

cni ADD "$conf" bin=ipam cid=mt-ipam-1 ns="$C"
assert_ok "second IPAM ADD, same (containerID, ifname)" && assert_json '.ips[0].address' 192.168.50.100/24 "idempotent IPAM ADD"
assert_eq "$(store_count "$net")" 1 "IP files after the repeated ADD"
cni ADD "$conf" bin=ipam cid=mt-ipam-1 ns="$C" if=net1
assert_ok "IPAM ADD, other ifname" && assert_json '.ips[0].address' 192.168.50.101/24 "other ifname, next address"
assert_store_entry "$net" 192.168.50.101 mt-ipam-1 net1

cni CHECK "$(with_prev "$conf" "$first")" bin=ipam cid=mt-ipam-1 ns="$C"
assert_ok_empty "IPAM CHECK"
cni DEL "$conf" bin=ipam cid=mt-ipam-1 ns="$C"
assert_ok_empty "IPAM DEL eth0"
[[ -e $DATA/$net/192.168.50.100 ]] && fail "IPAM DEL eth0 did not release 192.168.50.100"
assert_store_entry "$net" 192.168.50.101 mt-ipam-1 net1
cni DEL "$conf" bin=ipam cid=mt-ipam-1 ns="$C" if=net1
assert_ok_empty "IPAM DEL net1"
assert_store_empty "$net"

# exclude (IP and CIDR)
ex=$(conf_edit "$conf" '.name = "mt-exclude" | .ipam.exclude = ["192.168.50.100/31", "192.168.50.103"]')
for i in 1 2 3; do
    cni ADD "$ex" bin=ipam cid=mt-ex-$i ns="$C"
    assert_ok "IPAM ADD $i with exclude"
    got[$i]=$(jqo '.ips[0].address')
done
assert_eq "${got[1]} ${got[2]} ${got[3]}" "192.168.50.102/24 192.168.50.104/24 192.168.50.105/24" "addresses with exclude"
for i in 1 2 3; do cni DEL "$ex" bin=ipam cid=mt-ex-$i ns="$C"; done
assert_store_empty mt-exclude

# dns: resolvConf merged under explicit dns (explicit wins per field); main-level dns wins over IPAM's
printf 'nameserver 192.0.2.53\nsearch rc.example\ndomain rc.example\noptions ndots:2\n' >"$T/resolv.conf"
dn=$(conf_edit "$conf" '.name = "mt-dns" | .ipam.resolvConf = $rc | .ipam.dns = {nameservers: ["192.0.2.54"]}' --arg rc "$T/resolv.conf")
cni ADD "$dn" bin=ipam cid=mt-dns-1 ns="$C"
if assert_ok "IPAM ADD with resolvConf + dns"; then
    assert_json '.dns.nameservers' '["192.0.2.54"]' "explicit ipam.dns nameservers win"
    assert_json '.dns.search' '["rc.example"]' "search from resolvConf"
    assert_json '.dns.options' '["ndots:2"]' "options from resolvConf"
fi
cni DEL "$dn" bin=ipam cid=mt-dns-1 ns="$C"
dm=$(conf_edit "$dn" '.dns = {domain: "main.example"}')
cni ADD "$dm" cid=mt-dns-2 ns="$C"
if assert_ok "main plugin ADD with dns + ipam dns"; then
    assert_json '.dns.domain' main.example "main-level dns.domain wins"
    assert_json '.dns.nameservers' '["192.0.2.54"]' "IPAM nameservers kept (not dropped like the reference macvlan)"
fi
cni DEL "$dm" cid=mt-dns-2 ns="$C"
assert_store_empty mt-dns

[[ $NT_REFERENCE == 1 ]] && return 0

# the reference macvlan delegating to mactrunk-ipam through CNI_PATH (cniVersion 1.0.0)
rm=$(conf_edit "$conf" '.name = "mt-deleg1" | .cniVersion = "1.0.0" | .type = "macvlan"')
cni ADD "$rm" bin=/usr/lib/cni/macvlan cid=mt-deleg-1 ns="$C" CNI_PATH="$NT_BIN_DIR"
assert_ok "reference macvlan + mactrunk-ipam ADD" && assert_json '.ips[0].address' 192.168.50.100/24
assert_store_entry mt-deleg1 192.168.50.100 mt-deleg-1 eth0
cni DEL "$rm" bin=/usr/lib/cni/macvlan cid=mt-deleg-1 ns="$C" CNI_PATH="$NT_BIN_DIR"
assert_ok_empty "reference macvlan + mactrunk-ipam DEL"
assert_store_empty mt-deleg1
assert_ns_clean "$C"

# mactrunk delegating to the reference host-local (any ipam.type other than mactrunk-ipam)
hl=$(conf_edit "$conf" '.name = "mt-deleg2" | .cniVersion = "1.0.0" | .ipam.type = "host-local"')
cni ADD "$hl" cid=mt-deleg-2 ns="$C" CNI_PATH=/usr/lib/cni
if assert_ok "mactrunk + reference host-local ADD"; then
    assert_json '.ips[0].address' 192.168.50.100/24
    assert_json '.ips[0].interface' 0 "ips[].interface filled in for the delegate's result"
    assert_addr "$C" eth0 192.168.50.100/24
fi
assert_store_entry mt-deleg2 192.168.50.100 mt-deleg-2 eth0
cni DEL "$hl" cid=mt-deleg-2 ns="$C" CNI_PATH=/usr/lib/cni
assert_ok_empty "mactrunk + reference host-local DEL"
assert_store_empty mt-deleg2
# a delegate that does not exist: code 103, nothing left
nx=$(conf_edit "$hl" '.ipam.type = "mt-no-such-ipam"')
cni ADD "$nx" cid=mt-deleg-3 ns="$C" CNI_PATH=/usr/lib/cni
assert_code 103 'mt-no-such-ipam' "ADD with a missing IPAM delegate"
assert_ns_clean "$C"
assert_host_clean
