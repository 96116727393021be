# The admin CLI (`mactrunk-ipam list|usage|release|gc`) against a store made by real ADDs of
# the main plugin: list (table and --json) shows every attachment with its interface and
# time; usage counts per range set from the config file and from a config dir (conf and
# conflist); release --ip / --container[--ifname] free exactly those addresses and the
# plugin's DEL of that container still succeeds; gc --dry-run changes nothing, gc --keep /
# --keep-file release the rest, the freed addresses are handed out again; a store written
# by the reference host-local is listed too; list, usage and gc --dry-run write nothing
# (not even in host-local stores or unrelated directories), and an unsafe store is reported
# while the others are still listed; usage errors exit 2 (also for an argument that is not
# UTF-8, a flag given a value, an option of another command), failures 1, both as a JSON object
# on stdout with --json; --version prints the version; every command's --help, -h, `help CMD`.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (admin CLI)"
ADMIN=$NT_BIN_DIR/mactrunk-ipam

# adm ARGS...: run the admin CLI (no CNI env); sets RC, OUT, ERR
adm() {
    local base=$T/calls/$((++_NCALL))-adm
    env -i PATH="$SAFE_PATH" "$ADMIN" "$@" >"$base.out" 2>"$base.err" </dev/null
    RC=$?
    OUT=$(cat "$base.out")
    ERR=$(cat "$base.err")
    printf '$ mactrunk-ipam %s\n  rc=%s\n  stdout: %s\n  stderr: %s\n' "$*" "$RC" "$OUT" "$ERR" >&2
}
assert_rc() { [[ $RC == "$1" ]] || fail "${2:-admin}: exit status $RC, expected $1 (stderr: ${ERR:0:300})"; }

# /28 with .1 the gateway: capacity 100..109 = 10 addresses
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-admin" | .ipam.rangeEnd = "192.168.50.109"')
net=$(conf_name "$conf")
make_container_nses 3 C
declare -A ipof
for i in 1 2 3; do
    cni ADD "$conf" cid=mt-adm-$i ns="${C[$i]}"
    assert_ok "ADD $i" || die "ADD $i failed"
    ipof[$i]=$(jqo '.ips[0].address' | cut -d/ -f1)
done
# a second interface in container 1: same network and store, no second default route
noroute=$(conf_edit "$conf" '.ipam.routes = []')
cni ADD "$noroute" cid=mt-adm-1 ns="${C[1]}" if=net1
assert_ok "ADD 1 net1" || die "ADD 1 net1 failed"
ipof[1net1]=$(jqo '.ips[0].address' | cut -d/ -f1)

# ---- list
adm list --data-dir "$DATA"
assert_rc 0 "list"
for i in 1 2 3; do
    grep -qE "^$net +${ipof[$i]//./\\.} +mt-adm-$i +eth0 +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$" <<<"$OUT" ||
        fail "list table: no row for mt-adm-$i eth0 ${ipof[$i]}"
done
grep -qE "^$net +${ipof[1net1]//./\\.} +mt-adm-1 +net1 " <<<"$OUT" || fail "list table: no row for mt-adm-1 net1"
assert_match "$(tail -n1 <<<"$OUT")" "^4 allocations in 1 network " "list summary line"
head -n1 <<<"$OUT" | grep -qE '^NETWORK +IP +CONTAINER +IFNAME +SINCE$' || fail "list header: $(head -n1 <<<"$OUT")"

adm list --data-dir "$DATA" "$net" --json
assert_rc 0 "list --json NETWORK"
assert_jq '.networks | length == 1' "one network"
assert_jq "[.networks[0].allocations[] | \"\(.containerID)/\(.ifname)\"] | sort == [\"mt-adm-1/eth0\", \"mt-adm-1/net1\", \"mt-adm-2/eth0\", \"mt-adm-3/eth0\"]" "list --json owners"
assert_jq '.networks[0].allocations | all(.since | test("^[0-9-]+T[0-9:]+Z$"))' "list --json since"
now=$(date +%s)
assert_jq ".networks[0].allocations | all(.sinceUnix <= $now and .sinceUnix > $now - 600)" "list --json sinceUnix is recent"
assert_jq ".networks[0].dir == \"$DATA/$net\"" "list --json dir"

adm list --data-dir "$DATA" mt-nosuch
assert_rc 1 "list of a network without a store"
assert_match "$ERR" "no IPAM store" "list error message"
[[ -e $DATA/mt-nosuch ]] && fail "list created a store for mt-nosuch"

