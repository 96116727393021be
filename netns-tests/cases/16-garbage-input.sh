# Garbage in: stdin that is not a config (empty, truncated, arrays, scalars, bad UTF-8, NUL,
# deep nesting), wrong types and out-of-range values for every key, huge numbers, unknown
# commands, missing env vars, bad CNI_IFNAME / CNI_CONTAINERID / CNI_ARGS / CNI_NETNS.
# Each must give exactly one JSON error object on stdout with the expected code (and a msg
# naming the key for code 7), exit status 1, and leave no link (container or host netns)
# and no store entry behind. "any" = any code except 999.
base=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$base")
ranges=$(conf_edit "$base" '.ipam |= (del(.subnet, .rangeStart, .rangeEnd, .gateway) | .ranges = [[{subnet: "10.16.0.0/24"}]])')
make_container_ns C
nvar=0
SH='ipam\.(ranges\[0\]\[0\]\.)?' # the shorthand keys may be reported as the first range

# no IP files anywhere under the dataDir, except the one GC must keep
_no_store_leftovers() {
    local f
    f=$(find "$DATA" -type f ! -name lock ! -name 'last_reserved_ip.*' ! -path '*/owners/*' ! -path '*/.tmp/*' 2>/dev/null | grep -v "/${KEEP_IP:-none}\$" || true)
    [[ -z $f ]] || fail "store entries left behind: $(echo $f)"
    f=$(find "$DATA" -path '*/owners/*' -type f ! -name "*mt-keep*" ! -name '.*' 2>/dev/null)
    [[ -z $f ]] || fail "owner records left behind: $(echo $f)"
}

_check() { # _check CODES MSG-RE
    nvar=$((nvar + 1))
    assert_code "$1" "$2"
    local accepted=$RC
    assert_ns_clean "$C"
    assert_host_clean
    _no_store_leftovers
    [[ -e $T/escape ]] && fail "a path outside the dataDir was created: $T/escape"
    # undo an ADD that should have failed but did not, so one bug does not cascade
    if [[ $accepted == 0 ]]; then
        local ctx=$CTX
        CTX=""
        cni DEL "$base" cid=mt-garbage ns="$C"
        cni DEL "$base" cid=mt-garbage ns="$C" if=a
        ip -n "$C" link del eth0 2>/dev/null
        find "$DATA" -mindepth 2 -maxdepth 2 -type f ! -name lock ! -name 'last_reserved_ip.*' ! -name "$KEEP_IP" -delete 2>/dev/null
        find "$DATA" -path '*/owners/*' -type f ! -name "*mt-keep*" ! -name '.*' -delete 2>/dev/null
        CTX=$ctx
    fi
}

# gs CODES MSG-RE DESC STDIN-BYTES [cni options]: ADD with raw stdin (printf %b escapes)
gs() {
    local codes=$1 re=$2 desc=$3 f
    f=$(_newconf garbage)
    printf '%b' "$4" >"$f"
    shift 4
    CTX="stdin: $desc"
    cni ${CMD:-ADD} "$f" cid=mt-garbage ns="$C" "$@"
    _check "$codes" "$re"
}

# gj CODES MSG-RE JQ-FILTER [RAW-LITERAL]: ADD with the base config changed by a jq filter;
# with RAW-LITERAL, the string "@RAW@" in the result is replaced by it verbatim
gj() {
    local codes=$1 re=$2 filter=$3 raw=${4:-} f
    f=$(conf_edit "${SRC:-$base}" "$filter")
    if [[ -n $raw ]]; then
        RAWLIT=$raw perl -0pi -e 's/"\@RAW\@"/$ENV{RAWLIT}/g' "$f" || die "perl could not put the raw literal into $f"
        CTX="config: ${filter//\"@RAW@\"/$raw}"
    else
        CTX="config: $filter"
    fi
    cni ${CMD:-ADD} "$f" cid=mt-garbage ns="$C"
    _check "$codes" "$re"
}

# ge CODES MSG-RE DESC [cni options]: the valid base config with a broken environment
ge() {
    local codes=$1 re=$2 desc=$3
    shift 3
    CTX="env: $desc"
    cni ${CMD:-ADD} "${SRC:-$base}" cid=mt-garbage ns="$C" "$@"
    _check "$codes" "$re"
}

