#!/bin/bash
# netns-tests/run.sh: run mactrunk's black-box tests in network namespaces (root only).
#
#   netns-tests/run.sh [--bin-dir DIR] [--reference] [-j N] [--keep] [CASE...]
#
#   --bin-dir DIR   take mactrunk and mactrunk-ipam from DIR and build nothing
#                   (default: ./build.sh at the repo root, the static release build, then
#                   target/static)
#   --reference     run against Debian's reference plugins instead: DIR/macvlan and
#                   DIR/host-local (DIR defaults to /usr/lib/cni); config types are mapped.
#                   Useful to check the harness itself; cases for mactrunk-only behaviour fail.
#   -j N            run N cases at once (default 1)
#   --keep          keep the run directory (configs, plugin calls, logs) even when all pass
#   -v              print the log of every failing case
#   --list          list the cases and exit
#   CASE            a case name or number prefix, e.g. 01 or 06-exhaust (default: all)
#
# Each case runs in a fresh "host" netns with a veth parent named eth0 (NT_PARENT=NAME picks
# another name), with a temporary dataDir; see lib.sh. The cases that use cnitool take
# $NT_CNITOOL, else target/cnitool, built from netns-tests/tools/cnitool when stale.
# NT_CASE_TIMEOUT (default 150 s) limits each case. Output: one PASS/FAIL/SKIP line per case (FAIL lines are followed by the failing
# assertions), then a plain "N passed, M failed" line. Exit status 1 if any case failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin_dir=""
reference=0
jobs_max=1
keep=0
verbose=0
list=0
case_timeout=${NT_CASE_TIMEOUT:-150}
selected=()

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }

while (($#)); do
    case $1 in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        --bin-dir=*) bin_dir=${1#*=} ;;
        --reference) reference=1 ;;
        -j) jobs_max=${2:?-j needs a number}; shift ;;
        -j*) jobs_max=${1#-j} ;;
        --keep) keep=1 ;;
        -v | --verbose) verbose=1 ;;
        --list) list=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) selected+=("$1") ;;
    esac
    shift
done