# ---- usage: from the file and from a config dir (conf + conflist + unrelated + broken)
adm usage --config "$conf"
assert_rc 0 "usage --config"
grep -qE "^$net +ipam\.subnet +192\.168\.50\.100-192\.168\.50\.109 in 192\.168\.50\.0/24 +10 +4 +6 +0$" <<<"$OUT" ||
    fail "usage table row: $OUT"
mkdir -p "$T/netd"
cp "$conf" "$T/netd/10-admin.conf"
cp "$(fixture 30-mactrunk-static-ip.conflist '.name = "mt-admin-list"')" "$T/netd/30-list.conflist"
echo '{"cniVersion":"1.0.0","name":"other","type":"bridge","ipam":{"type":"dhcp"}}' >"$T/netd/20-other.conf"
adm usage --conf-dir "$T/netd" --json
assert_rc 0 "usage --conf-dir"
assert_jq '[.networks[].name] == ["mt-admin", "mt-admin-list"]' "usage --conf-dir networks (not the dhcp one)"
assert_jq '.networks[0].rangeSets[0] | .capacity == 10 and .used == 4 and .free == 6' "usage counts"
assert_jq '.networks[1].plugin == 0 and .networks[1].rangeSets[0].used == 0' "usage of the conflist"
echo '{' >"$T/netd/40-broken.conflist"
adm usage --conf-dir "$T/netd"
assert_rc 1 "usage with a broken config in the dir"
assert_match "$OUT" "40-broken.conflist: not valid JSON" "usage reports the broken file"

# ---- release
adm release --data-dir "$DATA" "$net" --ip "${ipof[2]}"
assert_rc 0 "release --ip"
assert_match "$OUT" "released 1 allocation" "release --ip output"
[[ -e $DATA/$net/${ipof[2]} ]] && fail "release --ip left $DATA/$net/${ipof[2]}"
adm release --data-dir "$DATA" "$net" --ip "${ipof[2]}"
assert_rc 1 "release of an address no one holds"
# the plugin's DEL of a container whose address was released by hand still succeeds
cni DEL "$conf" cid=mt-adm-2 ns="${C[2]}"
assert_ok_empty "DEL after release --ip"
assert_ns_clean "${C[2]}"

adm release --data-dir "$DATA" "$net" --container mt-adm-1 --ifname net1 --json
assert_rc 0 "release --container --ifname"
assert_jq ".released == [.released[0]] and .released[0].ip == \"${ipof[1net1]}\" and .released[0].ifname == \"net1\"" "release --container --ifname released only net1"
assert_store_entry "$net" "${ipof[1]}" mt-adm-1 eth0
# the remaining attachment keeps its address (the owner index followed the release)
cni ADD "$conf" bin=ipam cid=mt-adm-1 ns="${C[1]}"
assert_ok "IPAM ADD mt-adm-1 eth0 again" && assert_json '.ips[0].address' "${ipof[1]}/24" "same address after the release of net1"
cni DEL "$noroute" cid=mt-adm-1 ns="${C[1]}" if=net1
assert_ok_empty "DEL net1 after release --container --ifname"
assert_no_link "${C[1]}" net1
assert_store_entry "$net" "${ipof[1]}" mt-adm-1 eth0

# ---- gc
adm gc --data-dir "$DATA" "$net" --keep mt-adm-1 --dry-run
assert_rc 0 "gc --dry-run"
assert_match "$OUT" "would release 1 allocation, kept 1" "gc --dry-run summary"
assert_store_entry "$net" "${ipof[3]}" mt-adm-3 eth0
adm gc --data-dir "$DATA" "$net" --keep mt-adm-1:eth0 --json
assert_rc 0 "gc --keep"
assert_jq ".released | length == 1 and .[0].ip == \"${ipof[3]}\" and .[0].containerID == \"mt-adm-3\"" "gc released mt-adm-3"
assert_jq '.kept == 1 and .dryRun == false' "gc kept mt-adm-1"
assert_store_free "$net" mt-adm-3
cni DEL "$conf" cid=mt-adm-3 ns="${C[3]}"
assert_ok_empty "DEL after gc released the address"

# freed addresses are handed out again: fill the range (9 free) and check no address is lost
make_container_ns F
for ((i = 1; i <= 9; i++)); do
    cni ADD "$noroute" cid=mt-adm-f$i ns="$F" if=e$i
    assert_ok "ADD fill $i" || break
