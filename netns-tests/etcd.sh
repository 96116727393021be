# shellcheck shell=bash
# netns-tests/etcd.sh: a real 3-member etcd cluster (Debian's etcd-server 3.4, nothing mocked)
# and three simulated hosts on one bridge, for the cluster-IPAM cases (70-75) and the cluster
# section of bench.sh. Sourced after lib.sh by a case, or on its own by bench.sh (which defines
# T, die and log itself).
#
# Where etcd runs. A network namespace has its own loopback: an etcd on the 127.0.0.1 of one
# netns cannot be reached from another. The plugin runs inside each simulated host's netns
# (it needs the host's parent link), and its etcd helper inherits that netns. So:
#   - in the cases, the members run in the LAN netns (the "switch" that holds the bridge) and
#     listen on management addresses on the bridge, 10.254.0.11-13; every host has
#     10.254.0.<n> on its parent eth0, like a node whose address lives on its NIC. The LAN
#     netns is private to the case, so two cases running at once (run.sh -j 2) cannot collide.
#   - bench.sh runs every plugin in one netns and starts the members on that netns's
#     127.0.0.1 (etcd_start with ETCD_IPS=(127.0.0.1 127.0.0.1 127.0.0.1)).
# Ports are picked per run anyway (ETCD_PORT_BASE, default derived from the case directory),
# so the functions are also safe in a shared netns. The members are no jobs of the case's
# shell (a case's bare `wait` must not wait for them); at_exit stops them, and the case's EXIT
# trap kills whatever still runs in its namespaces. Data and logs: $ETCD_DIR/m<I>/.
#
# etcd functions (state in ETCD_* variables; everything under $ETCD_DIR, default $T/etcd):
#   etcd_usable               prints why etcd cannot run here (missing programs), or nothing
#   need_cluster              for cases: SKIP without etcd/etcdctl/openssl (the test VM has
#                             none) or in reference mode; FAIL when etcd is there but
#                             mactrunk-etcd is not next to the plugins
#   etcd_start [--tls]        start 3 members in $ETCD_NS (empty: the current netns) on
#                             ETCD_IPS, wait until every member is healthy; with --tls the
#                             clients must present a certificate of the test CA (etcd_pki)
#   etcd_kill I               kill -9 member I (1..3), wait until it is gone
#   etcd_kill_all             kill -9 every member
#   etcd_restart I            start member I again on its data (wait for its health)
#   etcd_restart_all          start (again) every member on its data, wait for all
#   etcd_stop_all             stop every member (also registered to run when the case ends)
#   ectl ARGS...              etcdctl against the cluster (endpoints and TLS set)
#   etcd_leader               the index (1..3) of the current leader
#   etcd_move_leader I        make member I the leader
#   etcd_blocks NET [PREFIX]  the claimed blocks of network NET: "CIDR NODE" lines, sorted
#   etcd_pki                  make $ETCD_DIR/pki: ca.pem, server.pem/-key.pem (IP SANs of the
#                             members and 127.0.0.1), client.pem/-key.pem, and a second,
#                             unrelated CA (other-ca.pem) with a client cert (other-client*.pem)
#
# Topology functions (cases only; every netns is named after $NS_PREFIX and registered in
# $T/ns, so the case's EXIT trap deletes it and kills what runs in it):
#   cluster_lan               netns $LAN with bridge br0 (and the members' addresses)
#   cluster_host NAME         netns HNS[NAME] with parent eth0 (veth, peer enslaved to br0),
#                             management address 10.254.0.<n>/24; dataDir HDATA[NAME]
#                             ($T/data-NAME), nodeName HNODE[NAME] (node-<name>)
#   cluster_conf NAME NET [JQ-FILTER [JQ-ARGS...]]
#                             a mactrunk config (cniVersion 1.1.0, network NET on 10.88.0.0/24
#                             unless the filter changes it) for host NAME: master eth0, its
#                             dataDir, ipam.cluster with the endpoints, its nodeName, the
#                             prefix $CLUSTER_PREFIX and, after etcd_start --tls, the client
#                             certificate; prints the file name
#   host_ips NAME NET         the IP files of NET in host NAME's store
#   host_blocks NAME NET      the blocks host NAME records locally as its own (".cluster-blocks")
#   room NAME NET             free addresses in those blocks (10.88.0.0/24 networks)
#   on NAME CMD CONF [OPT...] `cni` in host NAME's netns (IPAM plugin calls get the host's
#                             spare container netns HCNS[NAME] as CNI_NETNS)
#   bg FILE NAME CMD CONF ... `on` in the background; `result FILE` loads RC, DUR (us), OUT
#   timed NAME CMD CONF ...   `on`, duration in ms in MS
#   cluster_check NET NAME... the invariants across hosts (see the function)
#   gc_keep_all NAME CONF NET a GC config keeping everything host NAME holds
#   ip4int VAR A.B.C.D        the address as an integer, into VAR
#   in_cidr IP CIDR           true when IP is inside CIDR (IPv4)
#   nth CIDR K                the K-th address of CIDR

