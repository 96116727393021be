# shellcheck shell=bash
# netns-tests/lib.sh: helpers for mactrunk's black-box tests in network namespaces.
#
# run.sh starts every case in a fresh bash that sources this file and calls _run_case:
# the case gets a fresh "host" netns ($HOSTNS) holding a veth pair ($PARENT, the macvlan
# parent, and its peer $PARENT_PEER, both up), a temporary directory $T, an empty
# dataDir $DATA, and these helpers. The plugin always runs inside $HOSTNS
# (`ip netns exec $HOSTNS ...`), so its own netns is the host netns and the real host is
# never touched. Everything the case creates is removed by the EXIT trap.
#
# Assertions are soft: a failing one records "case.sh:LINE: message" in $T/failures and the
# case goes on (so one run reports every mismatch); `die` ends the case at once.
#
# Variables set by run.sh (exported): NT_BIN_DIR (dir with the binaries under test),
# NT_REFERENCE (1 = run against Debian's /usr/lib/cni macvlan + host-local),
# NT_RUN_ID (unique "mt..." prefix), NT_WORK (run dir), NT_KEEP, NT_CNITOOL, NT_PARENT.
#
# The parent is named eth0 by default (NT_PARENT overrides it), like the host side of a real
# node, while the container side is CNI_IFNAME=eth0 too: a plugin that creates the container
# link under its final name collides with the host's eth0 on kernels before ~6.14. The name
# only exists inside $HOSTNS, so the real eth0 is never touched.

NT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$NT_DIR")
CONF_DIR=$ROOT/conf
PARENT=${NT_PARENT:-eth0}
PARENT_PEER=mtpeer0
SAFE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CALL_TIMEOUT=${NT_CALL_TIMEOUT:-60}

if [[ ${NT_REFERENCE:-0} == 1 ]]; then
    PLUGIN=${NT_BIN_DIR:-/usr/lib/cni}/macvlan
    IPAM_PLUGIN=${NT_BIN_DIR:-/usr/lib/cni}/host-local
    CNI_PATH_DIRS=${NT_BIN_DIR:-/usr/lib/cni}
else
    PLUGIN=${NT_BIN_DIR:-}/mactrunk
    IPAM_PLUGIN=${NT_BIN_DIR:-}/mactrunk-ipam
    CNI_PATH_DIRS=${NT_BIN_DIR:-}:/usr/lib/cni
fi

CTX=""      # optional label put in front of assertion messages (e.g. the variant in a loop)
RC=""       # exit status of the last `cni` call
OUT=""      # its stdout
ERR=""      # its stderr
_NCALL=0
_NCONT=0

# ---------------------------------------------------------------- failure bookkeeping

