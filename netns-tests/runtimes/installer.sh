#!/bin/bash
# netns-tests/runtimes/installer.sh: the DaemonSet's installer image, for real, under containerd.
#
#   netns-tests/runtimes/installer.sh [--bin-dir DIR] [--keep]
#
# deploy/image.sh builds the OCI image tarball from the static binaries under test; a private
# containerd (own socket, root and state dirs under a temp dir, CRI off, in a private mount
# namespace with a tmpfs over /run: the host's containerd and paths are never touched)
# imports it with `ctr images import`; `ctr run` runs the installer as the DaemonSet's
# containers do: the command, arguments and volume mounts are read from
# deploy/mactrunk-daemonset.yaml, every hostPath replaced by a directory of a fake "host"
# (bind mounts, `ctr run --mount`), the Secret by a kubelet-style Secret directory (..data
# symlink swapped on rotation).
#
# Checks: the image's name is the manifest's and its layer holds only the binaries; install
# puts the plugins on the host (same bytes, 0755), the credentials and node.json in
# /etc/cni/net.d/mactrunk.d (0700 / 0600), no network config, no temp file, and the plugin
# ran inside the image (its --version check); a second install writes nothing; an upgrade
# (a second image whose binaries differ) swaps the binaries while a loop keeps exec'ing
# `mactrunk` VERSION from the host's bin dir: five swaps, every exec succeeds (the counts are
# printed); a control in-place rewrite of a copy makes that loop fail, so the loop can see a
# torn or busy file; watch (the DaemonSet's container) puts back a deleted plugin, follows a
# rotated Secret, leaves a plugin that differs alone (rolling update) and exits 0 on SIGTERM.
# Output: PASS/FAIL per check, then "N passed, M failed"; exit 1 if M > 0.
# Needs: ctr, containerd, containerd-shim-runc-v2, runc, python3 with PyYAML, jq, tar, gzip.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=runtimes/common.sh
source "$here/common.sh"
rt_parse_args "$@"
rt_preflight ctr containerd containerd-shim-runc-v2 runc python3 tar gzip || exit 1
[[ -x $BIN/mactrunk-install ]] || { echo "installer.sh: no $BIN/mactrunk-install" >&2; echo "0 passed, 1 failed"; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "installer.sh: python3 lacks PyYAML (python3-yaml)" >&2; echo "0 passed, 1 failed"; exit 1; }
rt_private_mount_ns "$@"

