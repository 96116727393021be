# hostShim and GC: a GC without cni.dev/valid-attachments changes nothing; one that lists a
# single attachment removes the others' routes and neighbour entries, and a route of mactrunk's
# (proto 109) on the shim that no attachment claims, and keeps the shim and the listed
# container reachable; an empty list removes the shim with its last route and its record.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (hostShim)"
ip -n "$HOSTNS" addr add 192.168.50.5/24 dev "$PARENT"
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-shim-gc" | .hostShim = true')
net=$(conf_name "$conf")
make_container_nses 3 C
for i in 1 2 3; do
    cni ADD "$conf" cid=mt-sgc-$i ns="${C[$i]}"
    assert_ok "ADD $i" || die "ADD $i failed"
    ip[$i]=$(jqo '.ips[0].address' | cut -d/ -f1)
done
ip -n "$HOSTNS" route add 192.168.50.250/32 dev mts-eth0 proto 109
gc() { cni GC "$(conf_edit "$conf" "$1")" -CNI_IFNAME; }
shim_routes() { ip -n "$HOSTNS" route show dev mts-eth0 | awk '{print $1}' | sort | tr '\n' ' '; }

gc '.'
assert_ok_empty "GC without the key"
assert_eq "$(shim_routes)" "${ip[1]} ${ip[2]} ${ip[3]} 192.168.50.250 " "routes after GC without the key"

gc '.["cni.dev/valid-attachments"] = [{containerID: "mt-sgc-2", ifname: "eth0"}]'
assert_ok_empty "GC keeping 2"
assert_eq "$(shim_routes)" "${ip[2]} " "routes after GC keeping 2"
assert_eq "$(ip -n "$HOSTNS" neigh show dev mts-eth0 | awk '{print $1}' | tr '\n' ' ')" "${ip[2]} " "neighbour entries after GC"
assert_eq "$(jq -r '[.users[].containerID] | join(" ")' "$DATA/.mactrunk-shims/mts-eth0.json")" mt-sgc-2 "record users"
nsx "$HOSTNS" ping -c1 -W2 "${ip[2]}" >/dev/null || fail "host -> 2 after GC"

gc '.["cni.dev/valid-attachments"] = []'
assert_ok_empty "GC keeping none"
assert_no_link "$HOSTNS" mts-eth0
[[ -e $DATA/.mactrunk-shims/mts-eth0.json ]] && fail "record left after GC"
assert_store_empty "$net"
for i in 1 2 3; do
    cni DEL "$conf" cid=mt-sgc-$i ns="${C[$i]}"
    assert_ok_empty "DEL $i after GC"
done
assert_host_clean