# file:line in the case file: the outermost frame there (so a failure inside a helper
# function of the case points at the line that called the helper)
_where() {
    local i w="?"
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        if [[ ${BASH_SOURCE[$i]} == */cases/* ]]; then
            w="${BASH_SOURCE[$i]##*/}:${BASH_LINENO[$((i - 1))]}"
        fi
    done
    echo "$w"
}

fail() {
    local msg="$(_where): ${CTX:+[$CTX] }$*"
    printf '%s\n' "$msg" >>"$T/failures"
    printf 'ASSERTION FAILED: %s\n' "$msg" >&2
    return 1
}

die() {
    fail "$@"
    exit 1
}

skip() {
    printf '%s\n' "$*" >"$T/skipped"
    exit 0
}

log() { printf '# %s\n' "$*" >&2; }

# short rendering of the last plugin call, for failure messages
_last() {
    local o=${OUT//$'\n'/ } e=${ERR//$'\n'/ }
    ((${#o} > 300)) && o="${o:0:300}..."
    ((${#e} > 200)) && e="${e:0:200}..."
    printf 'rc=%s stdout=%s%s' "$RC" "${o:-<empty>}" "${e:+ stderr=$e}"
}

# ---------------------------------------------------------------- namespaces

nsx() { # nsx NS CMD... : run CMD in netns NS
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# _links NS: the names of the links in NS, sorted, one a line. One `ip` and the rest in bash:
# it runs after most plugin calls, and every process costs ~50 ms in the test VM (TCG).
_links() {
    local l n i j names=()
    while IFS= read -r l; do # "7: eth0@if6: <BROADCAST,..." -> eth0
        [[ -n $l ]] || continue
        n=${l#*: }
        n=${n%%: *}
        names+=("${n%%@*}")
    done < <(ip -n "$1" -o link show 2>/dev/null)
    for ((i = 1; i < ${#names[@]}; i++)); do # insertion sort (locale order, as sort(1))
        n=${names[i]}
        for ((j = i - 1; j >= 0; j--)); do
            [[ ${names[j]} > "$n" ]] || break
            names[j + 1]=${names[j]}
        done
        names[j + 1]=$n
    done
    ((${#names[@]} == 0)) || printf '%s\n' "${names[@]}"
}

make_host_ns() {
    HOSTNS=${NS_PREFIX}-h
    ip netns add "$HOSTNS" || die "cannot create netns $HOSTNS"
    ip -n "$HOSTNS" link set lo up
    ip -n "$HOSTNS" link add "$PARENT" mtu 1500 type veth peer name "$PARENT_PEER" ||
        die "cannot create veth pair in $HOSTNS"
    ip -n "$HOSTNS" link set "$PARENT" up
    ip -n "$HOSTNS" link set "$PARENT_PEER" up
    _links "$HOSTNS" >"$T/ns/$HOSTNS.links"
}

# make_container_ns VAR: create a fresh container netns, store its name in VAR
make_container_ns() {
    local _mcn=${NS_PREFIX}-c$((++_NCONT))
    [[ -e /run/netns/$_mcn ]] && _mcn=${NS_PREFIX}-c${_NCONT}-$RANDOM
    ip netns add "$_mcn" || die "cannot create netns $_mcn"
    ip -n "$_mcn" link set lo up
    _links "$_mcn" >"$T/ns/$_mcn.links"
    printf -v "$1" '%s' "$_mcn"
}

# make_container_nses N PREFIXVAR: create N namespaces; names in array PREFIXVAR[1..N]
make_container_nses() {
    local _n=$1 _arr=$2 _i _name
    for ((_i = 1; _i <= _n; _i++)); do
        make_container_ns _name
        eval "$_arr[$_i]=\$_name"
    done
}

delete_ns() {
    local ns=$1 pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
    rm -f "$T/ns/$ns.links"
}

# ---------------------------------------------------------------- running the plugin

# cni CMD STDIN-FILE [OPTION...]: run the plugin under test inside $HOSTNS with the CNI env
# protocol; sets RC, OUT, ERR. Options:
#   cid=ID           CNI_CONTAINERID
#   ns=NAME          CNI_NETNS=/run/netns/NAME ("ns=" gives CNI_NETNS="")
#   netns=PATH       CNI_NETNS=PATH verbatim
#   if=NAME          CNI_IFNAME (default eth0 for ADD/DEL/CHECK)
#   args=STR         CNI_ARGS
#   bin=PATH|ipam    the executable to run (default: main plugin; "ipam": the IPAM plugin)
#   in=NETNS         run the plugin in NETNS instead of $HOSTNS
#   VAR=VALUE        any other variable
#   -VAR             do not set VAR at all (also removes the defaults CNI_PATH, CNI_IFNAME)
cni() {
    local cmd=$1 conf=$2
    shift 2
    local -a env=("CNI_COMMAND=$cmd" "CNI_PATH=$CNI_PATH_DIRS") drop=()
    local bin=$PLUGIN where=$HOSTNS a v
    case $cmd in ADD | DEL | CHECK) env+=("CNI_IFNAME=eth0") ;; esac
    for a in "$@"; do
        case $a in
            cid=*) env+=("CNI_CONTAINERID=${a#cid=}") ;;
            ns=*) v=${a#ns=} && env+=("CNI_NETNS=${v:+/run/netns/$v}") ;;
            netns=*) env+=("CNI_NETNS=${a#netns=}") ;;
            if=*) env+=("CNI_IFNAME=${a#if=}") ;;
            args=*) env+=("CNI_ARGS=${a#args=}") ;;
            bin=ipam) bin=$IPAM_PLUGIN ;;
            bin=*) bin=${a#bin=} ;;
            in=*) where=${a#in=} ;;
            -*) drop+=("${a#-}") ;;
            *=*) env+=("$a") ;;
            *) fail "cni: bad option '$a'" ;;
        esac
    done
    # env(1) keeps the last of duplicate names; drop the removed ones
    local -a final=()
    local e d keep
    for e in "${env[@]}"; do
        keep=1
        for d in "${drop[@]}"; do [[ ${e%%=*} == "$d" ]] && keep=0; done
        ((keep)) && final+=("$e")
    done
    local base=$T/calls/$((++_NCALL))-$BASHPID
    timeout -k 5 "$CALL_TIMEOUT" ip netns exec "$where" env -i PATH="$SAFE_PATH" "${final[@]}" "$bin" \
        <"$conf" >"$base.out" 2>"$base.err"
    RC=$?
    OUT=$(<"$base.out")
    ERR=$(<"$base.err")
    {
        printf '$ %s %s < %s\n' "${final[*]}" "${bin##*/}" "$conf"
        printf '  rc=%s\n  stdout: %s\n' "$RC" "$OUT"
        [[ -n $ERR ]] && printf '  stderr: %s\n' "${ERR:0:2000}"
    } >&2
    if ((RC == 124 || RC == 137)); then
        fail "plugin call $cmd timed out after ${CALL_TIMEOUT}s"
    fi
    return 0
}

# cni_str CMD STRING [OPTION...]: like cni, with STRING as stdin
cni_str() {
    local cmd=$1 f
    f=$(_newconf stdin)
    printf '%s' "$2" >"$f"
    shift 2
    cni "$cmd" "$f" "$@"
}

# ---------------------------------------------------------------- configs

# _newconf PREFIX: create a new, empty, uniquely named file under $T/conf and print its name
# (these helpers run in $(...) subshells, so a counter would not survive; noclobber makes
# the creation exclusive, like mktemp, without a process)
_newconf() {
    local -
    set -C
    local f n
    for ((n = 0; n < 100; n++)); do
        f=$T/conf/$1-$BASHPID-$RANDOM.json
        if { : >"$f"; } 2>/dev/null; then
            echo "$f"
            return 0
        fi
    done
    die "_newconf: cannot create a file in $T/conf"
}

# fixture FILE [JQ-FILTER [JQ-ARGS...]]: copy conf/FILE with master=$PARENT and
# ipam.dataDir=$DATA substituted, apply the filter, print the new file's path.
# In a conflist the substitutions apply to every plugin. $master and $data can be used
# in the filter. With NT_REFERENCE=1 the types become macvlan/host-local and a 1.1.0
# cniVersion becomes 1.0.0 (before the filter, so a filter can still ask for 1.1.0).
fixture() {
    local src=$CONF_DIR/$1 filter=${2:-.}
    shift
    (($#)) && shift
    [[ -f $src ]] || die "no fixture $src"
    local out
    local stem=${src##*/}
    out=$(_newconf "${stem%.*}")
    jq --arg master "$PARENT" --arg data "$DATA" --argjson ref "${NT_REFERENCE:-0}" "$@" "
        def each(f): if type == \"object\" and has(\"plugins\") then .plugins |= map(f) else f end;
        def hasipam: (.ipam | type) == \"object\" and (.ipam | has(\"type\"));
        def fixmaster: if has(\"master\") then .master = \$master else . end;
        def fixdata: if hasipam and (.ipam | has(\"dataDir\") | not) then .ipam.dataDir = \$data else . end;
        def refmap: if \$ref == 1 then
              (if .type == \"mactrunk\" then .type = \"macvlan\" else . end)
            | (if hasipam and .ipam.type == \"mactrunk-ipam\" then .ipam.type = \"host-local\" else . end)
          else . end;
        each(fixmaster | if hasipam then .ipam.dataDir = \$data else . end)
        | (if \$ref == 1 and .cniVersion == \"1.1.0\" then .cniVersion = \"1.0.0\" else . end)
        | ($filter)
        | each(fixdata | refmap)
    " "$src" >"$out" || die "fixture $1: jq filter failed: $filter"
    echo "$out"
}

# conf_edit FILE JQ-FILTER [JQ-ARGS...]: new file = filter applied to FILE (types mapped in reference mode)
conf_edit() {
    local src=$1 filter=$2
    shift 2
    local out
    out=$(_newconf edit)
    jq --argjson ref "${NT_REFERENCE:-0}" "$@" "($filter)
        | if \$ref == 1 and type == \"object\" then
              (if .type == \"mactrunk\" then .type = \"macvlan\" else . end)
            | (if (.ipam | type) == \"object\" and .ipam.type == \"mactrunk-ipam\" then .ipam.type = \"host-local\" else . end)
          else . end" "$src" >"$out" || die "conf_edit: jq failed: $filter"
    echo "$out"
}

# flatten CONFLIST [INDEX [CAPABILITY-ARGS-JSON]]: the config libcni sends to plugin INDEX:
# the plugin object plus name and cniVersion, plus runtimeConfig with the capability args
# the plugin declares in "capabilities".
flatten() {
    local src=$1 idx=${2:-0} caps=${3:-"{}"}
    local out
    out=$(_newconf flat)
    jq --argjson i "$idx" --argjson caps "$caps" '
        . as $l | $l.plugins[$i] + {name: $l.name, cniVersion: $l.cniVersion}
        | (.capabilities // {}) as $c
        | ($caps | with_entries(select($c[.key] == true))) as $rc
        | if ($rc | length) > 0 then .runtimeConfig = $rc else . end' "$src" >"$out" ||
        die "flatten $src failed"
    echo "$out"
}

# with_prev CONF [RESULT-JSON]: CONF with prevResult = RESULT (default: $OUT)
with_prev() {
    local out
    out=$(_newconf prev)
    jq --argjson r "${2:-$OUT}" '.prevResult = $r' "$1" >"$out" || die "with_prev: bad result JSON"
    echo "$out"
}

conf_name() { jq -r .name "$1"; }

# ---------------------------------------------------------------- JSON assertions

jqo() { jq -rc "$@" <<<"$OUT" 2>/dev/null; }

_one_json_object() { [[ -n $OUT ]] && jq -e -s 'length == 1 and (.[0] | type) == "object"' <<<"$OUT" >/dev/null 2>&1; }

# _scan_out: one jq pass over $OUT; sets _ONE (1 = exactly one JSON object), _HASCODE,
# _CODE (the code, or <type>), _MSG (the msg, or empty unless a non-empty string), _VEROK
_scan_out() {
    _ONE=0 _HASCODE=0 _CODE="" _MSG="" _VEROK=0
    [[ -n $OUT ]] || return 0
    local r
    r=$(jq -r -s 'if length == 1 and (.[0] | type) == "object" then .[0] |
            "1",
            (if has("code") then "1" else "0" end),
            (.code | if type == "number" then tostring else "<\(type)>" end),
            (if (.cniVersion | type) == "string" then "1" else "0" end),
            (if (.msg | type) == "string" then .msg else "" end)
          else "0" end' <<<"$OUT" 2>/dev/null) || return 0
    {
        read -r _ONE
        read -r _HASCODE
        read -r _CODE
        read -r _VEROK
        IFS= read -r -d '' _MSG # the rest (a msg may span lines), like $(cat)
    } <<<"$r"
    while [[ $_MSG == *$'\n' ]]; do _MSG=${_MSG%$'\n'}; done
    return 0
}

# exactly one JSON object on stdout
assert_one_json() {
    _one_json_object || fail "${1:-}${1:+: }stdout is not exactly one JSON object: $(_last)"
}

# success with a result object on stdout
assert_ok() {
    local what=${1:-plugin call}
    if [[ $RC != 0 ]]; then
        fail "$what: expected success, got $(_last)"
        return 1
    fi
    _scan_out
    if [[ $_ONE != 1 || $_HASCODE == 1 ]]; then
        fail "$what: exit 0 but stdout is not one result object: $(_last)"
        return 1
    fi
}

# success with nothing on stdout (DEL, CHECK, GC, STATUS)
assert_ok_empty() {
    local what=${1:-plugin call}
    if [[ $RC != 0 ]]; then
        fail "$what: expected success, got $(_last)"
        return 1
    fi
    if [[ -n ${OUT//[[:space:]]/} ]]; then
        fail "$what: exit 0 but stdout is not empty: $(_last)"
        return 1
    fi
}

# assert_code CODE[|CODE...]|any [MSG-REGEX] [WHAT]: a CNI error: exit status 1, exactly one
# JSON object with that integer code ("any": any code but 999, which the spec keeps for the
# truly unexpected), a non-empty msg (matching the ERE if given) and a cniVersion string.
assert_code() {
    local want=$1 re=${2:-} what=${3:-}
    local pre=${what:+$what: }
    _scan_out
    if [[ $_ONE != 1 ]]; then
        fail "${pre}expected error code $want: stdout is not exactly one JSON object: $(_last)"
        return 1
    fi
    local ok=1 got=$_CODE
    if [[ $want != any && "|$want|" != *"|$got|"* ]]; then
        fail "${pre}expected error code $want, got code $got: $(_last)"
        ok=0
    elif [[ $want == any && (! $got =~ ^[0-9]+$ || $got == 999) ]]; then
        fail "${pre}expected an error code other than 999 (internal error), got $got: $(_last)"
        ok=0
    fi
    if [[ $RC != 1 ]]; then
        fail "${pre}expected exit status 1 with error code $want, got $(_last)"
        ok=0
    fi
    if [[ -z $_MSG ]]; then
        fail "${pre}error has no non-empty msg: $(_last)"
        ok=0
    elif [[ -n $re ]] && ! grep -qE -- "$re" <<<"$_MSG"; then
        fail "${pre}error msg does not match /$re/: msg=$_MSG"
        ok=0
    fi
    if [[ $_VEROK != 1 ]]; then
        fail "${pre}error object has no cniVersion string: $(_last)"
        ok=0
    fi
    ((ok))
}

# assert_json JQ-PATH EXPECTED [WHAT]: jq -r PATH on $OUT equals EXPECTED
assert_json() {
    local got
    got=$(jqo "$1")
    [[ $got == "$2" ]] || fail "${3:-}${3:+: }$1 = '$got', expected '$2'"
}

# assert_jq EXPR [WHAT]: jq -e EXPR on $OUT is true
assert_jq() {
    jq -e "$1" <<<"$OUT" >/dev/null 2>&1 || fail "${2:-}${2:+: }not true: $1 (stdout=$(head -c 400 <<<"$OUT"))"
}

assert_eq() { # assert_eq GOT EXPECTED WHAT
    [[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

assert_match() { # assert_match STRING ERE WHAT
    [[ $1 =~ $2 ]] || fail "$3: '$1' does not match /$2/"
}

# ---------------------------------------------------------------- links and addresses

link_json() { ip -n "$1" -d -j link show dev "$2" 2>/dev/null | jq '.[0]'; }

assert_link() {
    ip -n "$1" link show dev "$2" >/dev/null 2>&1 || fail "link $2 missing in netns $1"
}

assert_no_link() {
    ip -n "$1" link show dev "$2" >/dev/null 2>&1 && fail "link $2 exists in netns $1 but should not"
    return 0
}

# assert_ns_clean NS: NS has exactly the links it had when it was created
assert_ns_clean() {
    local ns=$1 now
    now=$(_links "$ns")
    [[ $now == "$(<"$T/ns/$ns.links")" ]] ||
        fail "netns $ns: leftover links: $(comm -13 "$T/ns/$ns.links" <(echo "$now") | tr '\n' ' ')"
}

# the host netns has only lo and the veth pair
assert_host_clean() { assert_ns_clean "$HOSTNS"; }

# addresses of IF in NS as "addr/prefix" lines (global scope only)
ns_addrs() {
    ip -n "$1" -j addr show dev "$2" 2>/dev/null |
        jq -r '.[0].addr_info[]? | select(.scope == "global") | "\(.local)/\(.prefixlen)"'
}

assert_addr() { # assert_addr NS IF CIDR
    ns_addrs "$1" "$2" | grep -qxF -- "$3" || fail "netns $1 dev $2: address $3 missing (has: $(ns_addrs "$1" "$2" | tr '\n' ' '))"
}

# assert_default_route NS GW IF [-6]
assert_default_route() {
    local fam=${4:--4} r
    r=$(ip "$fam" -n "$1" -j route show default 2>/dev/null | jq -r '.[] | "\(.gateway) \(.dev)"')
    grep -qxF "$2 $3" <<<"$r" || fail "netns $1: no default route via $2 dev $3 (routes: $(ip "$fam" -n "$1" route show | tr '\n' ';'))"
}

# ---------------------------------------------------------------- store

store_dir() { echo "$DATA/$1"; }

# IP files of network NAME (everything except lock, last_reserved_ip.*, owners, dot entries)
store_ips() {
    local d=$DATA/$1
    [[ -d $d ]] || return 0
    find "$d" -mindepth 1 -maxdepth 1 -type f ! -name lock ! -name 'last_reserved_ip*' ! -name '.*' -printf '%f\n' | sort
}

store_count() { store_ips "$1" | grep -c . || true; }

# the IP file names whose first line is CID
store_ips_of() {
    local d=$DATA/$1 f
    for f in $(store_ips "$1"); do
        [[ $(head -n1 "$d/$f" | tr -d '\r') == "$2" ]] && echo "$f"
    done
}

# assert_store_entry NAME IP CID IFNAME: file <dataDir>/NAME/IP is exactly "CID\r\nIFNAME"
assert_store_entry() {
    local f=$DATA/$1/$2
    if [[ ! -f $f ]]; then
        fail "store: no file $1/$2 (have: $(store_ips "$1" | tr '\n' ' '))"
        return 1
    fi
    cmp -s "$f" <(printf '%s\r\n%s' "$3" "$4") ||
        fail "store: $1/$2 contains $(od -An -c "$f" | tr -s ' ' | head -c 200), expected '$3\\r\\n$4'"
}

# assert_store_free NAME CID: no IP file and no owner record for CID
assert_store_free() {
    local ips
    ips=$(store_ips_of "$1" "$2")
    [[ -z $ips ]] || fail "store: $2 still holds $(echo $ips)"
    if [[ -d $DATA/$1/owners ]]; then
        local o
        o=$(find "$DATA/$1/owners" -mindepth 1 -name "$2*" -printf '%f ')
        [[ -z $o ]] || fail "store: owner index still has $o"
    fi
}

# assert_store_empty NAME: only lock, last_reserved_ip.*, owners/ without records (dot
# files there are the index's own markers) and an empty .tmp/ (and, for a cluster network,
# its settings and owned-block list: .cluster.json, .cluster-blocks)
assert_store_empty() {
    local d=$DATA/$1 extra
    [[ -d $d ]] || return 0
    extra=$(find "$d" -mindepth 1 -maxdepth 1 ! -name lock ! -name 'last_reserved_ip.*' ! -name owners ! -name .tmp \
        ! -name .cluster.json ! -name .cluster-blocks -printf '%f ')
    [[ -z $extra ]] || fail "store $1 not empty: $extra"
    if [[ -d $d/owners ]]; then
        extra=$(find "$d/owners" -mindepth 1 ! -name '.*' -printf '%f ')
        [[ -z $extra ]] || fail "store $1/owners still has records: $extra"
    fi
    if [[ -d $d/.tmp ]]; then
        extra=$(find "$d/.tmp" -mindepth 1 -printf '%f ')
        [[ -z $extra ]] || fail "store $1/.tmp not empty: $extra"
    fi
}

# assert_clean_failure NAME CID NS: after a failed ADD nothing is left: no link in NS,
# no new link in the host netns, no store entry for CID
assert_clean_failure() {
    assert_ns_clean "$3"
    assert_host_clean
    assert_store_free "$1" "$2"
}

# ---------------------------------------------------------------- misc

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS >= end)) && return 1
        sleep 0.05
    done
}

# ---------------------------------------------------------------- case driver

# at_exit CMD: eval CMD when the case ends (latest first), before the namespaces are deleted
# (e.g. etcd.sh stops its members there)
_EXIT_HOOKS=()
at_exit() { _EXIT_HOOKS=("$1" "${_EXIT_HOOKS[@]}"); }

_case_cleanup() {
    local rc=$?
    set +e
    local j h
    for h in "${_EXIT_HOOKS[@]}"; do eval "$h"; done
    j=$(jobs -pr)
    # shellcheck disable=SC2086
    [[ -n $j ]] && kill $j 2>/dev/null
    local f
    for f in "$T"/ns/*.links; do
        [[ -e $f ]] || continue
        f=${f##*/}
        f=${f%.links}
        [[ $f == "$HOSTNS" ]] || delete_ns "$f"
    done
    [[ -n ${HOSTNS:-} ]] && delete_ns "$HOSTNS"
    if [[ $rc != 0 && ! -s $T/failures && ! -s $T/skipped ]]; then
        echo "case exited with status $rc" >>"$T/failures"
    fi
}

# _run_case CASE-FILE CASE-DIR NS-PREFIX
_run_case() {
    local case_file=$1
    T=$2
    NS_PREFIX=$3
    DATA=$T/data
    CASE_NAME=${case_file##*/}
    CASE_NAME=${CASE_NAME%.sh}
    mkdir -p "$T"/{ns,conf,calls,data}
    : >"$T/failures"
    trap _case_cleanup EXIT
    trap 'exit 143' TERM INT
    bash -n "$case_file" || die "syntax error in $case_file"
    make_host_ns
    # shellcheck disable=SC1090
    source "$case_file"
    # the verdict is in $T/failures (assertions, die); the status of the case's last
    # command means nothing
    exit 0
}

# ---------------------------------------------------------------- cnitool

# need_cnitool: set CNITOOL: $NT_CNITOOL, else target/cnitool, built from
# netns-tests/tools/cnitool when missing or older than its sources (offline; needs golang-go
# and golang-github-appc-cni-dev, see .ci/run). A failed build fails the case.
need_cnitool() {
    CNITOOL=${NT_CNITOOL:-}
    [[ -n $CNITOOL && -x $CNITOOL ]] && return 0
    CNITOOL=$ROOT/target/cnitool
    local build=$NT_DIR/tools/cnitool/build.sh
    mkdir -p "$ROOT/target"
    (
        flock 9
        "$build" --if-stale "$CNITOOL" >&2
    ) 9>"$ROOT/target/.cnitool.lock" || die "building cnitool with $build failed (see the case log)"
}

# ct ARGS... [-- ENV=VAL...]: run cnitool inside $HOSTNS with NETCONFPATH=$NETCONF,
# CNI_PATH, CNI_CACHE_DIR=$T/cache (override with ENV=VAL before the arguments:
# `ct CNI_CONTAINERID=x add NET /run/netns/NS`); sets RC, OUT, ERR
ct() {
    local -a env=("NETCONFPATH=$NETCONF" "CNI_PATH=$CNI_PATH_DIRS" "CNI_CACHE_DIR=$T/cache")
    while [[ ${1:-} == *=* ]]; do
        env+=("$1")
        shift
    done
    local base=$T/calls/$((++_NCALL))-ct
    timeout -k 5 "$CALL_TIMEOUT" ip netns exec "$HOSTNS" env -i PATH="$SAFE_PATH" "${env[@]}" "$CNITOOL" "$@" \
        </dev/null >"$base.out" 2>"$base.err"
    RC=$?
    OUT=$(<"$base.out")
    ERR=$(<"$base.err")
    printf '$ %s cnitool %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "${env[*]}" "$*" "$RC" "$OUT" "$ERR" >&2
}
