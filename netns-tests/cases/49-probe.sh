# The IPv4 address-conflict probe (RFC 5227 style) and IPv6 DAD, against a "rogue" host: the
# veth peer on the parent's network holds addresses no IPAM knows. With probe, ADD skips the
# first candidate the rogue answers for: the container gets the next one, the skipped one is
# quarantined (conflict:<rogue MAC> in the store, its own table and --json in
# `mactrunk-ipam list`), the next ADD never gets it, `release --ip` frees it. With every
# attempt answered, ADD fails with 102 and leaves only the quarantines. A duplicate found by
# IPv6 DAD (ipv6Dad wait) is the same code and message shape, and is quarantined too.
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
rogue_mac=$(link_json "$HOSTNS" "$PARENT_PEER" | jq -r .address)
ip -n "$HOSTNS" addr add 192.168.50.100/24 dev "$PARENT_PEER"
make_container_nses 4 C

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

# ---- every attempt answered (.103 and .104): 102, nothing left but the quarantines
ip -n "$HOSTNS" addr add 192.168.50.103/24 dev "$PARENT_PEER"
ip -n "$HOSTNS" addr add 192.168.50.104/24 dev "$PARENT_PEER"
cni ADD "$conf" cid=mt-probe-3 ns="${C[3]}"
assert_code 102 "^192\.168\.50\.104 is in use on the network: $rogue_mac answered an ARP probe from eth0 in .*; every probe attempt found its address in use: 192\.168\.50\.103 \($rogue_mac\), 192\.168\.50\.104 .*quarantined in the IPAM store" "every attempt answered"
assert_clean_failure "$net" mt-probe-3 "${C[3]}"
for a in 103 104; do
    assert_eq "$(cat "$DATA/$net/192.168.50.$a")" "conflict:$rogue_mac" "quarantine .$a"
done

# ---- release frees a quarantine; with the rogue gone the address is handed out again
ip -n "$HOSTNS" addr del 192.168.50.103/24 dev "$PARENT_PEER"
adm release --data-dir "$DATA" "$net" --ip 192.168.50.103
[[ $RC == 0 ]] || fail "release --ip: exit status $RC: $ERR"
[[ -e $DATA/$net/192.168.50.103 ]] && fail "release left the quarantine"
cni ADD "$(conf_edit "$conf" '.runtimeConfig = {"ips": ["192.168.50.103/24"]}')" cid=mt-probe-3 ns="${C[3]}"
assert_ok "ADD of the released address (static)" && assert_json '.ips[0].address' 192.168.50.103/24

# ---- IPv6 DAD finds a duplicate: 102, same message shape, quarantined, the retry gets the next
ip -n "$HOSTNS" addr add fd49::2/64 dev "$PARENT_PEER" nodad
v6=$(conf_edit "$conf" 'del(.probe) | .name = "mt-dad" | .ipv6Dad = "wait" | .ipam = {"type": "mactrunk-ipam", "dataDir": .ipam.dataDir, "subnet": "fd49::/64", "rangeEnd": "fd49::ff"}')
cni ADD "$v6" cid=mt-dad-1 ns="${C[4]}"
assert_code 102 "^fd49::2 is in use on the network: IPv6 duplicate address detection on eth0 .* failed; quarantined in the IPAM store as conflict:ipv6-dad" "DAD failure"
assert_clean_failure mt-dad mt-dad-1 "${C[4]}"
assert_eq "$(cat "$DATA/mt-dad/fd49::2")" "conflict:ipv6-dad" "DAD quarantine record"
cni ADD "$v6" cid=mt-dad-1 ns="${C[4]}"
assert_ok "ADD after the DAD failure" && assert_json '.ips[0].address' fd49::3/64 "the retry"

for i in 1 2 3; do
    cni DEL "$conf" cid=mt-probe-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i"
done
cni DEL "$v6" cid=mt-dad-1 ns="${C[4]}"
assert_ok_empty "DEL dad"
ip -n "$HOSTNS" addr flush dev "$PARENT_PEER"
assert_host_clean
