# hostShim on a VLAN parent (kernel 6.1 in the VM; skipped where the kernel has no 802.1Q, as
# on the development hosts). The containers sit on VLAN 54 of eth0, created by mactrunk; the
# host has no address on that VLAN, only on eth0 (another subnet): the shim mts-eth0.54 sits on
# eth0.54, the host's routes carry eth0's address as source, and each container gets a /32 to
# it next to the permanent neighbour entry. Ping and TCP both ways, CHECK. A network on eth0
# itself gets its own shim (one per parent). The last DEL removes the shim and then the VLAN.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (hostShim)"
if ! ip -n "$HOSTNS" link add link "$PARENT" name mtvlprobe type vlan id 4000 2>/dev/null; then
    skip "kernel without 802.1Q"
fi
ip -n "$HOSTNS" link del mtvlprobe
ip -n "$HOSTNS" addr add 10.54.0.5/24 dev "$PARENT"
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-shim-vlan" | .vlan = 54 | .hostShim = true | .ipam.subnet = "192.168.54.0/24" | .ipam.rangeStart = "192.168.54.100" | .ipam.rangeEnd = "192.168.54.199" | .ipam.gateway = "192.168.54.1"')
plain=$(fixture 10-mactrunk-bridge.conf '.name = "mt-shim-plain" | .hostShim = true | .ipam.subnet = "10.54.0.0/24" | .ipam.rangeStart = "10.54.0.100" | .ipam.rangeEnd = "10.54.0.199" | .ipam.gateway = "10.54.0.1"')
make_container_nses 3 C

cni ADD "$conf" cid=mt-shv-a ns="${C[1]}"
assert_ok "ADD A" || die "ADD A failed"
res_a=$OUT
ipa=$(jqo '.ips[0].address' | cut -d/ -f1)
cni ADD "$conf" cid=mt-shv-b ns="${C[2]}"
assert_ok "ADD B" || die "ADD B failed"
ipb=$(jqo '.ips[0].address' | cut -d/ -f1)
l=$(link_json "$HOSTNS" mts-eth0.54)
assert_eq "$(jq -r '"\(.linkinfo.info_kind) \(.linkinfo.info_data.mode) \(.link)"' <<<"$l")" "macvlan bridge eth0.54" "the shim sits on the VLAN link"
routes=$(ip -n "$HOSTNS" route show dev mts-eth0.54)
grep -qE "^$ipa proto 109 scope link src 10\.54\.0\.5 ?$" <<<"$routes" || fail "host route to A: $routes"
grep -qE "^10\.54\.0\.5 dev eth0 .*scope link" <<<"$(ip -n "${C[1]}" route show)" || fail "A's route to the host: $(ip -n "${C[1]}" route show)"

for i in 1 2; do
    ip=$([[ $i == 1 ]] && echo "$ipa" || echo "$ipb")
    nsx "$HOSTNS" ping -c1 -W3 "$ip" >/dev/null || fail "host -> container $i ($ip) over the VLAN shim"
    nsx "${C[$i]}" ping -c1 -W3 10.54.0.5 >/dev/null || fail "container $i -> host"
done
msg="over-vlan-$RANDOM"
(echo pong | nsx "${C[1]}" timeout 20 nc -l -N "$ipa" 5554 >"$T/in-a") &
wait_for 10 bash -c "ip netns exec ${C[1]} ss -Hltn 'sport = :5554' | grep -q ." || fail "nc in A did not listen"
reply=$(nsx "$HOSTNS" timeout 20 bash -c "exec 3<>/dev/tcp/$ipa/5554; echo '$msg' >&3; read -r line <&3; echo \"\$line\"")
wait
assert_eq "$(cat "$T/in-a")/$reply" "$msg/pong" "TCP host -> A"
(echo pong | nsx "$HOSTNS" timeout 20 nc -l -N 10.54.0.5 5555 >"$T/in-host") &
wait_for 10 bash -c "ip netns exec $HOSTNS ss -Hltn 'sport = :5555' | grep -q ." || fail "nc on the host did not listen"
reply=$(nsx "${C[1]}" timeout 20 bash -c "exec 3<>/dev/tcp/10.54.0.5/5555; echo '$msg' >&3; read -r line <&3; echo \"\$line\"")
wait
assert_eq "$(cat "$T/in-host")/$reply" "$msg/pong" "TCP A -> host"
cni CHECK "$(with_prev "$conf" "$res_a")" cid=mt-shv-a ns="${C[1]}"
assert_ok_empty "CHECK A"

# ---- a network on eth0 itself: a shim of its own
cni ADD "$plain" cid=mt-shv-c ns="${C[3]}"
assert_ok "ADD C on eth0" || die "ADD C failed"
ipc=$(jqo '.ips[0].address' | cut -d/ -f1)
assert_eq "$(ip -n "$HOSTNS" -o link show | grep -o ' mts-[^:@]*' | sort | tr '\n' ' ')" " mts-eth0  mts-eth0.54 " "one shim per parent"
nsx "$HOSTNS" ping -c1 -W3 "$ipc" >/dev/null || fail "host -> C on eth0"
cni DEL "$plain" cid=mt-shv-c ns="${C[3]}"
assert_ok_empty "DEL C"
assert_no_link "$HOSTNS" mts-eth0

# ---- DEL: the shim stays with B; the last DEL removes the shim, then the VLAN
cni DEL "$conf" cid=mt-shv-a ns="${C[1]}"
assert_ok_empty "DEL A"
assert_link "$HOSTNS" mts-eth0.54
nsx "$HOSTNS" ping -c1 -W3 "$ipb" >/dev/null || fail "host -> B after DEL A"
cni DEL "$conf" cid=mt-shv-b ns="${C[2]}"
assert_ok_empty "DEL B"
assert_no_link "$HOSTNS" mts-eth0.54
assert_no_link "$HOSTNS" eth0.54
[[ -n $(ls -A "$DATA/.mactrunk-shims" 2>/dev/null | grep -v '^lock$') ]] && fail "shim records left: $(ls -A "$DATA/.mactrunk-shims")"
assert_store_empty mt-shim-vlan
assert_host_clean
