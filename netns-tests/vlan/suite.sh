# netns-tests/vlan/suite.sh: the VLAN cases, run INSIDE the test VM (vm/vm.sh; busybox sh) by
# netns-tests/run-vlan.sh, all in one boot:
#
#   sh /opt/mt/vlan/suite.sh [CASE...]      (CASE: a case name, default: all)
#
# Prints one PASS/FAIL line per case (FAIL lines are followed by the failed assertions),
# then "N passed, M failed". Exit status 1 if any case failed.
# The binaries are taken from $MT_BIN (default /opt/mt/bin).

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

# ------------------------------------------------------------------ cases

# created on first ADD, shared by a second container, the containers reach each other,
# kept while used, removed after the last DEL (one trunk, several steps, one case each)
case_lifecycle_created() {
    mk_trunk trk1
    mk_ns c1
    c=$(conf lc trk1 '"vlan": 50')
    cni ADD "$c" lc-1 c1
    assert_ok "ADD 1"
    assert_link trk1.50 "VLAN link after the first ADD"
    assert_link_detail trk1.50 "vlan protocol 802.1Q id 50" "VLAN id"
    assert_link_detail trk1.50 "trk1.50@trk1" "lower link"
    assert_link_detail trk1.50 ",UP" "VLAN link is up"
    assert_eq "$(record_users trk1.50)" 1 "users in the record"
    grep -q '"ifindex": [0-9]' "$(record trk1.50)" || fail "record has no ifindex: $(cat "$(record trk1.50)")"
    ip -n c1 -d link show eth0 | grep -q "macvlan" || fail "no macvlan eth0 in c1"
    echo "$(out_ip)" >"$WORK/lc.ip1"
}

case_lifecycle_shared() {
    mk_ns c2
    c=$(conf lc trk1 '"vlan": 50')
    cni ADD "$c" lc-2 c2
    assert_ok "ADD 2"
    assert_eq "$(vlans_on trk1 50)" 1 "VLAN 50 links on trk1"
    assert_eq "$(record_users trk1.50)" 2 "users in the record"
    echo "$(out_ip)" >"$WORK/lc.ip2"
}

case_lifecycle_ping() {
    ip1=$(cat "$WORK/lc.ip1") ip2=$(cat "$WORK/lc.ip2")
    [ -n "$ip1" ] && [ -n "$ip2" ] || fail "no addresses from the ADDs ($ip1/$ip2)"
    ip netns exec c1 ping -c 1 -W 3 "$ip2" >/dev/null 2>&1 ||
        ip netns exec c1 ping -c 2 -W 3 "$ip2" >/dev/null 2>&1 || fail "c1 cannot ping c2 ($ip2)"
    ip netns exec c2 ping -c 1 -W 3 "$ip1" >/dev/null 2>&1 || fail "c2 cannot ping c1 ($ip1)"
}

case_lifecycle_kept_while_used() {
    c=$(conf lc trk1 '"vlan": 50')
    cni DEL "$c" lc-1 c1
    assert_ok "DEL 1"
    assert_link trk1.50 "VLAN link while container 2 uses it"
    assert_eq "$(record_users trk1.50)" 1 "users after DEL 1"
    cni DEL "$c" lc-1 c1
    assert_ok "DEL 1 again (idempotent)"
    assert_link trk1.50 "VLAN link after a repeated DEL"
}

case_lifecycle_removed_after_last_del() {
    c=$(conf lc trk1 '"vlan": 50')
    cni DEL "$c" lc-2 c2
    assert_ok "DEL 2"
    assert_no_link trk1.50 "VLAN link after the last DEL"
    [ ! -e "$(record trk1.50)" ] || fail "record left: $(cat "$(record trk1.50)")"
    assert_eq "$(ip_files lc)" 0 "IP files"
    echo trk1 >>"$CASE_DIR/links"
    echo c1 >>"$CASE_DIR/nses"
    echo c2 >>"$CASE_DIR/nses"
}

