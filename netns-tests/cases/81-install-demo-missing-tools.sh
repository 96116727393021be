# install.sh --demo on a machine without ping and jq (a PATH of every tool but those): it
# installs them with apt-get, as .ci/run does, then runs the demo. apt-get is a stand-in here
# that records its arguments and puts the real tools on the PATH, as the packages would (the
# real apt-get path was tried once by hand in a fresh Debian 12 root: docs/kubernetes.md). With --no-apt,
# or with no apt-get at all, install.sh fails naming the packages, before the demo starts.
[[ $NT_REFERENCE == 1 ]] && skip "the demo's config is cniVersion 1.1.0, which the reference plugins do not speak"
inst=$ROOT/install.sh
real_ping=$(command -v ping) || die "no ping on this machine"
real_jq=$(command -v jq) || die "no jq on this machine"

# path_without DIR: DIR gets a symlink to every program on $SAFE_PATH except ping and jq
path_without() {
    local d
    mkdir -p "$1"
    IFS=: read -ra dirs <<<"$SAFE_PATH"
    for d in "${dirs[@]}"; do
        [[ -d $d ]] || continue
        find "$d" -maxdepth 1 \( -type f -o -type l \) ! -name 'ping*' ! -name jq ! -name apt-get \
            -exec ln -s -t "$1" {} + 2>/dev/null
    done
    [[ -e $1/ping || -e $1/jq || -e $1/apt-get ]] && die "$1 still has ping, jq or apt-get"
    [[ -e $1/ip && -e $1/bash ]] || die "$1 lacks ip or bash"
}
stub=$T/stub
mkdir -p "$stub"
cat >"$stub/apt-get" <<EOF
#!/bin/bash
echo "\$*" >>"$T/apt.log"
for a in "\$@"; do
    case \$a in
        iputils-ping) ln -sf "$real_ping" "$T/p1/ping" ;;
        jq) ln -sf "$real_jq" "$T/p1/jq" ;;
    esac
done
EOF
chmod +x "$stub/apt-get"
: >"$T/apt.log"
before=$(ip netns list | awk '{print $1}' | grep '^mtdemo-' | sort)

# 1. apt-get there: the tools are installed, the demo runs
path_without "$T/p1"
out=$(PATH=$stub:$T/p1 DESTDIR=$T/dest timeout 90 "$inst" --prebuilt "$NT_BIN_DIR" --demo 2>&1)
rc=$?
printf '%s\n' "$out" >&2
assert_eq "$rc" 0 "install.sh --demo without ping and jq"
assert_match "$out" 'installing jq iputils-ping with apt-get' "install.sh says what it installs"
assert_eq "$(cat "$T/apt.log")" $'update -q\ninstall -y -q --no-install-recommends jq iputils-ping' "apt-get calls"
assert_match "$out" '[1-9][0-9]* received' "the demo's ping worked"
assert_match "$out" 'demo: OK' "the demo ends with OK"

# 2. --no-apt: fails naming the packages, apt-get not called, no demo namespace
path_without "$T/p2"
: >"$T/apt.log"
out=$(PATH=$stub:$T/p2 DESTDIR=$T/dest timeout 60 "$inst" --prebuilt "$NT_BIN_DIR" --demo --no-apt 2>&1)
rc=$?
printf '%s\n' "$out" >&2
[[ $rc != 0 ]] || fail "--no-apt without ping and jq succeeded"
assert_match "$out" 'missing jq ping \(Debian/Ubuntu: apt-get install jq iputils-ping\); --no-apt given' "--no-apt message"
assert_eq "$(cat "$T/apt.log")" "" "apt-get calls with --no-apt"

# 3. no apt-get at all: the same, naming the packages
out=$(PATH=$T/p2 DESTDIR=$T/dest timeout 60 "$inst" --prebuilt "$NT_BIN_DIR" --demo 2>&1)
rc=$?
printf '%s\n' "$out" >&2
[[ $rc != 0 ]] || fail "--demo without ping, jq and apt-get succeeded"
assert_match "$out" 'apt-get install jq iputils-ping\); no apt-get here' "message without apt-get"
assert_eq "$(ip netns list | awk '{print $1}' | grep '^mtdemo-' | sort)" "$before" "mtdemo-* namespaces afterwards"