ETCD_DIR=${ETCD_DIR:-${T:-/tmp}/etcd}
ETCD_NS=${ETCD_NS:-}
ETCD_IPS=(${ETCD_IPS[@]:-10.254.0.11 10.254.0.12 10.254.0.13})
ETCD_TLS=0
ETCD_PIDS=()
ETCD_ENDPOINTS=()
ETCD_CPORT=()
ETCD_PPORT=()
CLUSTER_PREFIX=${CLUSTER_PREFIX:-/mactrunk/v1}
# etcd's own defaults (heartbeat 100 ms, election 1000 ms): lower values make the kill-the-
# leader case faster but cause spurious elections on a loaded 2-core CI machine.
ETCD_HEARTBEAT=${ETCD_HEARTBEAT:-100}
ETCD_ELECTION=${ETCD_ELECTION:-1000}

etcd_usable() {
    local p
    for p in etcd etcdctl openssl; do
        command -v "$p" >/dev/null 2>&1 || { echo "no $p (apt-get install etcd-server etcd-client openssl)"; return 0; }
    done
}

need_cluster() {
    [[ ${NT_REFERENCE:-0} == 1 ]] && skip "mactrunk-only (cluster IPAM)"
    local why
    why=$(etcd_usable)
    [[ -n $why ]] && skip "$why"
    [[ -x ${NT_BIN_DIR:-}/mactrunk-etcd ]] ||
        die "etcd is installed but ${NT_BIN_DIR:-}/mactrunk-etcd is missing: the cluster cases need the etcd helper next to the plugins"
    return 0
}

# _ens CMD...: CMD in the members' netns
_ens() {
    if [[ -n $ETCD_NS ]]; then ip netns exec "$ETCD_NS" "$@"; else "$@"; fi
}

# the TLS flags for etcdctl (client certificate of the test CA)
_ectl_tls() {
    ((ETCD_TLS)) || return 0
    printf '%s\n' --cacert "$ETCD_DIR/pki/ca.pem" --cert "$ETCD_DIR/pki/client.pem" --key "$ETCD_DIR/pki/client-key.pem"
}

ectl() {
    local eps
    eps=$(
        IFS=,
        echo "${ETCD_ENDPOINTS[*]}"
    )
    local -a tls=()
    mapfile -t tls < <(_ectl_tls)
    _ens timeout 20 env ETCDCTL_API=3 etcdctl --endpoints "$eps" --dial-timeout 2s --command-timeout 5s "${tls[@]}" "$@"
}

# ectl1 I ARGS...: etcdctl against member I only
ectl1() {
    local i=$1
    shift
    local -a tls=()
    mapfile -t tls < <(_ectl_tls)
    _ens timeout 20 env ETCDCTL_API=3 etcdctl --endpoints "${ETCD_URL[$i]}" --dial-timeout 2s --command-timeout 5s "${tls[@]}" "$@"
}

