# Symlinks planted in the store directory are never followed: the store dir itself, lock,
# .tmp, owners, owners/.complete, the next IP record and an owner index entry each point at
# a victim file or directory outside. ADD fails with a clean code 5 naming the symlink and
# leaves no link in the container; the victim is untouched (content and no new entries).
# Symlinks the store may replace without following (the last_reserved_ip hint, a planted
# .tmp/ file) are replaced or removed: the ADD succeeds and the victim is still untouched.
base=$(fixture 10-mactrunk-bridge.conf)
make_container_ns C
V=$T/victim
mkdir -p "$V/dir"
printf 'precious' >"$V/file"
_victim_intact() {
    [[ $(cat "$V/file") == precious ]] || fail "$1: victim file was written: $(head -c 60 "$V/file")"
    [[ -z $(ls -A "$V/dir") ]] || fail "$1: entries created in the victim dir: $(ls -A "$V/dir" | tr '\n' ' ')"
    [[ -z $(find "$V" -mindepth 1 ! -path "$V/dir" ! -path "$V/file") ]] || fail "$1: new files next to the victim"
}

n=0
# plant NAME WHAT TARGET: a fresh network whose store has a symlink at WHAT -> TARGET
plant() {
    n=$((n + 1))
    net=mt-sym-$n
    conf=$(conf_edit "$base" '.name = $n' --arg n "$net")
    S=$DATA/$net
    case $2 in
        store) ln -s "$3" "$S" ;;
        *)
            mkdir -m 700 -p "$S"
            mkdir -p "$(dirname "$S/$2")"
            ln -s "$3" "$S/$2"
            ;;
    esac
}
# refused WHAT-RE
refused() {
    cni ADD "$conf" cid=mt-sym ns="$C"
    assert_code 5 "symlink" "ADD with a symlinked $1"
    assert_match "$_MSG" "$2" "the error names the symlink"
    assert_ns_clean "$C"
    assert_host_clean
    _victim_intact "symlinked $1"
}

plant x store "$V/dir"
refused "store directory" "$net"
plant x lock "$V/file"
refused "lock" "/lock"
plant x .tmp "$V/dir"
refused ".tmp" "/\.tmp"
plant x owners "$V/dir"
refused "owners" "/owners"
plant x owners/.complete "$V/file"
refused "owners/.complete" "owners/\.complete"
plant x 192.168.50.100 "$V/file"
refused "IP record" "192\.168\.50\.100"
plant x owners/mt-sym@eth0 "$V/file"
refused "index entry" "owners/mt-sym@eth0"
# ... and DEL does not follow the planted index either
cni DEL "$conf" cid=mt-sym ns="$C"
[[ $RC == 0 ]] || assert_code 5 "symlink" "DEL with a symlinked index entry"
_victim_intact "DEL with a symlinked index entry"

# a symlinked hint is ignored and replaced (rename replaces the link, not its target)
plant x last_reserved_ip.0 "$V/file"
cni ADD "$conf" cid=mt-sym ns="$C"
assert_ok "ADD with a symlinked last_reserved_ip.0"
[[ -L $S/last_reserved_ip.0 ]] && fail "last_reserved_ip.0 is still a symlink"
_victim_intact "symlinked last_reserved_ip.0"
cni DEL "$conf" cid=mt-sym ns="$C"
assert_ok_empty "DEL after it"

# a planted temp file (a symlink named like the record the ADD will write)
plant x .tmp/192.168.50.100 "$V/file"
ln -s "$V/file" "$S/.tmp/index.1"
chmod 700 "$S/.tmp"
cni ADD "$conf" cid=mt-sym ns="$C"
assert_ok "ADD with symlinks planted in .tmp/"
_victim_intact "symlinks planted in .tmp/"
[[ -z $(ls -A "$S/.tmp") ]] || fail ".tmp/ not cleaned: $(ls -A "$S/.tmp" | tr '\n' ' ')"
cni DEL "$conf" cid=mt-sym ns="$C"
assert_ok_empty "DEL after it"
assert_store_empty "$net"
assert_ns_clean "$C"
