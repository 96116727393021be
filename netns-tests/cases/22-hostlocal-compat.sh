# A store directory written by the reference host-local keeps working under mactrunk-ipam
# (and the other way round): no duplicate of host-local's addresses, DEL and GC release
# host-local's allocations (also legacy files holding only the container ID), host-local
# releases what mactrunk wrote, and mactrunk's DEL then still leaves a clean store. An
# allocation host-local makes after mactrunk indexed the store is released by mactrunk's
# DEL and returned (the same single address) by mactrunk's ADD retry (issue 8, finding 3).
[[ -x /usr/lib/cni/host-local ]] || skip "no /usr/lib/cni/host-local"
conf=$(fixture 10-mactrunk-bridge.conf '.cniVersion = "1.0.0"')
net=$(conf_name "$conf")
gcconf=$(conf_edit "$conf" '.cniVersion = "1.1.0"')
make_container_ns C
HL=/usr/lib/cni/host-local

for i in 1 2 3; do
    cni ADD "$conf" bin=$HL cid=mt-hl-$i ns="$C"
    assert_ok "host-local ADD $i"
done
assert_eq "$(store_ips "$net" | tr '\n' ' ')" "192.168.50.100 192.168.50.101 192.168.50.102 " "host-local's files"
printf 'mt-legacy' >"$DATA/$net/192.168.50.150" # pre-0.7 host-local format: ID only

cni ADD "$conf" bin=ipam cid=mt-mt-1 ns="$C"
assert_ok "mactrunk-ipam ADD on host-local's store" && {
    a=$(jqo '.ips[0].address')
    assert_eq "$a" 192.168.50.103/24 "mactrunk-ipam continues after host-local's last_reserved_ip"
}
assert_store_entry "$net" 192.168.50.103 mt-mt-1 eth0

cni DEL "$conf" bin=ipam cid=mt-hl-1 ns="$C"
assert_ok_empty "mactrunk-ipam DEL of host-local's allocation"
[[ -e $DATA/$net/192.168.50.100 ]] && fail "mactrunk-ipam DEL did not release host-local's 192.168.50.100"
cni DEL "$conf" bin=ipam cid=mt-legacy ns="$C"
assert_ok_empty "mactrunk-ipam DEL of a legacy (ID-only) file"
[[ -e $DATA/$net/192.168.50.150 ]] && fail "mactrunk-ipam DEL did not release the legacy file 192.168.50.150"

gcl=$(conf_edit "$gcconf" '.["cni.dev/valid-attachments"] = [{containerID: "mt-hl-3", ifname: "eth0"}, {containerID: "mt-mt-1", ifname: "eth0"}]')
cni GC "$gcl" bin=ipam
assert_ok_empty "mactrunk-ipam GC on host-local's store"
[[ -e $DATA/$net/192.168.50.101 ]] && fail "GC did not release host-local's 192.168.50.101 (mt-hl-2)"
assert_store_entry "$net" 192.168.50.102 mt-hl-3 eth0
assert_store_entry "$net" 192.168.50.103 mt-mt-1 eth0

# host-local releases what mactrunk wrote; mactrunk's own DEL afterwards is fine and clean
cni DEL "$conf" bin=$HL cid=mt-mt-1 ns="$C"
assert_ok_empty "host-local DEL of mactrunk's allocation"
[[ -e $DATA/$net/192.168.50.103 ]] && fail "host-local did not recognise mactrunk's file 192.168.50.103"
cni DEL "$conf" bin=ipam cid=mt-mt-1 ns="$C"
assert_ok_empty "mactrunk-ipam DEL after host-local released it"

# host-local allocates after mactrunk-ipam has used (and indexed) the directory. Running both
# plugins on one network at once is not recommended, but the owner index notices a foreign writer (its
# stamp in owners/.complete no longer matches the directory, and host-local rewrites
# last_reserved_ip.0 on every reservation): the next open scans once and repairs the index, so
# mactrunk-ipam's DEL releases host-local's allocation, a retried ADD of a host-local owner
# returns its one address, and the address is never handed out twice.
cni ADD "$conf" bin=$HL cid=mt-hl-4 ns="$C"
assert_ok "host-local ADD after mactrunk" && assert_jq '.ips[0].address != "192.168.50.102/24"' "host-local does not hand out mt-hl-3's address"
ip4=$(jqo '.ips[0].address' | cut -d/ -f1)
cni DEL "$conf" bin=ipam cid=mt-hl-4 ns="$C"
assert_ok_empty "mactrunk-ipam DEL of mt-hl-4 (allocated by host-local after mactrunk-ipam indexed the store)"
[[ -n $ip4 && -e $DATA/$net/$ip4 ]] && fail "mactrunk-ipam DEL did not release $ip4, which host-local allocated to mt-hl-4 after mactrunk-ipam had indexed the directory"
cni ADD "$conf" bin=$HL cid=mt-hl-6 ns="$C"
assert_ok "host-local ADD of mt-hl-6"
ip6=$(jqo '.ips[0].address' | cut -d/ -f1)
cni ADD "$conf" bin=ipam cid=mt-hl-6 ns="$C"
assert_ok "mactrunk-ipam ADD retry of host-local's mt-hl-6" && assert_json '.ips[0].address' "$ip6/24" "the retry returns host-local's address"
assert_eq "$(store_ips_of "$net" mt-hl-6 | tr '\n' ' ')" "$ip6 " "mt-hl-6 holds exactly one address"
cni ADD "$conf" bin=ipam cid=mt-mt-2 ns="$C"
assert_ok "mactrunk-ipam ADD next to host-local's later allocations"
assert_jq ".ips[0].address != \"$ip6/24\"" "mactrunk-ipam does not hand out host-local's $ip6"
cni DEL "$conf" bin=ipam cid=mt-mt-2 ns="$C"
cni DEL "$conf" bin=ipam cid=mt-hl-6 ns="$C"
assert_ok_empty "mactrunk-ipam DEL of mt-hl-6"
assert_store_free "$net" mt-hl-6
cni ADD "$conf" bin=$HL cid=mt-hl-5 ns="$C"
ip5=$(jqo '.ips[0].address' | cut -d/ -f1)
cni GC "$(conf_edit "$gcconf" '.["cni.dev/valid-attachments"] = [{containerID: "mt-hl-3", ifname: "eth0"}]')" bin=ipam
assert_ok_empty "mactrunk-ipam GC after host-local's ADDs"
[[ -n $ip5 && -e $DATA/$net/$ip5 ]] && fail "mactrunk-ipam GC did not release $ip5, which host-local allocated to mt-hl-5 after mactrunk-ipam had used the directory"
cni DEL "$conf" bin=ipam cid=mt-hl-3 ns="$C"
assert_store_empty "$net"
