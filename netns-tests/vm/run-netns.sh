#!/bin/bash
# netns-tests/vm/run-netns.sh: the whole netns suite (netns-tests/run.sh, every case) a second
# time, inside a VM on Debian 12's kernel (6.1), in ONE boot.
#
#   netns-tests/vm/run-netns.sh [--bin-dir DIR] [-j N] [--parent NAME] [--timeout SECS] [-v] [CASE...]
#
#   --bin-dir DIR   take mactrunk and mactrunk-ipam from DIR (default: ./build.sh, static)
#   -j N            cases at once inside the VM (default: $MTVM_JOBS or 3: one more than the
#                   VM's 2 vCPUs, to fill the cases' waits; the run is CPU-bound)
#   --parent NAME   name of the host-side parent in every case (default: $NT_PARENT or eth0,
#                   so that the container's CNI_IFNAME=eth0 meets a host link of that name,
#                   as on a node)
#   --timeout SECS  limit of the whole VM (default: $MTVM_TIMEOUT or 2700)
#   -v              print the log of every failing case
#   CASE            as for run.sh (default: all)
#
# Copied into the VM: the suite (netns-tests/, conf/, deploy/, install.sh) at /opt/mactrunk, the two
# binaries, cnitool (target/cnitool, built from netns-tests/tools/cnitool when stale), Debian's
# reference plugins (/usr/lib/cni), and the host's bash, jq, nc, ping, ss, perl, promtool, GNU coreutils,
# findutils, grep, sed, awk, diff, flock, setsid, sysctl, ps. Under TCG everything runs
# roughly 15-25 times slower than on the host (each process start costs ~50 ms, a jq ~0.4 s),
# so the per-case limit is raised (NT_CASE_TIMEOUT, default here 2400 s), and without CASE
# arguments the slowest cases start first so that they do not end the run alone.
# Output: run.sh's PASS/FAIL/SKIP lines, then "N passed, M failed". Exit status 1 if any failed.
set -uo pipefail
me=run-netns.sh
source "$(dirname "$0")/common.sh"

bin_dir=""
jobs=${MTVM_JOBS:-3}
parent=${NT_PARENT:-eth0}
timeout=${MTVM_TIMEOUT:-2700}
verbose=()
cases=()
while (($#)); do
    case $1 in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        -j) jobs=${2:?-j needs a number}; shift ;;
        -j*) jobs=${1#-j} ;;
        --parent) parent=${2:?--parent needs a name}; shift ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift ;;
        -v) verbose=(-v) ;;
        -h | --help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        -*) echo "$me: unknown option $1" >&2; exit 2 ;;
        *) cases+=("$1") ;;
    esac
    shift
done

release_bins "$bin_dir"
"$repo_root/netns-tests/tools/cnitool/build.sh" --if-stale "$repo_root/target/cnitool" ||
    suite_broken "building cnitool failed (needs golang-go and golang-github-appc-cni-dev)"

stage=$(mktemp -d /tmp/mactrunk-vmnetns.XXXXXX)
out=$stage.out
trap 'rm -rf "$stage" "$out"' EXIT
mkdir -p "$stage/target/release"
cp -a "$repo_root/netns-tests" "$repo_root/conf" "$repo_root/deploy" "$repo_root/install.sh" "$stage/"
cp "$bin_dir/mactrunk" "$bin_dir/mactrunk-ipam" "$stage/target/release/"
cp "$repo_root/target/cnitool" "$stage/target/"

progs=(jq nc ping ss sysctl ps flock setsid find xargs grep sed awk diff cmp perl promtool)
while read -r p; do progs+=("$p"); done < <(dpkg -L coreutils | grep -E '^/(usr/)?bin/[^/]+$')
bins=()
for p in "${progs[@]}"; do
    [[ $p == /* ]] || p=$(command -v "$p") || suite_broken "host program $p not found (see .ci/run)"
    bins+=(--bin "$p")
done
[[ -d /usr/lib/cni ]] || suite_broken "no /usr/lib/cni (apt-get install containernetworking-plugins)"

if ((${#cases[@]} == 0)); then # all cases, the slowest in the VM first (measured), then the rest
    for c in 16-garbage-input 60-security-names 08-cni-versions 07-concurrent-adds 11-static-ip; do
        [[ -e $repo_root/netns-tests/cases/$c.sh ]] && cases+=("$c")
    done
    for f in "$repo_root"/netns-tests/cases/[0-9][0-9]-*.sh; do
        c=${f##*/}
        c=${c%.sh}
        [[ " ${cases[*]} " == *" $c "* ]] || cases+=("$c")
    done
fi

started=$(date +%s)
"$vm_dir/vm.sh" --mem 2G --timeout "$timeout" \
    --dir "$stage:/opt/mactrunk" --dir /usr/lib/cni:/usr/lib/cni "${bins[@]}" \
    --env NT_PARENT="$parent" --env NT_CASE_TIMEOUT="${NT_CASE_TIMEOUT:-2400}" \
    --env NT_CALL_TIMEOUT="${NT_CALL_TIMEOUT:-120}" --env NT_CNITOOL=/opt/mactrunk/target/cnitool -- \
    bash /opt/mactrunk/netns-tests/run.sh --bin-dir /opt/mactrunk/target/release -j "$jobs" \
    "${verbose[@]}" "${cases[@]}" | tee "$out"
finish_suite "$out" "${PIPESTATUS[0]}" "$started"