# master "trk2.60" (no such link) means VLAN 60 on trk2; an existing dotted link is used as-is
case_dotted_master() {
    mk_trunk trk2
    mk_ns d1
    c=$(conf dot trk2.60)
    cni ADD "$c" dot-1 d1
    assert_ok "ADD with master trk2.60"
    assert_link_detail trk2.60 "vlan protocol 802.1Q id 60" "trk2.60 is VLAN 60"
    assert_link_detail trk2.60 "trk2.60@trk2" "on trk2"
    cni CHECK "$(printf %s "$c" | sed "s|}}\$|}, \"prevResult\": $OUT}|")" dot-1 d1
    assert_ok "CHECK"
    cni DEL "$c" dot-1 d1
    assert_ok "DEL"
    assert_no_link trk2.60 "trk2.60 after DEL"
    # a link that really is called trk2.61 (a dummy) is the master itself, as before
    mk_trunk trk2.61
    cni ADD "$(conf dot trk2.61)" dot-2 d1
    assert_ok "ADD with an existing dotted master"
    assert_link_detail trk2.61 "dummy" "trk2.61 is still the dummy"
    [ ! -e "$(record trk2.61)" ] || fail "a record for a link mactrunk did not create"
    cni DEL "$(conf dot trk2.61)" dot-2 d1
    assert_ok "DEL"
    assert_link trk2.61 "existing dotted master after DEL"
}

# a VLAN link mactrunk did not create is used, never changed or removed
case_foreign_vlan_untouched() {
    mk_trunk trk3
    ip link add link trk3 name trk3.70 type vlan id 70 || fail "cannot create trk3.70"
    ip link set trk3.70 up
    echo trk3.70 >>"$CASE_DIR/links"
    idx=$(cat /sys/class/net/trk3.70/ifindex)
    mk_ns f1
    mk_ns f2
    c=$(conf fr trk3 '"vlan": 70')
    cni ADD "$c" fr-1 f1
    assert_ok "ADD 1 on the foreign VLAN"
    cni ADD "$c" fr-2 f2
    assert_ok "ADD 2 on the foreign VLAN"
    [ ! -e "$(record trk3.70)" ] || fail "record for a foreign link: $(cat "$(record trk3.70)")"
    cni DEL "$c" fr-1 f1
    cni DEL "$c" fr-2 f2
    assert_ok "DEL 2"
    assert_link trk3.70 "foreign VLAN link after the last DEL"
    assert_eq "$(cat /sys/class/net/trk3.70/ifindex 2>/dev/null)" "$idx" "same link (ifindex)"
    cni GC "$(printf %s "$c" | sed 's|}}$|}, "cni.dev/valid-attachments": []}|')" "" ""
    assert_ok "GC with an empty list"
    assert_link trk3.70 "foreign VLAN link after GC"
}

# a link of the VLAN's name that is something else: code 7 naming it, nothing changed
case_conflicting_links() {
    mk_trunk trk4
    mk_trunk trk4x
    mk_trunk trk4.50 # a dummy called like the VLAN
    ip link add link trk4 name trk4.51 type vlan id 52 && echo trk4.51 >>"$CASE_DIR/links"
    ip link add link trk4x name trk4.53 type vlan id 53 && echo trk4.53 >>"$CASE_DIR/links"
    mk_ns x1
    cni ADD "$(conf cf trk4 '"vlan": 50')" cf-1 x1
    assert_code "dummy trk4.50" 7 "vlan:" '"trk4.50"'
    cni ADD "$(conf cf trk4 '"vlan": 51')" cf-1 x1
    assert_code "trk4.51 with id 52" 7 "vlan:" '"trk4.51"'
    cni ADD "$(conf cf trk4 '"vlan": 53')" cf-1 x1
    assert_code "trk4.53 on another lower link" 7 "vlan:" '"trk4.53"'
    cni ADD "$(conf cf trk4 '"vlan": 51, "vlanProtocol": "802.1ad"')" cf-1 x1
    assert_code "protocol" 7 "vlan:" '"trk4.51"'
    assert_link_detail trk4.50 "dummy" "trk4.50 still a dummy"
    assert_link_detail trk4.51 "id 52" "trk4.51 unchanged"
    assert_eq "$(ip_files cf)" 0 "no address leaked"
    ns_has_if x1 eth0 && fail "an eth0 was left in x1"
    [ -z "$(ls "$DATA/.mactrunk-vlans/" 2>/dev/null | grep json)" ] || fail "records left: $(ls "$DATA/.mactrunk-vlans/")"
}

