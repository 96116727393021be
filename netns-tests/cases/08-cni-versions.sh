# Every supported cniVersion with the dual-stack fixture: ADD's result format (ip4/ip6 for
# <0.3.0, ips[].version for 0.3.x/0.4.0, none in 1.x, interface mtu only in 1.1.0), CHECK
# (code 1 below 0.4.0), DEL; unsupported versions (code 1, details list the supported ones);
# GC/STATUS below 1.1.0 (code 1); VERSION.
all="0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0"
make_container_ns C
for v in $all; do
    CTX="cniVersion $v"
    conf=$(fixture 20-mactrunk-dualstack.conf '.cniVersion = $v' --arg v "$v")
    net=$(conf_name "$conf")
    cid=mt-ver-${v//./-}
    cni ADD "$conf" cid=$cid ns="$C"
    if assert_ok ADD; then
        result=$OUT
        assert_json .cniVersion "$v"
        case $v in
            0.1.0 | 0.2.0)
                assert_jq 'has("ips") | not' "no ips[] in the $v format"
                assert_jq 'has("interfaces") | not' "no interfaces[] in the $v format"
                assert_jq '.ip4.ip | test("^10\\.20\\.0\\.[0-9]+/24$")' "ip4.ip"
                assert_json .ip4.gateway 10.20.0.1
                assert_jq '.ip4.routes | any(.dst == "0.0.0.0/0")' "ip4.routes has the default route"
                assert_jq '.ip6.ip | test("^fd00:20::[0-9a-f:]+/64$")' "ip6.ip"
                assert_json .ip6.gateway fd00:20::1
                assert_jq '.ip6.routes | any(.dst == "::/0")' "ip6.routes has the default route"
                ;;
            *)
                assert_jq 'has("ip4") or has("ip6") | not' "no ip4/ip6 in the $v format"
                assert_json '.ips | length' 2
                assert_json '[.ips[].interface] | unique' '[0]' ""
                assert_jq '.ips | any(.address | test("^10\\.20\\.0\\.[0-9]+/24$"))' "an IPv4 address"
                assert_jq '.ips | any(.address | test("^fd00:20::[0-9a-f:]+/64$"))' "an IPv6 address"
                assert_jq '.ips | all(.gateway == "10.20.0.1" or .gateway == "fd00:20::1")' "gateways"
                assert_json '.interfaces[0].name' eth0
                assert_json '.interfaces[0].sandbox' "/run/netns/$C"
                assert_jq '.routes | any(.dst == "0.0.0.0/0") and any(.dst == "::/0")' "routes"
                case $v in
                    0.3.* | 0.4.0)
                        assert_jq '.ips | all(if (.address | contains(":")) then .version == "6" else .version == "4" end)' "ips[].version \"4\"/\"6\""
                        assert_jq '.interfaces[0] | has("mtu") | not' "no interfaces[0].mtu before 1.1.0"
                        ;;
                    1.0.0)
                        assert_jq '.ips | all(has("version") | not)' "no ips[].version in 1.x"
                        assert_jq '.interfaces[0] | has("mtu") | not' "no interfaces[0].mtu before 1.1.0"
                        ;;
                    1.1.0)
                        assert_jq '.ips | all(has("version") | not)' "no ips[].version in 1.x"
                        assert_json '.interfaces[0].mtu' 1500 "interfaces[0].mtu in 1.1.0"
                        ;;
                esac
                ;;
        esac
        # CHECK: supported from 0.4.0 on
        cni CHECK "$(with_prev "$conf" "$result")" cid=$cid ns="$C"
        case $v in
            0.4.0 | 1.*) assert_ok_empty "CHECK" ;;
            *) assert_code 1 '' "CHECK at $v" ;;
        esac
    fi
    cni DEL "$conf" cid=$cid ns="$C"
    assert_ok_empty DEL
    assert_ns_clean "$C"
    assert_store_empty "$net"
done
CTX=""

base=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$base")

# no cniVersion at all: 0.1.0
conf=$(conf_edit "$base" 'del(.cniVersion)')
cni ADD "$conf" cid=mt-ver-none ns="$C"
if assert_ok "ADD without cniVersion"; then
    assert_jq '(.cniVersion == "0.1.0") and (.ip4.ip | type == "string")' "a config without cniVersion is 0.1.0"
fi
cni DEL "$conf" cid=mt-ver-none ns="$C"
assert_ok_empty "DEL without cniVersion"

# unsupported versions
for v in 0.5.0 1.2.0 2.0.0 1.1 9.9.9-rc1; do
    CTX="cniVersion $v"
    conf=$(conf_edit "$base" '.cniVersion = $v' --arg v "$v")
    cni ADD "$conf" cid=mt-ver-bad ns="$C"
    assert_code 1 '' "ADD" && assert_jq '(.details // "") | contains("1.1.0") and contains("0.3.1")' "details list the supported versions"
    assert_clean_failure "$net" mt-ver-bad "$C"
done
CTX=""

# GC and STATUS need 1.1.0
conf=$(conf_edit "$base" '.cniVersion = "1.0.0"')
cni GC "$conf"
assert_code 1 '' "GC at 1.0.0"
cni STATUS "$conf"
assert_code 1 '' "STATUS at 1.0.0"

# VERSION
cni VERSION /dev/null
assert_ok "VERSION with empty stdin" && {
    assert_json '.supportedVersions | join(" ")' "$all"
    assert_json .cniVersion 1.1.0
}
cni VERSION "$(conf_edit "$base" '.cniVersion = "0.4.0"')"
assert_ok "VERSION with a 0.4.0 config" && assert_json .cniVersion 0.4.0 "VERSION echoes the config's cniVersion"
assert_host_clean