etcd_pki() {
    local d=$ETCD_DIR/pki san="IP:127.0.0.1" ip
    mkdir -p "$d"
    for ip in "${ETCD_IPS[@]}"; do [[ $ip == 127.0.0.1 ]] || san+=",IP:$ip"; done
    (
        set -e
        cd "$d"
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
        # ca NAME: a self-signed CA
        ca() {
            key "$1-key.pem"
            openssl req -x509 -new -key "$1-key.pem" -out "$1.pem" -days 2 -subj "/CN=mactrunk test $1" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        }
        # leaf NAME CA CN EXT...: a certificate of CA for CN with the extensions
        leaf() {
            local n=$1 c=$2 cn=$3
            shift 3
            key "$n-key.pem"
            openssl req -new -key "$n-key.pem" -out "$n.csr" -subj "/CN=$cn" 2>/dev/null
            printf '%s\n' "$@" >"$n.ext"
            openssl x509 -req -in "$n.csr" -CA "$c.pem" -CAkey "$c-key.pem" -CAcreateserial -out "$n.pem" \
                -days 2 -extfile "$n.ext" 2>/dev/null
            rm -f "$n.csr" "$n.ext"
        }
        ca ca
        leaf server ca "etcd" "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$san"
        leaf client ca "mactrunk-node" "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=clientAuth"
        ca other-ca
        leaf other-client other-ca "mactrunk-intruder" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
        chmod 600 ./*-key.pem
    ) || die "etcd_pki: openssl failed"
}

# _etcd_member I STATE: start member I (new|existing) in the background; pid in ETCD_PIDS[I]
_etcd_member() {
    local i=$1 state=$2 scheme=http cluster="" j
    ((ETCD_TLS)) && scheme=https
    for j in 1 2 3; do
        cluster+="${cluster:+,}m$j=http://${ETCD_IPS[$((j - 1))]}:${ETCD_PPORT[$j]}"
    done
    local ip=${ETCD_IPS[$((i - 1))]}
    local -a tls=()
    ((ETCD_TLS)) && tls=(--client-cert-auth --trusted-ca-file "$ETCD_DIR/pki/ca.pem"
        --cert-file "$ETCD_DIR/pki/server.pem" --key-file "$ETCD_DIR/pki/server-key.pem")
    mkdir -p "$ETCD_DIR/m$i"
    local -a cmd=(etcd)
    [[ -n $ETCD_NS ]] && cmd=(ip netns exec "$ETCD_NS" etcd)
    # Started from a subshell, so it is not a job of the case's shell: a case's bare `wait`
    # (for its own background plugin calls) must not wait for etcd. It stays in the case's
    # process group (run.sh's timeout kills it) and in $ETCD_NS (the EXIT trap kills
    # everything there); etcd_stop_all, registered with at_exit, kills it first. $! is ip,
    # which execs etcd.
    (
        "${cmd[@]}" --name "m$i" --data-dir "$ETCD_DIR/m$i/data" \
            --listen-client-urls "$scheme://$ip:${ETCD_CPORT[$i]}" \
            --advertise-client-urls "$scheme://$ip:${ETCD_CPORT[$i]}" \
            --listen-peer-urls "http://$ip:${ETCD_PPORT[$i]}" \
            --initial-advertise-peer-urls "http://$ip:${ETCD_PPORT[$i]}" \
            --initial-cluster "$cluster" --initial-cluster-state "$state" \
            --initial-cluster-token "mt-$ETCD_TOKEN" \
            --heartbeat-interval "$ETCD_HEARTBEAT" --election-timeout "$ETCD_ELECTION" \
            --logger zap --log-outputs stderr "${tls[@]}" >>"$ETCD_DIR/m$i/log" 2>&1 </dev/null &
        echo $! >"$ETCD_DIR/m$i/pid"
    )
    ETCD_PIDS[$i]=$(<"$ETCD_DIR/m$i/pid")
}

# _alive PID: the process exists and is not a zombie (an orphan that nobody reaped yet has
# released its sockets already)
_alive() {
    local st
    [[ -r /proc/$1/stat ]] || return 1
    read -r st <"/proc/$1/stat" 2>/dev/null || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z ]]
}

# _etcd_wait_healthy SECONDS [I...]: every listed member (default all running) answers
# endpoint health (a quorum read through it)
_etcd_wait_healthy() {
    local secs=$1 i end
    shift
    local -a which=("$@")
    ((${#which[@]})) || which=(1 2 3)
    end=$((SECONDS + secs))
    for i in "${which[@]}"; do
        until ectl1 "$i" endpoint health >/dev/null 2>&1; do
            if ((SECONDS >= end)); then
                log "etcd member $i is not healthy after ${secs}s; its log:"
                tail -n 20 "$ETCD_DIR/m$i/log" >&2
                return 1
            fi
            _alive "${ETCD_PIDS[$i]}" || {
                log "etcd member $i exited; its log:"
                tail -n 20 "$ETCD_DIR/m$i/log" >&2
                return 1
            }
            sleep 0.1
        done
    done
}

etcd_start() {
    ETCD_TLS=0
    [[ ${1:-} == --tls ]] && ETCD_TLS=1
    local base i scheme=http
    if [[ -n ${ETCD_PORT_BASE:-} ]]; then
        base=$ETCD_PORT_BASE
    else # per run: from the directory name (run id + case), 20000..39990, step 10
        base=$((20000 + ($(cksum <<<"${T:-$$}" | cut -d' ' -f1) % 2000) * 10))
    fi
    ETCD_TOKEN=${base}-$$-$RANDOM
    ((ETCD_TLS)) && { scheme=https; [[ -s $ETCD_DIR/pki/ca.pem ]] || etcd_pki; }
    ETCD_ENDPOINTS=() # 0-based, for the configs and ectl
    ETCD_URL=("")     # ETCD_URL[1..3]: one member
    for i in 1 2 3; do
        ETCD_CPORT[$i]=$((base + 2 * (i - 1)))
        ETCD_PPORT[$i]=$((base + 2 * (i - 1) + 1))
        ETCD_URL[$i]="$scheme://${ETCD_IPS[$((i - 1))]}:${ETCD_CPORT[$i]}"
        ETCD_ENDPOINTS+=("${ETCD_URL[$i]}")
    done
    rm -rf "$ETCD_DIR"/m[123]
    for i in 1 2 3; do _etcd_member "$i" new; done
    declare -F at_exit >/dev/null && at_exit etcd_stop_all
    _etcd_wait_healthy 40 || die "the etcd cluster did not become healthy (logs in $ETCD_DIR/m*/log)"
}

