# The example configs in conf/ are valid JSON with the documented shape, and each one works
# as is (only master and dataDir substituted): ADD, CHECK, DEL in a container.
for f in "$CONF_DIR"/*; do
    b=$(basename "$f")
    CTX=$b
    jq -e . "$f" >/dev/null 2>&1 || { fail "not valid JSON"; continue; }
    jq -e '.name | test("^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")' "$f" >/dev/null || fail "bad or missing name"
    jq -e '.cniVersion | IN("1.0.0", "1.1.0")' "$f" >/dev/null || fail "cniVersion not 1.0.0/1.1.0"
    case $b in
        *.conflist)
            jq -e '(.plugins | type) == "array" and .plugins[0].type == "mactrunk" and .plugins[0].ipam.type == "mactrunk-ipam" and .plugins[0].master == "eth0"' "$f" >/dev/null ||
                fail "conflist: plugins[0] must be mactrunk with mactrunk-ipam on eth0" ;;
        *.conf)
            jq -e '.type == "mactrunk" and .ipam.type == "mactrunk-ipam" and .master == "eth0"' "$f" >/dev/null ||
                fail "conf: must be type mactrunk with ipam mactrunk-ipam on eth0" ;;
        *) fail "unexpected file in conf/ (want .conf or .conflist)" ;;
    esac
done
CTX=""
jq -e '.mode == "bridge" and (.ipam.subnet | type) == "string"' "$CONF_DIR/10-mactrunk-bridge.conf" >/dev/null ||
    fail "10-mactrunk-bridge.conf: bridge mode with a host-local-style subnet"
jq -e '[.ipam.ranges[][0].subnet | contains(":")] == [false, true]' "$CONF_DIR/20-mactrunk-dualstack.conf" >/dev/null ||
    fail "20-mactrunk-dualstack.conf: a v4 and a v6 range set"
jq -e '.plugins[0].capabilities == {ips: true, mac: true}' "$CONF_DIR/30-mactrunk-static-ip.conflist" >/dev/null ||
    fail "30-mactrunk-static-ip.conflist: capabilities ips and mac"
jq -e '.plugins[1].type == "tuning"' "$CONF_DIR/40-mactrunk-tuning.conflist" >/dev/null ||
    fail "40-mactrunk-tuning.conflist: tuning chained after mactrunk"

make_container_ns C
n=0
for f in "$CONF_DIR"/*; do
    b=$(basename "$f")
    CTX=$b
    n=$((n + 1))
    c=$(fixture "$b")
    [[ $b == *.conflist ]] && c=$(flatten "$c" 0)
    cni ADD "$c" cid=mt-example-$n ns="$C"
    assert_ok ADD || continue
    cni CHECK "$(with_prev "$c")" cid=mt-example-$n ns="$C"
    assert_ok_empty CHECK
    cni DEL "$c" cid=mt-example-$n ns="$C"
    assert_ok_empty DEL
    assert_ns_clean "$C"
    assert_store_empty "$(conf_name "$c")"
done
