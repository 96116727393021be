# Two containers on the same network reach each other: ping both ways, then a TCP
# connection (nc -l in A, bash /dev/tcp from B) carries a message; A's reply goes back.
conf=$(fixture 10-mactrunk-bridge.conf)
net=$(conf_name "$conf")
make_container_ns A
make_container_ns B

cni ADD "$conf" cid=mt-tcp-a ns="$A"
assert_ok "ADD A" || die "ADD A failed"
ipa=$(jqo '.ips[0].address' | cut -d/ -f1)
cni ADD "$conf" cid=mt-tcp-b ns="$B"
assert_ok "ADD B" || die "ADD B failed"
ipb=$(jqo '.ips[0].address' | cut -d/ -f1)
[[ $ipa != "$ipb" ]] || fail "A and B got the same address $ipa"

nsx "$A" ping -c1 -W2 "$ipb" >/dev/null || fail "ping A -> B ($ipb) failed"
nsx "$B" ping -c1 -W2 "$ipa" >/dev/null || fail "ping B -> A ($ipa) failed"

# TCP: A listens, B connects and sends a line, A answers
msg="hello-from-b-$RANDOM"
(echo "pong-from-a" | nsx "$A" timeout 10 nc -l -N "$ipa" 5555 >"$T/received") &
listening() { nsx "$A" ss -Hltn "sport = :5555" | grep -q .; }
wait_for 5 listening || fail "nc did not start listening in A"
reply=$(nsx "$B" timeout 10 bash -c "exec 3<>/dev/tcp/$ipa/5555; echo '$msg' >&3; read -r line <&3; echo \"\$line\"")
wait
assert_eq "$(cat "$T/received")" "$msg" "message received by A over TCP"
assert_eq "$reply" "pong-from-a" "reply received by B over TCP"

cni DEL "$conf" cid=mt-tcp-a ns="$A"
assert_ok_empty "DEL A"
cni DEL "$conf" cid=mt-tcp-b ns="$B"
assert_ok_empty "DEL B"
assert_store_empty "$net"
assert_ns_clean "$A"
assert_ns_clean "$B"
