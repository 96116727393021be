# The IPv4 address-conflict probe (RFC 5227 style) and IPv6 DAD, against a "rogue" host: the
# veth peer of the parent, moved into a netns of its own (the LAN), holds addresses no IPAM
# knows. With probe, ADD skips the first candidate the rogue answers for: the container gets
# the next one, the skipped one is quarantined (conflict:<rogue MAC> in the store, its own
# table and --json in `mactrunk-ipam list`), the next ADD never gets it, `release --ip` frees
# it. One MAC answering for every address an ADD probes looks like proxy ARP: 102 with that
# hint, only the first one quarantined. An address of the node itself (which no probe hears:
# a macvlan never reaches its parent) is a conflict too. With macFromIP the probe runs from
# the kernel's MAC, so a host that uses the very MAC the address derives to is found. A
# duplicate found by IPv6 DAD (ipv6Dad wait) is the same code and message shape, and is
# quarantined too.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (probe)"
ADMIN=$NT_BIN_DIR/mactrunk-ipam
adm() {
    local base=$T/calls/$((++_NCALL))-adm
    env -i PATH="$SAFE_PATH" "$ADMIN" "$@" >"$base.out" 2>"$base.err" </dev/null
    RC=$?
    OUT=$(<"$base.out")
    ERR=$(<"$base.err")
    printf '$ mactrunk-ipam %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$*" "$RC" "$OUT" "$ERR" >&2
}

conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-probe" | .cniVersion = "1.1.0" | .probe = {"timeoutMs": 100, "attempts": 2}')
net=$(conf_name "$conf")
make_container_nses 6 C
# The rogue host: the parent's veth peer, in a netns of its own, so that its addresses are
# not the node's (the plugin runs in $HOSTNS); moved back at the end.
LAN=${C[6]}
ip -n "$HOSTNS" link set "$PARENT_PEER" netns "$LAN" || die "cannot move $PARENT_PEER"
ip -n "$LAN" link set "$PARENT_PEER" up
rogue_mac=$(link_json "$LAN" "$PARENT_PEER" | jq -r .address)
ip -n "$LAN" addr add 192.168.50.100/24 dev "$PARENT_PEER"
# assert_clean_failure, with the peer away from the host netns
clean_failure() {
    assert_ns_clean "$3"
    [[ $(_links "$HOSTNS") == "$(grep -vxF "$PARENT_PEER" "$T/ns/$HOSTNS.links")" ]] ||
        fail "netns $HOSTNS: links now: $(_links "$HOSTNS" | tr '\n' ' ')"
    assert_store_free "$1" "$2"
}

# ---- .100 is answered: the container gets .101, .100 is quarantined
cni ADD "$conf" cid=mt-probe-1 ns="${C[1]}"
assert_ok "ADD next to the rogue" || die "ADD 1 failed"
assert_json '.ips[0].address' 192.168.50.101/24 "the answered address is skipped"
assert_addr "${C[1]}" eth0 192.168.50.101/24
assert_eq "$(cat "$DATA/$net/192.168.50.100")" "conflict:$rogue_mac" "quarantine record"
nsx "${C[1]}" ping -c1 -W3 192.168.50.100 >/dev/null || fail "the container reaches the rogue host"
adm list --data-dir "$DATA" "$net"
grep -qE "^$net +192\.168\.50\.100 +$rogue_mac +[0-9T:-]+Z$" <<<"$OUT" || fail "list: no quarantine row: $OUT"
assert_match "$(tail -n1 <<<"$OUT")" "^1 allocation and 1 quarantined address in 1 network " "list summary"
adm list --data-dir "$DATA" "$net" --json
assert_jq ".networks[0].quarantined == [{\"ip\": \"192.168.50.100\", \"foundBy\": \"$rogue_mac\", \"since\": .networks[0].quarantined[0].since, \"sinceUnix\": .networks[0].quarantined[0].sinceUnix}]" "list --json quarantined"
assert_jq '[.networks[0].allocations[].ip] == ["192.168.50.101"]' "list --json allocations"

