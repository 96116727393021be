# CNI_NETNS that is the plugin's own netns (the host netns it runs in): code 8 and nothing
# created, also through /proc/self/ns/net; a CNI_NETNS that is not a network namespace
# (a regular file, a mount namespace file): code 8.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns C

for p in "/run/netns/$HOSTNS" /proc/self/ns/net /proc/thread-self/ns/net; do
    CTX="CNI_NETNS=$p"
    cni ADD "$conf" cid=mt-own-1 netns="$p"
    assert_code 8 '' "ADD into the plugin's own netns"
    assert_host_clean
    # no eth0 made here; with the default parent name the only eth0 is the parent veth
    if [[ $PARENT == eth0 ]]; then
        assert_eq "$(link_json "$HOSTNS" eth0 | jq -r .linkinfo.info_kind)" veth "kind of eth0 in the host netns (the parent)"
    else
        assert_no_link "$HOSTNS" eth0
    fi
    assert_store_free "$net" mt-own-1
done
CTX=""

echo "not a netns" >"$T/regular-file"
cni ADD "$conf" cid=mt-own-2 netns="$T/regular-file"
assert_code 8 '' "ADD with CNI_NETNS a regular file"
cni ADD "$conf" cid=mt-own-3 netns=/proc/self/ns/mnt
assert_code 8 '' "ADD with CNI_NETNS a mount namespace"
assert_host_clean
assert_store_empty "$net"

# CHECK into the own netns: code 8 too
cni ADD "$conf" cid=mt-own-4 ns="$C"
assert_ok "ADD into a real container netns" && {
    cni CHECK "$(with_prev "$conf")" cid=mt-own-4 netns="/run/netns/$HOSTNS"
    assert_code 8 '' "CHECK with CNI_NETNS = the plugin's own netns"
}
cni DEL "$conf" cid=mt-own-4 ns="$C"
assert_ok_empty DEL
assert_store_empty "$net"
assert_ns_clean "$C"
