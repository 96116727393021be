# netns-tests/vlan/lib.sh: helpers for the VLAN cases. Runs INSIDE the test VM (vm/vm.sh) under
# busybox sh (ash): no bash, no jq; iproute2's `ip` and busybox tools only.
#
# Every case runs in a subshell with its own dataDir ($DATA), its own trunk dummies
# (mk_trunk) and its own network namespaces (mk_ns); `case_cleanup` removes them.
# Assertions are soft: a failure appends "case: message" to $FAILS and the case goes on.

BIN=${MT_BIN:-/opt/mt/bin}
PLUGIN=$BIN/mactrunk
WORK=${MT_WORK:-/tmp/mt-vlan}

RC=0   # exit status of the last `cni` call
OUT="" # its stdout
ERR="" # its stderr

fail() {
    printf '%s: %s\n' "$CASE" "$*" >>"$FAILS"
    printf '  ASSERTION FAILED: %s\n' "$*" >&2
    return 1
}

note() { printf '  # %s\n' "$*" >&2; }

# short rendering of the last call
last() { printf 'rc=%s out=%s err=%s' "$RC" "$(printf %s "$OUT" | head -c 300)" "$(printf %s "$ERR" | tail -c 300)"; }

# mk_trunk NAME: a fresh dummy, up, remembered for cleanup
mk_trunk() {
    ip link del "$1" 2>/dev/null
    ip link add "$1" type dummy || fail "cannot create dummy $1"
    ip link set "$1" up
    echo "$1" >>"$CASE_DIR/links"
}

# mk_ns NAME: a fresh network namespace (/run/netns/NAME) with lo up
mk_ns() {
    ip netns del "$1" 2>/dev/null
    ip netns add "$1" || fail "cannot create netns $1"
    ip -n "$1" link set lo up
    echo "$1" >>"$CASE_DIR/nses"
}

case_cleanup() {
    [ -f "$CASE_DIR/nses" ] && while read -r n; do ip netns del "$n" 2>/dev/null; done <"$CASE_DIR/nses"
    [ -f "$CASE_DIR/links" ] && while read -r l; do ip link del "$l" 2>/dev/null; done <"$CASE_DIR/links"
    return 0
}

# conf NAME MASTER [EXTRA-JSON-MEMBERS] [SUBNET]: a network config; EXTRA like '"vlan": 50'
conf() {
    _extra=${3:+, $3}
    _subnet=${4:-10.77.0.0/24}
    printf '{"cniVersion": "1.1.0", "name": "%s", "type": "mactrunk", "master": "%s"%s, "ipam": {"type": "mactrunk-ipam", "subnet": "%s", "dataDir": "%s"}}' \
        "$1" "$2" "$_extra" "$_subnet" "$DATA"
}

# cni COMMAND CONF CID NETNS [IFNAME] [VAR=VAL...]: run the plugin; sets RC, OUT, ERR.
# An empty CID or NETNS leaves that variable unset (GC, STATUS).
cni() {
    _cmd=$1 _conf=$2 _cid=$3 _ns=$4 _if=${5:-eth0}
    shift 4
    [ $# -gt 0 ] && shift
    _n=$(($(cat "$CASE_DIR/ncall" 2>/dev/null || echo 0) + 1))
    echo "$_n" >"$CASE_DIR/ncall"
    _f=$CASE_DIR/call$_n-$_cmd${_cid:+-$_cid}
    printf '%s' "$_conf" >"$_f.json"
    set -- CNI_COMMAND="$_cmd" CNI_PATH="$BIN" "$@"
    [ -n "$_cid" ] && set -- CNI_CONTAINERID="$_cid" CNI_IFNAME="$_if" "$@"
    [ -n "$_ns" ] && set -- CNI_NETNS="/run/netns/$_ns" "$@"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@" "$PLUGIN" <"$_f.json" >"$_f.out" 2>"$_f.err"
    RC=$?
    OUT=$(cat "$_f.out")
    ERR=$(cat "$_f.err")
    return 0
}

# the error code / first IPv4 address / interface MTU of $OUT
out_code() { printf %s "$OUT" | sed -n 's/.*"code": *\([0-9]*\).*/\1/p'; }
out_msg() { printf %s "$OUT" | sed -n '/"msg"/{s/.*"msg": *"//; s/", *"details".*//; s/"} *$//; s/\\"/"/g; p}'; }
out_ip() { printf %s "$OUT" | sed -n 's/.*"address": *"\([0-9.]*\)\/.*/\1/p' | head -n1; }

assert_ok() { # assert_ok WHAT
    [ "$RC" = 0 ] || fail "$1: expected success, got $(last)"
}

assert_code() { # assert_code WHAT CODE [MSG-PREFIX] [MSG-SUBSTRING]
    _c=$(out_code)
    [ "$RC" != 0 ] && [ "$_c" = "$2" ] || {
        fail "$1: expected code $2, got $(last)"
        return 1
    }
    if [ -n "${3:-}" ]; then
        case $(out_msg) in "$3"*) ;; *) fail "$1: message should start with '$3': $(out_msg)" ;; esac
    fi
    if [ -n "${4:-}" ]; then
        case $(out_msg) in *"$4"*) ;; *) fail "$1: message should contain '$4': $(out_msg)" ;; esac
    fi
    return 0
}

assert_eq() { # assert_eq GOT WANT WHAT
    [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
}

link_exists() { ip link show "$1" >/dev/null 2>&1; }

# `ip -d link show` must contain TEXT
assert_link_detail() { # LINK TEXT WHAT
    _d=$(ip -d link show "$1" 2>&1)
    case $_d in *"$2"*) ;; *) fail "$3: '$2' not in: $(printf %s "$_d" | tr '\n' ' ')" ;; esac
}

assert_link() { link_exists "$1" || fail "${2:-link $1}: missing"; }
assert_no_link() { ! link_exists "$1" || fail "${2:-link $1}: should be gone"; }

# how many VLAN links with id VID sit on LOWER
vlans_on() { # vlans_on LOWER VID
    ip -o -d link show type vlan 2>/dev/null | grep "@$1:" | grep -c "vlan protocol [^ ]* id $2 "
}

record() { echo "$DATA/.mactrunk-vlans/$1.json"; }

# number of users in the registry record of LINK (0 if there is none)
record_users() {
    _r=$(record "$1")
    [ -f "$_r" ] || { echo 0; return; }
    grep -c '"containerID"' "$_r"
}

# the IP files of network NET in the IPAM store
ip_files() { ls "$DATA/$1" 2>/dev/null | grep -c '^[0-9][0-9.]*$'; }

# ns_has_if NS IF
ns_has_if() { ip -n "$1" link show "$2" >/dev/null 2>&1; }
