# mactrunk delegating its IPAM to the reference host-local (/usr/lib/cni, found through
# CNI_PATH): ADD (address in the container, host-local's own store record), CHECK (passes;
# fails with host-local's error once the record is gone), DEL (releases, idempotent). A
# recording wrapper in CNI_PATH shows what the delegate gets: the same CNI_* environment
# with CNI_COMMAND set per command, and the config byte for byte, for ADD, CHECK, DEL,
# GC and STATUS. GC and STATUS (cniVersion 1.1.0, which Debian's host-local 1.1.1 predates)
# are forwarded to mactrunk-ipam through the wrapper: GC releases the stale attachment,
# STATUS passes, then reports 50 when the pool is full; host-local's own error for GC and
# STATUS reaches the caller with host-local named.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (delegation)"

# A delegate that records its environment and stdin, then runs $MTREC_TARGET (default
# host-local) with the same stdin. Records go to $MTREC_DIR/<n>.{env,stdin}.
mkdir -p "$T/cnibin" "$T/rec"
cat >"$T/cnibin/mtrec-ipam" <<'EOF'
#!/bin/bash
n=$(ls "$MTREC_DIR" | grep -c '\.stdin$')
n=$((n + 1))
cat >"$MTREC_DIR/$n.stdin"
env | grep -E '^CNI_' | sort >"$MTREC_DIR/$n.env"
exec "${MTREC_TARGET:-/usr/lib/cni/host-local}" <"$MTREC_DIR/$n.stdin"
EOF
chmod +x "$T/cnibin/mtrec-ipam"
REC_PATH=$T/cnibin:/usr/lib/cni
nrec() { find "$T/rec" -name '*.stdin' | wc -l; }

# assert_recorded N CMD CONF CID IFNAME NETNS [ARGS]: delegate call N got CMD, CONF byte for
# byte and the CNI env the plugin was called with
assert_recorded() {
    local n=$1 cmd=$2 conf=$3 cid=$4 ifname=$5 netns=$6 args=${7:-} want
    if [[ ! -f $T/rec/$n.stdin ]]; then
        fail "delegate call $n ($cmd) not recorded"
        return 1
    fi
    cmp -s "$T/rec/$n.stdin" "$conf" || fail "delegate call $n ($cmd): stdin differs from the config given to mactrunk"
    want="CNI_COMMAND=$cmd"
    [[ -n $args ]] && want+=$'\n'"CNI_ARGS=$args"
    [[ -n $cid ]] && want+=$'\n'"CNI_CONTAINERID=$cid"
    [[ -n $ifname ]] && want+=$'\n'"CNI_IFNAME=$ifname"
    [[ -n $netns ]] && want+=$'\n'"CNI_NETNS=$netns"
    want+=$'\n'"CNI_PATH=$REC_PATH"
    assert_eq "$(cat "$T/rec/$n.env")" "$(sort <<<"$want")" "delegate call $n ($cmd) environment"
}

conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-dhl" | .cniVersion = "1.0.0" | .ipam.type = "host-local"')
net=$(conf_name "$conf")
make_container_nses 3 C

# ---- the reference host-local, straight from /usr/lib/cni
cni ADD "$conf" cid=mt-dhl-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
if assert_ok "ADD with host-local"; then
    assert_json '.ips[0].address' 192.168.50.100/24
    assert_json '.ips[0].interface' 0 "ips[].interface points at the container interface"
    assert_json '.interfaces[0].sandbox' "/run/netns/${C[1]}"
fi
add1=$OUT
assert_addr "${C[1]}" eth0 192.168.50.100/24
assert_default_route "${C[1]}" 192.168.50.1 eth0
assert_store_entry "$net" 192.168.50.100 mt-dhl-1 eth0
[[ -d $DATA/$net/owners ]] && fail "host-local's store got mactrunk's owner index (mactrunk touched it)"

cni CHECK "$(with_prev "$conf" "$add1")" cid=mt-dhl-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
assert_ok_empty "CHECK with host-local"
mv "$DATA/$net/192.168.50.100" "$T/saved-record"
cni CHECK "$(with_prev "$conf" "$add1")" cid=mt-dhl-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
# host-local answers with a plain Go error, which its skel turns into 999: passed through
assert_code 999 '^ipam plugin "host-local" CHECK: host-local: Failed to find address' "CHECK after host-local lost the record"
mv "$T/saved-record" "$DATA/$net/192.168.50.100"

cni DEL "$conf" cid=mt-dhl-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
assert_ok_empty "DEL with host-local"
assert_ns_clean "${C[1]}"
assert_store_free "$net" mt-dhl-1
cni DEL "$conf" cid=mt-dhl-1 ns="${C[1]}" CNI_PATH=/usr/lib/cni
assert_ok_empty "second DEL with host-local"

