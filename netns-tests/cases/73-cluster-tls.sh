# Cluster IPAM over etcd client-certificate TLS: a 3-member cluster on https that requires a
# client certificate of a CA this case makes with openssl (netns-tests/etcd.sh etcd_pki).
# Two hosts claim blocks over TLS (full plugin), their containers ping each other, the blocks
# are in etcd. What must fail fails cleanly (an error code other than 999, nothing left in the
# store, the blocks or the container): a client certificate of another CA, a CA that did not
# sign the server's certificate, no tls key at all against https endpoints, plain http against
# the TLS members, a tls file that is a symlink or missing or not PEM. And a host that already
# owns a block with room keeps allocating in it whatever its TLS settings: that ADD does not
# talk to etcd.
source "$NT_DIR/etcd.sh"
need_cluster
cluster_lan
for h in A B; do cluster_host $h; done
etcd_pki
etcd_start --tls
net=mt-cl73
declare -A conf=()
for h in A B; do conf[$h]=$(cluster_conf $h $net '.ipam.cluster.timeoutMs = 1500'); done
pki=$ETCD_DIR/pki
jq -e '.ipam.cluster.tls.ca and (.ipam.cluster.etcdEndpoints[0] | startswith("https://"))' "${conf[A]}" >/dev/null ||
    die "cluster_conf did not make a TLS config: $(cat "${conf[A]}")"
# the members refuse a client without a certificate of the test CA
ectl1 1 get /x >/dev/null || fail "etcdctl with the client certificate cannot read"
_ens env ETCDCTL_API=3 etcdctl --endpoints "${ETCD_URL[1]}" --cacert "$pki/ca.pem" --dial-timeout 2s \
    --command-timeout 3s get /x >/dev/null 2>&1 && fail "the members accept a client without a certificate"

make_container_nses 4 C
on A ADD "${conf[A]}" cid=mt-tls-a1 ns="${C[1]}"
assert_ok "ADD on A over TLS" && ipa=$(jqo '.ips[0].address' | cut -d/ -f1)
on B ADD "${conf[B]}" cid=mt-tls-b1 ns="${C[2]}"
assert_ok "ADD on B over TLS" && ipb=$(jqo '.ips[0].address' | cut -d/ -f1)
blocks=$(etcd_blocks $net)
log "blocks: $(echo $blocks)"
grep -q ' node-a$' <<<"$blocks" || fail "no block of node-a in etcd: $(echo $blocks)"
grep -q ' node-b$' <<<"$blocks" || fail "no block of node-b in etcd: $(echo $blocks)"
cluster_check $net A B
[[ -n ${ipa:-} && -n ${ipb:-} ]] && { nsx "${C[1]}" ping -c1 -W2 "$ipb" >/dev/null || fail "A's container cannot ping B's ($ipb)"; }

# bad_tls WHAT FILTER [CODE-RE [MSG-RE]]: a new-block ADD (a static address in a free block)
# with the config changed by FILTER fails with no trace
bblock=$(etcd_blocks $net | awk '$2 == "node-b" {print $1}' | head -n1)
tls_fails() {
    local what=$1 filter=$2 code=${3:-any} re=${4:-}
    local c before lb
    c=$(conf_edit "${conf[B]}" "$filter" --arg pki "$pki" --arg t "$T")
    before=$(host_ips B $net | tr '\n' ' ')
    lb=$(etcd_blocks $net | tr '\n' ' ')
    timed B ADD "$c" cid=mt-tls-bad ns="${C[3]}" args="IP=$sip"
    assert_code "$code" "$re" "$what"
    log "$what: code $_CODE in $MS ms: $_MSG"
    ((MS <= 1500 + 700)) || fail "$what: took $MS ms (timeoutMs 1500)"
    # a rejection every member gives at once is not waited out to the deadline
    [[ -n ${QUICK:-} ]] && { ((MS < 1500)) || fail "$what: took $MS ms: a TLS rejection was retried until timeoutMs"; }
    assert_eq "$(host_ips B $net | tr '\n' ' ')" "$before" "$what: host B's store"
    assert_eq "$(etcd_blocks $net | tr '\n' ' ')" "$lb" "$what: the blocks in etcd"
    assert_ns_clean "${C[3]}"
}
# a free /28 of the /24 and an address in it
for ((o = 0; o < 256; o += 16)); do
    grep -q "^10\.88\.0\.$o/" <<<"$blocks" || { sip=10.88.0.$((o + 5)); break; }