# ---------------------------------------------------------------- stdin that is not a config
gs 6 '' "empty" ''
gs 6 '' "whitespace" '  \n\t\n'
gs 6 '' "truncated object" '{"cniVersion": "1.1.0", "name": "x"'
gs 6 '' "truncated base config" "$(head -c 60 "$base")"
gs 6 '' "truncated string" '{"cniVersion": "1.1.0", "name": "mactr'
gs 6 '' "empty array" '[]'
gs 6 '' "array of the config" "[$(cat "$base")]"
gs 6 '' "string" '"hello"'
gs 6 '' "number" '42'
gs 6 '' "null" 'null'
gs 6 '' "true" 'true'
gs 6 '' "two objects" "$(cat "$base")$(cat "$base")"
gs 6 '' "trailing garbage" "$(cat "$base")}"
gs 6 '' "trailing comma" '{"cniVersion": "1.1.0", "name": "x",}'
gs 6 '' "single quotes" "{'cniVersion': '1.1.0'}"
gs 6 '' "invalid UTF-8" '{"cniVersion": "1.1.0", "name": "\xff\xfe"}'
gs 6 '' "raw binary" '\x00\x01\x02\xff\xfe\x7f'
gs 6 '' "NUL after the config" "$(cat "$base")\\x00"
gs 6 '' "unterminated escape" '{"name": "\\u12"}'
gs 6 '' "100000 nested arrays" "$(printf '[%.0s' $(seq 100000))"
gs 6 '' "100000 nested arrays in a key" "{\"name\": \"x\", \"deep\": $(printf '[%.0s' $(seq 100000))$(printf ']%.0s' $(seq 100000))}"
gs 6 '' "NaN" '{"cniVersion": "1.1.0", "name": "x", "mtu": NaN}'
gs 6 '' "comment" '/* hi */ {"cniVersion": "1.1.0", "name": "x"}'

# ---------------------------------------------------------------- name, cniVersion, type
gj 7 '^name' 'del(.name)'
gj 7 '^name' '.name = ""'
gj 7 '^name' '.name = "../escape"'
gj 7 '^name' '.name = "a/b"'
gj 7 '^name' '.name = ".hidden"'
gj 7 '^name' '.name = "with space"'
gj 7 '^name' '.name = "new\nline"'
gj 7 '^name' '.name = 5'
gj 7 '^name' '.name = null'
gj any '' '.name = ("n" * 300)'
gj '1|7' '' '.cniVersion = 110'
gj '1|7' '' '.cniVersion = ["1.1.0"]'
gj any '' '.type = 5'

# ---------------------------------------------------------------- main plugin keys
gj 7 '^master' '.master = 5'
gj 7 '^master' '.master = true'
gj 7 '^master' '.master = "a/b"'
gj 7 '^master' '.master = "mtmuchtoolongname0"'
gj 7 '^vlan' '.vlan = 5000'
gj 7 '^vlan' '.vlan = 0'
gj 7 '^vlan' '.vlan = 4095'
gj 7 '^vlan' '.vlan = -1'
gj 7 '^vlan' '.vlan = "50"'
gj 7 '^vlan' '.vlan = 1.5'
gj 7 '^vlan' '.vlan = "@RAW@"' 18446744073709551616
gj 7 '^vlan' '.vlan = "@RAW@"' 1e30
gj 7 '^vlanProtocol' '.vlan = 10 | .vlanProtocol = "802.1x"'
gj 7 '^vlanProtocol' '.vlan = 10 | .vlanProtocol = 8021'
gj 7 '^mode' '.mode = "foo"'
gj 7 '^mode' '.mode = "BRIDGE"'
gj 7 '^mode' '.mode = 1'
gj 7 '^mtu' '.mtu = "x"'
gj 7 '^mtu' '.mtu = "1400"'
gj 7 '^mtu' '.mtu = -1'
gj 7 '^mtu' '.mtu = 1.5'
gj 7 '^mtu' '.mtu = true'
gj any '' '.mtu = 67'
gj 7 '^mtu' '.mtu = "@RAW@"' 1e30
gj 7 '^mtu' '.mtu = "@RAW@"' 18446744073709551616
gj 7 '^mtu' '.mtu = "@RAW@"' 4294967296
gj 7 '^mtu' '.mtu = "@RAW@"' 99999999999999999999999999999999999999999
gj '6|7' '' '.mtu = "@RAW@"' 1e400
gj 7 '^mac' '.mac = "zz"'
gj 7 '^mac' '.mac = "0e:00:00:00:00"'
gj 7 '^mac' '.mac = "01:00:5e:00:00:01"'
gj any '' '.mac = "00:00:00:00:00:00"'
gj 7 '^mac' '.mac = 5'
gj 7 '^linkInContainer' '.linkInContainer = "yes"'
gj 7 '^linkInContainer' '.linkInContainer = 1'
gj 7 '^bcqueuelen' '.bcqueuelen = -1'
gj 7 '^bcqueuelen' '.bcqueuelen = "x"'
gj 7 '^bcqueuelen' '.bcqueuelen = "@RAW@"' 4294967296
gj 7 '^ipv6Dad' '.ipv6Dad = "maybe"'
gj 7 '^ipv6Dad' '.ipv6Dad = true'
gj 7 '^announce' '.announce = "yes"'
gj 7 '^logFile' '.logFile = 5'
gj 7 '^logLevel' '.logLevel = []'
gj 7 '^logLevel' '.logLevel = "loud"'
gj 7 '^dns' '.dns = "x"'
gj 7 '^dns' '.dns = {nameservers: "1.1.1.1"}'
gj 7 '^dns' '.dns = {nameservers: [5]}'
gj 7 '^runtimeConfig' '.runtimeConfig = "x"'
gj 7 '^runtimeConfig.ips' '.runtimeConfig = {ips: "10.0.0.1"}'
gj 7 '^runtimeConfig.ips' '.runtimeConfig = {ips: ["nope"]}'
gj 7 '^runtimeConfig.mac' '.runtimeConfig = {mac: 5}'
gj 7 '^runtimeConfig.mac' '.runtimeConfig = {mac: "nope"}'
gj 7 '^args' '.args = {cni: {ips: "10.0.0.1"}}'
gj 7 '^args' '.args = {cni: {ips: ["nope"]}}'

