#!/bin/bash
# netns-tests/runtimes/run.sh: run the runtime end-to-end tests (podman.sh, ctr.sh, and
# installer.sh: the DaemonSet's installer image under containerd) and sum their counts.
#
#   netns-tests/runtimes/run.sh [--bin-dir DIR] [--skip-missing] [podman] [ctr] [installer]
#
#   --bin-dir DIR     binaries under test (default: target/static, built if missing)
#   --skip-missing    a runtime whose tools are not installed is skipped instead of failed
#
# Each test prints PASS/FAIL lines and "N passed, M failed"; this prints them, then the sum
# as its last line. Needs root. Debian 12: apt-get install podman runc busybox-static
# containerd containernetworking-plugins jq python3-yaml. Takes about 35 s on the development
# machines (installer.sh ~25 s of it).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
args=()
skip_missing=0
which=()
while (($#)); do
    case $1 in
        --bin-dir) args+=(--bin-dir "${2:?--bin-dir needs a directory}"); shift ;;
        --bin-dir=*) args+=("$1") ;;
        --skip-missing) skip_missing=1 ;;
        podman | ctr | installer) which+=("$1") ;;
        -h | --help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
((${#which[@]})) || which=(podman ctr installer)

declare -A tools=([podman]="podman runc busybox" [ctr]="ctr containerd containerd-shim-runc-v2 runc busybox"
    [installer]="ctr containerd containerd-shim-runc-v2 runc python3")
passed=0
failed=0
for rt in "${which[@]}"; do
    missing=""
    for t in ${tools[$rt]}; do command -v "$t" >/dev/null || missing+=" $t"; done
    if [[ -n $missing ]] && ((skip_missing)); then
        echo "SKIP $rt (missing:$missing)"
        continue
    fi
    echo "=== $rt"
    out=$("$here/$rt.sh" "${args[@]}")
    echo "$out"
    last=$(tail -n1 <<<"$out")
    if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
    else
        echo "$rt.sh did not end with a count line"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
((failed == 0))