done
[[ -n ${sip:-} ]] || die "no free block"
ln -s "$pki/client-key.pem" "$T/key-link.pem"
printf 'not a certificate\n' >"$T/garbage.pem"
# a TLS rejection is permanent: the message must say it was TLS (an operator with a wrong CA
# must not be told only "no answer within the timeout")
TLSRE='[Cc]ertificate|TLS|tls|PEM|handshake|UnknownIssuer|BadCertificate'
QUICK=1 tls_fails "client certificate of another CA" \
    '.ipam.cluster.tls.cert = "\($pki)/other-client.pem" | .ipam.cluster.tls.key = "\($pki)/other-client-key.pem"' 11 "$TLSRE"
QUICK=1 tls_fails "a CA that did not sign the members' certificate" '.ipam.cluster.tls.ca = "\($pki)/other-ca.pem"' 11 "$TLSRE"
QUICK=1 tls_fails "https endpoints without a tls key" 'del(.ipam.cluster.tls)' '7|11' "$TLSRE"
tls_fails "plain http against the TLS members" '.ipam.cluster.etcdEndpoints |= map(sub("^https"; "http"))' '7|11'
tls_fails "tls.key is a symlink" '.ipam.cluster.tls.key = "\($t)/key-link.pem"' any 'tls'
tls_fails "tls.cert does not exist" '.ipam.cluster.tls.cert = "\($t)/nosuch.pem"' any 'nosuch\.pem|tls'
tls_fails "tls.ca is not PEM" '.ipam.cluster.tls.ca = "\($t)/garbage.pem"' any "$TLSRE"

# an ADD with room in an owned block does not talk to etcd: the broken TLS settings do not matter
bad=$(conf_edit "${conf[B]}" '.ipam.cluster.tls.ca = "\($pki)/other-ca.pem"' --arg pki "$pki")
on B ADD "$bad" cid=mt-tls-b2 ns="${C[4]}"
if assert_ok "ADD in B's own block with a CA that would fail the handshake"; then
    ip=$(jqo '.ips[0].address' | cut -d/ -f1)
    in_cidr "$ip" "$bblock" || fail "that ADD got $ip, outside B's block $bblock"
fi

# the good settings still work: the static address in the free block, over TLS
on B ADD "${conf[B]}" cid=mt-tls-b3 ns="${C[3]}" args="IP=$sip"
assert_ok "static $sip in a free block over TLS" && assert_json '.ips[0].address' "$sip/24"
cluster_check $net A B
for x in a1:1:A b1:2:B b2:4:B b3:3:B; do
    IFS=: read -r cid i h <<<"$x"
    on $h DEL "${conf[$h]}" cid=mt-tls-$cid ns="${C[$i]}"
    assert_ok_empty "DEL mt-tls-$cid"
    assert_ns_clean "${C[$i]}"
done
for h in A B; do DATA=${HDATA[$h]} assert_store_empty $net; done
# the store keeps today's permissions (directories 0700, files 0600), cluster files included
for h in A B; do
    for f in "${HDATA[$h]}/$net"/.cluster*; do
        [[ -e $f ]] || continue
        m=$(stat -c %a "$f")
        assert_eq "$m" 600 "mode of $f"
    done
    assert_eq "$(stat -c %a "${HDATA[$h]}/$net")" 700 "mode of host $h's store directory"
done