# 8 first ADDs at once: all succeed, one VLAN link, 8 users; 8 DELs at once remove it
case_concurrent_first_adds() {
    mk_trunk trk5
    c=$(conf cc trk5 '"vlan": 90')
    i=1
    while [ $i -le 8 ]; do mk_ns p$i; i=$((i + 1)); done
    i=1
    while [ $i -le 8 ]; do
        (cni ADD "$c" cc-$i p$i && echo "$RC $OUT" >"$CASE_DIR/par$i") &
        i=$((i + 1))
    done
    wait
    i=1
    while [ $i -le 8 ]; do
        r=$(cut -d' ' -f1 "$CASE_DIR/par$i" 2>/dev/null)
        [ "$r" = 0 ] || fail "parallel ADD $i: $(cat "$CASE_DIR/par$i" 2>/dev/null)"
        ns_has_if p$i eth0 || fail "no eth0 in p$i"
        i=$((i + 1))
    done
    assert_eq "$(vlans_on trk5 90)" 1 "VLAN 90 links on trk5"
    assert_eq "$(record_users trk5.90)" 8 "users"
    assert_eq "$(ip_files cc)" 8 "addresses"
    i=1
    while [ $i -le 8 ]; do
        (cni DEL "$c" cc-$i p$i && echo "$RC $OUT" >"$CASE_DIR/pdel$i") &
        i=$((i + 1))
    done
    wait
    i=1
    while [ $i -le 8 ]; do
        r=$(cut -d' ' -f1 "$CASE_DIR/pdel$i" 2>/dev/null)
        [ "$r" = 0 ] || fail "parallel DEL $i: $(cat "$CASE_DIR/pdel$i" 2>/dev/null)"
        i=$((i + 1))
    done
    assert_no_link trk5.90 "VLAN link after 8 DELs"
    [ ! -e "$(record trk5.90)" ] || fail "record left: $(cat "$(record trk5.90)")"
    assert_eq "$(ip_files cc)" 0 "addresses after the DELs"
}

case_bad_ids() {
    mk_trunk trk6
    mk_ns b1
    for v in 0 4095 '"x"' -1 50.5; do
        cni ADD "$(conf bad trk6 "\"vlan\": $v")" bad-1 b1
        assert_code "vlan $v" 7 "vlan"
    done
    cni ADD "$(conf bad trk6 '"vlan": 50, "vlanProtocol": "isl"')" bad-1 b1
    assert_code "vlanProtocol isl" 7 "vlanProtocol"
    cni ADD "$(conf bad trk6 '"vlan": 50, "linkInContainer": true')" bad-1 b1
    assert_code "vlan with linkInContainer" 7 "vlan"
    assert_eq "$(ip -o link show | grep -c 'trk6\.')" 0 "no VLAN link created"
}

# crash (SIGKILL via MACTRUNK_TEST_CRASH_AT) once the VLAN link, the addresses and the
# tagged macvlan exist, before the macvlan is configured: DEL removes all of them
case_crash_after_link_then_del() {
    mk_trunk trk7
    mk_ns k1
    c=$(conf ck trk7 '"vlan": 100')
    cni ADD "$c" ck-1 k1 eth0 MACTRUNK_TEST_CRASH_AT=after-link
    [ "$RC" = 137 ] || fail "ADD should have been killed (137): $(last)"
    assert_link trk7.100 "VLAN link left by the crash"
    assert_eq "$(record_users trk7.100)" 1 "the crashed ADD is recorded as user"
    assert_eq "$(ip_files ck)" 1 "address allocated before the crash"
    ns_has_if k1 eth0 || fail "the macvlan the crashed ADD created is missing"
    ip -n k1 -d link show eth0 | grep -q "alias mactrunk:ck:ck-1" || fail "the crashed ADD's macvlan is not tagged"
    cni DEL "$c" ck-1 k1
    ns_has_if k1 eth0 && fail "DEL left the crashed ADD's macvlan"
    assert_ok "DEL after the crash"
    assert_no_link trk7.100 "VLAN link after DEL"
    [ ! -e "$(record trk7.100)" ] || fail "record left"
    assert_eq "$(ip_files ck)" 0 "address after DEL"
    # the next ADD works normally
    cni ADD "$c" ck-2 k1
    assert_ok "ADD after the cleanup"
    cni DEL "$c" ck-2 k1
    assert_no_link trk7.100 "VLAN link after the second DEL"
}

