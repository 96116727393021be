#!/bin/bash
# netns-tests/tools/cnitool/build.sh: build the tests' cnitool (main.go here) offline, in
# GOPATH mode, against the libcni Debian 12 ships.
#
#   netns-tests/tools/cnitool/build.sh [--if-stale] [OUTPUT]
#
#   OUTPUT      default: target/cnitool at the repo root (where netns-tests/run.sh looks)
#   --if-stale  do nothing when OUTPUT is newer than main.go and this script
#
# Needs the Debian packages golang-go and golang-github-appc-cni-dev (libcni 1.1.2 under
# /usr/share/gocode); nothing is downloaded. The binary is static (CGO_ENABLED=0) and built
# for plain x86-64 (GOAMD64=v1), so it also runs in the test VM (netns-tests/vm/).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
gopath=/usr/share/gocode
if_stale=0
[[ ${1:-} == --if-stale ]] && { if_stale=1; shift; }
out=$(realpath -m "${1:-$root/target/cnitool}")

if ((if_stale)) && [[ -x $out && $out -nt $here/main.go && $out -nt $0 ]]; then
    exit 0
fi
command -v go >/dev/null || { echo "build.sh: no go (apt-get install golang-go)" >&2; exit 1; }
[[ -d $gopath/src/github.com/containernetworking/cni/libcni ]] ||
    { echo "build.sh: no libcni in $gopath (apt-get install golang-github-appc-cni-dev)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/cnitool" "$(dirname "$out")"
cp "$here/main.go" "$tmp/src/cnitool/"
cd "$tmp/src/cnitool"
env GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$tmp:$gopath" GOCACHE="$tmp/cache" \
    CGO_ENABLED=0 GOAMD64=v1 go build -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "build.sh: built $out" >&2