# ---------------------------------------------------------------- ipam keys
gj 7 '^ipam' '.ipam = "x"'
gj 7 '^ipam' '.ipam = []'
gj 7 '^ipam' '.ipam = 5'
gj 7 '^ipam.type' '.ipam.type = 5'
gj 7 "^${SH}subnet" '.ipam.subnet = "nope"'
gj 7 "^${SH}subnet" '.ipam.subnet = 5'
gj 7 "^${SH}subnet" '.ipam.subnet = "192.168.50.0/33"'
gj 7 "^${SH}subnet" '.ipam.subnet = "192.168.50.0/-1"'
gj 7 "^${SH}rangeStart" '.ipam.rangeStart = "nope"'
gj 7 "^${SH}rangeStart" '.ipam.rangeStart = "10.99.0.1"'
gj 7 "^${SH}rangeEnd" '.ipam.rangeEnd = 5'
gj 7 "^${SH}gateway" '.ipam.gateway = "x"'
gj 7 '^ipam.dataDir' '.ipam.dataDir = 5'
gj 7 '^ipam.exclude' '.ipam.exclude = "x"'
gj 7 '^ipam.exclude' '.ipam.exclude = ["nope"]'
gj 7 '^ipam.routes' '.ipam.routes = "x"'
gj 7 '^ipam.routes' '.ipam.routes = [{dst: "bad"}]'
gj 7 '^ipam.routes' '.ipam.routes = [{dst: "0.0.0.0/0", gw: "nope"}]'
gj 7 '^ipam.routes' '.ipam.routes = [{dst: "0.0.0.0/0", mtu: "x"}]'
gj 7 '^ipam.dns' '.ipam.dns = "x"'
gj 7 '^ipam.resolvConf' '.ipam.resolvConf = 5'
gj 7 '^ipam.lockTimeout' '.ipam.lockTimeout = "x"'
gj 7 '^ipam.lockTimeout' '.ipam.lockTimeout = -1'
gj 7 '^ipam.lockTimeout' '.ipam.lockTimeout = "@RAW@"' 1e30
SRC=$ranges
gj 7 '^ipam.ranges' '.ipam.ranges = {}'
gj 7 '^ipam.ranges' '.ipam.ranges = "x"'
gj 7 '^ipam' '.ipam.ranges = []'
gj 7 '^ipam.ranges\[0\]' '.ipam.ranges = [[]]'
gj 7 '^ipam.ranges\[0\]' '.ipam.ranges = [{subnet: "10.16.0.0/24"}]'
gj 7 '^ipam.ranges\[0\]\[0\]' '.ipam.ranges = [["10.16.0.0/24"]]'
gj 7 '^ipam.ranges\[0\]\[0\].subnet' '.ipam.ranges[0][0].subnet = "nope"'
gj 7 '^ipam.ranges\[0\]\[0\].subnet' '.ipam.ranges[0][0].subnet = 5'
gj 7 '^ipam.ranges\[0\]\[0\].subnet' '.ipam.ranges[0][0] |= del(.subnet)'
gj 7 '^ipam.ranges\[0\]\[0\].rangeStart' '.ipam.ranges[0][0].rangeStart = "10.99.0.5"'
gj 7 '^ipam.ranges\[0\]\[0\].rangeEnd' '.ipam.ranges[0][0].rangeEnd = "x"'
gj 7 '^ipam.ranges\[0\]\[0\]' '.ipam.ranges[0][0] += {rangeStart: "10.16.0.200", rangeEnd: "10.16.0.100"}'
gj 7 '^ipam.ranges\[0\]\[0\].gateway' '.ipam.ranges[0][0].gateway = "fd00::1"'
gj 7 '^ipam.ranges\[0\]' '.ipam.ranges = [[{subnet: "10.16.0.0/24"}, {subnet: "fd00:16::/64"}]]'
gj 7 '^ipam.ranges' '.ipam.ranges = [[{subnet: "10.16.0.0/24"}], [{subnet: "10.16.0.0/25"}]]'
unset SRC

