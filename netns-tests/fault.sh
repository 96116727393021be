#!/bin/bash
# netns-tests/fault.sh: kill -9 mactrunk at random points of ADD and DEL, with concurrent
# ADDs in flight, then check that nothing leaked or was handed out twice (root only).
#
#   netns-tests/fault.sh [--bin-dir DIR] [--kills N] [--lanes L] [--seed S] [--keep]
#
#   --kills N    stop once N kills happened (default 400; e.g. --kills 3000 for a long run,
#                about 1 minute per 400 kills on 2 cores)
#   --lanes L    concurrent workers (default 3), each with 8 container netns of its own
#   --seed S     RANDOM seed of the run (default: from the PID); printed for replay
#   --bin-dir    take mactrunk from DIR (default: ./build.sh, target/static)
#   --keep       keep the work directory (journals, every plugin output)
#   --selftest   after the kill phase, plant one fault of each kind the checks look for (a
#                lost record, a leaked record, a stray link, a temp file, a duplicate ACK)
#                and expect exactly those checks to fail: proves the checker can fail
#
# Model. Each lane is a runtime of its own: it adds new containers (CNI_CONTAINERID unique,
# each in a free netns of its pool, ifname eth0) and deletes random live ones, while the
# other lanes do the same against the same network (one store, one parent). Every plugin
# attempt is killed with probability 1/2 (SIGKILL), after a uniformly random delay in
# [0, 1.3 x the median duration of that command] counted from the fork.
# Retries, like a runtime:
#   - a killed DEL is retried as-is until it succeeds (runtimes retry DEL);
#   - a killed ADD is retried either as-is (idempotent ADD: same address) or, with
#     probability 1/2, after a DEL of the same container (containerd tears a failed sandbox
#     down before trying again); the choice is random and counted;
#   - an ADD that fails with an error (e.g. CNI_IFNAME exists: the killed attempt had
#     already created the link) is followed by a DEL and a new ADD, as a runtime does.
#   After 6 attempts the kills stop for that operation; an operation still failing after
#   12 attempts means the store or the netns is unusable (anomaly "stuck").
# Afterwards: a DEL pass (half of the live containers, concurrently) and a GC with the
# remaining ones as cni.dev/valid-attachments; then a full teardown.
# Checks (each is one "passed/failed" unit of the last line):
#   - no address was ever acknowledged to two live attachments (checked at every ACK);
#   - every live (acknowledged, not deleted) ADD still holds its address: store record
#     "<cid>\r\neth0", owner index entry, and the address on eth0 in its netns;
#   - deleted containers hold nothing (no record, no index entry);
#   - no record for anyone not live (no leak), GC released nothing;
#   - no link in any container netns but lo and the live eth0; host netns: only lo + veth;
#   - no temp files left in .tmp/, no foreign files in the store;
#   - every operation completed (the store was always openable); no error code 999, 5, 11;
#   - after the teardown: store empty, every netns clean.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

