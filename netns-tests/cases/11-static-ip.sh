# Static IPs with conf/30-mactrunk-static-ip.conflist (capabilities ips + mac): from
# runtimeConfig.ips, args.cni.ips and CNI_ARGS IP=, with the priority
# runtimeConfig > args > CNI_ARGS (the first non-empty source wins); an address outside
# [rangeStart, rangeEnd] but inside the subnet is allowed; one already held is code 102;
# the gateway, the broadcast address and an address outside the subnet are refused cleanly.
list=$(fixture 30-mactrunk-static-ip.conflist)
net=$(conf_name "$list")
plain=$(flatten "$list")

n=0
try_add() { # try_add CONF [cni options...]: ADD in a fresh netns, sets CID, NS
    n=$((n + 1))
    CID=mt-static-$n
    make_container_ns NS
    local c=$1
    shift
    cni ADD "$c" cid=$CID ns="$NS" "$@"
}
del_last() {
    cni DEL "$1" cid=$CID ns="$NS"
    assert_ok_empty "DEL $CID"
}

# runtimeConfig.ips (capability "ips"), outside the dynamic range .100-.199
rc=$(flatten "$list" 0 '{"ips": ["10.30.0.50/24"]}')
jq -e '.runtimeConfig.ips == ["10.30.0.50/24"]' "$rc" >/dev/null || fail "flatten did not inject runtimeConfig.ips"
try_add "$rc"
assert_ok "ADD with runtimeConfig.ips" && assert_json '.ips[0].address' 10.30.0.50/24 "runtimeConfig.ips"
assert_addr "$NS" eth0 10.30.0.50/24
assert_store_entry "$net" 10.30.0.50 "$CID" eth0
held_ns=$NS held_cid=$CID

# the same address again, for another container: 102, nothing left behind
try_add "$rc"
assert_code 102 '' "ADD of an address held by another attachment"
assert_clean_failure "$net" "$CID" "$NS"
assert_store_entry "$net" 10.30.0.50 "$held_cid" eth0

# args.cni.ips (no prefix length: the subnet's)
a=$(conf_edit "$plain" '.args.cni.ips = ["10.30.0.60"]')
try_add "$a"
assert_ok "ADD with args.cni.ips" && assert_json '.ips[0].address' 10.30.0.60/24 "args.cni.ips"
del_last "$a"

# CNI_ARGS IP= (alone, and with IgnoreUnknown and other keys the way runtimes send it)
try_add "$plain" args="IP=10.30.0.70"
assert_ok "ADD with CNI_ARGS IP=" && assert_json '.ips[0].address' 10.30.0.70/24 "CNI_ARGS IP="
del_last "$plain"
try_add "$plain" args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.30.0.71"
assert_ok "ADD with CNI_ARGS IgnoreUnknown=1;...;IP=" && assert_json '.ips[0].address' 10.30.0.71/24 "CNI_ARGS IP= among others"
del_last "$plain"

# priority: all three -> runtimeConfig; args + CNI_ARGS -> args
all3=$(conf_edit "$(flatten "$list" 0 '{"ips": ["10.30.0.80/24"]}')" '.args.cni.ips = ["10.30.0.81"]')
try_add "$all3" args="IP=10.30.0.82"
assert_ok "ADD with all three sources" && {
    assert_json '.ips | length' 1 "all three sources: one address"
    assert_json '.ips[0].address' 10.30.0.80/24 "all three sources: runtimeConfig wins"
}
assert_eq "$(store_ips_of "$net" "$CID" | tr '\n' ' ')" "10.30.0.80 " "all three sources: store holds only the runtimeConfig address"
del_last "$all3"
try_add "$a" args="IP=10.30.0.82"
assert_ok "ADD with args + CNI_ARGS" && {
    assert_json '.ips | length' 1 "args + CNI_ARGS: one address"
    assert_json '.ips[0].address' 10.30.0.60/24 "args + CNI_ARGS: args wins"
}
del_last "$a"
# an empty runtimeConfig.ips is no source: args wins
empty_rc=$(conf_edit "$a" '.runtimeConfig.ips = []')
try_add "$empty_rc"
assert_ok "ADD with empty runtimeConfig.ips + args" && assert_json '.ips[0].address' 10.30.0.60/24 "empty runtimeConfig.ips: args wins"
del_last "$empty_rc"

# refused static addresses: clean error, nothing behind
for bad in 10.30.0.1 10.30.0.255 10.30.0.0 10.31.0.5; do
    try_add "$plain" args="IP=$bad"
    assert_code 7 '^CNI_ARGS IP: ' "ADD with static IP $bad"
    assert_clean_failure "$net" "$CID" "$NS"
done

cni DEL "$rc" cid=$held_cid ns="$held_ns"
assert_ok_empty "DEL $held_cid"
assert_store_empty "$net"
assert_host_clean
