# logFile is named by the config, which may come from a less-trusted author: it must never
# be followed through a symlink (anywhere in the path), never block (a FIFO), never be a
# device (/dev/stdout would put a log line next to the result) or a hard link to another
# file. Such a logFile is ignored with a warning on stderr and the command still works.
# Everything logged is one line per entry: control characters in config values and
# CNI_NETNS are escaped, so a resolvConf value with "\n" cannot forge a log line.
make_container_ns C
echo "precious" >"$T/victim"
ln -s "$T/victim" "$T/link-to-victim"
mkdir -p "$T/realdir"
ln -s "$T/realdir" "$T/dirlink"
mkfifo "$T/fifo"
ln "$T/victim" "$T/hardlink"

i=0
for lf in "$T/link-to-victim" "$T/dirlink/log" "$T/fifo" /dev/stdout /dev/null "$T/hardlink" relative.log; do
    i=$((i + 1))
    CTX="logFile=$lf"
    conf=$(fixture 10-mactrunk-bridge.conf '.logFile = $lf | .logLevel = "debug"' --arg lf "$lf")
    cni ADD "$conf" cid=mt-lf-$i ns="$C"
    assert_ok "ADD with a hostile logFile"
    assert_match "$ERR" 'ignoring logFile' "warning on stderr"
    cni DEL "$conf" cid=mt-lf-$i ns="$C"
    assert_ok_empty "DEL with a hostile logFile"
done
CTX=""
assert_eq "$(cat "$T/victim")" precious "the symlink/hard-link target"
[[ -e $T/realdir/log ]] && fail "a log file was created through a symlinked directory"
[[ -p $T/fifo ]] || fail "the FIFO was replaced"

# a regular log file works, and config text cannot forge lines in it
log=$T/plugin.log
conf=$(fixture 10-mactrunk-bridge.conf '.logFile = $lf | .logLevel = "debug" | .ipam.resolvConf = $rc' \
    --arg lf "$log" --arg rc $'/nonexistent\n2026-01-01T00:00:00.000Z mactrunk[1] ERROR forged line')
cni ADD "$conf" cid=mt-lf-ok ns="$C"
assert_code 7 '^ipam\.resolvConf' "ADD with an unreadable resolvConf"
assert_eq "$(grep -c 'forged line' "$log")" 1 "log lines mentioning the forged text"
assert_eq "$(grep -c '^2026-01-01T00:00:00.000Z' "$log")" 0 "forged lines in the log"
assert_match "$(cat "$log")" 'nonexistent\\n2026' "the newline is escaped"
# CNI_NETNS with control characters is escaped too (stderr and file alike)
cni ADD "$(fixture 10-mactrunk-bridge.conf)" cid=mt-lf-ns netns=$'/run/netns/x\n\e[31mFORGED'
assert_code 8 '' "ADD with a CNI_NETNS holding control characters"
[[ $ERR == *$'\e'* ]] && fail "stderr carries a raw escape character: $(printf %q "$ERR")"
[[ $(grep -c FORGED <<<"$ERR") -le 1 && $(grep -c '^\[31mFORGED' <<<"$ERR") == 0 ]] || fail "CNI_NETNS forged a stderr line: $(printf %q "$ERR")"
assert_ns_clean "$C"
assert_store_empty mactrunk-bridge
