#!/bin/bash
# netns-tests/run-vlan.sh: mactrunk's VLAN-parent suite, inside a VM on Debian 12's kernel
# (netns-tests/vm/vm.sh; the host kernel has no 802.1Q). All cases run in ONE boot.
#
#   netns-tests/run-vlan.sh [--bin-dir DIR] [--timeout SECS] [-v] [CASE...]
#
#   --bin-dir DIR   take mactrunk and mactrunk-ipam from DIR and build nothing
#                   (default: ./build.sh at the repo root, then target/static).
#                   Build for plain x86-64: the VM's CPU is qemu64 (no target-cpu=native).
#   --timeout SECS  kill the VM after SECS (default: $MTVM_TIMEOUT or 300); a timeout
#                   is a failure
#   -v              print the plugin's stderr of failing cases
#   --list          list the cases and exit
#   CASE            case names (see netns-tests/vlan/suite.sh), default: all
#
# Only the two binaries and netns-tests/vlan/ are copied into the VM (at /opt/mt); the suite
# runs under the VM's busybox sh with iproute2's ip.
# Output: one PASS/FAIL line per case, then a plain "N passed, M failed" line. Exit
# status 1 if any case failed (or the VM did not finish).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=run-vlan.sh
source "$here/vm/common.sh"
bin_dir=""
timeout=${MTVM_TIMEOUT:-300}
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

release_bins "$bin_dir"

stage=$(mktemp -d /tmp/mactrunk-vlan.XXXXXX)
out=$stage.out
trap 'rm -rf "$stage" "$out"' EXIT
mkdir -p "$stage/bin" "$stage/vlan"
cp "$bin_dir/mactrunk" "$bin_dir/mactrunk-ipam" "$stage/bin/"
cp "$here"/vlan/*.sh "$stage/vlan/"

started=$(date +%s)
env_args=()
[[ -n $verbose ]] && env_args=(--env MT_VERBOSE=1)
"$here/vm/vm.sh" --timeout "$timeout" --dir "$stage:/opt/mt" "${env_args[@]}" -- \
    sh /opt/mt/vlan/suite.sh "${cases[@]}" | tee "$out"
finish_suite "$out" "${PIPESTATUS[0]}" "$started"