# ---- what the delegate receives (wrapper around host-local)
rec=$(conf_edit "$conf" '.ipam.type = "mtrec-ipam"')
cni ADD "$rec" cid=mt-dhl-2 ns="${C[2]}" args="IgnoreUnknown=1;K8S_POD_NAME=p" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec"
assert_ok "ADD through the recording wrapper" && assert_json '.ips[0].address' 192.168.50.101/24
add2=$OUT
assert_recorded 1 ADD "$rec" mt-dhl-2 eth0 "/run/netns/${C[2]}" "IgnoreUnknown=1;K8S_POD_NAME=p"
prev=$(with_prev "$rec" "$add2")
cni CHECK "$prev" cid=mt-dhl-2 ns="${C[2]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec"
assert_ok_empty "CHECK through the wrapper"
assert_recorded 2 CHECK "$prev" mt-dhl-2 eth0 "/run/netns/${C[2]}"
cni DEL "$rec" cid=mt-dhl-2 ns="${C[2]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec"
assert_ok_empty "DEL through the wrapper"
assert_recorded 3 DEL "$rec" mt-dhl-2 eth0 "/run/netns/${C[2]}"
assert_store_free "$net" mt-dhl-2
assert_ns_clean "${C[2]}"

# ---- GC and STATUS (1.1.0) forwarded; the wrapper runs mactrunk-ipam, which speaks 1.1.0
g=$(conf_edit "$rec" '.name = "mt-dgc" | .cniVersion = "1.1.0" | .ipam.subnet = "10.77.0.0/29" | del(.ipam.rangeStart, .ipam.rangeEnd, .ipam.gateway)')
gnet=$(conf_name "$g")
rm -f "$T"/rec/*
for i in 1 2; do
    cni ADD "$g" cid=mt-dgc-$i ns="${C[$((i + 1))]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec" MTREC_TARGET="$NT_BIN_DIR/mactrunk-ipam"
    assert_ok "ADD $i via mactrunk-ipam through the wrapper"
done
assert_eq "$(store_count "$gnet")" 2 "allocations before GC"
rm -f "$T"/rec/*
gcconf=$(conf_edit "$g" '.["cni.dev/valid-attachments"] = [{containerID: "mt-dgc-1", ifname: "eth0"}]')
cni GC "$gcconf" -CNI_IFNAME CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec" MTREC_TARGET="$NT_BIN_DIR/mactrunk-ipam"
assert_ok_empty "GC forwarded"
assert_recorded 1 GC "$gcconf" "" "" ""
assert_store_free "$gnet" mt-dgc-2
[[ -n $(store_ips_of "$gnet" mt-dgc-1) ]] || fail "GC released the valid attachment mt-dgc-1"

rm -f "$T"/rec/*
cni STATUS "$g" -CNI_IFNAME CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec" MTREC_TARGET="$NT_BIN_DIR/mactrunk-ipam"
assert_ok_empty "STATUS forwarded"
assert_recorded 1 STATUS "$g" "" "" ""
# fill the /29 (.2-.6 with .1 the gateway: 5 addresses, one held by mt-dgc-1)
for i in 3 4 5 6; do
    cni ADD "$g" bin=ipam cid=mt-dgc-$i ns="${C[3]}"
    assert_ok "IPAM ADD $i (fill)"
done
cni STATUS "$g" -CNI_IFNAME CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec" MTREC_TARGET="$NT_BIN_DIR/mactrunk-ipam"
assert_code 50 '' "STATUS forwarded, delegate's pool exhausted"
assert_match "$_MSG" 'mtrec-ipam' "the forwarded error names the delegate"

# Debian's host-local (1.1.1) predates GC and STATUS: its error (code 3, "missing
# containerID") reaches the caller naming it. A newer host-local (>= 1.5) answers them.
hlgc=$(conf_edit "$gcconf" '.ipam.type = "host-local"')
for c in GC STATUS; do
    cni "$c" "$hlgc" -CNI_IFNAME CNI_PATH=/usr/lib/cni
    if [[ $RC != 0 ]]; then
        assert_code any "^ipam plugin \"host-local\" $c: " "$c forwarded to host-local at cniVersion 1.1.0"
    fi
done

cni DEL "$g" cid=mt-dgc-1 ns="${C[2]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec" MTREC_TARGET="$NT_BIN_DIR/mactrunk-ipam"
assert_ok_empty "DEL mt-dgc-1"
cni DEL "$g" cid=mt-dgc-2 ns="${C[3]}" CNI_PATH="$REC_PATH" MTREC_DIR="$T/rec" MTREC_TARGET="$NT_BIN_DIR/mactrunk-ipam"
assert_ok_empty "DEL mt-dgc-2 (already released by GC)"
for i in 1 2 3; do assert_ns_clean "${C[$i]}"; done
assert_host_clean
