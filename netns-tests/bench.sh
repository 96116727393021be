#!/bin/bash
# netns-tests/bench.sh: latency of mactrunk against the reference CNI plugins (root only).
#
#   netns-tests/bench.sh [--bin-dir DIR] [--ref-dir DIR] [--runs N] [--quick] [--sizes LIST]
#                        [--compare-dir DIR] [--keep]
#
#   --bin-dir DIR   mactrunk and mactrunk-ipam from DIR (default: ./build.sh, the static
#                   release build users get, then target/static)
#   --ref-dir DIR   reference macvlan and host-local from DIR (default /usr/lib/cni)
#   --runs N        measured iterations per figure (default 100; IPAM: 2 x N)
#   --quick         CI mode: 15 runs, sizes 0,1000,20000 with 15 IPAM runs each (< 1 min)
#   --sizes LIST    prefilled allocations for the IPAM-alone figures (default 0,1000,20000)
#   --conc N        concurrency of the timed wall-clock figure (default 50); a second run
#                   with 64 checks that every ADD succeeds
#   --compare-dir DIR  also time another build of mactrunk (DIR/mactrunk), interleaved with
#                   the one under test: process start (VERSION), ADD, DEL (section 5; e.g.
#                   the static build against a dynamic `cargo build --release`)
#   --cluster-only  only section 6 (cluster mode on etcd)
#   --keep          keep the work directory
#
# What is measured (everything in one run, mactrunk and the reference interleaved: every
# iteration runs both, alternating which goes first, so both see the same machine noise):
#   1. full plugin: ADD, DEL and ADD+DEL of one container on a veth parent in a host netns
#      this script creates: mactrunk (ipam.type mactrunk-ipam, in-process IPAM) against
#      /usr/lib/cni/macvlan + host-local (two Go execs). Same config apart from the types.
#   2. 50 concurrent ADDs (each into its own netns): wall time from first fork to last exit;
#      then 50 concurrent DELs; then 64 concurrent ADDs, counting successes.
#   3. IPAM alone: mactrunk-ipam vs host-local as stand-alone IPAM plugins (ADD, DEL), with
#      0 / 1,000 / 20,000 existing allocations in a /16. The stores are prefilled by writing
#      the files directly: the host-local layout for both, plus mactrunk's owner index
#      (owners/<cid>@<ifname> holding the IP, an empty owners/.complete) for mactrunk's
#      copy. The empty stamp makes mactrunk's first call at each size scan once and stamp
#      the index (as after a reboot); that call is one of the unrecorded warm-up rounds.
#   4. mactrunk ADD with an opt-in option that adds work (probe, macFromIP, hostShim) against
#      plain mactrunk ADD, up to 30 runs each. hostShim twice: with the shim already there (an
#      anchor container keeps it: the usual case) and creating it (no other user: every ADD
#      creates the shim, every DEL deletes it), the host holding an address on the parent.
#   5. with --compare-dir: the build under test against another one (start-up alone as a
#      VERSION call, ADD, ADD+DEL), interleaved.
#   6. cluster mode (ipam.cluster, issue 9) against local mode, with a real 3-member etcd
#      (Debian's etcd-server) on the bench netns's 127.0.0.1 (netns-tests/etcd.sh); skipped
#      with a note when etcd, etcdctl or BIN/mactrunk-etcd is missing (BENCH_ETCD_DIR=DIR
#      puts the members' data in DIR, e.g. a tmpfs, instead of the work directory):
#      a. an ADD with room in an owned block (no etcd: an anchor container keeps the block)
#         against a local-mode ADD, full plugin and IPAM alone, ADD+DEL pairs interleaved;
#      b. an ADD that claims a block, cold (every plugin call is a new process: it starts the
#         etcd helper, connects, lists the blocks, claims one, then allocates): on a node
#         with one-address blocks (blockSize 32) and no DEL in between, so every ADD claims;
#         full plugin and IPAM alone, against the local-mode ADD of a.; and the first ADD of a
#         new node (fresh dataDir and nodeName: also creates the store) against a first ADD
#         on a fresh local store (up to 30 runs each);
#      c. 3 hosts x 32 concurrent ADDs (full plugin, one dataDir and nodeName per "host", all
#         in the bench netns on one /24 with blockSize 28: each host claims 3 blocks while
#         the others do) against the same load in local mode; wall time from the first fork
#         to the last exit, 3 reps (fresh network each), then the DELs; failures and
#         duplicates across the hosts (local mode hands every address out three times: not
#         counted).
# Times are wall clock from bash (fork + exec + wait, $EPOCHREALTIME) around a direct exec
# of the plugin inside the host netns; the same fork/exec cost (printed as "exec baseline",
# /bin/true) is in both sides' figures, so the ratios slightly understate our advantage.
#
# Targets are printed as PASS/MISS and never change the exit status:
#   ADD+DEL median <= 0.8 x reference; IPAM ADD median <= 3 ms at every size and flat
#   (median at the largest size <= 1.3 x median at 0); 64 concurrent ADDs all succeed;
#   cluster: owned-block ADD median <= 1.1 x local ADD (full plugin and IPAM alone),
#   claiming ADD median <= 15 ms cold (full plugin), 3 x 32 concurrent ADDs all succeed
#   without duplicates.
# Exit status: 0 unless the benchmark could not run (setup failure, plugins failing).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin_dir=""
ref_dir=/usr/lib/cni
runs=100
ipam_runs=""
sizes=0,1000,20000
conc=50
keep=0
compare_dir=""

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }

if [[ ${1:-} != --inner ]]; then
    quick=0
    cluster_only=0
    while (($#)); do
        case $1 in
            --bin-dir) bin_dir=${2:?}; shift ;;
            --bin-dir=*) bin_dir=${1#*=} ;;
            --ref-dir) ref_dir=${2:?}; shift ;;
            --ref-dir=*) ref_dir=${1#*=} ;;
            --runs) runs=${2:?}; shift ;;
            --runs=*) runs=${1#*=} ;;
            --sizes) sizes=${2:?}; shift ;;
            --sizes=*) sizes=${1#*=} ;;
            --conc) conc=${2:?}; shift ;;
            --compare-dir) compare_dir=${2:?}; shift ;;
            --compare-dir=*) compare_dir=${1#*=} ;;
            --quick) quick=1 ;;
            --cluster-only) cluster_only=1 ;;
            --keep) keep=1 ;;
            -h | --help) usage; exit 0 ;;
            *) echo "bench.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
        esac
        shift
    done
    ((quick)) && { runs=15; ipam_runs=15; }
    ipam_runs=${ipam_runs:-$((2 * runs))}
    [[ $(id -u) == 0 ]] || { echo "bench.sh: must run as root" >&2; exit 2; }
    for t in ip jq awk sort timeout; do
        command -v $t >/dev/null || { echo "bench.sh: missing tool $t" >&2; exit 2; }
    done
    if [[ -z $bin_dir ]]; then
        "$root/build.sh" -q >&2 || { echo "bench.sh: build failed" >&2; exit 2; }
        bin_dir=$root/target/static
    fi
    bin_dir=$(realpath "$bin_dir")
    ref_dir=$(realpath "$ref_dir")
    [[ -n $compare_dir ]] && compare_dir=$(realpath "$compare_dir")
    for b in "$bin_dir/mactrunk" "$bin_dir/mactrunk-ipam" "$ref_dir/macvlan" "$ref_dir/host-local" ${compare_dir:+"$compare_dir/mactrunk"}; do
        [[ -x $b ]] || { echo "bench.sh: $b not found" >&2; exit 2; }
    done

    P=mtpb$(printf '%04x' $((($$ + RANDOM) % 65536)))
    W=$(mktemp -d /tmp/mtp-bench.XXXXXX)
    HNS=$P-h
    cleanup() {
        local ns pids
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            # shellcheck disable=SC2086
            [[ -n $pids ]] && kill -9 $pids 2>/dev/null
            ip netns delete "$ns" 2>/dev/null
        done
        if ((keep)); then echo "bench.sh: work directory kept: $W" >&2; else rm -rf "$W"; fi
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ip netns add "$HNS" || exit 2
    ip -n "$HNS" link set lo up
    ip -n "$HNS" link add mtpb0 mtu 1500 type veth peer name mtpb0x || exit 2
    ip -n "$HNS" link set mtpb0 up
    ip -n "$HNS" link set mtpb0x up
    nmax=$((conc > 64 ? conc : 64))
    ((nmax < 96)) && nmax=96 # the cluster section's 3 x 32
    for ((i = 1; i <= nmax; i++)); do
        ip netns add "$P-c$i" || exit 2
    done
    export BENCH_P=$P BENCH_W=$W BENCH_BIN=$bin_dir BENCH_REF=$ref_dir BENCH_RUNS=$runs \
        BENCH_IPAM_RUNS=$ipam_runs BENCH_SIZES=$sizes BENCH_CONC=$conc BENCH_NMAX=$nmax \
        BENCH_CMP=$compare_dir BENCH_CLUSTER_ONLY=$cluster_only
    # Everything below runs inside the host netns: plugins are exec'd directly (no
    # `ip netns exec` per call, whose mount-namespace setup would dominate the figures).
    ip netns exec "$HNS" bash "$0" --inner
    exit $?
fi

# ============================================================ inner part (in the host netns)
P=$BENCH_P W=$BENCH_W runs=$BENCH_RUNS ipam_runs=$BENCH_IPAM_RUNS conc=$BENCH_CONC nmax=$BENCH_NMAX
MT=$BENCH_BIN/mactrunk MTI=$BENCH_BIN/mactrunk-ipam
REF=$BENCH_REF/macvlan REFI=$BENCH_REF/host-local
export CNI_PATH=$BENCH_REF
mkdir -p "$W"/{out,t}
unset MACTRUNK_LOG

conf_full() { # conf_full TYPE IPAMTYPE DATADIR
    jq -n --arg t "$1" --arg it "$2" --arg d "$3" '{cniVersion: "1.0.0", name: "mtpbench",
        type: $t, master: "mtpb0", mode: "bridge",
        ipam: {type: $it, subnet: "10.77.0.0/16", dataDir: $d, routes: [{dst: "0.0.0.0/0"}]}}'
}
conf_full macvlan host-local "$W/data-ref" >"$W/ref.json"
conf_full mactrunk mactrunk-ipam "$W/data-mt" >"$W/mt.json"

FAILS=0
# call BIN CONF CMD CID NS OUTFILE: one plugin call; sets DT (microseconds) and CRC
call() {
    local t0 t1
    t0=${EPOCHREALTIME/./}
    CNI_COMMAND=$3 CNI_CONTAINERID=$4 CNI_NETNS=/run/netns/$5 CNI_IFNAME=eth0 "$1" <"$2" >"$6" 2>&1
    CRC=$?
    t1=${EPOCHREALTIME/./}
    DT=$((t1 - t0))
    if ((CRC != 0)); then
        FAILS=$((FAILS + 1))
        if ((FAILS <= 5)); then
            echo "bench.sh: $(basename "$1") $3 $4 failed (rc $CRC): $(head -c 400 "$6")" >&2
        fi
    fi
}