# crash windows inside the creation: record written but no link yet; link created but
# ifindex not recorded yet. DEL (first) and GC (second) clean up.
case_crash_inside_creation() {
    mk_trunk trk8
    mk_ns k2
    c=$(conf ck2 trk8 '"vlan": 101')
    cni ADD "$c" ck-1 k2 eth0 MACTRUNK_TEST_CRASH_AT=after-record
    [ "$RC" = 137 ] || fail "ADD should have been killed (137): $(last)"
    assert_no_link trk8.101 "no link yet"
    grep -q '"ifindex": null' "$(record trk8.101)" 2>/dev/null || fail "pending record missing"
    cni DEL "$c" ck-1 k2
    assert_ok "DEL after crash at after-record"
    [ ! -e "$(record trk8.101)" ] || fail "record left after DEL"
    assert_eq "$(ip_files ck2)" 0 "address after DEL"

    cni ADD "$c" ck-2 k2 eth0 MACTRUNK_TEST_CRASH_AT=after-create
    [ "$RC" = 137 ] || fail "ADD should have been killed (137): $(last)"
    assert_link trk8.101 "link created before the crash"
    grep -q '"ifindex": null' "$(record trk8.101)" 2>/dev/null || fail "pending record missing"
    ls "$DATA/.mactrunk-vlans/" | grep -q '^\.tmp' && fail "temp file left"
    cni GC "$(printf %s "$c" | sed 's|}}$|}, "cni.dev/valid-attachments": []}|')" "" ""
    assert_ok "GC after crash at after-create"
    assert_no_link trk8.101 "link after GC"
    [ ! -e "$(record trk8.101)" ] || fail "record left after GC"
    assert_eq "$(ip_files ck2)" 0 "address after GC"
}

# hostShim on a VLAN parent, SIGKILLed (MACTRUNK_TEST_CRASH_AT) at each point of its setup
# (record written; shim created, ifindex not recorded; host routes added, container side not) and
# of its teardown (routes gone, record not updated): the record always lists the killed
# attachment, whose DEL removes what it left. Alone, nothing is left afterwards (shim, record,
# VLAN link); next to a user that stays (the shim exists: only the routes point and the
# teardown), its shim, record entry and route stay untouched and it still reaches the host.
shim_state() { # shim_state KEEP-IP: what is left of the shim, compared with what should be
    if [ -n "$1" ]; then
        assert_link mts-trkS.120 "$point: the shim of the user that stays"
        assert_eq "$(ip route show dev mts-trkS.120 | cut -d' ' -f1 | tr '\n' ' ')" "$1 " "$point: routes on the shim"
        assert_eq "$(grep -c '"containerID"' "$DATA/.mactrunk-shims/mts-trkS.120.json")" 1 "$point: record users"
    else
        assert_no_link mts-trkS.120 "$point: shim"
        assert_no_link trkS.120 "$point: VLAN link"
        [ ! -e "$DATA/.mactrunk-shims/mts-trkS.120.json" ] || fail "$point: shim record left"
    fi
    ns_has_if s1 eth0 && fail "$point: the killed container's macvlan is left"
    [ "$(ip_files shk)" = "$([ -n "$1" ] && echo 1 || echo 0)" ] || fail "$point: addresses held: $(ip_files shk)"
}

