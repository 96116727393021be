# shellcheck shell=bash
# netns-tests/vm/common.sh: what the host-side scripts that run a suite in the VM share
# (run-netns.sh, run-rust.sh, ../run-vlan.sh). Sourced; expects $me (the script's name).

vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$vm_dir/../.." && pwd)

# suite_broken MESSAGE: the suite could not run at all: one failure
suite_broken() {
    echo "$me: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# release_bins DIR: check (or, with an empty DIR, build with ./build.sh: static) mactrunk and
# mactrunk-ipam; sets bin_dir. Plain x86-64 builds only: the VM's CPU is qemu64 (no
# target-cpu=native).
release_bins() {
    bin_dir=$1
    if [[ -z $bin_dir ]]; then
        "$repo_root/build.sh" -q >&2 || suite_broken "./build.sh failed"
        bin_dir=$repo_root/target/static
    fi
    local b
    for b in mactrunk mactrunk-ipam; do
        [[ -x $bin_dir/$b ]] || suite_broken "$bin_dir/$b is missing or not executable"
    done
}

# finish_suite OUTPUT-FILE VM-STATUS STARTED: print the suite's own "N passed, M failed"
# line (the last one in OUTPUT-FILE) with the wall time, or, when the VM did not get that
# far, what was counted plus one failure. Exit status 1 unless everything passed.
finish_suite() {
    local out=$1 rc=$2 started=$3 last secs why
    secs=$(($(date +%s) - started))
    last=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n1)
    if [[ -z $last ]]; then
        case $rc in
            124) why="the VM timed out" ;;
            125) why="the VM failed (see vm.sh's messages above)" ;;
            *) why="the suite ended without a summary (exit status $rc)" ;;
        esac
        echo "$me: $why after ${secs}s" >&2
        echo "$(grep -ac '^PASS ' "$out") passed, $(($(grep -ac '^FAIL ' "$out") + 1)) failed"
        exit 1
    fi
    echo "$me: ${secs}s in all, VM boot included (exit status $rc)"
    echo "$last"
    [[ $rc == 0 && $last == *" 0 failed" ]]
}
