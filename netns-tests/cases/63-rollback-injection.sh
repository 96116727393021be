# Failure injection for ADD's rollback: each step after the address was allocated is made
# to fail, and afterwards nothing may be left: no link in the container (the container's
# own links survive), no new link in the host netns, no address held for the container,
# and the next ADD of the same container works. Steps:
#   create link   - a second passthru macvlan on a parent that has one (kernel: EINVAL)
#   link up       - a static MAC already used by a running macvlan on the parent (EADDRINUSE)
#   IPv6 DAD      - ipv6Dad "wait" and the address already answered by the peer of the parent
#                   (code 102; the address stays quarantined, which is the one record left)
#   routes        - a route via a gateway that is not on the link (ENETUNREACH)
#   second range  - dual stack where the second range set is exhausted (nothing half-held)
# Also checked: a failure before the allocation (mtu above the parent's, a master that
# does not exist) never allocates.
base=$(fixture 10-mactrunk-bridge.conf '.cniVersion = "1.1.0"')
net=$(conf_name "$base")
make_container_nses 3 C

# held: number of IP records in the store
held() { store_count "$net"; }

# inject LABEL CONF CID NS CODES MSG-RE: the ADD must fail with CODES and leave nothing
inject() {
    local before
    before=$(held)
    cni ADD "$2" cid="$3" ns="$4"
    assert_code "$5" "$6" "$1"
    assert_clean_failure "$net" "$3" "$4"
    assert_eq "$(held)" "$before" "$1: IP records in the store"
    [[ -z $(ls -A "$DATA/$net/.tmp" 2>/dev/null) ]] || fail "$1: temp files left"
}

# --- create: a second passthru attachment on the same parent
pt=$(conf_edit "$base" '.mode = "passthru"')
cni ADD "$pt" cid=mt-inj-pt1 ns="${C[1]}"
assert_ok "first passthru ADD"
inject "second passthru macvlan (create fails)" "$pt" mt-inj-pt2 "${C[2]}" 100 'creating macvlan'
cni DEL "$pt" cid=mt-inj-pt1 ns="${C[1]}"
assert_ok_empty "DEL of the first passthru"

# --- link up: a MAC that is already in use on the parent
mac=$(conf_edit "$base" '.mac = "02:00:5e:10:00:01"')
cni ADD "$mac" cid=mt-inj-mac1 ns="${C[1]}"
assert_ok "first ADD with the static MAC"
inject "duplicate MAC (link up fails)" "$mac" mt-inj-mac2 "${C[2]}" 100 'up|in use'
cni DEL "$mac" cid=mt-inj-mac1 ns="${C[1]}"
assert_ok_empty "DEL of the first MAC user"

# --- IPv6 DAD: the peer of the parent answers for the address
nsx "$HOSTNS" sysctl -qw net.ipv6.conf.$PARENT_PEER.disable_ipv6=0
nsx "$HOSTNS" ip addr add fd00:63::5/64 dev "$PARENT_PEER" nodad
dad=$(conf_edit "$base" '.ipv6Dad = "wait" | .ipam |= (del(.subnet, .rangeStart, .rangeEnd, .gateway)
    | .ranges = [[{subnet: "fd00:63::/64", rangeStart: "fd00:63::5", rangeEnd: "fd00:63::5"}]] | .routes = [])')
before=$(held)
cni ADD "$dad" cid=mt-inj-dad ns="${C[2]}"
assert_code 102 '^fd00:63::5 is in use on the network: IPv6 duplicate address detection' "IPv6 address in use on the network (DAD fails)"
assert_clean_failure "$net" mt-inj-dad "${C[2]}"
assert_eq "$(cat "$DATA/$net/fd00:63::5")" "conflict:ipv6-dad" "DAD: the address is quarantined"
assert_eq "$(held)" "$((before + 1))" "DAD: IP records in the store (the quarantine)"
nsx "$HOSTNS" ip addr del fd00:63::5/64 dev "$PARENT_PEER"
env -i "$NT_BIN_DIR/mactrunk-ipam" release --data-dir "$DATA" "$net" --ip fd00:63::5 >/dev/null ||
    fail "releasing the quarantined fd00:63::5"

# --- routes: a gateway that is not on the link
rt=$(conf_edit "$base" '.ipam.routes = [{dst: "0.0.0.0/0"}, {dst: "10.99.0.0/16", gw: "172.31.255.1"}]')
inject "unreachable route gateway (route fails)" "$rt" mt-inj-rt "${C[2]}" 100 'route'

# --- dual stack whose second range set is full: the first set's address is given back
full=$(conf_edit "$base" '.ipam |= (del(.subnet, .rangeStart, .rangeEnd, .gateway)
    | .ranges = [[{subnet: "10.63.0.0/24"}], [{subnet: "fd00:64::/120", rangeStart: "fd00:64::10", rangeEnd: "fd00:64::10"}]]
    | .routes = [])')
cni ADD "$full" cid=mt-inj-full1 ns="${C[1]}"
assert_ok "dual-stack ADD taking the only v6 address"
inject "second range set exhausted" "$full" mt-inj-full2 "${C[2]}" 101 ''
cni DEL "$full" cid=mt-inj-full1 ns="${C[1]}"
assert_ok_empty "DEL of the dual-stack attachment"

# --- failures before the allocation never allocate
big=$(conf_edit "$base" '.mtu = 9000')
inject "mtu above the parent's" "$big" mt-inj-mtu "${C[2]}" 7 '^mtu'
nom=$(conf_edit "$base" '.master = "mtpnone0"')
inject "master missing" "$nom" mt-inj-nom "${C[2]}" 7 '^master'

# --- the container's own links are never touched, and the same IDs work afterwards
ip -n "${C[3]}" link add eth1 type veth peer name mtrpeer
_links "${C[3]}" >"$T/ns/${C[3]}.links"
inject "unreachable route gateway, container with links of its own" "$rt" mt-inj-own "${C[3]}" 100 'route'
assert_link "${C[3]}" eth1
for cid in mt-inj-pt2 mt-inj-mac2 mt-inj-rt; do
    cni ADD "$base" cid=$cid ns="${C[2]}"
    assert_ok "ADD of $cid after its failed ADD"
    cni DEL "$base" cid=$cid ns="${C[2]}"
    assert_ok_empty "DEL of $cid"
    assert_ns_clean "${C[2]}"
done
assert_store_empty "$net"
assert_host_clean
