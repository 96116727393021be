# 30 concurrent ADDs on one network: all succeed, 30 distinct addresses, each recorded in the
# store for its own container and present on its link; then 30 concurrent DELs leave the
# store empty (only lock, last_reserved_ip.*, an empty owners/).
# lockTimeout 60 s: the 30 ADDs queue at the store lock one after the other, which under
# the VM's software emulation on a loaded machine takes longer than the default 10 s; the
# case is about what the queue produces, not how fast.
N=30
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-concurrent" | .ipam |= {type, dataDir, subnet: "10.7.0.0/24", routes, lockTimeout: 60000}')
net=$(conf_name "$conf")
make_container_nses $N C

for i in $(seq 1 $N); do
    (cni ADD "$conf" cid=mt-conc-$i ns="${C[$i]}" && printf '%s\n%s\n' "$RC" "$OUT" >"$T/add-$i") 2>>"$T/concurrent.log" &
done
wait

declare -A owner=()
ok=0
for i in $(seq 1 $N); do
    RC=$(head -n1 "$T/add-$i" 2>/dev/null)
    OUT=$(tail -n +2 "$T/add-$i" 2>/dev/null)
    CTX="ADD $i"
    assert_ok "concurrent ADD" || continue
    ok=$((ok + 1))
    ip=$(jqo '.ips[0].address')
    if [[ -n ${owner[$ip]:-} ]]; then
        fail "address $ip handed out twice: to mt-conc-$i and ${owner[$ip]}"
        continue
    fi
    owner[$ip]=mt-conc-$i
    assert_addr "${C[$i]}" eth0 "$ip"
    assert_store_entry "$net" "${ip%/*}" mt-conc-$i eth0
done
CTX=""
assert_eq "$ok" $N "successful concurrent ADDs"
assert_eq "${#owner[@]}" $N "distinct addresses"
assert_eq "$(store_count "$net")" $N "IP files in the store"
assert_host_clean

for i in $(seq 1 $N); do
    (cni DEL "$conf" cid=mt-conc-$i ns="${C[$i]}" && printf '%s\n%s\n' "$RC" "$OUT" >"$T/del-$i") 2>>"$T/concurrent.log" &
done
wait
for i in $(seq 1 $N); do
    RC=$(head -n1 "$T/del-$i" 2>/dev/null)
    OUT=$(tail -n +2 "$T/del-$i" 2>/dev/null)
    CTX="DEL $i" assert_ok_empty "concurrent DEL"
    assert_ns_clean "${C[$i]}"
done
assert_store_empty "$net"
assert_host_clean
