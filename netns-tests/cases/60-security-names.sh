# Names that could leave the dataDir or corrupt a record: a network name with "..", "/" or
# a leading dot, a container ID like ../../x or with control characters, CNI_IFNAME "..",
# "." , "a/b", over 15 bytes, with control characters or whitespace, and an ID too long for
# an index file name (its DEL succeeds: it holds nothing). Each is refused with a clean JSON error (code 7 for the config key,
# code 4 for the environment), for ADD and DEL, by the main plugin and by mactrunk-ipam
# alone; nothing is created outside <dataDir>/<name>/, no link appears anywhere.
base=$(fixture 10-mactrunk-bridge.conf '.ipam.dataDir = $data + "/dd"')
net=$(conf_name "$base")
make_container_ns C
mkdir -p "$DATA/dd"

# everything under $T/data except the store of $net (and dd itself)
_outside() { find "$DATA" -mindepth 1 ! -path "$DATA/dd" ! -path "$DATA/dd/$net" ! -path "$DATA/dd/$net/*"; }

_refused() { # _refused CODE MSG-RE WHAT
    assert_code "$1" "$2" "$3"
    assert_ns_clean "$C"
    assert_host_clean
    local o
    o=$(_outside)
    [[ -z $o ]] && return 0
    fail "$3: created outside the store: $(echo $o)"
    rm -rf $o
}

for bin in main ipam; do
    b=()
    [[ $bin == ipam ]] && b=(bin=ipam)
    CTX=$bin
    # network names
    for name in '../x' '..' '.' 'a/../../x' '/abs' '.hidden' 'x/y' $'n\x07' $'n\nm' ''; do
        conf=$(conf_edit "$base" '.name = $n' --arg n "$name")
        for cmd in ADD DEL; do
            cni $cmd "$conf" cid=mt-sec-1 ns="$C" "${b[@]}"
            _refused 7 '^name' "$cmd with name $(printf '%q' "$name")"
        done
    done
    # container IDs
    long=$(printf 'a%.0s' {1..251}) # 251 + 1 + "eth0" = 256 bytes: too long for an index file name
    for cid in '../../x' '..' '.x' '-x' 'a/b' $'a\x07b' $'a\nb' $'a\rb' $'a\tb' 'a b' 'a@b' 'é'; do
        for cmd in ADD DEL; do
            cni $cmd "$base" cid="$cid" ns="$C" "${b[@]}"
            _refused 4 'CNI_CONTAINERID' "$cmd with container ID $(printf '%q' "${cid:0:40}")"
        done
    done
    # too long for the store: ADD is refused; the DEL of what could never be added
    # succeeds (see 29-del-long-container-id)
    cni ADD "$base" cid="$long" ns="$C" "${b[@]}"
    _refused 4 'CNI_CONTAINERID' "ADD with a 251-byte container ID"
    cni DEL "$base" cid="$long" ns="$C" "${b[@]}"
    assert_ok_empty "DEL with a 251-byte container ID"
    # interface names
    for ifn in '..' '.' 'a/b' '0123456789abcdef' $'eth\x01' $'eth0\n' 'a b' 'a:b' $'a\tb'; do
        for cmd in ADD DEL; do
            cni $cmd "$base" cid=mt-sec-2 ns="$C" if="$ifn" "${b[@]}"
            _refused 4 'CNI_IFNAME' "$cmd with ifname $(printf '%q' "$ifn")"
        done
    done
    # a relative dataDir
    conf=$(conf_edit "$base" '.ipam.dataDir = "dd/../.."')
    cni ADD "$conf" cid=mt-sec-3 ns="$C" "${b[@]}"
    _refused 7 '^ipam\.dataDir' "ADD with a relative dataDir"
done
CTX=""

# the longest ID that still fits works, and its DEL leaves nothing
fits=$(printf 'b%.0s' {1..250})
cni ADD "$base" cid="$fits" ns="$C"
assert_ok "ADD with a 250-byte container ID"
cni DEL "$base" cid="$fits" ns="$C"
assert_ok_empty "DEL with a 250-byte container ID"
assert_ns_clean "$C"
DATA=$DATA/dd assert_store_empty "$net"