if [[ ${1:-} != --inner ]]; then
    bin_dir="" kills=400 lanes=3 seed="" keep=0
    usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
    while (($#)); do
        case $1 in
            --bin-dir) bin_dir=${2:?}; shift ;;
            --bin-dir=*) bin_dir=${1#*=} ;;
            --kills) kills=${2:?}; shift ;;
            --kills=*) kills=${1#*=} ;;
            --lanes) lanes=${2:?}; shift ;;
            --seed) seed=${2:?}; shift ;;
            --keep) keep=1 ;;
            --selftest) export FT_SELFTEST=1 ;;
            -h | --help) usage; exit 0 ;;
            *) echo "fault.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
        esac
        shift
    done
    [[ $(id -u) == 0 ]] || { echo "fault.sh: must run as root"; echo "0 passed, 1 failed"; exit 1; }
    for t in ip jq awk timeout; do
        command -v $t >/dev/null || { echo "fault.sh: missing $t"; echo "0 passed, 1 failed"; exit 1; }
    done
    if [[ -z $bin_dir ]]; then
        "$root/build.sh" -q >&2 || { echo "0 passed, 1 failed"; exit 1; }
        bin_dir=$root/target/static
    fi
    bin_dir=$(realpath "$bin_dir")
    [[ -x $bin_dir/mactrunk ]] || { echo "fault.sh: no $bin_dir/mactrunk"; echo "0 passed, 1 failed"; exit 1; }
    seed=${seed:-$$}

    P=mtpf$(printf '%04x' $((($$ + RANDOM) % 65536)))
    W=$(mktemp -d /tmp/mtp-fault.XXXXXX)
    HNS=$P-h
    cleanup() {
        local ns pids j
        j=$(jobs -pr)
        # shellcheck disable=SC2086
        [[ -n $j ]] && kill $j 2>/dev/null
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            # shellcheck disable=SC2086
            [[ -n $pids ]] && kill -9 $pids 2>/dev/null
            ip netns delete "$ns" 2>/dev/null
        done
        if ((keep)); then echo "fault.sh: work directory kept: $W" >&2; else rm -rf "$W"; fi
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ip netns add "$HNS" || { echo "0 passed, 1 failed"; exit 1; }
    ip -n "$HNS" link set lo up
    ip -n "$HNS" link add mtpf0 mtu 1500 type veth peer name mtpf0x || { echo "0 passed, 1 failed"; exit 1; }
    ip -n "$HNS" link set mtpf0 up
    ip -n "$HNS" link set mtpf0x up
    for ((l = 1; l <= lanes; l++)); do
        for ((s = 1; s <= 8; s++)); do
            ip netns add "$P-l$l-s$s" || { echo "0 passed, 1 failed"; exit 1; }
            ip -n "$P-l$l-s$s" link set lo up
        done
    done
    export FT_P=$P FT_W=$W FT_BIN=$bin_dir FT_KILLS=$kills FT_LANES=$lanes FT_SEED=$seed
    # The plugin runs in the host netns; this script follows it there so that kills hit the
    # plugin process itself (no `ip netns exec` in between).
    timeout -k 10 $((600 + kills * 2)) ip netns exec "$HNS" bash "$0" --inner
    rc=$?
    ((rc == 124 || rc == 137)) && { echo "fault.sh: timed out"; echo "0 passed, 1 failed"; }
    exit $rc
fi

# ============================================================ inner part (in the host netns)
P=$FT_P W=$FT_W MT=$FT_BIN/mactrunk KILLS=$FT_KILLS LANES=$FT_LANES
RANDOM=$FT_SEED
NET=mtpfault
DATA=$W/data
STORE=$DATA/$NET
mkdir -p "$W/held" "$W/out" "$DATA"
unset MACTRUNK_LOG
export CNI_PATH=/usr/lib/cni

conf() { # conf VERSION EXTRA-JQ
    jq -n --arg d "$DATA" --arg v "$1" "{cniVersion: \$v, name: \"$NET\", type: \"mactrunk\",
        master: \"mtpf0\", mode: \"bridge\",
        ipam: {type: \"mactrunk-ipam\", subnet: \"10.79.0.0/24\", rangeStart: \"10.79.0.10\",
               rangeEnd: \"10.79.0.60\", dataDir: \$d, lockTimeout: 5000,
               routes: [{dst: \"0.0.0.0/0\"}]}} | ${2:-.}"
}
conf 1.1.0 >"$W/conf.json"

# a sleep without fork: read with a timeout on a FIFO nobody writes to
mkfifo "$W/never"
exec 7<>"$W/never"
nap() { read -r -t "$1" -u 7 _ 2>/dev/null; return 0; }

# run_cni CMD CID NS OUT: one attempt, no kill; sets RC
run_cni() {
    CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$3 CNI_IFNAME=eth0 "$MT" <"$W/conf.json" >"$4" 2>"$4.err"
    RC=$?
}

# calibration: median ADD and DEL durations (us), without kills
cal=$W/cal
: >"$cal.add"
: >"$cal.del"
for ((i = 0; i < 12; i++)); do
    t0=${EPOCHREALTIME/./}
    run_cni ADD "$P-cal$i" "$P-l1-s1" "$W/out/cal"
    t1=${EPOCHREALTIME/./}
    ((RC == 0)) || { echo "fault.sh: calibration ADD failed: $(cat "$W/out/cal")"; echo "0 passed, 1 failed"; exit 1; }
    run_cni DEL "$P-cal$i" "$P-l1-s1" "$W/out/cal"
    t2=${EPOCHREALTIME/./}
    ((RC == 0)) || { echo "fault.sh: calibration DEL failed: $(cat "$W/out/cal")"; echo "0 passed, 1 failed"; exit 1; }
    echo $((t1 - t0)) >>"$cal.add"
    echo $((t2 - t1)) >>"$cal.del"
done
med() { sort -n "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ADD_MED=$(med "$cal.add") DEL_MED=$(med "$cal.del")
echo "fault.sh: run $P seed $FT_SEED, $LANES lanes x 8 netns, target $KILLS kills;" \
    "median ADD $((ADD_MED / 1000)).$(((ADD_MED % 1000) / 100)) ms, DEL $((DEL_MED / 1000)).$(((DEL_MED % 1000) / 100)) ms"

# ------------------------------------------------------------------ one lane (a runtime)
# Journals in $W/lane$L/: live (cid slot ip), deleted (cid), counts, anomalies
lane() {
    local L=$1 quota=$2 d=$W/lane$1
    mkdir -p "$d"
    RANDOM=$((FT_SEED * 31 + L))
    local -A live_ip=() live_slot=() slot_used=()
    local kills=0 kadd=0 kdel=0 attempts=0 adds=0 dels=0 asis=0 delfirst=0 errfix=0
    local n=0 anomalies=0
    anomaly() {
        anomalies=$((anomalies + 1))
        echo "lane $L: $*" >>"$d/anomalies"
    }
    # attempt CMD CID SLOT: one attempt, maybe killed. Sets RC (137 = killed) and OUTF.
    attempt() {
        local cmd=$1 cid=$2 slot=$3 pid delay med
        OUTF=$W/out/$cid.$cmd.$attempts
        attempts=$((attempts + 1))
        CNI_COMMAND=$cmd CNI_CONTAINERID=$cid CNI_NETNS=/run/netns/$P-l$L-s$slot CNI_IFNAME=eth0 \
            "$MT" <"$W/conf.json" >"$OUTF" 2>"$OUTF.err" &
        pid=$!
        if ((KILL_OK && RANDOM % 2)); then
            med=$ADD_MED
            [[ $cmd == DEL ]] && med=$DEL_MED
            delay=$(((RANDOM * 32768 + RANDOM) % (med * 13 / 10 + 1)))
            nap "$((delay / 1000000)).$(printf '%06d' $((delay % 1000000)))"
            kill -9 "$pid" 2>/dev/null
        fi
        { wait "$pid"; } 2>/dev/null
        RC=$?
        if ((RC == 137)); then
            kills=$((kills + 1))
            [[ $cmd == ADD ]] && kadd=$((kadd + 1)) || kdel=$((kdel + 1))
        elif ((RC != 0)); then
            local code
            code=$(jq -r '.code // "none"' "$OUTF" 2>/dev/null)
            echo "$cmd $code" >>"$d/errors"
            case $code in
                5 | 11 | 999 | none) anomaly "$cmd $cid: error code $code: $(head -c 300 "$OUTF") $(head -c 300 "$OUTF.err")" ;;
            esac
        fi
    }
    # del_until_ok CID SLOT N0: DEL retried as-is until it succeeds
    del_until_ok() {
        local tries=0
        while :; do
            KILL_OK=$((tries < 6)) attempt DEL "$1" "$2"
            ((RC == 0)) && return 0
            tries=$((tries + 1))
            ((tries >= 12)) && { anomaly "stuck: DEL $1 failed 12 times"; return 1; }
        done
    }
    do_add() {
        local cid=$1 slot=$2 tries=0 ip
        while :; do
            KILL_OK=$((tries < 6)) attempt ADD "$cid" "$slot"
            tries=$((tries + 1))
            if ((RC == 0)); then
                ip=$(jq -r '.ips[0].address // empty' "$OUTF" 2>/dev/null)
                ip=${ip%/*}
                if [[ -z $ip ]]; then
                    anomaly "ADD $cid: success without an address: $(head -c 300 "$OUTF")"
                    return 1
                fi
                # at most one live attachment per address, across all lanes
                if ! (set -C; echo "$cid" >"$W/held/$ip") 2>/dev/null; then
                    anomaly "DUPLICATE: $ip acknowledged to $cid while held by $(cat "$W/held/$ip" 2>/dev/null)"
                fi
                live_ip[$cid]=$ip
                live_slot[$cid]=$slot
                slot_used[$slot]=$cid
                adds=$((adds + 1))
                return 0
            fi
            ((tries >= 12)) && { anomaly "stuck: ADD $cid failed 12 times"; return 1; }
            if ((RC == 137)); then
                if ((RANDOM % 2)); then
                    asis=$((asis + 1))
                    continue
                fi
                delfirst=$((delfirst + 1))
            else
                errfix=$((errfix + 1))
            fi
            del_until_ok "$cid" "$slot" || return 1
        done
    }
    local slot cid free i
    while ((kills < quota)); do
        free=()
        for ((i = 1; i <= 8; i++)); do [[ -z ${slot_used[$i]:-} ]] && free+=("$i"); done
        if ((${#free[@]} > 0 && (${#live_ip[@]} == 0 || RANDOM % 10 < 6))); then
            slot=${free[RANDOM % ${#free[@]}]}
            cid=$P-l$L-n$((++n))
            do_add "$cid" "$slot" || break
        else
            local ids=("${!live_ip[@]}")
            cid=${ids[RANDOM % ${#ids[@]}]}
            slot=${live_slot[$cid]}
            del_until_ok "$cid" "$slot" || break
            rm -f "$W/held/${live_ip[$cid]}"
            echo "$cid $slot" >>"$d/deleted"
            unset "live_ip[$cid]" "live_slot[$cid]" "slot_used[$slot]"
            dels=$((dels + 1))
        fi
    done
    : >"$d/live"
    for cid in "${!live_ip[@]}"; do echo "$cid ${live_slot[$cid]} ${live_ip[$cid]}" >>"$d/live"; done
    echo "$kills $kadd $kdel $attempts $adds $dels $asis $delfirst $errfix $anomalies" >"$d/counts"
}

quota=$(((KILLS + LANES - 1) / LANES))
t0=$SECONDS
for ((l = 1; l <= LANES; l++)); do lane "$l" "$quota" & done
wait
elapsed=$((SECONDS - t0))

# ------------------------------------------------------------------ checks
passed=0 failed=0
check() { # check NAME PROBLEMS-FILE
    if [[ -s $2 ]]; then
        failed=$((failed + 1))
        echo "FAIL $1"
        head -n 10 "$2" | sed 's/^/     /'
        local n
        n=$(wc -l <"$2")
        ((n > 10)) && echo "     ... and $((n - 10)) more"
    else
        passed=$((passed + 1))
        echo "PASS $1"
    fi
}
cat "$W"/lane*/live 2>/dev/null | sort >"$W/live"
cat "$W"/lane*/deleted 2>/dev/null | sort >"$W/deleted"
read -r K KA KD AT AD DE AS DF EF AN < <(cat "$W"/lane*/counts | awk '{for (i = 1; i <= NF; i++) s[i] += $i}
    END {for (i = 1; i <= 10; i++) printf "%d ", s[i]; print ""}')
echo "fault.sh: $K kills ($KA during ADD, $KD during DEL) in $AT attempts over $((AD + DE)) acknowledged" \
    "operations ($AD ADD, $DE DEL) in ${elapsed}s; killed ADDs retried as-is $AS, after a DEL $DF;" \
    "ADD errors fixed by DEL+ADD $EF"
if compgen -G "$W/lane*/errors" >/dev/null; then
    echo "fault.sh: plugin errors after kills (command code count): $(cat "$W"/lane*/errors 2>/dev/null | sort | uniq -c | awk '{printf "%s %s x%s; ", $2, $3, $1}')"
fi

# store_state: "ip cid ifname" for every record; index lines "cid@if ip"
store_records() {
    local f
    for f in "$STORE"/*; do
        local b=${f##*/}
        [[ $b =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || continue
        printf '%s %s\n' "$b" "$(tr -d '\r' <"$f" | tr '\n' ' ' | sed 's/ $//')"
    done | sort
}
index_entries() {
    local f
    for f in "$STORE"/owners/*@*; do
        [[ -e $f ]] || continue
        while read -r ip; do [[ -n $ip ]] && printf '%s %s\n' "${f##*/}" "$ip"; done <"$f"
    done | sort
}
# check_state LABEL: live containers hold their address everywhere, nobody else holds one
check_state() {
    local label=$1 p=$W/problems.$1
    : >"$p.own"
    : >"$p.leak"
    : >"$p.dead"
    : >"$p.links"
    : >"$p.tmp"
    store_records >"$W/records.$label"
    index_entries >"$W/index.$label"
    local cid slot ip lane
    while read -r cid slot ip; do
        grep -qxF "$ip $cid eth0" "$W/records.$label" || echo "$cid: record of $ip missing or wrong: $(grep "^$ip " "$W/records.$label")" >>"$p.own"
        grep -qxF "$cid@eth0 $ip" "$W/index.$label" || echo "$cid: no index entry for $ip" >>"$p.own"
        lane=${cid#"$P"-l}
        lane=${lane%%-*}
        ip -n "$P-l$lane-s$slot" -j addr show dev eth0 2>/dev/null | jq -e --arg ip "$ip" '.[0].addr_info | any(.local == $ip)' >/dev/null ||
            echo "$cid: $ip not on eth0 in $P-l$lane-s$slot" >>"$p.own"
    done <"$W/live"
    awk 'NR == FNR {live[$1] = 1; next} !($2 in live) {print "record " $1 " held by non-live " $2}' "$W/live" "$W/records.$label" >>"$p.leak"
    awk '{print $1}' "$W/records.$label" | sort | uniq -d | sed 's/^/two records for /' >>"$p.leak"
    while read -r cid _; do
        grep -q " $cid eth0\$" "$W/records.$label" && echo "deleted $cid still has a record" >>"$p.dead"
        grep -q "^$cid@" "$W/index.$label" && echo "deleted $cid still has an index entry" >>"$p.dead"
    done <"$W/deleted"
    # links: container netns hold lo + eth0 iff a live container is there
    local ns want have
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-l"); do
        want="lo"
        slot=${ns##*-s}
        lane=${ns#"$P"-l}
        lane=${lane%%-*}
        grep -q "^$P-l$lane-n[0-9]* $slot " "$W/live" && want=$'eth0\nlo'
        have=$(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)
        [[ $have == "$want" ]] || echo "netns $ns has: $(echo $have), expected: $(echo $want)" >>"$p.links"
    done
    have=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
    [[ $have == "lo mtpf0 mtpf0x " ]] || echo "host netns has: $have" >>"$p.links"
    find "$STORE/.tmp" -mindepth 1 2>/dev/null | sed 's/^/temp file left: /' >>"$p.tmp"
    find "$STORE" -mindepth 1 -maxdepth 1 ! -name lock ! -name 'last_reserved_ip.*' ! -name owners ! -name .tmp \
        ! -regex '.*/[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' | sed 's/^/foreign file: /' >>"$p.tmp"
    check "[$label] every live ADD holds its address (record, index, link)" "$p.own"
    check "[$label] no address held by anyone not live, no address recorded twice" "$p.leak"
    check "[$label] deleted containers hold nothing" "$p.dead"
    check "[$label] no stray links (container netns, host netns)" "$p.links"
    check "[$label] no temp files or foreign files in the store" "$p.tmp"
}

if [[ ${FT_SELFTEST:-0} == 1 ]]; then
    read -r cid slot ip < <(head -n1 "$W/live")
    echo "selftest: planting faults (lost record of $cid, leaked record, stray host link, temp file, duplicate ACK)"
    rm -f "$STORE/$ip"                                          # lost: a live ADD's record
    printf 'mtpf-ghost\r\neth0' >"$STORE/10.79.0.250"             # leaked: nobody live
    ip link add mtpfstray type veth peer name mtpfstrayx          # stray links in the host netns
    : >"$STORE/.tmp/selftest"                                   # temp file
    echo "lane 0: DUPLICATE: selftest" >>"$W/lane1/anomalies"   # a duplicate ACK
fi
cat "$W"/lane*/anomalies 2>/dev/null | grep -i duplicate >"$W/p.dup"
check "no address acknowledged to two live attachments" "$W/p.dup"
cat "$W"/lane*/anomalies 2>/dev/null | grep -vi duplicate >"$W/p.other"
check "every operation completed; no error code 5/11/999 after a kill" "$W/p.other"
check_state after-kills
if [[ ${FT_SELFTEST:-0} == 1 ]]; then
    # expected: duplicate, [after-kills] own, leak, links, tmp = 5 failures; nothing else
    want=5
    echo "selftest: $failed checks failed, expected $want"
    ((failed == want)) && { echo "1 passed, 0 failed"; exit 0; }
    echo "0 passed, 1 failed"
    exit 1
fi

# DEL pass over half the live containers (concurrently), then GC with the rest as valid
: >"$W/p.delpass"
mapfile -t L <"$W/live"
keep_list=()
half=$((${#L[@]} / 2))
for ((i = 0; i < ${#L[@]}; i++)); do
    read -r cid slot ip <<<"${L[$i]}"
    lane=${cid#"$P"-l}
    lane=${lane%%-*}
    if ((i < half)); then
        (run_cni DEL "$cid" "$P-l$lane-s$slot" "$W/out/$cid.final-del"
            ((RC == 0)) || echo "final DEL $cid failed: $(cat "$W/out/$cid.final-del")" >>"$W/p.delpass") &
        echo "$cid $slot" >>"$W/deleted"
    else
        keep_list+=("${L[$i]}")
    fi
done
wait
printf '%s\n' "${keep_list[@]}" | grep . | sort >"$W/live"
sort -o "$W/deleted" "$W/deleted"
check "DEL pass over $half live containers" "$W/p.delpass"

jq -n --slurpfile c "$W/conf.json" --rawfile live "$W/live" '$c[0] + {"cni.dev/valid-attachments":
    ($live | split("\n") | map(select(length > 0) | split(" ") | {containerID: .[0], ifname: "eth0"}))}' >"$W/gc.json"
ls "$STORE" | grep -c '^[0-9]' >"$W/before-gc"
CNI_COMMAND=GC "$MT" <"$W/gc.json" >"$W/out/gc" 2>"$W/out/gc.err"
rc=$?
: >"$W/p.gc"
((rc == 0)) || echo "GC failed (rc $rc): $(cat "$W/out/gc")" >>"$W/p.gc"
after=$(ls "$STORE" | grep -c '^[0-9]')
(($(cat "$W/before-gc") == after)) || echo "GC released $(($(cat "$W/before-gc") - after)) addresses: they had leaked" >>"$W/p.gc"
check "GC with the live containers as valid attachments succeeds and releases nothing" "$W/p.gc"
check_state after-gc

# teardown: DEL everything still live; then the store must be empty and every netns clean
: >"$W/p.teardown"
while read -r cid slot ip; do
    lane=${cid#"$P"-l}
    lane=${lane%%-*}
    run_cni DEL "$cid" "$P-l$lane-s$slot" "$W/out/$cid.teardown"
    ((RC == 0)) || echo "teardown DEL $cid failed: $(cat "$W/out/$cid.teardown")" >>"$W/p.teardown"
    echo "$cid $slot" >>"$W/deleted"
done <"$W/live"
: >"$W/live"
check "teardown DELs" "$W/p.teardown"
check_state teardown
: >"$W/p.empty"
store_records | sed 's/^/record left: /' >>"$W/p.empty"
find "$STORE/owners" -mindepth 1 ! -name .complete | sed 's/^/index entry left: /' >>"$W/p.empty"
check "store empty after the teardown (only lock, last_reserved_ip.*, owners/.complete)" "$W/p.empty"

echo "fault.sh: counts: kills $K (ADD $KA, DEL $KD), attempts $AT, acknowledged ADD $AD, DEL $DE;" \
    "anomalies $(cat "$W"/lane*/anomalies 2>/dev/null | wc -l) during the run, $failed failed checks"
echo "$passed passed, $failed failed"
((failed == 0))
