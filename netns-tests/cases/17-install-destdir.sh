# install.sh with DESTDIR into a temp dir: binaries installed (identical, executable), no
# config unless --with-config, an existing config never overwritten, a second run changes
# nothing, --bin-dir, --uninstall removes the binaries only, --help, a bad option fails.
inst=$ROOT/install.sh
[[ -x $inst ]] || die "no executable $inst"
pre=$T/prebuilt
mkdir -p "$pre"
if [[ $NT_REFERENCE == 1 ]]; then # stand-ins with the right names
    cp "$PLUGIN" "$pre/mactrunk"
    cp "$IPAM_PLUGIN" "$pre/mactrunk-ipam"
else
    cp "$PLUGIN" "$IPAM_PLUGIN" "$pre/"
fi
dest=$T/dest
run_install() { # run_install ARGS...: sets IRC, IOUT
    IOUT=$(DESTDIR=$dest "$inst" "$@" 2>&1)
    IRC=$?
    printf '$ DESTDIR=%s install.sh %s\n  rc=%s\n%s\n' "$dest" "$*" "$IRC" "$IOUT" >&2
}
snapshot() { (cd "$dest" 2>/dev/null && find . -printf '%p %m %s %T@ %i\n' | sort); }

run_install --prebuilt "$pre"
assert_eq "$IRC" 0 "install --prebuilt exit status"
for b in mactrunk mactrunk-ipam; do
    f=$dest/opt/cni/bin/$b
    [[ -x $f ]] || fail "$f not installed or not executable"
    cmp -s "$f" "$pre/$b" || fail "$f differs from the prebuilt binary"
    assert_eq "$(stat -c %a "$f" 2>/dev/null)" 755 "mode of $b"
done
[[ -e $dest/etc ]] && fail "a config was installed without --with-config: $(find "$dest/etc")"
[[ -n $(find "$dest/opt/cni/bin" -name '.*') ]] && fail "temp files left in the bin dir: $(find "$dest/opt/cni/bin" -name '.*')"

# idempotent: a second run changes nothing (same inodes, mtimes)
before=$(snapshot)
run_install --prebuilt "$pre"
assert_eq "$IRC" 0 "second install exit status"
assert_eq "$(snapshot)" "$before" "tree after a second identical install"

# a changed binary is replaced
printf '\n' >>"$pre/mactrunk"
run_install --prebuilt "$pre"
cmp -s "$dest/opt/cni/bin/mactrunk" "$pre/mactrunk" || fail "a changed binary was not replaced"

# --with-config: installed once, never overwritten
run_install --prebuilt "$pre" --with-config
assert_eq "$IRC" 0 "install --with-config exit status"
cfg=$dest/etc/cni/net.d/10-mactrunk-bridge.conf
if [[ -f $cfg ]]; then
    cmp -s "$cfg" "$ROOT/conf/10-mactrunk-bridge.conf" || fail "installed config differs from conf/10-mactrunk-bridge.conf"
    echo '{"edited": true}' >"$cfg"
    run_install --prebuilt "$pre" --with-config
    assert_eq "$IRC" 0 "second install --with-config exit status"
    assert_eq "$(cat "$cfg")" '{"edited": true}' "an existing config after --with-config"
else
    fail "--with-config did not install $cfg"
fi
run_install --prebuilt "$pre" --with-config=20-mactrunk-dualstack.conf
[[ -f $dest/etc/cni/net.d/20-mactrunk-dualstack.conf ]] || fail "--with-config=20-mactrunk-dualstack.conf did not install it"
run_install --prebuilt "$pre" --with-config=no-such.conf
[[ $IRC != 0 ]] || fail "--with-config=no-such.conf succeeded"

# --bin-dir
run_install --prebuilt "$pre" --bin-dir /usr/libexec/cni
assert_eq "$IRC" 0 "install --bin-dir exit status"
[[ -x $dest/usr/libexec/cni/mactrunk && -x $dest/usr/libexec/cni/mactrunk-ipam ]] || fail "--bin-dir /usr/libexec/cni: binaries missing"

# --uninstall: binaries go, configs stay; twice is fine
run_install --uninstall
assert_eq "$IRC" 0 "--uninstall exit status"
[[ -e $dest/opt/cni/bin/mactrunk || -e $dest/opt/cni/bin/mactrunk-ipam ]] && fail "--uninstall left binaries in /opt/cni/bin"
[[ -f $cfg ]] || fail "--uninstall removed the config"
[[ -x $dest/usr/libexec/cni/mactrunk ]] || fail "--uninstall (default bin dir) removed binaries of another bin dir"
run_install --uninstall
assert_eq "$IRC" 0 "second --uninstall exit status"
run_install --uninstall --bin-dir /usr/libexec/cni
[[ -e $dest/usr/libexec/cni/mactrunk ]] && fail "--uninstall --bin-dir left the binary"

# --help, bad usage
run_install --help
assert_eq "$IRC" 0 "--help exit status"
assert_match "$IOUT" 'Usage|usage|install.sh' "--help output"
assert_match "$IOUT" '--uninstall' "--help mentions --uninstall"
run_install --no-such-option
[[ $IRC != 0 ]] || fail "an unknown option succeeded"
run_install --prebuilt "$T/no-such-dir"
[[ $IRC != 0 ]] || fail "--prebuilt with a missing dir succeeded"
