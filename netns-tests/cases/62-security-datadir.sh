# A dataDir (or store directory) that others could write to, or that is a symlink, is
# refused with a clean code 5 naming it, for ADD, DEL's store part and the IPAM plugin
# alone; nothing is created there and no link is left in the container. A sticky
# world-writable dataDir (like /tmp) is accepted: others cannot rename our entries there.
base=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$base")
make_container_ns C
V=$T/victim
mkdir -p "$V"

_try() { # _try DATADIR WHAT MSG-RE
    local conf
    conf=$(conf_edit "$base" '.ipam.dataDir = $d' --arg d "$1")
    for b in main ipam; do
        local o=()
        [[ $b == ipam ]] && o=(bin=ipam)
        CTX="$2, $b"
        cni ADD "$conf" cid=mt-dd ns="$C" "${o[@]}"
        assert_code 5 "$3"
        assert_ns_clean "$C"
        assert_host_clean
    done
    CTX=""
}

mkdir -m 0777 "$T/ww" && chmod 0777 "$T/ww"
_try "$T/ww" "world-writable dataDir" 'ipam\.dataDir is writable by group or others'
[[ -z $(ls -A "$T/ww") ]] || fail "entries created in the world-writable dataDir: $(ls -A "$T/ww")"

mkdir -m 0775 "$T/gw" && chmod 0775 "$T/gw"
_try "$T/gw" "group-writable dataDir" 'ipam\.dataDir is writable by group or others'

ln -s "$V" "$T/ddlink"
_try "$T/ddlink" "symlinked dataDir" 'ipam\.dataDir is a symlink'
[[ -z $(ls -A "$V") ]] || fail "entries created through the symlinked dataDir: $(ls -A "$V")"

mkdir -p "$T/own/$net" && chmod 0777 "$T/own/$net"
_try "$T/own" "world-writable store directory" 'must be private'
[[ -e $T/own/$net/lock ]] && fail "the world-writable store was used (lock created)"

mkdir -p "$T/foreign/$net" && chmod 0700 "$T/foreign/$net" && chown 65534 "$T/foreign/$net"
_try "$T/foreign" "store directory owned by another user" 'owned by uid 65534'

mkdir -p "$T/fdd" && chown 65534 "$T/fdd"
_try "$T/fdd" "dataDir owned by another user" 'ipam\.dataDir is owned by uid 65534'

# DEL refuses to touch such a store too (code 5), or finds nothing to do
conf=$(conf_edit "$base" '.ipam.dataDir = $d' --arg d "$T/own")
cni DEL "$conf" cid=mt-dd ns="$C"
[[ $RC == 0 ]] || assert_code 5 'must be private' "DEL on a world-writable store"

# sticky + world-writable is fine, and so is 0755 (what the reference host-local creates)
mkdir -p "$T/sticky" && chmod 1777 "$T/sticky"
conf=$(conf_edit "$base" '.ipam.dataDir = $d' --arg d "$T/sticky")
cni ADD "$conf" cid=mt-dd ns="$C"
assert_ok "ADD with a sticky world-writable dataDir"
cni DEL "$conf" cid=mt-dd ns="$C"
assert_ok_empty "DEL after it"
assert_ns_clean "$C"