# ---- the next container gets .102; .100 stays quarantined (GC too keeps it)
cni ADD "$conf" cid=mt-probe-2 ns="${C[2]}"
assert_ok "ADD 2" && assert_json '.ips[0].address' 192.168.50.102/24 "ADD 2"
cni_str GC "$(jq -c '. + {"cni.dev/valid-attachments": [{"containerID": "mt-probe-1", "ifname": "eth0"}, {"containerID": "mt-probe-2", "ifname": "eth0"}]}' "$conf")"
assert_ok_empty "GC"
[[ -f $DATA/$net/192.168.50.100 ]] || fail "GC released the quarantine"

# ---- one MAC answers for every address probed (.103 and .104): proxy ARP? 102 with that
# hint; .103 (quarantined before the pattern showed) stays, .104 is not quarantined
ip -n "$LAN" addr add 192.168.50.103/24 dev "$PARENT_PEER"
ip -n "$LAN" addr add 192.168.50.104/24 dev "$PARENT_PEER"
cni ADD "$conf" cid=mt-probe-3 ns="${C[3]}"
assert_code 102 "^192\.168\.50\.104 is in use on the network: $rogue_mac answered an ARP probe from eth0 in [^;]*; $rogue_mac answered for every address this ADD probed \(192\.168\.50\.103 \($rogue_mac\), 192\.168\.50\.104 \($rogue_mac\)\): that looks like proxy ARP .*; quarantined in the IPAM store: 192\.168\.50\.103 \(" "one MAC for every address"
clean_failure "$net" mt-probe-3 "${C[3]}"
assert_eq "$(cat "$DATA/$net/192.168.50.103")" "conflict:$rogue_mac" "quarantine .103"
[[ -e $DATA/$net/192.168.50.104 ]] && fail "the proxy-ARP stop quarantined .104"

# ---- release frees a quarantine; with the rogue gone the address is handed out again
ip -n "$LAN" addr del 192.168.50.103/24 dev "$PARENT_PEER"
adm release --data-dir "$DATA" "$net" --ip 192.168.50.103
[[ $RC == 0 ]] || fail "release --ip: exit status $RC: $ERR"
[[ -e $DATA/$net/192.168.50.103 ]] && fail "release left the quarantine"
cni ADD "$(conf_edit "$conf" '.runtimeConfig = {"ips": ["192.168.50.103/24"]}')" cid=mt-probe-3 ns="${C[3]}"
assert_ok "ADD of the released address (static)" && assert_json '.ips[0].address' 192.168.50.103/24

# ---- an address of the node (no probe hears it): .105 on the parent is skipped as conflict:node
ip -n "$LAN" addr del 192.168.50.104/24 dev "$PARENT_PEER"
ip -n "$HOSTNS" addr add 192.168.50.105/32 dev "$PARENT"
cni ADD "$conf" cid=mt-probe-5 ns="${C[5]}"
assert_ok "ADD next to the node's address" && assert_json '.ips[0].address' 192.168.50.106/24 "the node's address is skipped"
assert_eq "$(cat "$DATA/$net/192.168.50.105")" "conflict:node" "quarantine record of the node's address"
ip -n "$HOSTNS" addr del 192.168.50.105/32 dev "$PARENT"
cni DEL "$conf" cid=mt-probe-5 ns="${C[5]}"
assert_ok_empty "DEL 5"