# stats FILE: "median p90" in ms (values in microseconds, one a line)
stats() {
    sort -n "$1" | awk '{v[NR] = $1} END {
        if (NR == 0) { print "nan nan"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        i = int(0.9 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%.2f %.2f\n", m / 1000, v[i] / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

SUMMARY=$W/summary.tsv
: >"$SUMMARY"
# row LABEL MT-FILE REF-FILE: print median/p90 of both and the ratio; keep it for the targets
row() {
    local a b
    read -r am ap < <(stats "$2")
    read -r bm bp < <(stats "$3")
    printf '%-34s %8s %8s   %8s %8s   %6s\n' "$1" "$am" "$ap" "$bm" "$bp" "$(ratio "$am" "$bm")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$am" "$ap" "$bm" "$bp" >>"$SUMMARY"
}
header() {
    printf '\n%-34s %17s   %17s   %6s\n' "$1" "mactrunk" "reference" "ratio"
    printf '%-34s %8s %8s   %8s %8s   %6s\n' "" "median" "p90" "median" "p90" "mt/ref"
}

echo "== mactrunk benchmark $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname): $(nproc) cores," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   mactrunk: $MT ($(stat -c %s "$MT") bytes); reference: $REF + $REFI" \
    "($(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?'))"
echo "   runs: $runs (full plugin), $ipam_runs (IPAM alone); times in ms, wall clock per exec"

# exec baseline: what fork + exec + wait of a trivial program costs in this shell
: >"$W/t/true"
for ((i = 0; i < 50; i++)); do
    t0=${EPOCHREALTIME/./}
    /bin/true
    t1=${EPOCHREALTIME/./}
    echo $((t1 - t0)) >>"$W/t/true"
done
read -r tm tp < <(stats "$W/t/true")
echo "   exec baseline (/bin/true): median $tm ms, p90 $tp ms (included in every figure)"

get() { awk -F'\t' -v k="$1" -v c="$2" '$1 == k {print $c}' "$SUMMARY"; }
verdict() { if awk "BEGIN{exit !($1)}"; then echo PASS; else echo MISS; fi; }

# ---------------------------------------------------------------- 6. cluster mode
# (defined here, run after section 5, or alone with --cluster-only)
cluster_section() {
    local why="" p
    for p in etcd etcdctl; do command -v $p >/dev/null || why="no $p (apt-get install etcd-server etcd-client)"; done
    [[ -x $BENCH_BIN/mactrunk-etcd ]] || why="no $BENCH_BIN/mactrunk-etcd"
    if [[ -n $why ]]; then
        printf '\n== cluster mode: skipped (%s)\n' "$why"
        return 0
    fi
    # etcd.sh on the bench netns's loopback (every plugin runs in this netns)
    T=$W/cl
    mkdir -p "$T"
    # BENCH_ETCD_DIR: the members' data elsewhere (e.g. on a tmpfs, to see etcd's own fsyncs)
    ETCD_DIR=${BENCH_ETCD_DIR:-$T/etcd} ETCD_NS="" ETCD_IPS=(127.0.0.1 127.0.0.1 127.0.0.1)
    die() { echo "bench.sh: $*" >&2; exit 2; }
    log() { echo "   ($*)" >&2; }
    # shellcheck source=etcd.sh
    source "$here/etcd.sh"
    etcd_start
    local eps
    eps=$(printf '%s\n' "${ETCD_ENDPOINTS[@]}" | jq -R . | jq -sc .)
    # clconf TYPE IPAMTYPE DATADIR NAME SUBNET NODE [CLUSTER]: a config, cluster mode unless CLUSTER=0
    clconf() {
        jq -n --arg t "$1" --arg it "$2" --arg d "$3" --arg n "$4" --arg sub "$5" --arg node "$6" \
            --argjson eps "$eps" --argjson cl "${7:-1}" '{cniVersion: "1.0.0", name: $n,
            type: $t, master: "mtpb0", mode: "bridge",
            ipam: ({type: $it, subnet: $sub, dataDir: $d, routes: [{dst: "0.0.0.0/0"}], lockTimeout: 60000}
                + (if $cl == 1 then {cluster: {etcdEndpoints: $eps, nodeName: $node, blockSize: 28}} else {} end))}'
    }
    local i r who
    echo
    echo "== cluster mode: 3-member etcd $(etcd --version 2>/dev/null | head -n1 | awk '{print $3}') on 127.0.0.1" \
        "(ports ${ETCD_CPORT[1]}, ${ETCD_CPORT[2]}, ${ETCD_CPORT[3]}); helper $BENCH_BIN/mactrunk-etcd" \
        "($(stat -c %s "$BENCH_BIN/mactrunk-etcd") bytes)"

    # ---- a. owned block vs local
    clconf mactrunk mactrunk-ipam "$W/data-cl" mtpcl 10.75.0.0/16 bench-a >"$W/cl-full.json"
    clconf mactrunk mactrunk-ipam "$W/data-cll" mtpcl 10.75.0.0/16 bench-a 0 >"$W/cll-full.json"
    call "$MT" "$W/cl-full.json" ADD "$P-clanchor" "$P-c2" "$W/out/cl-anchor"
    ((CRC == 0)) || { echo "bench.sh: cluster ADD failed: $(head -c 400 "$W/out/cl-anchor")" >&2; return 0; }
    call "$MT" "$W/cll-full.json" ADD "$P-clanchor" "$P-c3" "$W/out/cll-anchor"
    one_own() { # one_own cl|ll I RECORD: full plugin ADD+DEL, then IPAM alone ADD+DEL
        local conf=$W/cl-full.json a arc
        [[ $1 == ll ]] && conf=$W/cll-full.json
        call "$MT" "$conf" ADD "$P-o$1-$2" "$P-c1" "$W/out/own-add"
        a=$DT arc=$CRC
        call "$MT" "$conf" DEL "$P-o$1-$2" "$P-c1" "$W/out/own-del"
        (($3 && arc == 0 && CRC == 0)) && echo "$a" >>"$W/t/own-${1:0:1}f"
        call "$MTI" "$conf" ADD "$P-i$1-$2" "$P-c1" "$W/out/own-iadd"
        a=$DT arc=$CRC
        call "$MTI" "$conf" DEL "$P-i$1-$2" "$P-c1" "$W/out/own-idel"
        (($3 && arc == 0 && CRC == 0)) && echo "$a" >>"$W/t/own-${1:0:1}i"
        return 0
    }
    for f in cf lf ci li; do : >"$W/t/own-$f"; done
    for ((i = -3; i < runs; i++)); do
        if ((i % 2)); then one_own ll "$i" $((i >= 0)); one_own cl "$i" $((i >= 0)); else one_own cl "$i" $((i >= 0)); one_own ll "$i" $((i >= 0)); fi
    done
    printf '\n%-34s %17s   %17s   %6s\n' "owned block ($runs runs)" "cluster mode" "local mode" "ratio"
    printf '%-34s %8s %8s   %8s %8s   %6s\n' "" "median" "p90" "median" "p90" "cl/local"
    row "ADD, room in an owned block" "$W/t/own-cf" "$W/t/own-lf"
    row "IPAM ADD, room in an owned block" "$W/t/own-ci" "$W/t/own-li"
    call "$MT" "$W/cl-full.json" DEL "$P-clanchor" "$P-c2" "$W/out/cl-anchor"
    call "$MT" "$W/cll-full.json" DEL "$P-clanchor" "$P-c3" "$W/out/cll-anchor"

    # ---- b. claiming ADD, cold
    # Every plugin call is a new process, so every claim starts the helper and connects.
    # (1) On an established node: blockSize 32 (one-address blocks) and no DEL in between,
    #     so each ADD finds its blocks full, lists the blocks, claims one and allocates.
    # (2) The first ADD of a new node (fresh dataDir and nodeName): also creates the store
    #     and saves the cluster settings (.cluster.json) once.
    local cruns=$((runs < 30 ? runs : 30)) a arc
    for f in cf ci nf ni lf; do : >"$W/t/claim-$f"; done
    clconf mactrunk mactrunk-ipam "$W/claim-full" mtpclaim 10.74.0.0/16 claim-full |
        jq '.ipam.cluster.blockSize = 32' >"$W/claim-full.json"
    clconf mactrunk mactrunk-ipam "$W/claim-ipam" mtpclaim 10.74.0.0/16 claim-ipam |
        jq '.ipam.cluster.blockSize = 32' >"$W/claim-ipam.json"
    for ((i = -2; i < cruns; i++)); do
        call "$MT" "$W/claim-full.json" ADD "$P-cf$i" "$P-c$((i + 3))" "$W/out/claim-add"
        ((i >= 0 && CRC == 0)) && echo "$DT" >>"$W/t/claim-cf"
        call "$MTI" "$W/claim-ipam.json" ADD "$P-ci$i" "$P-c1" "$W/out/claim-add"
        ((i >= 0 && CRC == 0)) && echo "$DT" >>"$W/t/claim-ci"
        # a new node's first ADD, and the same in local mode (a fresh store), for scale
        clconf mactrunk mactrunk-ipam "$W/claim-n$i" mtpnew 10.73.0.0/16 new-$i >"$W/claim.json"
        call "$MT" "$W/claim.json" ADD "$P-cn$i" "$P-c40" "$W/out/claim-add"
        a=$DT arc=$CRC
        call "$MT" "$W/claim.json" DEL "$P-cn$i" "$P-c40" "$W/out/claim-del"
        ((i >= 0 && arc == 0)) && echo "$a" >>"$W/t/claim-nf"
        clconf mactrunk mactrunk-ipam "$W/claim-l$i" mtpnew 10.73.0.0/16 x 0 >"$W/claim.json"
        call "$MT" "$W/claim.json" ADD "$P-cl$i" "$P-c40" "$W/out/claim-add"
        ((i >= 0 && CRC == 0)) && echo "$DT" >>"$W/t/claim-lf"
        call "$MT" "$W/claim.json" DEL "$P-cl$i" "$P-c40" "$W/out/claim-del"
    done
    local claimed
    claimed=$(etcd_blocks mtpclaim | awk '$2 == "claim-full"' | grep -c .)
    ((claimed >= cruns + 2)) || echo "bench.sh: the claiming ADDs made only $claimed blocks (expected one each)" >&2
    for ((i = -2; i < cruns; i++)); do
        call "$MT" "$W/claim-full.json" DEL "$P-cf$i" "$P-c$((i + 3))" "$W/out/claim-del"
        call "$MTI" "$W/claim-ipam.json" DEL "$P-ci$i" "$P-c1" "$W/out/claim-del"
    done
    printf '\n%-34s %17s   %17s   %6s\n' "claiming a block, cold ($cruns runs)" "cluster mode" "local ADD" "ratio"
    printf '%-34s %8s %8s   %8s %8s   %6s\n' "" "median" "p90" "median" "p90" "cl/local"
    row "ADD that claims a block" "$W/t/claim-cf" "$W/t/own-lf"
    row "IPAM ADD that claims a block" "$W/t/claim-ci" "$W/t/own-li"
    row "first ADD of a new node" "$W/t/claim-nf" "$W/t/claim-lf"

    # ---- c. 3 hosts x 32 concurrent ADDs
    # c3_run cl|ll REP: 96 ADDs at once (host h: containers 32(h-1)+1..32h), then 96 DELs
    c3_run() {
        local d=$W/c3-$1-$2 h i k t0 t1
        mkdir -p "$d"
        for h in 1 2 3; do
            clconf mactrunk mactrunk-ipam "$d/data-h$h" "mtpc3-$2" 10.76.0.0/24 "c3-h$h" \
                "$([[ $1 == cl ]] && echo 1 || echo 0)" >"$d/h$h.json"
        done
        t0=${EPOCHREALTIME/./}
        for h in 1 2 3; do
            for ((i = 1; i <= 32; i++)); do
                k=$((32 * (h - 1) + i))
                CNI_COMMAND=ADD CNI_CONTAINERID=$P-c3-$k CNI_NETNS=/run/netns/$P-c$k CNI_IFNAME=eth0 \
                    "$MT" <"$d/h$h.json" >"$d/add-$k" 2>&1 &
            done
        done
        wait
        t1=${EPOCHREALTIME/./}
        echo $((t1 - t0)) >>"$W/t/c3-$1"
        C3OK=0
        for ((k = 1; k <= 96; k++)); do jq -e '.ips[0].address' "$d/add-$k" >/dev/null 2>&1 && C3OK=$((C3OK + 1)); done
        C3DUP=$(cat "$d"/add-* | jq -r '.ips[0].address? // empty' 2>/dev/null | sort | uniq -d | wc -l)
        t0=${EPOCHREALTIME/./}
        for h in 1 2 3; do
            for ((i = 1; i <= 32; i++)); do
                k=$((32 * (h - 1) + i))
                CNI_COMMAND=DEL CNI_CONTAINERID=$P-c3-$k CNI_NETNS=/run/netns/$P-c$k CNI_IFNAME=eth0 \
                    "$MT" <"$d/h$h.json" >"$d/del-$k" 2>&1 &
            done
        done
        wait
        t1=${EPOCHREALTIME/./}
        echo $((t1 - t0)) >>"$W/t/c3d-$1"
    }
    : >"$W/t/c3-cl"; : >"$W/t/c3-ll"; : >"$W/t/c3d-cl"; : >"$W/t/c3d-ll"
    local c3fail=0 c3dup=0 c3reps=3 order
    for ((r = 0; r < c3reps; r++)); do
        order="cl ll"
        ((r % 2)) && order="ll cl"
        for who in $order; do
            c3_run "$who" "$r"
            if [[ $who == cl ]]; then
                c3fail=$((c3fail + 96 - C3OK))
                c3dup=$((c3dup + C3DUP))
            fi
        done
    done
    printf '\n%-34s %17s   %17s   %6s\n' "3 hosts x 32 concurrent ($c3reps reps)" "cluster mode" "local mode" "ratio"
    printf '%-34s %8s %8s   %8s %8s   %6s\n' "" "median" "p90" "median" "p90" "cl/local"
    row "96 ADDs at once (wall)" "$W/t/c3-cl" "$W/t/c3-ll"
    row "96 DELs at once (wall)" "$W/t/c3d-cl" "$W/t/c3d-ll"
    echo "   cluster mode: $c3fail failed ADDs of $((3 * 96)), $c3dup duplicate addresses across the hosts"
    echo "   blocks per host in etcd after the last rep's DELs: $(etcd_blocks "mtpc3-$((c3reps - 1))" 2>/dev/null |
        awk '{print $2}' | sort | uniq -c | awk '{printf "%s %s  ", $2, $1}')"

    # ---- targets
    echo
    local m l
    m=$(get "ADD, room in an owned block" 2) l=$(get "ADD, room in an owned block" 4)
    echo "$(verdict "$m <= 1.1 * $l") owned-block ADD median $m ms = $(ratio "$m" "$l") x local-mode ADD ($l ms); target <= 1.1"
    m=$(get "IPAM ADD, room in an owned block" 2) l=$(get "IPAM ADD, room in an owned block" 4)
    echo "$(verdict "$m <= 1.1 * $l") owned-block IPAM ADD median $m ms = $(ratio "$m" "$l") x local-mode IPAM ADD ($l ms); target <= 1.1"
    m=$(get "ADD that claims a block" 2)
    echo "$(verdict "$m <= 15") claiming ADD median $m ms (cold: helper start, connect, list, create txn, usage report; IPAM alone $(get "IPAM ADD that claims a block" 2) ms, a new node's first ADD $(get "first ADD of a new node" 2) ms); target <= 15 ms"
    m=$(get "96 ADDs at once (wall)" 2) l=$(get "96 ADDs at once (wall)" 4)
    echo "$(verdict "$c3fail == 0 && $c3dup == 0") 3 x 32 concurrent ADDs: $((3 * 96 - c3fail))/$((3 * 96)) ok, $c3dup duplicates; wall $m ms = $(ratio "$m" "$l") x local mode ($l ms)"
    etcd_stop_all
}
if ((BENCH_CLUSTER_ONLY)); then
    cluster_section
    exit 0
fi

# ---------------------------------------------------------------- 1. full plugin, sequential
for f in mt-add mt-del mt-both ref-add ref-del ref-both; do : >"$W/t/$f"; done
one_full() { # one_full mt|ref I RECORD
    local bin=$MT conf=$W/mt.json
    [[ $1 == ref ]] && { bin=$REF; conf=$W/ref.json; }
    local cid=$P-$1-$2 a
    call "$bin" "$conf" ADD "$cid" "$P-c1" "$W/out/$1-add"
    a=$DT
    local arc=$CRC
    call "$bin" "$conf" DEL "$cid" "$P-c1" "$W/out/$1-del"
    if (($3 && arc == 0 && CRC == 0)); then
        echo "$a" >>"$W/t/$1-add"
        echo "$DT" >>"$W/t/$1-del"
        echo $((a + DT)) >>"$W/t/$1-both"
    fi
}
for ((i = 0; i < 5; i++)); do one_full mt w$i 0; one_full ref w$i 0; done # warm-up
for ((i = 0; i < runs; i++)); do
    if ((i % 2)); then one_full ref "$i" 1; one_full mt "$i" 1; else one_full mt "$i" 1; one_full ref "$i" 1; fi
done
header "full plugin (one container)"
row "ADD" "$W/t/mt-add" "$W/t/ref-add"
row "DEL" "$W/t/mt-del" "$W/t/ref-del"
row "ADD+DEL" "$W/t/mt-both" "$W/t/ref-both"

# ---------------------------------------------------------------- 2. concurrency
# conc_run mt|ref N TAG: N concurrent ADDs (ns c1..cN), then N concurrent DELs.
# Sets CADD/CDEL (wall us) and COK (successful ADDs), CDUP (duplicate addresses).
conc_run() {
    local bin=$MT conf=$W/mt.json i t0 t1
    [[ $1 == ref ]] && { bin=$REF; conf=$W/ref.json; }
    local d=$W/conc-$1-$3
    mkdir -p "$d"
    t0=${EPOCHREALTIME/./}
    for ((i = 1; i <= $2; i++)); do
        CNI_COMMAND=ADD CNI_CONTAINERID=$P-k$3-$i CNI_NETNS=/run/netns/$P-c$i CNI_IFNAME=eth0 \
            "$bin" <"$conf" >"$d/add-$i" 2>&1 &
    done
    wait
    t1=${EPOCHREALTIME/./}
    CADD=$((t1 - t0))
    COK=0
    for ((i = 1; i <= $2; i++)); do
        jq -e '.ips[0].address' "$d/add-$i" >/dev/null 2>&1 && COK=$((COK + 1))
    done
    CDUP=$(cat "$d"/add-* | jq -r '.ips[0].address? // empty' 2>/dev/null | sort | uniq -d | wc -l)
    t0=${EPOCHREALTIME/./}
    for ((i = 1; i <= $2; i++)); do
        CNI_COMMAND=DEL CNI_CONTAINERID=$P-k$3-$i CNI_NETNS=/run/netns/$P-c$i CNI_IFNAME=eth0 \
            "$bin" <"$conf" >"$d/del-$i" 2>&1 &
    done
    wait
    t1=${EPOCHREALTIME/./}
    CDEL=$((t1 - t0))
}
creps=$((runs >= 50 ? 5 : 3))
for f in mt-cadd mt-cdel ref-cadd ref-cdel; do : >"$W/t/$f"; done
cfail_mt=0 cfail_ref=0 cdup=0
for ((r = 0; r < creps; r++)); do
    for who in mt ref; do
        conc_run "$who" "$conc" "$r$who"
        echo "$CADD" >>"$W/t/$who-cadd"
        echo "$CDEL" >>"$W/t/$who-cdel"
        [[ $who == mt ]] && cfail_mt=$((cfail_mt + conc - COK)) || cfail_ref=$((cfail_ref + conc - COK))
        cdup=$((cdup + CDUP))
    done
done
header "$conc concurrent (wall, $creps reps)"
row "$conc ADDs at once" "$W/t/mt-cadd" "$W/t/ref-cadd"
row "$conc DELs at once" "$W/t/mt-cdel" "$W/t/ref-cdel"
echo "   failed ADDs: mactrunk $cfail_mt, reference $cfail_ref of $((creps * conc)) each; duplicate addresses: $cdup"
conc_run mt 64 x64mt
ok64=$COK dup64=$CDUP wall64=$CADD
conc_run ref 64 x64ref
echo "   64 concurrent ADDs: mactrunk $ok64/64 ok in $(awk -v v="$wall64" 'BEGIN{printf "%.1f", v/1000}') ms" \
    "(duplicates $dup64); reference $COK/64 ok in $(awk -v v="$CADD" 'BEGIN{printf "%.1f", v/1000}') ms"

# ---------------------------------------------------------------- 3. IPAM alone
# prefill DIR N WITHINDEX: N allocations 10.78.0.2.. in the host-local layout (+ index)
prefill() {
    local d=$1 n=$2 idx=$3 i o ip=""
    mkdir -p "$d"
    chmod 700 "$d"
    ((idx)) && mkdir -m 700 -p "$d/owners" "$d/.tmp"
    for ((i = 0; i < n; i++)); do
        o=$((i + 2))
        ip=10.78.$((o >> 8)).$((o & 255))
        printf 'mtpfill-%d\r\neth0' "$i" >"$d/$ip"
        ((idx)) && printf '%s\n' "$ip" >"$d/owners/mtpfill-$i@eth0"
    done
    [[ -n $ip ]] && printf '%s' "$ip" >"$d/last_reserved_ip.0"
    ((idx)) && : >"$d/owners/.complete"
    return 0
}
ipam_conf() { # ipam_conf TYPE DATADIR
    jq -n --arg t "$1" --arg d "$2" '{cniVersion: "1.0.0", name: "mtpipam", type: "macvlan",
        ipam: {type: $t, subnet: "10.78.0.0/16", dataDir: $d}}'
}
IFS=, read -ra size_list <<<"$BENCH_SIZES"
# All sizes are prefilled first, then measured in the same loop (every iteration runs
# mactrunk and the reference at every size), so "flat from 0 to 20k" compares figures
# taken under the same machine load.
for n in "${size_list[@]}"; do
    t0=${EPOCHREALTIME/./}
    prefill "$W/ipam-mt-$n/mtpipam" "$n" 1
    prefill "$W/ipam-ref-$n/mtpipam" "$n" 0
    t1=${EPOCHREALTIME/./}
    echo "   (prefill of $n + $n allocations: $(awk -v v=$((t1 - t0)) 'BEGIN{printf "%.1f", v/1e6}') s)" >&2
    ipam_conf mactrunk-ipam "$W/ipam-mt-$n" >"$W/ipam-mt-$n.json"
    ipam_conf host-local "$W/ipam-ref-$n" >"$W/ipam-ref-$n.json"
    for f in add del; do : >"$W/t/imt-$f-$n"; : >"$W/t/iref-$f-$n"; done
done
one_ipam() { # one_ipam mt|ref SIZE I RECORD
    local bin=$MTI conf=$W/ipam-mt-$2.json a arc
    [[ $1 == ref ]] && { bin=$REFI; conf=$W/ipam-ref-$2.json; }
    call "$bin" "$conf" ADD "$P-i$1-$3" "$P-c1" "$W/out/i$1-add"
    a=$DT arc=$CRC
    call "$bin" "$conf" DEL "$P-i$1-$3" "$P-c1" "$W/out/i$1-del"
    if (($4 && arc == 0 && CRC == 0)); then
        echo "$a" >>"$W/t/i$1-add-$2"
        echo "$DT" >>"$W/t/i$1-del-$2"
    fi
}
# The prefill leaves tens of thousands of dirty inodes; the first fsyncs would wait for
# their journal commit. Write them out first: a real store was not written a second ago.
t0=${EPOCHREALTIME/./}
sync -f "$W" 2>/dev/null || sync
t1=${EPOCHREALTIME/./}
echo "   (sync after the prefill: $(awk -v v=$((t1 - t0)) 'BEGIN{printf "%.1f", v/1e6}') s)" >&2
nsizes=${#size_list[@]}
for ((i = -3; i < ipam_runs; i++)); do
    rec=$((i >= 0))
    for ((j = 0; j < nsizes; j++)); do
        n=${size_list[$(((j + i + 3) % nsizes))]}
        if ((i % 2)); then one_ipam ref "$n" "$i" $rec; one_ipam mt "$n" "$i" $rec; else one_ipam mt "$n" "$i" $rec; one_ipam ref "$n" "$i" $rec; fi
    done
done
header "IPAM alone (/16, stand-alone plugin exec, sizes interleaved)"
for n in "${size_list[@]}"; do
    row "IPAM ADD, $n allocated" "$W/t/imt-add-$n" "$W/t/iref-add-$n"
    row "IPAM DEL, $n allocated" "$W/t/imt-del-$n" "$W/t/iref-del-$n"
done
rm -rf "$W"/ipam-mt-* "$W"/ipam-ref-*

# ---------------------------------------------------------------- 4. ADD options
# The opt-in options that add work to ADD, each against plain ADD (same iteration, order
# rotated): probe (RFC 5227 ARP probe, timeoutMs 100: the window is waited out in full when
# nobody answers, plus the close of the AF_PACKET socket), macFromIP (one RTM_NEWLINK) and
# hostShim (the shim registry's lock and record, the host's addresses, a neighbour entry and a
# route on each side). For hostShim the host gets an address on the parent, and an anchor
# container in c2 keeps the shim; then, without the anchor, hostShim ADDs that each create
# the shim (and DELs that each delete it) against plain ADD once more.
ip addr add 10.77.255.254/16 dev mtpb0
jq '.probe = {"timeoutMs": 100}' "$W/mt.json" >"$W/mt-probe.json"
jq '.macFromIP = true' "$W/mt.json" >"$W/mt-macip.json"
jq '.hostShim = true' "$W/mt.json" >"$W/mt-shim.json"
cp "$W/mt-shim.json" "$W/mt-shimnew.json"
vruns=$((runs < 30 ? runs : 30))
one_variant() { # one_variant VARIANT I RECORD
    local conf=$W/mt.json a
    [[ $1 != plain ]] && conf=$W/mt-$1.json
    call "$MT" "$conf" ADD "$P-v$1-$2" "$P-c1" "$W/out/v-add"
    a=$DT
    local arc=$CRC
    call "$MT" "$conf" DEL "$P-v$1-$2" "$P-c1" "$W/out/v-del"
    (($3 && arc == 0 && CRC == 0)) && echo "$a" >>"$W/t/v-$1"
    return 0
}
variant_loop() { # variant_loop VARIANT...: each iteration runs every variant, order rotated
    local n=$# i j
    local -a vs=("$@")
    for v in "${vs[@]}"; do : >"$W/t/v-$v"; done
    for ((i = -2; i < vruns; i++)); do
        for ((j = 0; j < n; j++)); do
            one_variant "${vs[$(((i + 2 + j) % n))]}" "$i" $((i >= 0))
        done
    done
}
call "$MT" "$W/mt-shim.json" ADD "$P-anchor" "$P-c2" "$W/out/anchor"
variant_loop plain probe macip shim
printf '\n%-34s %17s   %17s   %6s\n' "mactrunk ADD options ($vruns runs)" "with the option" "plain ADD" "ratio"
printf '%-34s %8s %8s   %8s %8s   %6s\n' "" "median" "p90" "median" "p90" "opt/plain"
row "ADD with probe (timeoutMs 100)" "$W/t/v-probe" "$W/t/v-plain"
row "ADD with macFromIP" "$W/t/v-macip" "$W/t/v-plain"
row "ADD with hostShim (shim exists)" "$W/t/v-shim" "$W/t/v-plain"
call "$MT" "$W/mt-shim.json" DEL "$P-anchor" "$P-c2" "$W/out/anchor"
ip link show mts-mtpb0 >/dev/null 2>&1 && echo "bench.sh: the host shim outlived its last user" >&2
variant_loop plain shimnew
row "ADD with hostShim (creates it)" "$W/t/v-shimnew" "$W/t/v-plain"

# ---------------------------------------------------------------- 5. two builds
if [[ -n ${BENCH_CMP:-} ]]; then
    CMT=$BENCH_CMP/mactrunk
    for f in b-t-ver b-c-ver b-t-add b-c-add b-t-both b-c-both; do : >"$W/t/$f"; done
    one_build() { # one_build t|c I RECORD: VERSION, then ADD and DEL, of one build
        local bin=$MT t0 t1 v a
        [[ $1 == c ]] && bin=$CMT
        t0=${EPOCHREALTIME/./}
        CNI_COMMAND=VERSION "$bin" </dev/null >/dev/null 2>&1
        t1=${EPOCHREALTIME/./}
        v=$((t1 - t0))
        call "$bin" "$W/mt.json" ADD "$P-b$1-$2" "$P-c1" "$W/out/b-add"
        a=$DT
        local arc=$CRC
        call "$bin" "$W/mt.json" DEL "$P-b$1-$2" "$P-c1" "$W/out/b-del"
        if (($3 && arc == 0 && CRC == 0)); then
            echo "$v" >>"$W/t/b-$1-ver"
            echo "$a" >>"$W/t/b-$1-add"
            echo $((a + DT)) >>"$W/t/b-$1-both"
        fi
    }
    for ((i = -3; i < runs; i++)); do
        if ((i % 2)); then one_build c "$i" $((i >= 0)); one_build t "$i" $((i >= 0)); else one_build t "$i" $((i >= 0)); one_build c "$i" $((i >= 0)); fi
    done
    echo
    echo "   under test: $MT ($(stat -c %s "$MT") bytes, $(file -b "$MT" 2>/dev/null | grep -oE 'static-pie linked|statically linked|dynamically linked' || echo '?'))"
    echo "   compared:   $CMT ($(stat -c %s "$CMT") bytes, $(file -b "$CMT" 2>/dev/null | grep -oE 'static-pie linked|statically linked|dynamically linked' || echo '?'))"
    printf '%-34s %17s   %17s   %6s\n' "two builds of mactrunk ($runs runs)" "under test" "compared" "ratio"
    printf '%-34s %8s %8s   %8s %8s   %6s\n' "" "median" "p90" "median" "p90" "test/cmp"
    row "VERSION (process start)" "$W/t/b-t-ver" "$W/t/b-c-ver"
    row "build: ADD" "$W/t/b-t-add" "$W/t/b-c-add"
    row "build: ADD+DEL" "$W/t/b-t-both" "$W/t/b-c-both"
fi

# ---------------------------------------------------------------- targets
cluster_section
echo
m=$(get ADD+DEL 2) r=$(get ADD+DEL 4)
echo "$(verdict "$m <= 0.8 * $r") ADD+DEL median $m ms = $(ratio "$m" "$r") x reference ($r ms); target <= 0.8"
first=${size_list[0]} last=${size_list[${#size_list[@]} - 1]}
worst=0 list=""
for n in "${size_list[@]}"; do
    v=$(get "IPAM ADD, $n allocated" 2)
    list+="$v@$n "
    worst=$(awk -v a="$v" -v b="$worst" 'BEGIN{print (a > b) ? a : b}')
done
echo "$(verdict "$worst <= 3") IPAM ADD median <= 3 ms at every size: ${list% }" \
    "(worst $(awk -v a="$worst" -v b="$tm" 'BEGIN{printf "%.2f", a - b}') ms net of the $tm ms exec baseline)"
m0=$(get "IPAM ADD, $first allocated" 2) mN=$(get "IPAM ADD, $last allocated" 2)
echo "$(verdict "$mN <= 1.3 * $m0") IPAM ADD flat: median at $last = $(ratio "$mN" "$m0") x median at $first; target <= 1.3"
echo "$(verdict "$ok64 == 64 && $dup64 == 0") 64 concurrent ADDs all succeed: $ok64/64, $dup64 duplicate addresses"
if ((FAILS)); then
    echo "bench.sh: $FAILS plugin calls failed during the sequential runs (first ones above)" >&2
fi
exit 0