etcd_kill() {
    local i=$1 p=${ETCD_PIDS[$1]:-} n
    [[ -n $p ]] || return 0
    kill -9 "$p" 2>/dev/null
    for ((n = 0; n < 200; n++)); do
        _alive "$p" || break
        sleep 0.05
    done
    ETCD_PIDS[$i]=""
    return 0
}

etcd_kill_all() {
    local i
    for i in 1 2 3; do etcd_kill "$i"; done
}

etcd_restart() {
    local i=$1
    etcd_kill "$i"
    _etcd_member "$i" existing
    _etcd_wait_healthy 40 "$i" || die "etcd member $i did not come back"
}

etcd_restart_all() {
    local i
    for i in 1 2 3; do
        etcd_kill "$i"
        _etcd_member "$i" existing
    done
    _etcd_wait_healthy 40 || die "the etcd cluster did not come back"
}

etcd_stop_all() {
    local i p
    for i in 1 2 3; do
        p=${ETCD_PIDS[$i]:-}
        [[ -n $p ]] && kill -9 "$p" 2>/dev/null
    done
    for i in 1 2 3; do etcd_kill "$i"; done
    return 0
}

etcd_leader() {
    ectl endpoint status -w json 2>/dev/null | jq -r '
        (map(select(.Status.header.member_id == .Status.leader)) | .[0].Endpoint) // empty' |
        while read -r ep; do
            local i
            for i in 1 2 3; do [[ ${ETCD_URL[$i]} == "$ep" ]] && echo "$i"; done
        done
}

etcd_move_leader() {
    local i=$1 id l
    l=$(etcd_leader)
    [[ -n $l ]] || return 1
    [[ $l == "$i" ]] && return 0
    # the member id in hex, as etcdctl member list prints it (JSON would go through jq's
    # doubles and lose the low bits of the 64-bit id)
    id=$(ectl member list | awk -F', ' -v n="m$i" '$3 == n {print $1}')
    [[ -n $id ]] || return 1
    # move-leader must be sent to the current leader
    ectl1 "$l" move-leader "$id" >/dev/null
}

