# The same container ID and CNI_IFNAME ADDed into a second netns while the first
# attachment lives: refused with code 4 (as host-local refuses a duplicate), with nothing
# created in the second netns, and the first attachment's address and link untouched (a
# failed ADD gives back only what it allocated itself). The same for mactrunk-ipam alone.
# A retried ADD into the first netns still gets its own address back (idempotent).
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_nses 3 C

cni ADD "$conf" cid=mt-dup-1 ns="${C[1]}"
assert_ok "ADD into the first netns"
ip1=$(jqo '.ips[0].address')
cni ADD "$conf" cid=mt-dup-1 ns="${C[2]}"
assert_code 4 'another network namespace' "ADD of the same attachment into a second netns"
assert_ns_clean "${C[2]}"
assert_eq "$(ns_addrs "${C[1]}" eth0)" "$ip1" "the first attachment's address on its link"
assert_eq "$(store_ips_of "$net" mt-dup-1)" "${ip1%/*}" "the first attachment's address in the store"

# mactrunk-ipam alone refuses the same way
cni ADD "$conf" cid=mt-dup-1 ns="${C[3]}" bin=ipam
assert_code 4 'another network namespace' "mactrunk-ipam ADD of the same attachment, another netns"
assert_eq "$(store_ips_of "$net" mt-dup-1)" "${ip1%/*}" "the store after mactrunk-ipam's refusal"

# the first netns: CHECK still passes; a new attachment there works too
cni CHECK "$(with_prev "$conf" "$(jq -n --arg a "$ip1" --arg ns "/run/netns/${C[1]}" '{cniVersion: "1.1.0", interfaces: [{name: "eth0", sandbox: $ns}], ips: [{address: $a, interface: 0}]}')")" cid=mt-dup-1 ns="${C[1]}"
assert_ok_empty "CHECK of the first attachment"

# after the first attachment's DEL, the second netns may have it
cni DEL "$conf" cid=mt-dup-1 ns="${C[1]}"
assert_ok_empty "DEL of the first attachment"
cni ADD "$conf" cid=mt-dup-1 ns="${C[2]}"
assert_ok "ADD into the second netns after the DEL"
cni DEL "$conf" cid=mt-dup-1 ns="${C[2]}"
assert_ok_empty "DEL"
assert_store_empty "$net"