done
cni ADD "$noroute" cid=mt-adm-f10 ns="$F" if=e10
assert_code 101 '' "ADD past the 10 addresses"
adm usage --config "$conf" --json
assert_jq '.networks[0].rangeSets[0] | .used == 10 and .free == 0' "usage when full"

# gc with a keep file (one per line, comments), then with an empty one
printf '# live\nmt-adm-1\nmt-adm-f1:e1\n' >"$T/keep"
adm gc --data-dir "$DATA" "$net" --keep-file "$T/keep"
assert_rc 0 "gc --keep-file"
assert_match "$OUT" "released 8 allocations, kept 2" "gc --keep-file summary"
: >"$T/keep"
adm gc --data-dir "$DATA" "$net" --keep-file "$T/keep"
assert_rc 0 "gc with an empty keep file"
assert_store_empty "$net"
# the plugin's DELs are harmless afterwards
cni DEL "$conf" cid=mt-adm-1 ns="${C[1]}"
assert_ok_empty "DEL mt-adm-1 after gc"
for ((i = 1; i <= 9; i++)); do cni DEL "$noroute" cid=mt-adm-f$i ns="$F" if=e$i; done
assert_ns_clean "${C[1]}"
assert_ns_clean "$F"

# ---- a store written by the reference host-local
hl=$(conf_edit "$conf" '.name = "mt-admin-hl" | .cniVersion = "1.0.0" | .type = "macvlan" | .ipam.type = "host-local"')
cni ADD "$hl" bin=/usr/lib/cni/host-local cid=mt-adm-hl ns="${C[1]}" if=net2
assert_ok "host-local ADD"
adm list --data-dir "$DATA" mt-admin-hl --json
assert_rc 0 "list of a host-local store"
assert_jq '.networks[0].allocations | length == 1 and .[0].containerID == "mt-adm-hl" and .[0].ifname == "net2"' "host-local record listed"
adm usage --config "$hl" --json
assert_jq '.networks[0].ipamType == "host-local" and .networks[0].rangeSets[0].used == 1' "usage of a host-local config"
adm release --data-dir "$DATA" mt-admin-hl --container mt-adm-hl
assert_rc 0 "release in a host-local store"
cni DEL "$hl" bin=/usr/lib/cni/host-local cid=mt-adm-hl ns="${C[1]}" if=net2
assert_ok_empty "host-local DEL after release"

# ---- read-only commands write nothing, anywhere (issue 8, finding 10): a data dir with a
# store of ours, a store of the reference host-local, an unrelated directory (think /etc)
# and a store anyone may write to. The unsafe one is reported, the others listed, exit 1.
RO=$T/ro
mkdir -m 700 "$RO"
cni ADD "$(conf_edit "$noroute" '.ipam.dataDir = $d' --arg d "$RO")" bin=ipam cid=mt-adm-ro ns="${C[1]}" if=ro0
assert_ok "IPAM ADD into $RO"
cni ADD "$(conf_edit "$hl" '.ipam.dataDir = $d' --arg d "$RO")" bin=/usr/lib/cni/host-local cid=mt-adm-rohl ns="${C[1]}" if=ro1
assert_ok "host-local ADD into $RO"
mkdir "$RO/etcish" && echo 'root:x:0:0' >"$RO/etcish/passwd"
mkdir "$RO/shared" && printf 'mt-adm-sh\r\neth0' >"$RO/shared/192.168.50.120" && chmod 0777 "$RO/shared"
snap() { find "$RO" -printf '%p %y %m %s %T@ %C@\n' | sort; find "$RO" -type f -exec md5sum {} + | sort; }
before=$(snap)
adm list --data-dir "$RO"
assert_rc 1 "list with an unsafe store"
grep -qE "^$net +192\.168\.50\.[0-9]+ +mt-adm-ro +ro0 " <<<"$OUT" || fail "list: our store not listed next to the unsafe one"
grep -qE "^mt-admin-hl +192\.168\.50\.[0-9]+ +mt-adm-rohl +ro1 " <<<"$OUT" || fail "list: host-local's store not listed"
grep -qE "^etcish +- " <<<"$OUT" || fail "list: the unrelated directory is not listed as empty"
grep -qE "^error: shared: .*must be private" <<<"$OUT" || fail "list: the unsafe store is not reported"
adm list --data-dir "$RO" --json
assert_rc 1 "list --json with an unsafe store"
assert_jq '[.networks[].name] | sort == ["etcish", "mt-admin", "mt-admin-hl"]' "list --json lists the healthy stores"
assert_jq '.errors | length == 1 and .[0].name == "shared" and (.[0].error | test("must be private"))' "list --json reports the unsafe store"
adm gc --data-dir "$RO" mt-admin-hl --keep nobody --dry-run
assert_rc 0 "gc --dry-run on host-local's store"
adm usage --config "$(conf_edit "$hl" '.ipam.dataDir = $d' --arg d "$RO")"
assert_rc 0 "usage of host-local's store"
assert_eq "$(snap)" "$before" "list, gc --dry-run and usage wrote nothing under $RO"
chmod 0700 "$RO/shared"