WORK=$(mktemp -d /tmp/mactrunk-rt-installer.XXXXXX)
chmod 0755 "$WORK"
: >"$WORK/log"
CGPARENT=mtainst-$$
NS=mtainst
SOCK=$WORK/ctd.sock
CTD_PID=""
declare -A RUN_PID=()
cleanup() {
    local rc=$? id p
    set +e
    [[ -n ${LOOP_PID:-} ]] && kill "$LOOP_PID" 2>/dev/null
    for id in "${!RUN_PID[@]}"; do c task kill -s SIGKILL "$id" >/dev/null 2>&1; done
    for p in "${RUN_PID[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null; done
    for id in $(c containers ls -q 2>/dev/null); do
        c task delete -f "$id" >/dev/null 2>&1
        c containers delete "$id" >/dev/null 2>&1
    done
    [[ -n $CTD_PID ]] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
    rt_rmdir_cgroups "$CGPARENT"
    if ((keep)) || ((RT_FAILED > 0)); then
        echo "work directory kept: $WORK (log: $WORK/log)" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# containerd's shims put their sockets in /run/containerd/s (a fixed path)
mount -t tmpfs -o mode=0755 mtainst-run /run || { echo "cannot mount a tmpfs on /run" >&2; exit 1; }
mkdir -p /run/containerd
c() { timeout -k 5 120 ctr --address "$SOCK" --namespace "$NS" "$@"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

# ---- the manifest: the containers' command, args, mounts (hostPath or Secret)
python3 - "$root/deploy/mactrunk-daemonset.yaml" >"$WORK/pod.json" <<'EOF' || { echo "cannot read the DaemonSet manifest" >&2; exit 1; }
import json, sys, yaml
ds = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "DaemonSet")
spec = ds["spec"]["template"]["spec"]
vols = {v["name"]: v for v in spec["volumes"]}
def container(c):
    mounts = []
    for m in c.get("volumeMounts", []):
        v = vols[m["name"]]
        mounts.append({"hostPath": v.get("hostPath", {}).get("path"), "secret": "secret" in v,
                       "mountPath": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
    return {"image": c["image"], "command": c.get("command", []), "args": c.get("args", []), "mounts": mounts}
print(json.dumps({"init": container(spec["initContainers"][0]), "main": container(spec["containers"][0])}))
EOF
IMAGE=$(jq -r .init.image "$WORK/pod.json")
log "manifest: image $IMAGE; init $(jq -c '.init.command + .init.args' "$WORK/pod.json"); main $(jq -c '.main.command + .main.args' "$WORK/pod.json")"

# ---- the fake host: every hostPath of the manifest is a directory here
HOST=$WORK/host
for p in $(jq -r '[.init.mounts[], .main.mounts[]] | map(select(.hostPath)) | .[].hostPath' "$WORK/pod.json" | sort -u); do
    mkdir -p "$HOST$p"
done
HOSTBIN=$HOST/opt/cni/bin
HOSTCONF=$HOST/etc/cni/net.d
NODEDIR=$HOSTCONF/mactrunk.d
[[ -d $HOSTBIN && -d $HOSTCONF ]] || { echo "the manifest has no /opt/cni/bin or /etc/cni/net.d hostPath" >&2; exit 1; }
# a Secret as the kubelet mounts it: files are symlinks through ..data to a timestamped dir
SECRET=$WORK/secret
secret_version() { # secret_version TAG: a new version of the Secret, swapped in atomically
    mkdir -p "$SECRET/..$1"
    printf 'CA %s\n' "$1" >"$SECRET/..$1/ca.crt"
    printf 'CERT %s\n' "$1" >"$SECRET/..$1/tls.crt"
    printf 'KEY %s\n' "$1" >"$SECRET/..$1/tls.key"
    ln -sfn "..$1" "$SECRET/..data_tmp"
    mv -T "$SECRET/..data_tmp" "$SECRET/..data"
    local k
    for k in ca.crt tls.crt tls.key; do [[ -L $SECRET/$k ]] || ln -s "..data/$k" "$SECRET/$k"; done
}
secret_version v1

# mount_args WHICH: ctr --mount options standing in for the manifest's volume mounts
mount_args() {
    local m hp mp ro
    while IFS='|' read -r hp secret mp ro; do
        if [[ $secret == true ]]; then
            m="type=bind,src=$SECRET,dst=$mp,options=rbind:ro"
        else
            m="type=bind,src=$HOST$hp,dst=$mp,options=rbind:$([[ $ro == true ]] && echo ro || echo rw)"
        fi
        printf '%s\n' --mount "$m"
    done < <(jq -r ".$1.mounts[] | [.hostPath // \"\", .secret, .mountPath, .readOnly] | map(tostring) | join(\"|\")" "$WORK/pod.json")
}

# ---- a private containerd
rt_start_containerd

# ---- the image
step "the image tarball"
"$root/deploy/image.sh" --bin-dir "$BIN" --out "$WORK/image.tar" >>"$WORK/log" 2>&1
check "deploy/image.sh builds the tarball" test -s "$WORK/image.tar"
check "its name is the manifest's image ($IMAGE)" test "$("$root/deploy/image.sh" --print-name)" = "$IMAGE"
layer_files() {
    local d=$WORK/unpacked
    mkdir -p "$d" && tar -xf "$WORK/image.tar" -C "$d" || return 1
    local layer
    layer=$(jq -r '.[0].Layers[0]' "$d/manifest.json")
    tar -tzf "$d/$layer" | sort | tr '\n' ' '
}
want="opt/ opt/mactrunk/ opt/mactrunk/bin/ opt/mactrunk/bin/mactrunk opt/mactrunk/bin/mactrunk-install opt/mactrunk/bin/mactrunk-ipam "
[[ -x $BIN/mactrunk-etcd ]] && want="opt/ opt/mactrunk/ opt/mactrunk/bin/ opt/mactrunk/bin/mactrunk opt/mactrunk/bin/mactrunk-etcd opt/mactrunk/bin/mactrunk-install opt/mactrunk/bin/mactrunk-ipam "
check "the layer holds the static binaries and nothing else" test "$(layer_files)" = "$want"
t0=$(date +%s.%N)
check "ctr images import" c images import --snapshotter native "$WORK/image.tar"
log "import: $(since "$t0")s"
check "the image is known to containerd as $IMAGE" eval "c images ls -q | grep -qx '$IMAGE'"
# ctr run is given the manifest's command and args (Kubernetes' command replaces the
# image's Entrypoint); the image's own Entrypoint is that command too
entry=$(jq -c '.config.Entrypoint' "$WORK/unpacked/blobs/sha256/$(jq -r '.[0].Config' "$WORK/unpacked/manifest.json" | sed 's|.*/||')")
check "the manifest's command is the image's Entrypoint" test "$(jq -c .init.command "$WORK/pod.json")" = "$entry" -a "$(jq -c .main.command "$WORK/pod.json")" = "$entry"

# run_install IMAGE ID: the init container, in the foreground; its output in $WORK/run-ID.log
run_install() {
    local mounts
    mapfile -t mounts < <(mount_args init)
    mapfile -t args < <(jq -r '.init.command[], .init.args[]' "$WORK/pod.json")
    c run --snapshotter native --rm --cgroup "/$CGPARENT/$2" --env NODE_NAME=node-a "${mounts[@]}" \
        "$1" "$2" "${args[@]}" </dev/null >"$WORK/run-$2.log" 2>&1
    local rc=$?
    cat "$WORK/run-$2.log" >>"$WORK/log"
    return $rc
}
mode() { stat -c %a "$1"; }
ino() { stat -c %i "$1"; }
no_temps() { [[ -z $(find "$HOSTBIN" "$HOSTCONF" -name '.*mactrunk-tmp*') ]]; }

step "install (the init container)"
t0=$(date +%s.%N)
check "ctr run $IMAGE install exits 0" run_install "$IMAGE" inst-1
log "install run: $(since "$t0")s"
for b in mactrunk mactrunk-ipam; do
    check "host /opt/cni/bin/$b is the image's (same bytes)" cmp -s "$HOSTBIN/$b" "$BIN/$b"
    check "host /opt/cni/bin/$b is 0755" test "$(mode "$HOSTBIN/$b")" = 755
done
check "the installer ran the plugin inside the image (--version check, no libc there)" grep -q "are installed in /host/opt/cni/bin" "$WORK/run-inst-1.log"
check "mactrunk.d is 0700" test "$(mode "$NODEDIR")" = 700
for f in etcd-ca.crt:ca.crt etcd-client.crt:tls.crt etcd-client.key:tls.key; do
    check "${f%%:*} = Secret ${f#*:}, 0600" eval "cmp -s '$NODEDIR/${f%%:*}' '$SECRET/${f#*:}' && test \"\$(mode '$NODEDIR/${f%%:*}')\" = 600"
done
check "node.json names node-a, 0600" eval "jq -e '.nodeName == \"node-a\"' '$NODEDIR/node.json' >/dev/null && test \"\$(mode '$NODEDIR/node.json')\" = 600"
check "no network config in the conf dir (only mactrunk.d)" test "$(ls -A "$HOSTCONF")" = mactrunk.d
check "no temp file left" no_temps

step "install again: idempotent"
snap() { find "$HOSTBIN" "$NODEDIR" -type f -printf '%p %i %T@\n' | sort; }
before=$(snap)
check "second ctr run install exits 0" run_install "$IMAGE" inst-2
check "nothing rewritten (same inodes and mtimes)" test "$(snap)" = "$before"
check "it says so (no installed/replaced line)" eval "! grep -qE ': (installed|replaced)$' '$WORK/run-inst-2.log'"

# ---- the upgrade, while a loop keeps exec'ing the plugin as a kubelet would
step "upgrade while mactrunk VERSION is exec'd in a loop"
# v2: the same static binaries with bytes appended (still valid ELF files, other contents)
mkdir -p "$WORK/bin-v2"
for b in "$BIN"/mactrunk*; do
    cp "$b" "$WORK/bin-v2/"
    printf '\nmactrunk upgrade test v2\n' >>"$WORK/bin-v2/${b##*/}"
done
IMAGE2=${IMAGE%:*}:upgrade-test
"$root/deploy/image.sh" --bin-dir "$WORK/bin-v2" --tag upgrade-test --out "$WORK/image2.tar" >>"$WORK/log" 2>&1
check "ctr images import of the upgrade image" c images import --snapshotter native "$WORK/image2.tar"

# exec_loop PLUGIN STOPFILE COUNTFILE: exec PLUGIN with CNI_COMMAND=VERSION until STOPFILE
# exists; writes "execs failures" to COUNTFILE (and every failure to COUNTFILE.failures)
exec_loop() {
    local n=0 f=0 out
    while [[ ! -e $2 ]]; do
        out=$(CNI_COMMAND=VERSION "$1" </dev/null 2>&1)
        if [[ $? != 0 || $out != *'"supportedVersions":['*'"1.1.0"'* ]]; then
            f=$((f + 1))
            printf '%s\n' "${out:0:200}" >>"$3.failures"
        fi
        n=$((n + 1))
        ((n % 25 == 0)) && echo "$n $f" >"$3"
    done
    echo "$n $f" >"$3"
}
counts() { cat "$1" 2>/dev/null || echo "0 0"; }
wait_execs() { # wait_execs COUNTFILE N: until the loop has done N more execs (at most 10 s)
    local start i
    read -r start _ < <(counts "$1")
    for i in $(seq 200); do
        read -r now _ < <(counts "$1")
        ((now >= start + $2)) && return 0
        sleep 0.05
    done
    return 1
}

# the control: the same loop against a copy rewritten in place (open with O_TRUNC, written
# in two halves with a pause) must fail: the loop does see a torn or busy file
mkdir -p "$WORK/control"
cp "$BIN/mactrunk" "$WORK/control/mactrunk"
exec_loop "$WORK/control/mactrunk" "$WORK/control.stop" "$WORK/control.count" &
LOOP_PID=$!
wait_execs "$WORK/control.count" 20
size=$(stat -c %s "$BIN/mactrunk")
for _ in 1 2 3; do
    for _ in $(seq 100); do # O_TRUNC on a running text file is ETXTBSY: retry
        { exec 3>"$WORK/control/mactrunk"; } 2>/dev/null && break
        sleep 0.01
    done
    head -c $((size / 2)) "$BIN/mactrunk" >&3
    sleep 0.2
    tail -c +$((size / 2 + 1)) "$BIN/mactrunk" >&3
    exec 3>&-
    wait_execs "$WORK/control.count" 10
done
touch "$WORK/control.stop"
wait "$LOOP_PID"
LOOP_PID=""
read -r cn cf < <(counts "$WORK/control.count")
echo "# control (in-place rewrite, 3 times): $cn execs, $cf failed"
check "control: an in-place rewrite makes the exec loop fail ($cf of $cn)" test "$cf" -gt 0

# the real thing: five installs through the images, v2 v1 v2 v1 v2, each swapping the binary
exec_loop "$HOSTBIN/mactrunk" "$WORK/loop.stop" "$WORK/loop.count" &
LOOP_PID=$!
wait_execs "$WORK/loop.count" 50
swaps=0
last=$(ino "$HOSTBIN/mactrunk")
t0=$(date +%s.%N)
for img in "$IMAGE2" "$IMAGE" "$IMAGE2" "$IMAGE" "$IMAGE2"; do
    if run_install "$img" "up-$swaps-$RANDOM"; then
        now=$(ino "$HOSTBIN/mactrunk")
        [[ $now != "$last" ]] && swaps=$((swaps + 1))
        last=$now
    fi
    wait_execs "$WORK/loop.count" 25
done
elapsed=$(since "$t0")
touch "$WORK/loop.stop"
wait "$LOOP_PID"
LOOP_PID=""
read -r ln lf < <(counts "$WORK/loop.count")
echo "# upgrade: $swaps binary swaps in ${elapsed}s while mactrunk VERSION was exec'd $ln times: $lf failed"
check "five installs swapped the binary five times" test "$swaps" = 5
check "the exec loop ran ($ln execs, at least 150)" test "$ln" -ge 150
check "no exec failed during the upgrades ($lf of $ln)" test "$lf" = 0
for b in mactrunk mactrunk-ipam; do
    check "after the upgrade host $b is v2" cmp -s "$HOSTBIN/$b" "$WORK/bin-v2/$b"
done
check "after the upgrade: 0755, no temp file" eval "test \"\$(mode '$HOSTBIN/mactrunk')\" = 755 && no_temps"

# ---- watch: the DaemonSet's container
step "watch (the DaemonSet's container)"
mapfile -t wmounts < <(mount_args main)
mapfile -t wargs < <(jq -r '.main.command[], .main.args[]' "$WORK/pod.json")
# the manifest's interval is 60 s: 1 s here
for i in "${!wargs[@]}"; do [[ ${wargs[$i]} == --interval ]] && wargs[$((i + 1))]=1; done
c run --snapshotter native --rm --cgroup "/$CGPARENT/watch" --env NODE_NAME=node-a "${wmounts[@]}" \
    "$IMAGE2" watch "${wargs[@]}" </dev/null >"$WORK/run-watch.log" 2>&1 &
RUN_PID[watch]=$!
watching() { grep -q 'watching' "$WORK/run-watch.log"; }
wait_for_it() { local i; for i in $(seq 300); do "$@" && return 0; sleep 0.1; done; return 1; } # at most 30 s
check "watch starts (install pass, then watching)" wait_for_it watching
rm -f "$HOSTBIN/mactrunk-ipam"
check "a deleted plugin is put back" wait_for_it eval "cmp -s '$HOSTBIN/mactrunk-ipam' '$WORK/bin-v2/mactrunk-ipam'"
secret_version v2
check "a rotated Secret is followed" wait_for_it eval "grep -qx 'CERT v2' '$NODEDIR/etcd-client.crt'"
# (the files are replaced one after the other: the key may land a moment after the cert)
check "  and its key too, 0600" wait_for_it eval "grep -qx 'KEY v2' '$NODEDIR/etcd-client.key' && test \"\$(mode '$NODEDIR/etcd-client.key')\" = 600"
# a rolling update: the new pod's install put other binaries; this (old) watcher leaves them
cp "$BIN/mactrunk" "$HOSTBIN/.mactrunk.new" && mv "$HOSTBIN/.mactrunk.new" "$HOSTBIN/mactrunk"
sleep 2.5
check "a plugin that differs is left alone by watch" cmp -s "$HOSTBIN/mactrunk" "$BIN/mactrunk"
t0=$(date +%s.%N)
c task kill -s SIGTERM watch >>"$WORK/log" 2>&1
timeout 10 tail --pid="${RUN_PID[watch]}" -f /dev/null
wait "${RUN_PID[watch]}"
rc=$?
unset "RUN_PID[watch]"
log "watch stopped $(since "$t0")s after SIGTERM"
check "watch exits 0 on SIGTERM" test "$rc" = 0
check "  saying so" grep -q 'stopping' "$WORK/run-watch.log"
check "no network config, no temp file at the end" eval "test \"\$(ls -A '$HOSTCONF')\" = mactrunk.d && no_temps"

rt_finish
