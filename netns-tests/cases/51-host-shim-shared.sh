# hostShim shared by two networks on one parent, with every kind of address: net1 uses the
# in-process IPAM (a dynamic and a static address), net2 delegates to the reference host-local.
# One shim for all, one record listing each attachment with its routes; the host reaches each
# container and each container the host. DEL of one attachment removes its route and neighbour
# entry only; the last DEL removes the shim. A link named like the shim that mactrunk did not
# create is code 7 naming hostShim, and is left as it is.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (hostShim)"
[[ -x /usr/lib/cni/host-local ]] || die "no /usr/lib/cni/host-local (containernetworking-plugins)"
ip -n "$HOSTNS" addr add 10.51.0.5/24 dev "$PARENT"
net1=$(fixture 10-mactrunk-bridge.conf '.name = "mt-shim1" | .hostShim = {} | .ipam.subnet = "10.51.0.0/24" | .ipam.rangeStart = "10.51.0.100" | .ipam.rangeEnd = "10.51.0.149" | .ipam.gateway = "10.51.0.1"')
net2=$(conf_edit "$net1" '.name = "mt-shim2" | .cniVersion = "1.0.0" | .ipam.type = "host-local" | .ipam.rangeStart = "10.51.0.150" | .ipam.rangeEnd = "10.51.0.199"')
make_container_nses 3 C

cni ADD "$net1" cid=mt-sh-a ns="${C[1]}"
assert_ok "ADD net1 A" || die "ADD A failed"
ipa=$(jqo '.ips[0].address' | cut -d/ -f1)
cni ADD "$net2" cid=mt-sh-b ns="${C[2]}"
assert_ok "ADD net2 B (host-local)" || die "ADD B failed"
ipb=$(jqo '.ips[0].address' | cut -d/ -f1)
[[ $ipb == 10.51.0.15[0-9] ]] || fail "B's address $ipb is not host-local's"
cni ADD "$(conf_edit "$net1" '.runtimeConfig = {"ips": ["10.51.0.42/24"]}')" cid=mt-sh-c ns="${C[3]}"
assert_ok "ADD net1 C (static)" && assert_json '.ips[0].address' 10.51.0.42/24 "static address"

assert_eq "$(ip -n "$HOSTNS" -o link show | grep -c ' mts-')" 1 "shims on the parent"
assert_eq "$(jq -r '[.users[] | "\(.network)/\(.containerID)=\(.routes[0].ip)"] | sort | join(" ")' "$DATA/.mactrunk-shims/mts-eth0.json")" \
    "mt-shim1/mt-sh-a=$ipa mt-shim1/mt-sh-c=10.51.0.42 mt-shim2/mt-sh-b=$ipb" "record users"
for i in 1 2 3; do
    ip=$([[ $i == 1 ]] && echo "$ipa" || { [[ $i == 2 ]] && echo "$ipb" || echo 10.51.0.42; })
    nsx "$HOSTNS" ping -c1 -W2 "$ip" >/dev/null || fail "host -> container $i ($ip)"
    nsx "${C[$i]}" ping -c1 -W2 10.51.0.5 >/dev/null || fail "container $i -> host"
done

# ---- DEL of one attachment takes its route only
cni DEL "$net1" cid=mt-sh-a ns="${C[1]}"
assert_ok_empty "DEL A"
routes=$(ip -n "$HOSTNS" route show dev mts-eth0 | awk '{print $1}' | sort | tr '\n' ' ')
assert_eq "$routes" "$(printf '%s\n' 10.51.0.42 "$ipb" | sort | tr '\n' ' ')" "routes on the shim after DEL A"
ip -n "$HOSTNS" neigh show dev mts-eth0 | grep -q "^$ipa " && fail "A's neighbour entry left"
nsx "$HOSTNS" ping -c1 -W2 "$ipb" >/dev/null || fail "host -> B after DEL A"
cni DEL "$net2" cid=mt-sh-b ns="${C[2]}"
assert_ok_empty "DEL B (host-local)"
[[ -e $DATA/mt-shim2/$ipb ]] && fail "host-local still holds $ipb"
assert_link "$HOSTNS" mts-eth0
cni DEL "$net1" cid=mt-sh-c ns="${C[3]}"
assert_ok_empty "DEL C"
assert_no_link "$HOSTNS" mts-eth0
[[ -e $DATA/.mactrunk-shims/mts-eth0.json ]] && fail "record left"
assert_eq "$(ip -n "$HOSTNS" route show proto 109)" "" "mactrunk routes left"
assert_store_empty mt-shim1

# ---- a link called like the shim that mactrunk did not create: never touched
ip -n "$HOSTNS" link add mts-eth0 link "$PARENT" type macvlan mode bridge
idx=$(link_json "$HOSTNS" mts-eth0 | jq -r .ifindex)
cni ADD "$net1" cid=mt-sh-a ns="${C[1]}"
assert_code 7 '^hostShim: link "mts-eth0" exists and was not created by mactrunk' "foreign shim"
assert_ns_clean "${C[1]}"
assert_store_free mt-shim1 mt-sh-a
assert_eq "$(link_json "$HOSTNS" mts-eth0 | jq -r '"\(.ifindex) \(.flags | index("UP") != null)"')" "$idx false" "the foreign link, untouched"
cni DEL "$net1" cid=mt-sh-a ns="${C[1]}"
assert_ok_empty "DEL after the refused ADD"
assert_link "$HOSTNS" mts-eth0
ip -n "$HOSTNS" link del mts-eth0
assert_host_clean
