# hostShim: the host reaches its own macvlan containers and they reach it, v4 and v6, ping and
# TCP both ways, with strict rp_filter everywhere in the host (all, default, the parent). The
# "host" has its own addresses on the parent, as a node has; the veth peer is moved into a netns
# of its own: a LAN host on that network. The shim mts-eth0 is a bridge-mode macvlan without an
# address, with arp_ignore 8; the host routes each container address through it (/32, /128) with
# the host's own address as source, behind a permanent neighbour entry, so the host never ARPs from
# the shim: the LAN host's neighbour entry for the host stays the parent's MAC (without that, one
# ARP request from the shim rewrites it), and it still reaches the host and the containers. CHECK
# verifies the shim's route; DEL of the last user removes routes, shim and record; ipvlan with
# hostShim is code 7 naming it.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (hostShim)"
ip -n "$HOSTNS" addr add 10.20.0.5/24 dev "$PARENT"
ip -n "$HOSTNS" addr add fd00:20::5/64 dev "$PARENT" nodad
nsx "$HOSTNS" sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1 "net.ipv4.conf.$PARENT.rp_filter=1"
make_container_ns LAN
ip -n "$HOSTNS" link set "$PARENT_PEER" netns "$LAN"
ip -n "$LAN" link set "$PARENT_PEER" up
ip -n "$LAN" addr add 10.20.0.7/24 dev "$PARENT_PEER"
ip -n "$LAN" addr add fd00:20::7/64 dev "$PARENT_PEER" nodad
parent_mac=$(link_json "$HOSTNS" "$PARENT" | jq -r .address)

conf=$(fixture 20-mactrunk-dualstack.conf '.name = "mt-shim" | .hostShim = true | .ipv6Dad = "off"')
net=$(conf_name "$conf")
make_container_nses 2 C

cni ADD "$conf" cid=mt-shim-a ns="${C[1]}"
assert_ok "ADD A" || die "ADD A failed"
res_a=$OUT
read -r a4 a6 mac_a < <(jqo '[(.ips[].address | split("/")[0]), .interfaces[0].mac] | join(" ")')

# ---- the shim: a bridge-mode macvlan on the parent, tagged, up, no address
l=$(link_json "$HOSTNS" mts-eth0)
assert_eq "$(jq -r '[.linkinfo.info_kind, .linkinfo.info_data.mode, .link, .ifalias, (.flags | index("UP") != null)] | join(" ")' <<<"$l")" \
    "macvlan bridge $PARENT mactrunk:shim:$PARENT true" "shim link"
shim_mac=$(jq -r .address <<<"$l")
[[ $shim_mac == 06:* ]] || fail "shim MAC $shim_mac is not the derived 06:..."
assert_eq "$(ip -n "$HOSTNS" -o addr show dev mts-eth0 | wc -l)" 0 "addresses on the shim"
assert_eq "$(nsx "$HOSTNS" cat /proc/sys/net/ipv4/conf/mts-eth0/arp_ignore)" 8 "shim arp_ignore"
assert_eq "$(nsx "$HOSTNS" cat /proc/sys/net/ipv6/conf/mts-eth0/accept_ra)" 0 "shim accept_ra"
assert_eq "$(nsx "$HOSTNS" cat "/proc/sys/net/ipv4/conf/$PARENT/rp_filter")" 1 "the parent's rp_filter is the host's own"
routes=$(ip -n "$HOSTNS" route show dev mts-eth0; ip -6 -n "$HOSTNS" route show dev mts-eth0)
grep -qxE "$a4 proto 109 scope link src 10\.20\.0\.5 ?" <<<"$routes" || fail "no /32 to $a4 with src 10.20.0.5: $routes"
grep -qE "^$a6 proto 109 .*src fd00:20::5 " <<<"$routes" || fail "no /128 to $a6 with src fd00:20::5: $routes"
neigh=$(ip -n "$HOSTNS" neigh show dev mts-eth0)
grep -qxE "$a4 lladdr $mac_a PERMANENT ?" <<<"$neigh" || fail "host neighbour $a4: $neigh"
grep -qxE "10\.20\.0\.5 lladdr $shim_mac PERMANENT ?" <<<"$(ip -n "${C[1]}" neigh show dev eth0)" || fail "container neighbour for the host: $(ip -n "${C[1]}" neigh show dev eth0)"
assert_eq "$(jq -r '.users | length' "$DATA/.mactrunk-shims/mts-eth0.json")" 1 "record users"

# ---- host <-> container: ping both ways, v4 and v6
nsx "$HOSTNS" ping -c1 -W2 "$a4" >/dev/null || fail "host -> A ($a4) ping"
nsx "$HOSTNS" ping -c1 -W2 "$a6" >/dev/null || fail "host -> A ($a6) ping"
nsx "${C[1]}" ping -c1 -W2 10.20.0.5 >/dev/null || fail "A -> host (10.20.0.5) ping"
nsx "${C[1]}" ping -c1 -W2 fd00:20::5 >/dev/null || fail "A -> host (fd00:20::5) ping"