# ---- which cases
all_cases=()
for f in "$here"/cases/[0-9][0-9]-*.sh; do all_cases+=("$f"); done
cases=()
if ((${#selected[@]})); then
    for s in "${selected[@]}"; do
        s=${s%.sh}
        s=${s##*/}
        found=0
        for f in "${all_cases[@]}"; do
            b=${f##*/}
            b=${b%.sh}
            if [[ $b == "$s" || $b == "$s"-* ]]; then cases+=("$f"); found=1; fi
        done
        ((found)) || { echo "run.sh: no case matches '$s'" >&2; exit 2; }
    done
else
    cases=("${all_cases[@]}")
fi
if ((list)); then
    for f in "${cases[@]}"; do basename "$f" .sh; done
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    echo "run.sh: must run as root (creates network namespaces)" >&2
    echo "0 passed, ${#cases[@]} failed"
    exit 1
fi
for tool in ip jq timeout nc ping; do
    command -v "$tool" >/dev/null || { echo "run.sh: missing tool: $tool (see .ci/run)" >&2; echo "0 passed, ${#cases[@]} failed"; exit 1; }
done

# ---- binaries
if ((reference)); then
    bin_dir=${bin_dir:-/usr/lib/cni}
    need=(macvlan host-local)
else
    if [[ -z $bin_dir ]]; then
        "$root/build.sh" -q >&2 || { echo "run.sh: build failed"; echo "0 passed, ${#cases[@]} failed"; exit 1; }
        bin_dir=$root/target/static
    fi
    need=(mactrunk mactrunk-ipam)
fi
bin_dir=$(realpath "$bin_dir")
for b in "${need[@]}"; do
    if [[ ! -x $bin_dir/$b ]]; then
        echo "run.sh: $bin_dir/$b not found or not executable" >&2
        echo "0 passed, ${#cases[@]} failed"
        exit 1
    fi
done

run_id=mt$(printf '%04x' $((($$ + RANDOM) % 65536)))
work=$(mktemp -d "/tmp/mactrunk-netns-tests.XXXXXX")
export NT_BIN_DIR=$bin_dir NT_REFERENCE=$reference NT_RUN_ID=$run_id NT_WORK=$work NT_KEEP=$keep
export NT_CNITOOL=${NT_CNITOOL:-}

host_links_before=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)

# remove every netns of this run (names start with the unique run id) and its processes
sweep() {
    local ns pids
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${run_id}-" || true); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [[ -n $pids ]] && kill -9 $pids 2>/dev/null
        ip netns delete "$ns" 2>/dev/null
    done
}
on_exit() {
    local p
    for p in "${!running[@]}"; do kill -- "-$p" 2>/dev/null; done
    sweep
}
declare -A running=() # pid -> case index
trap on_exit EXIT
trap 'exit 130' INT TERM

echo "mactrunk netns tests: $([[ $reference == 1 ]] && echo "REFERENCE plugins" || echo "binaries") in $bin_dir; parent ${NT_PARENT:-eth0}; run $run_id; logs in $work" >&2

passed=0
failed=0
skipped=0
failed_names=()

start_case() { # start_case INDEX
    local i=$1 f=${cases[$1]} name
    name=${f##*/}
    name=${name%.sh}
    local d=$work/$name
    mkdir -p "$d"
    # setsid: a process group per case, so a timeout kills the whole case
    setsid bash -c '
        started=$(date +%s.%N)
        timeout -k 10 "$4" bash -c "source \"\$1\"; _run_case \"\$2\" \"\$3\" \"\$4\"" _ "$1" "$2" "$3" "$5" >"$3/log" 2>&1
        rc=$?
        echo "$rc $(date +%s.%N) $started" >"$3/done"
    ' _ "$here/lib.sh" "$f" "$d" "$case_timeout" "${run_id}-$(printf '%02d' "$i")" &
    running[$!]=$i
}

report_case() { # report_case INDEX
    local f=${cases[$1]} name d rc t1 t0 secs
    name=${f##*/}
    name=${name%.sh}
    d=$work/$name
    read -r rc t1 t0 <"$d/done"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')
    if [[ -s $d/skipped ]]; then
        echo "SKIP $name ($(head -n1 "$d/skipped"))"
        skipped=$((skipped + 1))
    elif [[ $rc == 0 && ! -s $d/failures ]]; then
        echo "PASS $name (${secs}s)"
        passed=$((passed + 1))
    else
        echo "FAIL $name (${secs}s)"
        if [[ $rc == 124 || $rc == 137 ]]; then
            echo "     case timed out after ${case_timeout}s"
        fi
        local n
        n=$(grep -c . "$d/failures" 2>/dev/null || true)
        head -n 12 "$d/failures" 2>/dev/null | sed 's/^/     /'
        ((n > 12)) && echo "     ... and $((n - 12)) more (see $d/failures)"
        [[ $n == 0 && $rc != 124 && $rc != 137 ]] && echo "     case exited with status $rc (see $d/log)"
        ((verbose)) && sed 's/^/     | /' "$d/log"
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
}

next=0
total=${#cases[@]}
while ((next < total || ${#running[@]} > 0)); do
    while ((next < total && ${#running[@]} < jobs_max)); do
        start_case "$next"
        next=$((next + 1))
    done
    wait -n 2>/dev/null || sleep 0.1
    for p in "${!running[@]}"; do
        f=${cases[${running[$p]}]##*/}
        if [[ -e $work/${f%.sh}/done ]]; then
            wait "$p" 2>/dev/null
            report_case "${running[$p]}"
            unset "running[$p]"
        fi
    done
done

sweep
host_links_after=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)
if [[ $host_links_before != "$host_links_after" ]]; then
    echo "WARNING: the links of run.sh's own netns changed during the run:" \
        "$(diff <(echo "$host_links_before") <(echo "$host_links_after") | grep '^[<>]' | tr '\n' ' ')" >&2
fi
if ((failed == 0 && keep == 0)); then
    rm -rf "$work"
else
    echo "run directory kept: $work" >&2
fi
((skipped)) && echo "$skipped skipped"
((failed)) && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
