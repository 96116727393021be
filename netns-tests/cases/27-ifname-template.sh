# CNI_IFNAME with '%' is a name template for the kernel (eth%d -> eth0): refused with code 4
# before anything is created, for every command that takes an interface name.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C

for ifname in 'eth%d' '%d' 'net%'; do
    CTX="CNI_IFNAME=$ifname"
    cni ADD "$conf" cid=mt-pct-1 ns="$C" if="$ifname"
    assert_code 4 '^CNI_IFNAME: ' "ADD"
    assert_clean_failure "$net" mt-pct-1 "$C"
    assert_no_link "$C" eth0
done
CTX=""
assert_store_empty "$net"
