# The binaries under test are static: they run in a root that holds nothing but them (no
# libc, no loader, no /etc): --version, VERSION, the admin tool (and mactrunk-etcd --version
# where the build has the cluster IPAM's helper); and ADD, CHECK and DEL work
# there with only /proc and the container's netns mounted. Control: a dynamic program
# (/bin/true) does not run in such a root, so the root really lacks a libc.
[[ $NT_REFERENCE == 1 ]] && skip "about mactrunk's own release build"

R=$T/root
mkdir -p "$R"
cp "$PLUGIN" "$IPAM_PLUGIN" "$R/"
assert_eq "$(cd "$R" && find . -mindepth 1 | sort | tr '\n' ' ')" "./mactrunk ./mactrunk-ipam " "the root holds only the two binaries"

# control: a dynamically linked program cannot run there
ctl=$T/control
mkdir -p "$ctl"
cp /bin/true "$ctl/true"
chroot "$ctl" /true 2>/dev/null && fail "/bin/true ran in an empty root: the test cannot tell static from dynamic"

for b in mactrunk mactrunk-ipam; do
    out=$(env -i PATH="$SAFE_PATH" chroot "$R" "/$b" --version 2>&1)
    assert_eq "$?" 0 "$b --version in an empty root"
    assert_match "$out" "^$b [0-9]+\.[0-9]+\.[0-9]+ " "$b --version output"
    out=$(env -i PATH="$SAFE_PATH" CNI_COMMAND=VERSION chroot "$R" "/$b" </dev/null 2>&1)
    assert_eq "$?" 0 "$b VERSION in an empty root"
    assert_eq "$(jq -c .supportedVersions <<<"$out" 2>/dev/null)" \
        '["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]' "$b VERSION result ($out)"
done
# the cluster IPAM's etcd helper, where the build has it (./build.sh; not in the test VM)
if [[ -x $NT_BIN_DIR/mactrunk-etcd ]]; then
    mkdir -p "$T/eroot"
    cp "$NT_BIN_DIR/mactrunk-etcd" "$T/eroot/"
    out=$(env -i PATH="$SAFE_PATH" chroot "$T/eroot" /mactrunk-etcd --version 2>&1)
    assert_eq "$?" 0 "mactrunk-etcd --version in an empty root"
    assert_match "$out" "^mactrunk-etcd [0-9]+\.[0-9]+\.[0-9]+" "mactrunk-etcd --version output"
fi
out=$(env -i PATH="$SAFE_PATH" chroot "$R" /mactrunk-ipam list --data-dir /nowhere 2>&1)
assert_eq "$?" 0 "mactrunk-ipam list in an empty root"
assert_eq "$out" "no IPAM stores in /nowhere" "mactrunk-ipam list output"

# A real attachment from inside that root: the plugin runs chrooted (in $HOSTNS, as every
# call here), with a private mount namespace holding /proc and /run/netns; its store is the
# default dataDir inside the root.
mkdir -p "$R/proc" "$R/run/netns"
wrapper=$T/chrooted-mactrunk
cat >"$wrapper" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount -t proc proc "$R/proc" && mount -o rbind /run/netns "$R/run/netns" && exec chroot "$R" /mactrunk'
EOF
chmod +x "$wrapper"
make_container_ns C
conf=$T/static.conf
jq -n --arg m "$PARENT" '{cniVersion: "1.1.0", name: "static", type: "mactrunk", master: $m,
    ipam: {type: "mactrunk-ipam", subnet: "10.80.0.0/24"}}' >"$conf"
cni ADD "$conf" cid=static1 ns="$C" bin="$wrapper"
assert_ok "ADD in the chrooted static root"
ip=$(jqo '.ips[0].address')
assert_eq "$ip" 10.80.0.2/24 "address from the chrooted ADD"
assert_match "$(ip -n "$C" -o addr show dev eth0 2>&1)" '10\.80\.0\.2/24' "eth0 in the container carries the address"
[[ -f $R/var/lib/cni/networks/static/10.80.0.2 ]] || fail "no store record inside the root ($(find "$R/var" 2>&1 | tr '\n' ' '))"
cni CHECK "$(with_prev "$conf" "$OUT")" cid=static1 ns="$C" bin="$wrapper"
assert_ok_empty "CHECK in the chrooted static root"
cni DEL "$conf" cid=static1 ns="$C" bin="$wrapper"
assert_ok_empty "DEL in the chrooted static root"
[[ -e $R/var/lib/cni/networks/static/10.80.0.2 ]] && fail "DEL left the store record"
ip -n "$C" link show eth0 >/dev/null 2>&1 && fail "DEL left eth0 in the container"
