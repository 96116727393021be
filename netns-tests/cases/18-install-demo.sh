# install.sh --demo (with DESTDIR and the binaries under test): two containers on a mactrunk
# network ping each other; the result JSON is shown; afterwards no mtdemo-<pid>-* namespace
# and no data dir is left.
[[ $NT_REFERENCE == 1 ]] && skip "the demo's config is cniVersion 1.1.0, which the reference plugins do not speak"
inst=$ROOT/install.sh
before=$(ip netns list | awk '{print $1}' | grep '^mtdemo-' | sort)
out=$(DESTDIR=$T/dest timeout 60 "$inst" --prebuilt "$NT_BIN_DIR" --demo 2>&1)
rc=$?
printf '%s\n' "$out" >&2
assert_eq "$rc" 0 "install.sh --demo exit status"
assert_match "$out" 'demo: OK' "demo output ends with OK"
assert_match "$out" '"interfaces"' "demo shows the result JSON"
assert_match "$out" '[1-9][0-9]* received' "demo shows a successful ping"
pid=$(grep -o 'mtdemo-[0-9]*-host' <<<"$out" | head -n1 | cut -d- -f2)
[[ -n $pid ]] || fail "demo output does not name its namespaces"
after=$(ip netns list | awk '{print $1}' | grep '^mtdemo-' | sort)
assert_eq "$after" "$before" "mtdemo-* namespaces after the demo"
[[ -n $pid ]] && ip netns list | grep -q "mtdemo-$pid-" && fail "demo namespaces mtdemo-$pid-* left behind"
leftover=$(grep -o '/tmp/mtdemo-data\.[A-Za-z0-9]*' <<<"$out" | sort -u)
for d in $leftover; do [[ -e $d ]] && fail "demo data dir $d left behind"; done
