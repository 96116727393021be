# The crash-injection hook of the VM suite (MACTRUNK_TEST_CRASH_AT) exists only in builds
# with the fault-injection feature: the binaries under test (release builds, what
# install.sh installs) must not contain it.
[[ ${NT_REFERENCE:-0} == 1 ]] && skip "mactrunk binaries only"
for b in "$PLUGIN" "$IPAM_PLUGIN" ${NT_BIN_DIR:+$(ls "$NT_BIN_DIR/mactrunk-etcd" 2>/dev/null)}; do
    n=$(grep -c MACTRUNK_TEST_CRASH_AT "$b" || true)
    assert_eq "$n" 0 "occurrences of MACTRUNK_TEST_CRASH_AT in $(basename "$b")"
done
