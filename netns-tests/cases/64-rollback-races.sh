# Races against a running ADD (NT_RACE_ITER iterations each, default 25; a random delay in
# [0, 1.3 x the median ADD call] after starting the ADD):
#   parent deleted   - the macvlan's parent (a veth of its own) disappears mid-ADD
#   parent MTU       - the parent's MTU drops below the configured mtu mid-ADD
#   netns deleted    - `ip netns del` of the container mid-ADD
# Whatever the interleaving, afterwards: a failed ADD left no link in the container, no new
# link in the host netns, no address held and no temp file; a successful ADD is undone by
# a DEL (which succeeds even when the parent or netns is gone) to the same state. The log
# counts the outcomes (failed before/after the allocation, succeeded).
N=${NT_RACE_ITER:-25}
base=$(fixture 10-mactrunk-bridge.conf '.master = "mtprc0" | .mtu = 1500')
net=$(conf_name "$base")
mkfifo "$T/never"
exec 7<>"$T/never"
nap() { read -r -t "$1" -u 7 _ 2>/dev/null; return 0; }
host_links=$(_links "$HOSTNS")

mkparent() {
    ip -n "$HOSTNS" link del mtprc0 2>/dev/null
    ip -n "$HOSTNS" link add mtprc0 mtu 1500 type veth peer name mtprc0x || die "cannot create mtprc0"
    ip -n "$HOSTNS" link set mtprc0 up
    ip -n "$HOSTNS" link set mtprc0x up
}

# median duration (us) of a `cni ADD` call, as the harness makes it
mkparent
make_container_ns C0
: >"$T/cal"
for i in 1 2 3 4 5; do
    t0=${EPOCHREALTIME/./}
    cni ADD "$base" cid=mt-cal ns="$C0"
    t1=${EPOCHREALTIME/./}
    assert_ok "calibration ADD $i" || die "calibration failed"
    echo $((t1 - t0)) >>"$T/cal"
    cni DEL "$base" cid=mt-cal ns="$C0"
done
MED=$(sort -n "$T/cal" | sed -n 3p)
log "median ADD call ${MED}us"

declare -A outcome=()
race() { # race KIND I
    local kind=$1 i=$2 cid=mt-race-$1-$2 ns d
    make_container_ns ns
    mkparent
    d=$(((RANDOM * 32768 + RANDOM) % (MED * 13 / 10 + 1)))
    d=$((d / 1000000)).$(printf '%06d' $((d % 1000000)))
    (
        nap "$d"
        case $kind in
            parent) ip -n "$HOSTNS" link del mtprc0 ;;
            mtu) ip -n "$HOSTNS" link set mtprc0 mtu 1400 ;;
            netns) ip netns del "$ns" ;;
        esac
    ) &
    local racer=$!
    cni ADD "$base" cid="$cid" ns="$ns"
    wait $racer
    local o
    if [[ $RC == 0 ]]; then
        o=succeeded
        cni DEL "$base" cid="$cid" ns="$ns"
        CTX="$kind $i" assert_ok_empty "DEL after a successful raced ADD"
    else
        CTX="$kind $i" assert_code any '' "raced ADD"
        if grep -qE 'creating macvlan|up:|adding|vanished' <<<"$_MSG"; then o="failed after allocation"; else o="failed before allocation"; fi
    fi
    outcome[$kind: $o]=$((${outcome[$kind: $o]:-0} + 1))
    CTX="$kind $i"
    if [[ -e /run/netns/$ns ]]; then
        assert_ns_clean "$ns"
    fi
    assert_store_free "$net" "$cid"
    [[ -z $(ls -A "$DATA/$net/.tmp" 2>/dev/null) ]] || fail "temp files left"
    ip -n "$HOSTNS" link del mtprc0 2>/dev/null
    local now
    now=$(_links "$HOSTNS")
    [[ $now == "$host_links" ]] || fail "host netns links: $(echo $now)"
    CTX=""
    delete_ns "$ns"
}

for kind in parent mtu netns; do
    for ((i = 1; i <= N; i++)); do race "$kind" "$i"; done
done
for k in "${!outcome[@]}"; do log "outcome $k: ${outcome[$k]}"; done
assert_store_empty "$net"
