# Two networks, one container netns, the same CNI_IFNAME: B's ADD fails (the name is
# taken by A's link), and B's DEL (which a runtime sends after a failed ADD) must leave
# A's eth0, its address and A's store alone: a DEL removes only the link its own network
# created for this container (recognised by its tag, IFLA_IFALIAS).
confA=$(fixture 10-mactrunk-bridge.conf '.name = "net-a"')
confB=$(fixture 10-mactrunk-bridge.conf '.name = "net-b" | .ipam.subnet = "192.168.60.0/24" | .ipam.rangeStart = "192.168.60.100" | .ipam.rangeEnd = "192.168.60.199" | .ipam.gateway = "192.168.60.1"')
make_container_ns C

cni ADD "$confA" cid=mt-own-c ns="$C"
assert_ok "ADD network A"
ipA=$(jqo '.ips[0].address')
cni ADD "$confB" cid=mt-own-c ns="$C"
assert_code 4 'already exists' "ADD network B, same ifname"
cni DEL "$confB" cid=mt-own-c ns="$C"
assert_ok_empty "DEL network B"
assert_link "$C" eth0
assert_eq "$(ns_addrs "$C" eth0)" "$ipA" "A's address on eth0 after B's DEL"
assert_eq "$(store_count net-a)" 1 "A's store after B's DEL"
assert_store_empty net-b

# a different container ID of the same network does not own it either
cni DEL "$confA" cid=mt-own-other ns="$C"
assert_ok_empty "DEL of another container ID"
assert_link "$C" eth0

# a link of that name that mactrunk did not make (a veth) is never deleted
make_container_ns D
ip -n "$D" link add eth0 type veth peer name mtownpeer
_links "$D" >"$T/ns/$D.links"
cni DEL "$confA" cid=mt-own-d ns="$D"
assert_ok_empty "DEL where eth0 is the container's own veth"
assert_eq "$(link_json "$D" eth0 | jq -r .linkinfo.info_kind)" veth "the veth eth0"

# A's own DEL removes it
cni DEL "$confA" cid=mt-own-c ns="$C"
assert_ok_empty "DEL network A"
assert_no_link "$C" eth0
assert_store_empty net-a

# the one untagged macvlan a DEL removes: down and without addresses, as an ADD killed
# between creating the link and tagging it leaves it (the retried ADD needs the name)
make_container_ns E
ip -n "$HOSTNS" link add link "$PARENT" name mtblank type macvlan mode bridge
ip -n "$HOSTNS" link set mtblank netns "$E"
ip -n "$E" link set mtblank name eth0
cni DEL "$confA" cid=mt-own-e ns="$E"
assert_ok_empty "DEL with a blank untagged macvlan eth0"
assert_no_link "$E" eth0
# but not once it is up or has an address
for how in up addr; do
    ip -n "$HOSTNS" link add link "$PARENT" name mtblank type macvlan mode bridge
    ip -n "$HOSTNS" link set mtblank netns "$E"
    ip -n "$E" link set mtblank name eth0
    case $how in
        up) ip -n "$E" link set eth0 up ;;
        addr) ip -n "$E" addr add 192.168.50.250/24 dev eth0 ;;
    esac
    cni DEL "$confA" cid=mt-own-e ns="$E"
    assert_ok_empty "DEL with an untagged macvlan eth0 ($how)"
    assert_link "$E" eth0
    ip -n "$E" link del eth0
done
