# Exhaustion of a /29: 10.29.0.0/29 has 5 allocatable addresses (.2-.6; .1 is the
# gateway, .0/.7 network/broadcast). The 6th ADD fails with a clean code-101 error and
# leaves nothing behind; after one DEL the 6th ADD succeeds and gets the freed address.
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-exhaust" | .ipam |= {type, dataDir, subnet: "10.29.0.0/29", routes}')
net=$(conf_name "$conf")
make_container_nses 6 C

declare -A seen=()
for i in 1 2 3 4 5; do
    cni ADD "$conf" cid=mt-ex-$i ns="${C[$i]}"
    assert_ok "ADD $i of 5" || continue
    ip=$(jqo '.ips[0].address')
    [[ -n ${seen[$ip]:-} ]] && fail "ADD $i got $ip, already given to ${seen[$ip]}"
    seen[$ip]=mt-ex-$i
    assert_match "$ip" '^10\.29\.0\.[2-6]/29$' "ADD $i address"
    assert_json '.ips[0].gateway' 10.29.0.1 "ADD $i gateway"
done
assert_eq "$(store_count "$net")" 5 "IP files after 5 ADDs"

cni ADD "$conf" cid=mt-ex-6 ns="${C[6]}"
assert_code 101 '' "ADD 6 on the exhausted /29"
assert_clean_failure "$net" mt-ex-6 "${C[6]}"
assert_eq "$(store_count "$net")" 5 "IP files after the failed ADD"

# recovery: free .4's holder, then ADD 6 gets exactly that address
holder=${seen[10.29.0.4/29]:-}
[[ -n $holder ]] || die "nobody holds 10.29.0.4"
idx=${holder##*-}
cni DEL "$conf" cid="$holder" ns="${C[$idx]}"
assert_ok_empty "DEL $holder"
cni ADD "$conf" cid=mt-ex-6 ns="${C[6]}"
assert_ok "ADD 6 after one DEL" && assert_json '.ips[0].address' 10.29.0.4/29 "ADD 6 after one DEL"
assert_addr "${C[6]}" eth0 10.29.0.4/29
assert_store_entry "$net" 10.29.0.4 mt-ex-6 eth0

for i in 1 2 3 4 5 6; do
    cni DEL "$conf" cid=mt-ex-$i ns="${C[$i]}"
    assert_ok_empty "final DEL $i"
done
assert_store_empty "$net"