# ---- IPv6 DAD finds a duplicate: 102, same message shape, quarantined, the retry gets the next
ip -n "$LAN" addr add fd49::2/64 dev "$PARENT_PEER" nodad
v6=$(conf_edit "$conf" 'del(.probe) | .name = "mt-dad" | .ipv6Dad = "wait" | .ipam = {"type": "mactrunk-ipam", "dataDir": .ipam.dataDir, "subnet": "fd49::/64", "rangeEnd": "fd49::ff"}')
cni ADD "$v6" cid=mt-dad-1 ns="${C[4]}"
assert_code 102 "^fd49::2 is in use on the network: IPv6 duplicate address detection on eth0 .* failed; quarantined in the IPAM store as conflict:ipv6-dad" "DAD failure"
clean_failure mt-dad mt-dad-1 "${C[4]}"
assert_eq "$(cat "$DATA/mt-dad/fd49::2")" "conflict:ipv6-dad" "DAD quarantine record"
cni ADD "$v6" cid=mt-dad-1 ns="${C[4]}"
assert_ok "ADD after the DAD failure" && assert_json '.ips[0].address' fd49::3/64 "the retry"

# ---- DAD fails after ADD (ipv6Dad optimistic: ADD does not wait): CHECK reports it, 104, in
# the same shape
ip -n "$LAN" addr add fd49::4/64 dev "$PARENT_PEER" nodad
opt=$(conf_edit "$v6" '.ipv6Dad = "optimistic" | .runtimeConfig = {"ips": ["fd49::4/64"]}')
cni ADD "$opt" cid=mt-dad-2 ns="${C[5]}"
assert_ok "optimistic ADD of an address the rogue has" || die "optimistic ADD failed"
res=$OUT
dad_failed() { ip -n "${C[5]}" -6 addr show dev eth0 | grep -q "fd49::4/64 .*dadfailed"; }
wait_for 10 dad_failed || fail "no dadfailed address: $(ip -n "${C[5]}" -6 addr show dev eth0)"
cni CHECK "$(with_prev "$opt" "$res")" cid=mt-dad-2 ns="${C[5]}"
assert_code 104 "^eth0 in [^:]*: fd49::4 is in use on the network: IPv6 duplicate address detection on eth0 failed \(the kernel marked the address dadfailed" "CHECK of a dadfailed address"
cni DEL "$opt" cid=mt-dad-2 ns="${C[5]}"
assert_ok_empty "DEL optimistic"

# ---- macFromIP: a host that has .200 and uses the MAC .200 derives to (02:6d:c0:a8:32:c8,
# as another node's container would) is found; the container gets .201 and its MAC
macip=$(conf_edit "$conf" '.name = "mt-probe-mac" | .macFromIP = true | .ipam.rangeStart = "192.168.50.200" | .ipam.rangeEnd = "192.168.50.250"')
ip -n "$LAN" link set "$PARENT_PEER" address 02:6d:c0:a8:32:c8
ip -n "$LAN" addr add 192.168.50.200/24 dev "$PARENT_PEER"
cni ADD "$macip" cid=mt-probe-6 ns="${C[5]}"
assert_ok "macFromIP ADD next to a host with the derived MAC" &&
    assert_json '.ips[0].address + " " + .interfaces[0].mac' "192.168.50.201/24 02:6d:c0:a8:32:c9" "the answered address is skipped, the MAC follows"
assert_eq "$(link_json "${C[5]}" eth0 | jq -r .address)" 02:6d:c0:a8:32:c9 "link MAC"
assert_eq "$(cat "$DATA/mt-probe-mac/192.168.50.200")" "conflict:02:6d:c0:a8:32:c8" "quarantine record"
nsx "${C[5]}" ping -c1 -W3 192.168.50.200 >/dev/null || fail "the container reaches the host with the derived MAC"
cni DEL "$macip" cid=mt-probe-6 ns="${C[5]}"
assert_ok_empty "DEL macFromIP"

for i in 1 2 3; do
    cni DEL "$conf" cid=mt-probe-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i"
done
cni DEL "$v6" cid=mt-dad-1 ns="${C[4]}"
assert_ok_empty "DEL dad"
ip -n "$LAN" addr flush dev "$PARENT_PEER"
ip -n "$LAN" link set "$PARENT_PEER" netns "$HOSTNS" && ip -n "$HOSTNS" link set "$PARENT_PEER" up
assert_host_clean
