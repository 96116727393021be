#!/bin/bash
# netns-tests/vm/run-rust.sh: the Rust root integration tests (tests/link_root.rs) inside a VM
# on Debian 12's kernel (6.1). They pin kernel behaviour of the netlink layer, and the host's
# kernel is newer than any a node runs.
#
#   netns-tests/vm/run-rust.sh [--timeout SECS] [TEST-BINARY-ARG...]
#
# Builds the test binary with `./build.sh --cargo test --release --no-run --test link_root`
# (static, like the plugins, and plain x86-64: the VM's CPU is qemu64; the same build of the
# dependencies as test.sh's unit tests), copies it alone into the VM and runs it as root;
# arguments go to the test binary (a name filter, --exact, --test-threads N, ...).
# --timeout limits the VM (default: $MTVM_TIMEOUT or 900 s).
# Output: the test binary's own, then "N passed, M failed" from its "test result:" line.
set -uo pipefail
me=run-rust.sh
source "$(dirname "$0")/common.sh"

timeout=${MTVM_TIMEOUT:-900}
if [[ ${1:-} == --timeout ]]; then
    timeout=${2:?--timeout needs seconds}
    shift 2
fi
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0; }

exe=$(cd "$repo_root" && ./build.sh --cargo test --release --no-run --test link_root --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "link_root" and .executable != null) | .executable' |
    tail -n1)
[[ -n $exe && -x $exe ]] || suite_broken "./build.sh --cargo test --release --no-run --test link_root did not build a test binary"

stage=$(mktemp -d /tmp/mactrunk-vmrust.XXXXXX)
out=$stage.out
trap 'rm -rf "$stage" "$out"' EXIT
cp "$exe" "$stage/link_root"

started=$(date +%s)
"$vm_dir/vm.sh" --timeout "$timeout" --dir "$stage:/opt/mactrunk-rust" --env RUST_BACKTRACE=0 -- \
    /opt/mactrunk-rust/link_root "$@" | tee "$out"
rc=${PIPESTATUS[0]}
# libtest's "test result: FAILED. 12 passed; 2 failed; ..." into the suites' summary line
awk '/^test result:/ {for (i = 1; i <= NF; i++) {if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i}; n++}
     END {if (n) printf "%d passed, %d failed\n", p, f}' "$out" >>"$out"
finish_suite "$out" "$rc" "$started"
