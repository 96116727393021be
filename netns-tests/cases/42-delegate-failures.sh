# Delegation failures leave nothing behind: a delegate that rejects its config (host-local
# with a bad subnet) fails ADD with its message and no link; CNI_IFNAME taken in the
# container fails ADD with the container's link intact and nothing allocated; when the link
# part of ADD fails after the delegate allocated (a route the kernel refuses), mactrunk calls
# the delegate's DEL (recorded: ADD then DEL) and host-local's store is empty again; ipam.type with '/' or
# '..' is code 7 before anything runs; a missing delegate is 103, a missing CNI_PATH 4; a
# delegate printing garbage or failing silently is 103; after all that the network works.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (delegation)"

mkdir -p "$T/cnibin" "$T/rec"
cat >"$T/cnibin/mtrec-ipam" <<'EOF'
#!/bin/bash
# records the command, then runs host-local with the same stdin
echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME" >>"$MTREC_DIR/calls"
exec /usr/lib/cni/host-local
EOF
printf '#!/bin/sh\ncat >/dev/null\necho "this is not json"\n' >"$T/cnibin/mtgarbage-ipam"
printf '#!/bin/sh\ncat >/dev/null\nexit 1\n' >"$T/cnibin/mtsilent-ipam"
chmod +x "$T"/cnibin/*
REC_PATH=$T/cnibin:/usr/lib/cni

conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-dfail" | .cniVersion = "1.0.0" | .ipam.type = "host-local"')
net=$(conf_name "$conf")
make_container_nses 2 C

# ---- the delegate rejects its config
bad=$(conf_edit "$conf" '.ipam.subnet = "10.0.0.0/33"')
cni ADD "$bad" cid=mt-df-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
# (host-local's plain Go error becomes 999 in its skel; passed through with its message)
assert_code 999 '^ipam plugin "host-local" ADD: invalid CIDR address' "ADD with host-local rejecting a bad subnet"
assert_clean_failure "$net" mt-df-1 "${C[1]}"
cni DEL "$bad" cid=mt-df-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
log "DEL with the bad config after the failed ADD: rc=$RC (host-local's verdict)"

# ---- the link part fails after the delegate allocated: rollback through the delegate's DEL
ip -n "${C[1]}" link add eth0 type veth peer name mtadfpeer
_links "${C[1]}" >"$T/ns/${C[1]}.links"
rec=$(conf_edit "$conf" '.ipam.type = "mtrec-ipam"')
cni ADD "$rec" cid=mt-df-2 ns="${C[1]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec"
assert_code 4 '^CNI_IFNAME: ' "ADD with CNI_IFNAME taken in the container"
assert_eq "$(link_json "${C[1]}" eth0 | jq -r .linkinfo.info_kind)" veth "the container's own eth0 survives"
assert_clean_failure "$net" mt-df-2 "${C[1]}"
calls=$(tr '\n' ';' <"$T/rec/calls" 2>/dev/null)
if [[ $calls == "" ]]; then
    log "ADD failed before calling the delegate (CNI_IFNAME checked first): nothing to roll back"
else
    assert_eq "$calls" "ADD mt-df-2 eth0;DEL mt-df-2 eth0;" "delegate calls of the failed ADD (allocate, then roll back)"
fi
assert_store_empty "$net"

# a failure that can only happen after the IPAM step: a route the kernel refuses
: >"$T/rec/calls"
rt=$(conf_edit "$rec" '.ipam.routes += [{dst: "10.200.0.0/16", gw: "172.31.255.1"}]')
cni ADD "$rt" cid=mt-df-3 ns="${C[2]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec"
assert_code 100 'route' "ADD with a route the kernel refuses"
assert_clean_failure "$net" mt-df-3 "${C[2]}"
assert_eq "$(tr '\n' ';' <"$T/rec/calls")" "ADD mt-df-3 eth0;DEL mt-df-3 eth0;" "delegate calls of the rolled-back ADD"
assert_store_empty "$net"

# ---- ipam.type that is a path: code 7, nothing executed, nothing created
for t in "../x" "../../usr/lib/cni/host-local" "/usr/lib/cni/host-local" "a/b" "x..y" ".."; do
    tc=$(conf_edit "$conf" '.ipam.type = $t' --arg t "$t")
    for c in ADD DEL CHECK; do
        cni "$c" "$tc" cid=mt-df-4 ns="${C[2]}" CNI_PATH=/usr/lib/cni
        CTX="ipam.type $t, $c" assert_code 7 '^ipam\.type' "path-like ipam.type"
    done
done
assert_ns_clean "${C[2]}"
[[ -d $DATA/$net ]] && [[ -n $(store_ips "$net") ]] && fail "a path-like ipam.type allocated: $(store_ips "$net")"

# ---- missing delegate, missing CNI_PATH, garbage, silent failure
cni ADD "$(conf_edit "$conf" '.ipam.type = "mt-no-such-ipam"')" cid=mt-df-5 ns="${C[2]}" CNI_PATH=/usr/lib/cni
assert_code 103 'mt-no-such-ipam' "missing delegate"
cni ADD "$conf" cid=mt-df-5 ns="${C[2]}" -CNI_PATH
assert_code 4 'CNI_PATH' "delegation without CNI_PATH"
cni ADD "$(conf_edit "$conf" '.ipam.type = "mtgarbage-ipam"')" cid=mt-df-5 ns="${C[2]}" CNI_PATH="$REC_PATH"
assert_code 103 'mtgarbage-ipam.*not JSON' "delegate printing garbage"
cni ADD "$(conf_edit "$conf" '.ipam.type = "mtsilent-ipam"')" cid=mt-df-5 ns="${C[2]}" CNI_PATH="$REC_PATH"
assert_code 103 'mtsilent-ipam' "delegate failing without a message"
assert_ns_clean "${C[2]}"
assert_host_clean

# ---- and the network still works
cni ADD "$conf" cid=mt-df-6 ns="${C[2]}" CNI_PATH=/usr/lib/cni
assert_ok "ADD after the failures"
assert_eq "$(store_count "$net")" 1 "host-local records after the failures and one ADD"
cni DEL "$conf" cid=mt-df-6 ns="${C[2]}" CNI_PATH=/usr/lib/cni
assert_ok_empty "DEL"
assert_store_empty "$net"
assert_ns_clean "${C[2]}"