case_shim_crash_points() {
    mk_trunk trkS
    ip addr add 10.90.0.5/24 dev trkS
    mk_ns s0
    mk_ns s1
    c=$(conf shk trkS '"vlan": 120, "hostShim": true' 10.91.0.0/24)
    keep=""
    for round in alone shared; do
        if [ $round = shared ]; then
            cni ADD "$c" shk-0 s0
            assert_ok "ADD of the user that stays"
            keep=$(out_ip)
        fi
        points="shim-after-record shim-after-create after-shim-routes"
        # with a user, the shim exists: no creation to be killed in
        [ $round = shared ] && points=after-shim-routes
        for point in $points; do
            cni ADD "$c" shk-1 s1 eth0 MACTRUNK_TEST_CRASH_AT=$point
            [ "$RC" = 137 ] || fail "$round $point: ADD should have been killed (137): $(last)"
            grep -q '"containerID": "shk-1"' "$DATA/.mactrunk-shims/mts-trkS.120.json" 2>/dev/null ||
                fail "$round $point: the killed ADD is not in the shim record"
            cni DEL "$c" shk-1 s1
            assert_ok "$round $point: DEL"
            shim_state "$keep"
        done
        point=shim-release-after-routes
        cni ADD "$c" shk-1 s1
        assert_ok "$round: ADD"
        cni DEL "$c" shk-1 s1 eth0 MACTRUNK_TEST_CRASH_AT=$point
        [ "$RC" = 137 ] || fail "$round $point: DEL should have been killed (137): $(last)"
        grep -q '"containerID": "shk-1"' "$DATA/.mactrunk-shims/mts-trkS.120.json" ||
            fail "$round $point: the record lost the user before its DEL finished"
        cni DEL "$c" shk-1 s1
        assert_ok "$round $point: DEL again"
        shim_state "$keep"
    done
    ip netns exec s0 ping -c 1 -W 3 10.90.0.5 >/dev/null 2>&1 || fail "the user that stays cannot reach the host"
    ping -c 1 -W 3 "$keep" >/dev/null 2>&1 || fail "the host cannot reach the user that stays"
    cni DEL "$c" shk-0 s0
    assert_ok "DEL of the user that stayed"
    keep=""
    point=end
    shim_state ""
}

# GC: users not in the valid list are dropped and an owned link nobody uses is deleted;
# no list changes nothing; users of other networks are kept
case_gc() {
    mk_trunk trk9
    mk_ns g1
    mk_ns g2
    a=$(conf gca trk9 '"vlan": 110' 10.78.0.0/24)
    b=$(conf gcb trk9 '"vlan": 110' 10.79.0.0/24)
    cni ADD "$a" g-1 g1
    assert_ok "ADD net gca"
    cni ADD "$b" g-2 g2
    assert_ok "ADD net gcb"
    assert_eq "$(record_users trk9.110)" 2 "two networks share the link"
    gc_a() { cni GC "$(printf %s "$a" | sed "s|}}\$|}$1}|")" "" ""; }
    gc_a ""
    assert_ok "GC without a list"
    assert_eq "$(record_users trk9.110)" 2 "users after GC without a list"
    gc_a ', "cni.dev/valid-attachments": [{"containerID": "g-1", "ifname": "eth0"}]'
    assert_ok "GC keeping g-1"
    assert_eq "$(record_users trk9.110)" 2 "users after GC keeping g-1"
    gc_a ', "cni.dev/valid-attachments": []'
    assert_ok "GC of gca with an empty list"
    assert_eq "$(record_users trk9.110)" 1 "gcb's user is kept"
    assert_link trk9.110 "link still used by gcb"
    cni GC "$(printf %s "$b" | sed 's|}}$|}, "cni.dev/valid-attachments": []}|')" "" ""
    assert_ok "GC of gcb with an empty list"
    assert_no_link trk9.110 "owned link nobody uses after GC"
    [ ! -e "$(record trk9.110)" ] || fail "record left"
    cni DEL "$a" g-1 g1
    assert_ok "DEL after GC"
}