# ---- TCP both ways: a listener in A, connected from the host; a listener on the host, from A
tcp() { # tcp LISTEN-NS LISTEN-IP CONNECT-NS WHAT
    local msg="hello-$RANDOM"
    (echo "pong" | nsx "$1" timeout 10 nc -l -N "$2" 5550 >"$T/received") &
    listening() { nsx "$1" ss -Hltn "sport = :5550" | grep -q .; }
    wait_for 5 listening "$1" || fail "$4: nc did not start listening"
    local reply
    reply=$(nsx "$3" timeout 10 bash -c "exec 3<>/dev/tcp/$2/5550; echo '$msg' >&3; read -r line <&3; echo \"\$line\"")
    wait
    assert_eq "$(cat "$T/received")" "$msg" "$4: message over TCP"
    assert_eq "$reply" pong "$4: reply over TCP"
}
tcp "${C[1]}" "$a4" "$HOSTNS" "host -> A"
tcp "$HOSTNS" 10.20.0.5 "${C[1]}" "A -> host"

# ---- ARP flux: the shim never speaks ARP for the host's address
nsx "$LAN" ping -c1 -W2 10.20.0.5 >/dev/null || fail "LAN -> host ping"
ip -n "$LAN" neigh change 10.20.0.5 dev "$PARENT_PEER" nud stale
sleep 1.1 # past the LAN host's locktime: an ARP request from the shim would now rewrite its entry
cni ADD "$conf" cid=mt-shim-b ns="${C[2]}"
assert_ok "ADD B" || die "ADD B failed"
b4=$(jqo '.ips[0].address | split("/")[0]')
nsx "$HOSTNS" ping -c1 -W2 "$b4" >/dev/null || fail "host -> B ($b4) ping"
assert_match "$(ip -n "$LAN" neigh show 10.20.0.5 dev "$PARENT_PEER")" "lladdr $parent_mac " "the LAN host's entry for the host"
ip -n "$HOSTNS" neigh show dev mts-eth0 | grep -v PERMANENT | grep -q . && fail "the host resolved something on the shim: $(ip -n "$HOSTNS" neigh show dev mts-eth0)"
nsx "$LAN" ping -c1 -W2 10.20.0.5 >/dev/null || fail "LAN -> host ping with the shim"
nsx "$LAN" ping -c1 -W2 "$a4" >/dev/null || fail "LAN -> A ping"
assert_eq "$(ip -n "$HOSTNS" -o link show | grep -c ' mts-')" 1 "one shim for both"

# ---- CHECK verifies the shim's route
cni CHECK "$(with_prev "$conf" "$res_a")" cid=mt-shim-a ns="${C[1]}"
assert_ok_empty "CHECK A"
ip -n "$HOSTNS" route del "$a4/32" dev mts-eth0
cni CHECK "$(with_prev "$conf" "$res_a")" cid=mt-shim-a ns="${C[1]}"
assert_code 104 "hostShim: the host route to $a4 on mts-eth0 is missing" "CHECK without the route"

# ---- ipvlan with hostShim: code 7 naming it, nothing left
make_container_ns IV
cni ADD "$(conf_edit "$conf" '.linkType = "ipvlan" | del(.mode)')" cid=mt-shim-iv ns="$IV"
assert_code 7 "^hostShim: needs linkType macvlan" "ipvlan with hostShim"
assert_ns_clean "$IV"

# ---- DEL: the shim stays while B uses it; the last DEL takes routes, shim and record
cni DEL "$conf" cid=mt-shim-a ns="${C[1]}"
assert_ok_empty "DEL A"
assert_link "$HOSTNS" mts-eth0
grep -q "$a6" <<<"$(ip -6 -n "$HOSTNS" route show dev mts-eth0)" && fail "A's /128 left after DEL A"
ip -n "$HOSTNS" neigh show dev mts-eth0 | grep -q "$a4 " && fail "A's neighbour entry left after DEL A"
nsx "$HOSTNS" ping -c1 -W2 "$b4" >/dev/null || fail "host -> B after DEL A"
cni DEL "$conf" cid=mt-shim-b ns="${C[2]}"
assert_ok_empty "DEL B"
assert_no_link "$HOSTNS" mts-eth0
[[ -e $DATA/.mactrunk-shims/mts-eth0.json ]] && fail "shim record left: $(cat "$DATA/.mactrunk-shims/mts-eth0.json")"
assert_eq "$(ip -n "$HOSTNS" route show proto 109; ip -6 -n "$HOSTNS" route show proto 109)" "" "mactrunk routes left"
cni DEL "$conf" cid=mt-shim-b ns="${C[2]}"
assert_ok_empty "DEL B again"
assert_store_empty "$net"
ip -n "$LAN" link set "$PARENT_PEER" netns "$HOSTNS"
assert_host_clean
