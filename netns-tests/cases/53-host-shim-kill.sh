# hostShim under kill -9: ADD and DEL of a container are SIGKILLed after a random delay in
# [0, 1.3 x their median duration] (so at any point: before, while and after the record, the
# shim, the routes), then cleaned up as a runtime does (DEL retried until it succeeds, or, every
# fourth time, a GC listing only the survivors). Phase 1 runs next to an "anchor" container that
# keeps using the shim: after every round the shim is still there, the record lists the anchor
# alone, the shim carries exactly the anchor's route and neighbour entry, and the host still
# reaches it; nothing of the killed container is left (host routes, neighbour entries, store,
# its netns after DEL). Phase 2 runs without a user: after every round no shim and no record is
# left. NT_SHIM_KILLS rounds per phase (default 20; 8 in the test VM, where a process costs
# ~50 ms). On the VM's 6.1 kernel the host's eth0 makes ADD create the link under a
# temporary name and rename it: a kill between the two leaves a link only DEL can remove.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (hostShim)"
N=${NT_SHIM_KILLS:-20}
[[ -z ${NT_SHIM_KILLS:-} && -e /mtvm/cmd ]] && N=8
ip -n "$HOSTNS" addr add 192.168.50.5/24 dev "$PARENT"
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-shim-kill" | .hostShim = true')
net=$(conf_name "$conf")
mkfifo "$T/never"
exec 7<>"$T/never"
nap() { read -r -t "$1" -u 7 _ 2>/dev/null; return 0; }
make_container_ns A
make_container_ns Y

kills=0 runs=0
# run CMD: the plugin for container Y, in the background (PID in $pid), as killed() starts it
run_bg() {
    ip netns exec "$HOSTNS" env -i PATH="$SAFE_PATH" CNI_COMMAND="$1" CNI_PATH="$CNI_PATH_DIRS" \
        CNI_IFNAME=eth0 CNI_CONTAINERID=mt-skill-y CNI_NETNS="/run/netns/$Y" "$PLUGIN" \
        <"$conf" >"$T/bg.out" 2>&1 &
    pid=$!
}
# median durations (us) of ADD and DEL started that way, from fork to exit
declare -a tadd=() tdel=()
for i in 1 2 3 4 5; do
    t0=${EPOCHREALTIME/./}
    run_bg ADD
    wait "$pid" || die "calibration ADD $i failed: $(cat "$T/bg.out")"
    t1=${EPOCHREALTIME/./}
    run_bg DEL
    wait "$pid" || die "calibration DEL $i failed: $(cat "$T/bg.out")"
    t2=${EPOCHREALTIME/./}
    tadd+=($((t1 - t0)))
    tdel+=($((t2 - t1)))
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
MED_ADD=$(median "${tadd[@]}")
MED_DEL=$(median "${tdel[@]}")
log "median ADD ${MED_ADD}us, DEL ${MED_DEL}us"

killed() { # killed CMD MEDIAN-US: run the plugin for container Y and SIGKILL it at a random time
    local d=$(((RANDOM * 32768 + RANDOM) % ($2 * 13 / 10 + 1))) rc
    run_bg "$1"
    runs=$((runs + 1))
    nap "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    ((rc == 137)) && kills=$((kills + 1))
    return 0
}
del_y() {
    local t
    for t in 1 2 3 4 5; do
        cni DEL "$conf" cid=mt-skill-y ns="$Y"
        [[ $RC == 0 ]] && return 0
    done
    fail "DEL of the killed container failed 5 times: $(_last)"
}

host_base=$(_links "$HOSTNS")
round() { # round I ANCHOR-IP (empty: no anchor)
    local i=$1 a=$2
    CTX="round $i${a:+ (anchor)}"
    killed ADD "$MED_ADD"
    ((RANDOM % 3 == 0)) && killed DEL "$MED_DEL"
    if ((i % 4 == 0)); then
        # a GC that lists only the anchor, then the runtime removes the netns
        local keep='[]'
        [[ -n $a ]] && keep='[{"containerID": "mt-skill-a", "ifname": "eth0"}]'
        cni GC "$(conf_edit "$conf" ".[\"cni.dev/valid-attachments\"] = $keep")" -CNI_IFNAME
        assert_ok_empty "GC"
        delete_ns "$Y"
        make_container_ns Y
    else
        del_y
        assert_ns_clean "$Y"
    fi
    assert_store_free "$net" mt-skill-y
    local links routes neigh users
    links=$(_links "$HOSTNS")
    if [[ -n $a ]]; then
        assert_eq "$links" "$(printf '%s\n' $host_base mts-eth0 | sort)" "host links"
        routes=$(ip -n "$HOSTNS" route show dev mts-eth0 | awk '{print $1}' | tr '\n' ' ')
        assert_eq "$routes" "$a " "routes on the shim"
        neigh=$(ip -n "$HOSTNS" neigh show dev mts-eth0 | awk '{print $1}' | tr '\n' ' ')
        assert_eq "$neigh" "$a " "neighbour entries on the shim"
        users=$(grep -o '"containerID": "[^"]*"' "$DATA/.mactrunk-shims/mts-eth0.json" | tr '\n' ' ')
        assert_eq "$users" '"containerID": "mt-skill-a" ' "record users"
        ((i % 10 == 0)) && { nsx "$HOSTNS" ping -c1 -W2 "$a" >/dev/null || fail "host -> anchor"; }
    else
        assert_eq "$links" "$host_base" "host links"
        [[ -e $DATA/.mactrunk-shims/mts-eth0.json ]] && fail "record left: $(cat "$DATA/.mactrunk-shims/mts-eth0.json")"
    fi
    CTX=""
}

# ---- phase 1: next to a container that uses the shim throughout
cni ADD "$conf" cid=mt-skill-a ns="$A"
assert_ok "ADD anchor" || die "ADD anchor failed"
ipa=$(jqo '.ips[0].address' | cut -d/ -f1)
for ((i = 1; i <= N; i++)); do round "$i" "$ipa"; done
nsx "$HOSTNS" ping -c1 -W2 "$ipa" >/dev/null || fail "host -> anchor after phase 1"
nsx "$A" ping -c1 -W2 192.168.50.5 >/dev/null || fail "anchor -> host after phase 1"
cni DEL "$conf" cid=mt-skill-a ns="$A"
assert_ok_empty "DEL anchor"

# ---- phase 2: nobody else uses the shim
for ((i = 1; i <= N; i++)); do round "$i" ""; done
log "$kills of $runs plugin runs were killed"
((kills >= N / 2)) || fail "only $kills runs were killed: the delays miss the plugin"
assert_store_empty "$net"
assert_host_clean
