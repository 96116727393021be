# shellcheck shell=bash
# netns-tests/runtimes/common.sh: helpers for the runtime end-to-end tests (podman.sh, ctr.sh).
#
# Sourced by a test script that has set: here (this dir), root (repo root).
# Provides: rt_parse_args "$@" (sets bin_dir, keep), rt_preflight TOOL...,
# rt_private_mount_ns (re-execs the script in a private mount namespace), rt_setup NAME (work dir, private /run/netns and /var/lib/cni, a
# throwaway host netns $RT_HOSTNS with the veth parent $RT_PARENT, a busybox rootfs
# $ROOTFS, $BIN with the binaries under test), step/log/check, in_range, store_empty,
# rt_finish (prints "N passed, M failed" and exits). A script may define rt_cleanup_hook.

RT_PARENT=mtapar0
RT_PARENT_PEER=mtapar0x
RT_PASSED=0
RT_FAILED=0
RT_FAILURES=()
RT_STARTED=$(date +%s.%N)

# The options every runtime test takes: --bin-dir DIR, --keep, --help.
rt_parse_args() {
    bin_dir=""
    keep=0
    while (($#)); do
        case $1 in
            --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
            --bin-dir=*) bin_dir=${1#*=} ;;
            --keep) keep=1 ;;
            -h | --help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
            *) echo "$(basename "$0"): unknown argument $1" >&2; exit 2 ;;
        esac
        shift
    done
}

log() { printf '# %s\n' "$*" >&2; }
step() { printf '\n== %s\n' "$*" >&2; }

# check NAME CMD...: run CMD (output to the log), count PASS/FAIL
check() {
    local name=$1
    shift
    if "$@" >>"$WORK/log" 2>&1; then
        echo "PASS $name"
        RT_PASSED=$((RT_PASSED + 1))
    else
        echo "FAIL $name"
        RT_FAILED=$((RT_FAILED + 1))
        RT_FAILURES+=("$name")
    fi
}

# rt_conf EXAMPLE DEST: conf/EXAMPLE (a conflist) with master=$RT_PARENT and
# ipam.dataDir=$WORK/data in its first plugin; sets NET (its name) and RANGE_* from it
rt_conf() {
    jq --arg m "$RT_PARENT" --arg d "$WORK/data" \
        '.plugins[0].master = $m | .plugins[0].ipam.dataDir = $d' "$root/conf/$1" >"$2" ||
        { echo "cannot read conf/$1" >&2; exit 1; }
    NET=$(jq -r .name "$2")
    RANGE_START=$(jq -r .plugins[0].ipam.rangeStart "$2")
    RANGE_END=$(jq -r .plugins[0].ipam.rangeEnd "$2")
    RANGE_PREFIX=$(jq -r '.plugins[0].ipam.subnet | split("/")[1]' "$2")
}

_ip4num() { local IFS=.; set -- $1; echo $(((($1 * 256 + $2) * 256 + $3) * 256 + $4)); }

# in_range CIDR: an IPv4 address in [RANGE_START, RANGE_END] with the subnet's prefix
in_range() {
    [[ $1 =~ ^([0-9.]+)/([0-9]+)$ ]] || return 1
    [[ ${BASH_REMATCH[2]} == "$RANGE_PREFIX" ]] || return 1
    local n
    n=$(_ip4num "${BASH_REMATCH[1]}")
    ((n >= $(_ip4num "$RANGE_START") && n <= $(_ip4num "$RANGE_END")))
}

# store_empty DIR: no address records (lock, hints, owners/ markers, .tmp/ only)
store_empty() {
    [[ ! -d $1 ]] && return 0
    [[ -z $(find "$1" -mindepth 1 -maxdepth 1 ! -name lock ! -name 'last_reserved_ip.*' ! -name owners ! -name .tmp) ]] &&
        [[ -z $(find "$1/owners" -mindepth 1 ! -name '.*' 2>/dev/null) ]]
}