# STATUS: missing master / lower link -> 50; an owned VLAN link that is down -> 51
case_status() {
    mk_trunk trk10
    mk_ns s1
    cni STATUS "$(conf st nosuch0 '"vlan": 50')" "" ""
    assert_code "STATUS, lower link missing" 50
    cni STATUS "$(conf st nosuch0.50)" "" ""
    assert_code "STATUS, dotted master on a missing lower link" 50
    c=$(conf st trk10 '"vlan": 120')
    cni STATUS "$c" "" ""
    assert_ok "STATUS before the first ADD"
    cni ADD "$c" st-1 s1
    assert_ok "ADD"
    cni STATUS "$c" "" ""
    assert_ok "STATUS with the VLAN up"
    ip link set trk10.120 down
    cni STATUS "$c" "" ""
    assert_code "STATUS with the owned VLAN down" 51
    # an ADD sets an owned VLAN link up again
    mk_ns s2
    cni ADD "$c" st-2 s2
    assert_ok "ADD 2"
    assert_link_detail trk10.120 ",UP" "owned VLAN link set up again"
    ip link set trk10 down
    ip link del trk10
    cni STATUS "$c" "" ""
    assert_code "STATUS after the lower link vanished" 50
}

# DEL after the master vanished (the kernel removed the VLAN and the macvlan with it)
case_del_after_master_vanished() {
    mk_trunk trk11
    mk_ns v1
    c=$(conf mv trk11 '"vlan": 130')
    cni ADD "$c" mv-1 v1
    assert_ok "ADD"
    ip link del trk11
    cni DEL "$c" mv-1 v1
    assert_ok "DEL without the master"
    [ ! -e "$(record trk11.130)" ] || fail "record left"
    assert_eq "$(ip_files mv)" 0 "address after DEL"
}

# CHECK verifies the VLAN parent; a link mactrunk created, deleted by hand and replaced
# by somebody else's link of the same name (other ifindex) is not deleted by DEL
case_check_and_replaced_link() {
    mk_trunk trk14
    mk_ns h1
    c=$(conf ch trk14 '"vlan": 160')
    cni ADD "$c" ch-1 h1
    assert_ok "ADD"
    withprev=$(printf %s "$c" | sed "s|}}\$|}, \"prevResult\": $OUT}|")
    cni CHECK "$withprev" ch-1 h1
    assert_ok "CHECK"
    ip link del trk14.160
    cni CHECK "$withprev" ch-1 h1
    assert_code "CHECK without the VLAN parent" 104 "" "VLAN parent"
    ip link add link trk14 name trk14.160 type vlan id 160 || fail "cannot create trk14.160"
    echo trk14.160 >>"$CASE_DIR/links"
    cni DEL "$c" ch-1 h1
    assert_ok "DEL"
    assert_link trk14.160 "somebody else's trk14.160 after DEL"
    [ ! -e "$(record trk14.160)" ] || fail "record left"
}

# a failed ADD after the VLAN link was created removes it again; one that fails while
# another attachment uses it leaves it
case_add_rollback() {
    mk_trunk trk12
    mk_ns r1
    mk_ns r2
    # gateway 10.80.9.1 is not on the subnet: adding the route fails after the macvlan
    bad=$(conf rb trk12 '"vlan": 140' 10.80.0.0/24 | sed 's|"subnet"|"routes": [{"dst": "10.90.0.0/16", "gw": "10.80.9.1"}], "subnet"|')
    good=$(conf rb trk12 '"vlan": 140' 10.80.0.0/24)
    cni ADD "$bad" rb-1 r1
    [ "$RC" != 0 ] || fail "ADD with an unreachable gateway succeeded"
    assert_no_link trk12.140 "VLAN link after the failed first ADD"
    [ ! -e "$(record trk12.140)" ] || fail "record left: $(cat "$(record trk12.140)")"
    assert_eq "$(ip_files rb)" 0 "address after rollback"
    cni ADD "$good" rb-2 r2
    assert_ok "ADD 2"
    cni ADD "$bad" rb-1 r1
    [ "$RC" != 0 ] || fail "second bad ADD succeeded"
    assert_link trk12.140 "VLAN link still used by rb-2"
    assert_eq "$(record_users trk12.140)" 1 "only rb-2 is a user"
    cni DEL "$good" rb-2 r2
    assert_no_link trk12.140 "VLAN link after the last DEL"
}