# etcd_blocks NET [PREFIX]: "CIDR NODE" for every key under PREFIX/networks/NET/blocks/
etcd_blocks() {
    local pfx=${2:-$CLUSTER_PREFIX}/networks/$1/blocks/
    ectl get --prefix "$pfx" -w json | jq -r --arg p "$pfx" '
        .kvs[]? | ((.key | @base64d) | ltrimstr($p) | sub("-(?<l>[0-9]+)$"; "/\(.l)")) as $cidr
        | ((.value | @base64d | fromjson? | .node) // "?") as $n | "\($cidr) \($n)"' | sort -V
}

# ---------------------------------------------------------------- topology (cases)

declare -A HNS=() HDATA=() HNODE=() HIP=() HCNS=()
_NHOSTS=0

_register_ns() { _links "$1" >"$T/ns/$1.links"; }

cluster_lan() {
    LAN=${NS_PREFIX}-lan
    ip netns add "$LAN" || die "cannot create netns $LAN"
    _register_ns "$LAN"
    ip -n "$LAN" link set lo up
    # A fixed MAC: a bridge otherwise takes the lowest MAC of its ports and changes it when a
    # port goes (a host deleted), which strands the hosts' ARP entries for the members'
    # addresses on br0 for ~30 s.
    ip -n "$LAN" link add br0 address 02:00:5e:10:00:01 type bridge || die "cannot create bridge br0 in $LAN"
    ip -n "$LAN" link set br0 up
    local ip
    for ip in "${ETCD_IPS[@]}"; do
        ip -n "$LAN" addr add "$ip/24" dev br0 || die "cannot add $ip to br0"
    done
    ETCD_NS=$LAN
}

cluster_host() {
    local name=$1 ns=${NS_PREFIX}-h$1 n=$((++_NHOSTS))
    ip netns add "$ns" || die "cannot create netns $ns"
    _register_ns "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 mtu 1500 type veth peer name "p$name" netns "$LAN" ||
        die "cannot create the parent of host $name"
    ip -n "$LAN" link set "p$name" master br0 up || die "cannot attach host $name to br0"
    ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "10.254.0.$n/24" dev eth0
    HNS[$name]=$ns
    HDATA[$name]=$T/data-$name
    HNODE[$name]=node-${name,,}
    HIP[$name]=10.254.0.$n
    mkdir -p "${HDATA[$name]}"
    # a container netns for the IPAM plugin's calls (it wants a CNI_NETNS; nothing goes there)
    make_container_ns "HCNS[$name]"
}

cluster_conf() {
    local name=$1 net=$2 filter=${3:-.}
    shift 2
    (($#)) && shift
    local out
    out=$(_newconf "cluster-$name")
    local -a tls=(--arg ca "$ETCD_DIR/pki/ca.pem" --arg cert "$ETCD_DIR/pki/client.pem" --arg key "$ETCD_DIR/pki/client-key.pem")
    jq -n --arg net "$net" --arg data "${HDATA[$name]}" --arg node "${HNODE[$name]}" \
        --arg pfx "$CLUSTER_PREFIX" --argjson eps "$(printf '%s\n' "${ETCD_ENDPOINTS[@]}" | jq -R . | jq -s .)" \
        --argjson tls "$ETCD_TLS" "${tls[@]}" "$@" '
        {cniVersion: "1.1.0", name: $net, type: "mactrunk", master: "eth0", mode: "bridge",
         ipam: {type: "mactrunk-ipam", subnet: "10.88.0.0/24", dataDir: $data,
                cluster: ({etcdEndpoints: $eps, nodeName: $node, blockSize: 28, prefix: $pfx}
                          + (if $tls == 1 then {tls: {ca: $ca, cert: $cert, key: $key}} else {} end))}}
        | '"$filter" >"$out" || die "cluster_conf: jq failed: $filter"
    echo "$out"
}

host_ips() { DATA=${HDATA[$1]} store_ips "$2"; }

host_blocks() {
    local f=${HDATA[$1]}/$2/.cluster-blocks
    [[ -f $f ]] || return 0
    # one CIDR a line, or a JSON array of CIDRs / objects with a cidr field: accept each
    if jq -e . "$f" >/dev/null 2>&1; then
        jq -r '(if type == "object" then (.blocks // []) else . end)[] | if type == "string" then . else (.cidr // .block) end' "$f" | sort -V
    else
        grep -v '^#' "$f" | grep . | sort -V
    fi
}

# ip4int VAR A.B.C.D: the address as an integer, into VAR (no subshell: called per address)
ip4int() {
    local a b c d
    IFS=. read -r a b c d <<<"$2"
    printf -v "$1" '%d' $(((a << 24) | (b << 16) | (c << 8) | d))
}

in_cidr() {
    local _i _n len=${2#*/}
    ip4int _i "$1"
    ip4int _n "${2%/*}"
    local mask=$(((0xffffffff << (32 - len)) & 0xffffffff))
    (((_i & mask) == (_n & mask)))
}

# on NAME CMD CONF [OPTION...]: `cni` inside host NAME's netns (the IPAM plugin with bin=ipam;
# it gets the host's spare container netns HCNS[NAME] unless ns= is given)
on() {
    local h=$1 cmd=$2 conf=$3
    shift 3
    cni "$cmd" "$conf" in="${HNS[$h]}" ns="${HCNS[$h]}" "$@"
}

# bg RESULT-FILE NAME CMD CONF [OPTION...]: `on` in the background; the file gets RC, the
# duration in microseconds and OUT (load it with `result FILE`)
bg() {
    local f=$1
    shift
    (
        local t0=${EPOCHREALTIME/./}
        on "$@"
        printf '%s %s\n%s\n' "$RC" $((${EPOCHREALTIME/./} - t0)) "$OUT" >"$f"
    ) 2>>"$T/bg.log" &
}

# result FILE: RC, DUR (us) and OUT of a `bg` call (RC=bg-missing when it left no file)
result() {
    RC=bg-missing DUR=0 OUT=""
    [[ -s $1 ]] || return 0
    read -r RC DUR <"$1"
    OUT=$(tail -n +2 "$1")
}

# timed NAME CMD CONF [OPTION...]: `on`, with the duration in ms in MS
timed() {
    local t0=${EPOCHREALTIME/./}
    on "$@"
    MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

# nth CIDR K: the K-th address of an IPv4 CIDR (K from 0)
nth() {
    local n
    ip4int n "${1%/*}"
    n=$((n + $2))
    echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))"
}

# room NAME NET: free addresses in the blocks host NAME records as its own (for NET on
# 10.88.0.0/24 with gateway .1: .0, .1 and .255 are never handed out)
room() {
    local b n k ip free=0 used
    used=" $(host_ips "$1" "$2" | tr '\n' ' ') "
    for b in $(host_blocks "$1" "$2"); do
        n=$((1 << (32 - ${b#*/})))
        for ((k = 0; k < n; k++)); do
            ip=$(nth "$b" "$k")
            case $ip in 10.88.0.0 | 10.88.0.1 | 10.88.0.255) continue ;; esac
            [[ $used == *" $ip "* ]] || free=$((free + 1))
        done
    done
    echo "$free"
}

# gc_keep_all NAME CONF NET: CONF for a GC that keeps every allocation host NAME holds in
# NET (cni.dev/valid-attachments from its store: container ID and ifname of each IP file)
gc_keep_all() {
    local h=$1 ip keep
    keep=$(for ip in $(host_ips "$h" "$3"); do
        { IFS= read -r c; IFS= read -r i; } <"${HDATA[$h]}/$3/$ip"
        jq -nc --arg c "${c%$'\r'}" --arg i "$i" '{containerID: $c, ifname: $i}'
    done | jq -sc .)
    conf_edit "$2" '.["cni.dev/valid-attachments"] = $keep' --argjson keep "$keep"
}

# cluster_check NET NAME...: the invariants across the hosts: no address held by two hosts;
# every address a host holds lies in a block etcd says the host owns; every block a host
# lists as its own is owned by it in etcd. Needs etcd up.
cluster_check() {
    local net=$1 blocks h ip b node dup n lo hi i
    shift
    blocks=$(etcd_blocks "$net") || {
        fail "cluster_check: cannot list the blocks of $net in etcd"
        return 1
    }
    dup=$(for h in "$@"; do host_ips "$h" "$net"; done | sort | uniq -d)
    [[ -z $dup ]] || fail "addresses held on two hosts: $(echo $dup)"
    for h in "$@"; do
        node=${HNODE[$h]}
        # the host's blocks in etcd as integer ranges [lo, hi]
        local -a los=() his=()
        for b in $(awk -v n="$node" '$2 == n {print $1}' <<<"$blocks"); do
            ip4int lo "${b%/*}"
            los+=("$lo")
            his+=($((lo + (1 << (32 - ${b#*/})) - 1)))
        done
        for ip in $(host_ips "$h" "$net"); do
            [[ $ip == *.* ]] || continue
            ip4int n "$ip"
            for ((i = 0; i < ${#los[@]}; i++)); do
                ((n >= los[i] && n <= his[i])) && break
            done
            ((i < ${#los[@]})) || fail "host $h holds $ip outside its blocks in etcd ($(awk -v n="$node" '$2 == n {printf "%s ", $1}' <<<"$blocks"))"
        done
        for b in $(host_blocks "$h" "$net"); do
            grep -qxF "$b $node" <<<"$blocks" ||
                fail "host $h lists block $b as its own, etcd says: $(grep "^$b " <<<"$blocks" || echo 'not claimed')"
        done
    done
}