# rt_rmdir_cgroups NAME: remove the (empty) cgroup directories /sys/fs/cgroup/*/NAME, deepest first
# (retried for a few seconds: a cgroup stays busy until its last process is reaped)
rt_rmdir_cgroups() {
    local d i left
    [[ -n $1 && $1 != */* ]] || return 0
    for ((i = 0; i < 50; i++)); do
        left=0
        for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
            [[ -d $d ]] || continue
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
            [[ -d $d ]] && left=1
        done
        ((left)) || return 0
        sleep 0.1
    done
    echo "warning: cgroups $1 could not be removed: $(ls -d /sys/fs/cgroup/*/"$1" 2>/dev/null | tr '\n' ' ')" >&2
}

# rt_start_containerd: start a private containerd (socket $WORK/ctd.sock, root and state under
# $WORK, CRI and the snapshotters this host lacks off) in the background. Sets SOCK and
# CTD_PID (the caller's cleanup kills it) and checks that it answers.
rt_start_containerd() {
    SOCK=$WORK/ctd.sock
    cat >"$WORK/containerd.toml" <<EOF
version = 2
root = "$WORK/ctd-root"
state = "$WORK/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
    containerd --config "$WORK/containerd.toml" >"$WORK/containerd.log" 2>&1 &
    CTD_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do _rt_containerd_ready && break; sleep 0.1; done
    check "private containerd answers" _rt_containerd_ready
}
_rt_containerd_ready() { ctr --address "$SOCK" version >/dev/null 2>&1; }

rt_preflight() {
    local missing=() t
    [[ $(id -u) == 0 ]] || { echo "$(basename "$0"): must run as root" >&2; echo "0 passed, 1 failed"; return 1; }
    for t in "$@" ip jq unshare timeout; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    if ((${#missing[@]})); then
        echo "$(basename "$0"): missing ${missing[*]} (Debian: apt-get install podman runc busybox-static containerd containernetworking-plugins jq)" >&2
        echo "0 passed, 1 failed"
        return 1
    fi
    if [[ -z $bin_dir ]]; then
        bin_dir=$root/target/static
        if [[ ! -x $bin_dir/mactrunk || ! -x $bin_dir/mactrunk-ipam ]]; then
            "$root/build.sh" -q >&2 || { echo "0 passed, 1 failed"; return 1; }
        fi
    fi
    BIN=$(realpath "$bin_dir")
    for t in mactrunk mactrunk-ipam; do
        [[ -x $BIN/$t ]] || { echo "$(basename "$0"): no $BIN/$t" >&2; echo "0 passed, 1 failed"; return 1; }
    done
    export BIN
}

# Re-exec the calling script in a private mount namespace (once).
rt_private_mount_ns() {
    if [[ -z ${MTA_RT_PRIVATE:-} ]]; then
        export MTA_RT_PRIVATE=1
        exec unshare --mount --propagation private "$0" --bin-dir "$BIN" $( ((keep)) && echo --keep)
    fi
}

_rt_cleanup() {
    local rc=$?
    set +e
    declare -F rt_cleanup_hook >/dev/null && rt_cleanup_hook
    ip netns del "$RT_HOSTNS" 2>/dev/null
    if [[ -n ${RT_MADE_VAR_LIB_CNI:-} ]]; then
        umount /var/lib/cni 2>/dev/null && rmdir /var/lib/cni 2>/dev/null
    fi
    if ((keep)) || ((RT_FAILED > 0)); then
        echo "work directory kept: $WORK (log: $WORK/log)" >&2
    else
        # podman's vfs storage may hold read-only dirs
        chmod -R u+w "$WORK" 2>/dev/null
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# rt_setup NAME [DIR...]: also a tmpfs over each DIR (which must exist), before anything else
rt_setup() {
    local name=$1 d
    shift
    WORK=$(mktemp -d "/tmp/mactrunk-rt-$name.XXXXXX")
    chmod 0755 "$WORK"
    mkdir -p "$WORK"/{net.d,data,tmp,storage,runroot,cni-var,rootfs}
    : >"$WORK/log"
    RT_HOSTNS=mta$name-h
    trap _rt_cleanup EXIT
    trap 'exit 130' INT TERM
    # private views: netns bind mounts and libcni's cache stay inside this mount namespace
    for d in "$@"; do
        [[ -d $d ]] || { echo "$d does not exist (not creating it on the host)" >&2; exit 1; }
        mount -t tmpfs -o mode=0755 "mta${d//\//-}" "$d" || { echo "cannot mount a tmpfs on $d" >&2; exit 1; }
    done
    mkdir -p /run/netns
    mount -t tmpfs -o mode=0755 mta-run-netns /run/netns || { echo "cannot mount a tmpfs on /run/netns" >&2; exit 1; }
    # (the mount point is created if missing, and removed again at the end)
    if [[ ! -e /var/lib/cni ]]; then
        mkdir /var/lib/cni && RT_MADE_VAR_LIB_CNI=1
    fi
    mount --bind "$WORK/cni-var" /var/lib/cni || { echo "cannot bind-mount over /var/lib/cni" >&2; exit 1; }

    ip netns add "$RT_HOSTNS" || { echo "cannot create netns $RT_HOSTNS" >&2; exit 1; }
    ip -n "$RT_HOSTNS" link set lo up
    ip -n "$RT_HOSTNS" link add "$RT_PARENT" type veth peer name "$RT_PARENT_PEER"
    ip -n "$RT_HOSTNS" link set "$RT_PARENT" up
    ip -n "$RT_HOSTNS" link set "$RT_PARENT_PEER" up

    # busybox rootfs (Debian's busybox-static: one static binary, an applet per symlink)
    ROOTFS=$WORK/rootfs
    mkdir -p "$ROOTFS"/{bin,etc,proc,sys,dev,tmp,run,var}
    cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
    local a
    for a in $("$ROOTFS/bin/busybox" --list); do
        [[ -e $ROOTFS/bin/$a ]] || ln -s busybox "$ROOTFS/bin/$a"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$ROOTFS/etc/passwd"
    echo 'root:x:0:' >"$ROOTFS/etc/group"
    log "work dir $WORK, binaries from $BIN"
}

rt_finish() {
    local secs
    secs=$(awk -v a="$RT_STARTED" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    echo "# $(basename "$0"): ${secs}s"
    ((RT_FAILED)) && echo "failed: ${RT_FAILURES[*]}"
    echo "$RT_PASSED passed, $RT_FAILED failed"
    ((RT_FAILED == 0))
    exit $?
}