# ---- usage errors: exit 2, help on stderr, nothing on stdout
for a in "frob" "gc $net" "release $net" "release $net --ip nope" "list a b" "list --data-dir" "usage --config a --conf-dir b" \
    "list --bogus" "list --ip 10.0.0.1" "gc $net --keep a --dry-run=yes" "list --json=1" "gc -nx $net --keep a"; do
    # shellcheck disable=SC2086
    adm $a
    CTX="mactrunk-ipam $a" assert_rc 2 "usage error"
    [[ -z $OUT ]] || CTX="mactrunk-ipam $a" fail "usage error printed on stdout: $OUT"
done
# arguments that are not UTF-8, --version, JSON failures (issue 8, finding 11)
adm list $'\xff'
assert_rc 2 "a non-UTF-8 argument (was a panic, exit 101)"
[[ -z $OUT ]] || fail "non-UTF-8 argument: output on stdout: $OUT"
assert_match "$ERR" "not valid UTF-8" "non-UTF-8 argument message"
adm list --json $'\xff'
assert_rc 2 "a non-UTF-8 argument with --json"
assert_jq '.exitStatus == 2 and (.error | test("not valid UTF-8"))' "JSON usage error for a non-UTF-8 argument"
adm frob --json
assert_rc 2 "unknown command with --json"
assert_jq '.exitStatus == 2 and (.error | test("unknown command"))' "JSON usage error"
adm list --data-dir "$DATA" mt-nosuch --json
assert_rc 1 "list --json of a network without a store"
assert_jq '.exitStatus == 1 and (.error | test("no IPAM store"))' "JSON failure"
# the plugin binaries' own --version check read the arguments with a panicking API too
env -i "$NT_BIN_DIR/mactrunk" $'\xff' >"$T/raw.out" 2>/dev/null
rc=$?
[[ $rc == 1 ]] || fail "mactrunk with a non-UTF-8 argument: exit status $rc, expected 1 (CNI_COMMAND not set)"
jq -e '.code == 4' "$T/raw.out" >/dev/null 2>&1 || fail "mactrunk with a non-UTF-8 argument: no CNI error on stdout: $(head -c 200 "$T/raw.out")"
mtv=$(env -i "$NT_BIN_DIR/mactrunk" --version)
for v in --version -V; do
    adm $v
    assert_rc 0 "mactrunk-ipam $v"
    assert_eq "$OUT" "mactrunk-ipam ${mtv#mactrunk }" "mactrunk-ipam $v prints the version as mactrunk --version does"
done
adm --help
assert_rc 0 "--help"
assert_match "$OUT" "mactrunk-ipam gc" "--help text"
adm gc --help
assert_rc 0 "gc --help"
assert_match "$OUT" "keep-file" "gc --help text"
# every command's help, however asked for: stdout, exit 0, before any other check of the line
for c in list usage release gc; do
    for a in "$c --help" "$c -h" "help $c" "$c --json --help" "$c $net --help --bogus-after-help"; do
        # shellcheck disable=SC2086
        adm $a
        CTX="mactrunk-ipam $a" assert_rc 0 "help"
        [[ $OUT == "mactrunk-ipam $c "* ]] || CTX="mactrunk-ipam $a" fail "not the help of $c: ${OUT:0:80}"
    done
done
adm gc -nh
assert_rc 0 "gc -nh (short options cluster)"
assert_match "$OUT" "keep-file" "gc -nh prints gc's help"
# --opt=VALUE and short -n work like --opt VALUE and --dry-run
adm gc --data-dir="$DATA" "$net" --keep=nobody -n --json
assert_rc 0 "gc --data-dir=DIR --keep=ID -n"
assert_jq '.dryRun == true' "-n is --dry-run"