# mtu is validated against the VLAN link (which inherits the lower link's MTU)
case_mtu() {
    mk_trunk trk13
    ip link set trk13 mtu 1400
    mk_ns m1
    cni ADD "$(conf mt trk13 '"vlan": 150, "mtu": 1450')" mt-1 m1
    assert_code "mtu above the lower link's" 7 "mtu:" "trk13.150"
    assert_no_link trk13.150 "no VLAN link after the refused ADD"
    cni ADD "$(conf mt trk13 '"vlan": 150, "mtu": 1300')" mt-1 m1
    assert_ok "ADD with mtu 1300"
    assert_link_detail trk13.150 "mtu 1400" "VLAN inherits the lower link's MTU"
    assert_eq "$(cat /sys/class/net/trk13.150/mtu)" 1400 "VLAN MTU"
    ip -n m1 link show eth0 | grep -q "mtu 1300" || fail "macvlan MTU: $(ip -n m1 link show eth0)"
    cni DEL "$(conf mt trk13 '"vlan": 150, "mtu": 1300')" mt-1 m1
    assert_no_link trk13.150
}

# 802.1ad, and a lower link name so long that "<lower>.<vid>" exceeds 15 bytes
case_qinq_and_long_names() {
    mk_trunk trunkparent0123
    mk_ns q1
    c=$(conf qq trunkparent0123 '"vlan": 4094, "vlanProtocol": "802.1ad"')
    cni ADD "$c" qq-1 q1
    assert_ok "ADD"
    line=$(ip -o -d link show type vlan | grep "@trunkparent0123:")
    name=$(printf %s "$line" | sed -n 's/^[0-9]*: \([^@]*\)@.*/\1/p')
    [ -n "$name" ] || fail "no VLAN link on trunkparent0123"
    case $line in *"vlan protocol 802.1ad id 4094 "*) ;; *) fail "not 802.1ad id 4094: $line" ;; esac
    [ ${#name} -le 15 ] || fail "name $name longer than 15 bytes"
    case $name in trunkp*.4094) ;; *) fail "short name '$name' should be trunkp<hash>.4094" ;; esac
    [ -f "$(record "$name")" ] || fail "record $name.json missing"
    cni DEL "$c" qq-1 q1
    assert_ok "DEL"
    assert_no_link "$name" "short-named VLAN link after DEL"
}

# ------------------------------------------------------------------ runner

ALL="lifecycle_created lifecycle_shared lifecycle_ping lifecycle_kept_while_used
lifecycle_removed_after_last_del dotted_master foreign_vlan_untouched conflicting_links
concurrent_first_adds bad_ids crash_after_link_then_del crash_inside_creation gc status
del_after_master_vanished check_and_replaced_link add_rollback mtu qinq_and_long_names
shim_crash_points"

selected=${*:-$ALL}
rm -rf "$WORK"
mkdir -p "$WORK"
FAILS=$WORK/failures
: >"$FAILS"
DATA=$WORK/data # shared by the lifecycle steps; the other cases get their own
passed=0
failed=0
start=$(date +%s)
for CASE in $selected; do
    CASE_DIR=$WORK/$CASE
    mkdir -p "$CASE_DIR"
    case $CASE in lifecycle_*) DATA=$WORK/data-lifecycle ;; *) DATA=$CASE_DIR/data ;; esac
    before=$(wc -l <"$FAILS")
    t0=$(date +%s)
    (
        "case_$CASE"
        # the lifecycle steps share trk1, c1 and c2; the last one cleans up
        case $CASE in lifecycle_*) if [ "$CASE" = lifecycle_removed_after_last_del ]; then case_cleanup; fi ;; *) case_cleanup ;; esac
    ) 2>"$CASE_DIR/stderr"
    rc=$?
    after=$(wc -l <"$FAILS")
    t=$(($(date +%s) - t0))
    if [ "$rc" = 0 ] && [ "$after" = "$before" ]; then
        passed=$((passed + 1))
        echo "PASS $CASE (${t}s)"
    else
        failed=$((failed + 1))
        echo "FAIL $CASE (${t}s)"
        [ "$after" = "$before" ] && echo "    case exited with status $rc"
        tail -n "+$((before + 1))" "$FAILS" | sed 's/^/    /'
        [ -n "${MT_VERBOSE:-}" ] && sed 's/^/    | /' "$CASE_DIR/stderr"
    fi
done
echo "(VM side: $(($(date +%s) - start))s)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
