#!/bin/bash
# netns-tests/run-vlan.sh: mactrunk's VLAN-parent suite, inside a vmtest VM (the host
# kernel has no 802.1Q). All cases run in ONE boot.
#
#   netns-tests/run-vlan.sh [--bin-dir DIR] [--timeout SECS] [-v] [CASE...]
#
#   --bin-dir DIR   take mactrunk and mactrunk-ipam from DIR and build nothing
#                   (default: `cargo build --release` at the repo root, then target/release).
#                   Build for plain x86-64: the VM's CPU is qemu64 (no target-cpu=native).
#   --timeout SECS  kill the VM after SECS (default: $VMTEST_TIMEOUT or 300); a timeout
#                   is a failure
#   -v              print the plugin's stderr of failing cases
#   --list          list the cases and exit
#   CASE            case names (see netns-tests/vlan/suite.sh), default: all
#
# Only the two binaries and netns-tests/vlan/ are copied into the VM (at /opt/mt). vmtest
# is $VMTEST, else ../shared/tools/vmtest/vmtest next to the repo, else `vmtest` on PATH.
# Output: one PASS/FAIL line per case, then a plain "N passed, M failed" line. Exit
# status 1 if any case failed (or the VM did not finish).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin_dir=""
timeout=${VMTEST_TIMEOUT:-300}
verbose=""
cases=()

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }

while (($#)); do
    case $1 in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        --bin-dir=*) bin_dir=${1#*=} ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift ;;
        -v | --verbose) verbose=1 ;;
        --list) sed -n '/^ALL="/,/"$/p' "$here/vlan/suite.sh" | tr -d '"' | sed 's/^ALL=//' | tr ' ' '\n' | grep .; exit 0 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "run-vlan.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) cases+=("$1") ;;
    esac
    shift
done

summary_fail() { # summary_fail MESSAGE: the suite could not run at all
    echo "run-vlan.sh: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

if [[ -z $bin_dir ]]; then
    (cd "$root" && cargo build --release) || summary_fail "cargo build --release failed"
    bin_dir=$root/target/release
fi
for b in mactrunk mactrunk-ipam; do
    [[ -x $bin_dir/$b ]] || summary_fail "$bin_dir/$b is missing or not executable"
done

vmtest=${VMTEST:-}
if [[ -z $vmtest ]]; then
    for c in "$root/../shared/tools/vmtest/vmtest" /work/shared/tools/vmtest/vmtest; do
        [[ -x $c ]] && { vmtest=$c; break; }
    done
fi
[[ -z $vmtest ]] && vmtest=$(command -v vmtest)
[[ -n $vmtest && -x $vmtest ]] || summary_fail "vmtest not found (set VMTEST)"

stage=$(mktemp -d /tmp/mactrunk-vlan.XXXXXX)
out=$(mktemp /tmp/mactrunk-vlan-out.XXXXXX)
trap 'rm -rf "$stage" "$out"' EXIT
mkdir -p "$stage/bin" "$stage/vlan"
cp "$bin_dir/mactrunk" "$bin_dir/mactrunk-ipam" "$stage/bin/"
cp "$here"/vlan/*.sh "$stage/vlan/"

started=$(date +%s.%N)
env_args=()
[[ -n $verbose ]] && env_args=(--env MT_VERBOSE=1)
# stderr of the VM command (assertion details) is merged so that it stays in order
"$vmtest" --timeout "$timeout" --dir "$stage:/opt/mt" "${env_args[@]}" -- \
    sh -c 'sh /opt/mt/vlan/suite.sh "$@" 2>&1' suite "${cases[@]}" | tee "$out"
rc=${PIPESTATUS[0]}
elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')

last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n1)
if [[ -z $last ]]; then
    case $rc in
        124) why="the VM timed out after ${timeout}s" ;;
        125) why="the VM failed (see vmtest's console log above)" ;;
        *) why="the suite ended without a summary (exit status $rc)" ;;
    esac
    p=$(grep -c '^PASS ' "$out")
    f=$(grep -c '^FAIL ' "$out")
    echo "run-vlan.sh: $why (${elapsed}s)" >&2
    echo "$p passed, $((f + 1)) failed"
    exit 1
fi
echo "run-vlan.sh: ${elapsed}s including the VM boot (vmtest exit status $rc)"
echo "$last"
[[ $rc == 0 && $last == *" 0 failed" ]]