# ---------------------------------------------------------------- environment
ge 4 'CNI_COMMAND' "unknown CNI_COMMAND" CNI_COMMAND=FOO
ge 4 'CNI_COMMAND' "lower-case CNI_COMMAND" CNI_COMMAND=add
ge 4 'CNI_COMMAND' "empty CNI_COMMAND" CNI_COMMAND=
ge 4 'CNI_COMMAND' "no CNI_COMMAND" -CNI_COMMAND
ge 4 'CNI_CONTAINERID' "ADD without CNI_CONTAINERID" -CNI_CONTAINERID
ge 4 'CNI_NETNS' "ADD without CNI_NETNS" -CNI_NETNS
ge 4 'CNI_IFNAME' "ADD without CNI_IFNAME" -CNI_IFNAME
ge 4 'CNI_CONTAINERID.*CNI_NETNS.*CNI_IFNAME|CNI_CONTAINERID.*CNI_IFNAME.*CNI_NETNS' "ADD without all three" -CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
CMD=CHECK ge 4 'CNI_NETNS' "CHECK without CNI_NETNS" -CNI_NETNS
CMD=DEL ge 4 'CNI_CONTAINERID' "DEL without CNI_CONTAINERID" -CNI_CONTAINERID
CMD=DEL ge 4 'CNI_IFNAME' "DEL without CNI_IFNAME" -CNI_IFNAME
for ifn in abcdefghijklmnop a/b .. . a:b 'a b' '' $'a\tb' $'a\nb' 'eth0 '; do
    ge 4 'CNI_IFNAME' "CNI_IFNAME=$(printf %q "$ifn")" "if=$ifn"
done
for cid in -bad a/b ../x $'a\nb' '' 'a b' .x .. '_x' "a$(printf '\x01')b"; do
    ge 4 'CNI_CONTAINERID' "CNI_CONTAINERID=$(printf %q "$cid")" "cid=$cid"
done
ge 2 'FOO' "CNI_ARGS with an unknown key" args="FOO=bar"
ge any '' "CNI_ARGS without =" args="garbage"
ge any '' "CNI_ARGS IP=nope" args="IP=nope"
ge any '' "CNI_ARGS MAC=nope" args="MAC=nope"
ge any '' "CNI_ARGS IP in another subnet" args="IP=10.99.0.5"
ge any '' "CNI_NETNS relative path" netns=relative/path
ge any '' "CNI_NETNS does not exist" netns=/run/netns/mt-no-such-netns-$RANDOM
ge any '' "CNI_NETNS is a directory" netns=/run/netns

# ---------------------------------------------------------------- other commands with garbage
CMD=DEL gs 6 '' "DEL with empty stdin" ''
CMD=DEL gs 6 '' "DEL with truncated stdin" '{"cniVersion": "1.1.0", "na'
CMD=DEL gj 7 '^name' '.name = "../escape"'
CMD=CHECK gs 6 '' "CHECK with an array" '[1]'
CMD=STATUS gs 6 '' "STATUS with truncated stdin" '{"cniVersion": "1.1.0"'
CMD=GC gs 6 '' "GC with a string" '"gc"'

# GC with broken valid-attachments must fail cleanly and release nothing
gc11=$(conf_edit "$base" '.cniVersion = "1.1.0"')
cni ADD "$gc11" cid=mt-keep ns="$C"
CTX="GC setup" assert_ok "ADD mt-keep"
KEEP_IP=$(jqo '.ips[0].address' | cut -d/ -f1)
_links "$C" >"$T/ns/$C.links" # mt-keep's eth0 is expected from now on
SRC=$gc11
CMD=GC gj 7 'valid-attachments' '.["cni.dev/valid-attachments"] = "x"'
CMD=GC gj 7 'valid-attachments' '.["cni.dev/valid-attachments"] = [{containerID: 5, ifname: "eth0"}]'
CMD=GC gj 7 'valid-attachments' '.["cni.dev/valid-attachments"] = [5]'
CMD=GC gj 7 'attachments' '.["cni.dev/attachments"] = {}'
unset SRC
CTX=""
assert_store_entry "$net" "$KEEP_IP" mt-keep eth0
cni DEL "$gc11" cid=mt-keep ns="$C"
assert_ok_empty "DEL mt-keep"
assert_store_empty "$net"
log "$nvar garbage variants"
