# `mactrunk-ipam metrics` over a store made by real ADDs: capacity, used, free and
# quarantined per range set (the config from --conf-dir), allocations, the quarantined
# address (a conflict record, as a probe writes it), the orphaned allocation of a container
# whose netns was deleted without DEL (and not of the live ones), the oldest allocation's
# age; --textfile writes the file node_exporter reads (0644, no temp file left, nothing on
# stdout) and `promtool check metrics` accepts it, as it accepts the stdout form; on a kernel
# with 802.1Q (the VM) the users of a VLAN parent mactrunk created. Exit 0; with a broken
# config beside it, exit 1 and mactrunk_metrics_errors 1, the rest still written.
[[ $NT_REFERENCE == 1 ]] && skip "mactrunk-only (admin CLI)"
command -v promtool >/dev/null || die "promtool not found (Debian: apt-get install prometheus; .ci/run does)"
ADMIN=$NT_BIN_DIR/mactrunk-ipam

# metric FILE NAME LABEL-SUBSTRING: the value of the first sample of NAME whose labels
# contain the substring ("" for a metric without labels)
metric() {
    awk -v n="$2" -v l="$3" '
        index($0, "#") == 1 { next }
        { split($0, a, " "); name = a[1]; sub(/\{.*/, "", name) }
        name == n && index(a[1], l) { print a[2]; exit }' "$1"
}

confs=$T/net.d
mkdir -p "$confs"
# 192.168.50.100-109 with gateway .1: capacity 10
conf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-metrics" | .ipam.rangeEnd = "192.168.50.109"')
cp "$conf" "$confs/10-metrics.conf"
net=mt-metrics
make_container_nses 3 C
for i in 1 2 3; do
    cni ADD "$conf" cid=mt-met-$i ns="${C[$i]}"
    assert_ok "ADD $i" || die "ADD $i failed"
done
# a quarantined address, recorded as the probe records it
printf 'conflict:52:54:00:82:82:82' >"$DATA/$net/192.168.50.108"
chmod 0600 "$DATA/$net/192.168.50.108"

# container 3 goes away without a DEL: its netns is deleted. The kernel hands out the
# lowest free nsfs inode number again, so a netns created meanwhile by anyone on this
# machine may carry the same id (then the address is not an orphan as far as anyone can
# tell): the id is checked and, if reused, reported rather than counted as a failure.
id3=$(sed -n 's/^netns //p' "$DATA/$net/owners/mt-met-3@eth0")
[[ $id3 =~ ^[0-9]+:[0-9]+$ ]] || fail "no netns id in the owner index of container 3 ($id3)"
delete_ns "${C[3]}"
live_ids() { stat -L -c '%d:%i' /proc/[0-9]*/ns/net /run/netns/* 2>/dev/null | sort -u; }

tf=$T/textfile
mkdir -p "$tf"
env -i PATH="$SAFE_PATH" "$ADMIN" metrics --data-dir "$DATA" --conf-dir "$confs" --textfile "$tf/mactrunk.prom" \
    >"$T/metrics.out" 2>"$T/metrics.err"
assert_eq "$?" 0 "metrics --textfile exit status ($(cat "$T/metrics.err"))"
assert_eq "$(cat "$T/metrics.out")" "" "stdout with --textfile"
P=$tf/mactrunk.prom
[[ -f $P ]] || die "no textfile written"
cat "$P" >&2
assert_eq "$(stat -c %a "$P")" 644 "textfile mode"
assert_eq "$(ls -A "$tf")" "mactrunk.prom" "only the textfile in its directory"
out=$(promtool check metrics <"$P" 2>&1)
assert_eq "$?" 0 "promtool check metrics on the textfile: $out"

set=network=\"$net\",range_set=\"ipam.subnet\"
assert_eq "$(metric "$P" mactrunk_ipam_range_capacity "$set")" 10 "capacity"
assert_eq "$(metric "$P" mactrunk_ipam_range_used "$set")" 3 "used"
assert_eq "$(metric "$P" mactrunk_ipam_range_quarantined "$set")" 1 "quarantined in the range"
assert_eq "$(metric "$P" mactrunk_ipam_range_free "$set")" 6 "free"
assert_match "$(grep '^mactrunk_ipam_range_capacity{' "$P")" 'subnet="192\.168\.50\.0/24",range="192\.168\.50\.100-192\.168\.50\.109"' "range labels"
assert_eq "$(metric "$P" mactrunk_ipam_allocations "network=\"$net\"")" 3 "allocations"
assert_eq "$(metric "$P" mactrunk_ipam_quarantined_addresses "network=\"$net\"")" 1 "quarantined addresses"
age=$(metric "$P" mactrunk_ipam_oldest_allocation_age_seconds "network=\"$net\"")
[[ $age =~ ^[0-9]+$ ]] && ((age < 600)) || fail "oldest allocation age '$age'"
orph=$(metric "$P" mactrunk_ipam_orphaned_allocations "network=\"$net\"")
if [[ $orph != 1 ]] && [[ $orph == 0 ]] && live_ids | grep -qx "$id3"; then
    log "netns id $id3 of the deleted container was reused by a new netns: not an orphan any more"
else
    assert_eq "$orph" 1 "orphaned allocations (container 3's netns deleted, 1 and 2 alive)"
fi
assert_eq "$(metric "$P" mactrunk_ipam_store_readable "network=\"$net\"")" 1 "store readable"
assert_eq "$(metric "$P" mactrunk_metrics_errors "")" 0 "error count"

# the stdout form is the same exposition and valid too
env -i PATH="$SAFE_PATH" "$ADMIN" metrics --data-dir "$DATA" --conf-dir "$confs" --no-netns-check >"$T/stdout.prom"
assert_eq "$?" 0 "metrics to stdout"
out=$(promtool check metrics <"$T/stdout.prom" 2>&1)
assert_eq "$?" 0 "promtool check metrics on stdout: $out"
grep -q orphaned "$T/stdout.prom" && fail "--no-netns-check still reports orphans"

# a VLAN parent mactrunk creates (kernels with 802.1Q: the VM)
if ip -n "$HOSTNS" link add link "$PARENT" name mtvlprobe type vlan id 9 2>/dev/null; then
    ip -n "$HOSTNS" link del mtvlprobe
    vconf=$(fixture 10-mactrunk-bridge.conf '.name = "mt-metrics-vlan" | .vlan = 82 | .ipam.subnet = "10.82.0.0/24" | del(.ipam.rangeStart, .ipam.rangeEnd, .ipam.gateway)')
    make_container_nses 2 V
    for i in 1 2; do
        cni ADD "$vconf" cid=mt-metv-$i ns="${V[$i]}"
        assert_ok "VLAN ADD $i"
    done
    env -i PATH="$SAFE_PATH" "$ADMIN" metrics --data-dir "$DATA" --conf-dir "$confs" --no-netns-check >"$T/vlan.prom"
    assert_eq "$(metric "$T/vlan.prom" mactrunk_vlan_parent_users "link=\"$PARENT.82\"")" 2 "users of $PARENT.82"
    out=$(promtool check metrics <"$T/vlan.prom" 2>&1)
    assert_eq "$?" 0 "promtool check metrics with a VLAN parent: $out"
    for i in 1 2; do cni DEL "$vconf" cid=mt-metv-$i ns="${V[$i]}"; done
else
    [[ ${MTVM:-} == 1 ]] && fail "no 802.1Q in the test VM's kernel"
    log "no 802.1Q in this kernel: the VLAN users gauge is checked in the VM"
fi

# a broken config beside it: counted, exit 1, the rest still written
echo '{not json' >"$confs/20-broken.conf"
env -i PATH="$SAFE_PATH" "$ADMIN" metrics --data-dir "$DATA" --conf-dir "$confs" --textfile "$P" --no-netns-check \
    >"$T/broken.out" 2>"$T/broken.err"
assert_eq "$?" 1 "exit status with a broken config"
assert_match "$(cat "$T/broken.out")" '20-broken\.conf: not valid JSON' "the error names the config"
assert_eq "$(metric "$P" mactrunk_metrics_errors "")" 1 "error count with a broken config"
assert_eq "$(metric "$P" mactrunk_ipam_range_capacity "$set")" 10 "capacity still written"

for i in 1 2; do cni DEL "$conf" cid=mt-met-$i ns="${C[$i]}"; done
