#!/bin/bash
# build.sh: build the binaries users get: static release builds that need no libc, no
# loader and no shared library at run time (any distribution, or a container with nothing
# else in it).
#
#   ./build.sh [--out DIR] [--features LIST] [-q]
#   ./build.sh --cargo SUBCOMMAND [ARG...]
#   ./build.sh --target
#
#   (no option)        cargo build --release for the static target, then copy the crate's
#                      binaries (mactrunk, mactrunk-ipam, mactrunk-install, ...: src/bin/)
#                      and the cluster IPAM's etcd helper mactrunk-etcd (package
#                      mactrunk-etcd/, built by a cargo run of its own so that its
#                      tokio/tonic features never reach the plugins) into target/static/
#                      (each copied beside, then renamed: a test that runs them never
#                      sees half a file)
#   --no-etcd          leave mactrunk-etcd out (it needs protoc and libprotobuf-dev's
#                      .proto files to build; the plugins work without it, except
#                      ipam.cluster)
#   --out DIR          copy them into DIR instead
#   --features LIST    cargo features (fault-injection: the VLAN suite's crash hook)
#   -q                 cargo's --quiet
#   --cargo SUB ARG... run `cargo SUB --target TRIPLE ARG...` with the same target and flags,
#                      e.g. `./build.sh --cargo test --release`: tests and binaries then
#                      share one build of the dependencies
#   --target           print the target triple and exit
#
# The target: <arch>-unknown-linux-musl when Rust's musl standard library is installed
# (`rustup target add x86_64-unknown-linux-musl`; install.sh and .ci/run add it), else
# <arch>-unknown-linux-gnu with -C target-feature=+crt-static (glibc's static libraries,
# libc6-dev). MACTRUNK_TARGET=musl or gnu forces one. C code of dependencies is compiled
# with musl-gcc (Debian: musl-tools) for musl when it is installed. Both are static-pie
# executables; musl starts faster and is smaller (figures and the name-resolution caveat of
# static glibc: docs/kubernetes.md).
# The result is checked: an executable with a program interpreter or a NEEDED entry fails
# the build.
set -euo pipefail
cd "$(dirname "$0")"

# every binary of the crate (src/bin/NAME.rs or src/bin/NAME/main.rs): mactrunk,
# mactrunk-ipam, mactrunk-install, and the cluster IPAM's mactrunk-etcd where it exists
BINARIES=()
for f in src/bin/*.rs src/bin/*/main.rs; do
    [[ -e $f ]] || continue
    f=${f#src/bin/}
    BINARIES+=("${f%%[./]*}")
done
out=target/static
features=""
etcd=1
quiet=()
mode=build

die() {
    echo "build.sh: $*" >&2
    exit 1
}

while (($#)); do
    case $1 in
        --out) out=${2:?--out needs a directory}; shift ;;
        --out=*) out=${1#*=} ;;
        --features) features=${2:?--features needs a list}; shift ;;
        --features=*) features=${1#*=} ;;
        -q | --quiet) quiet=(-q) ;;
        --no-etcd) etcd=0 ;;
        --cargo) mode=cargo; shift; break ;;
        --target) mode=print ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

arch=$(uname -m)
musl=$arch-unknown-linux-musl
gnu=$arch-unknown-linux-gnu
# Is Rust's standard library for TRIPLE installed?
have_std() {
    local dir
    dir=$(rustc --print target-libdir --target "$1" 2>/dev/null) || return 1
    compgen -G "$dir/libstd-*.rlib" >/dev/null
}

case ${MACTRUNK_TARGET:-} in
    musl) triple=$musl ;;
    gnu) triple=$gnu ;;
    "") if have_std "$musl"; then triple=$musl; else triple=$gnu; fi ;;
    *) die "MACTRUNK_TARGET must be musl or gnu, not ${MACTRUNK_TARGET}" ;;
esac
if [[ $mode == print ]]; then
    echo "$triple"
    exit 0
fi

command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
have_std "$triple" || die "Rust's standard library for $triple is not installed (rustup target add $triple)"
if [[ $triple == "$musl" ]]; then
    # musl links statically by default; C code of dependencies needs musl's headers
    if command -v musl-gcc >/dev/null; then
        cc_var=CC_${triple//-/_}
        export "$cc_var"="${!cc_var:-musl-gcc}"
    fi
else
    # With --target, RUSTFLAGS reach only the target's crates, not build scripts and proc
    # macros (which cannot be linked statically against glibc).
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
fi

if [[ $mode == cargo ]]; then
    (($#)) || die "--cargo needs a cargo subcommand"
    sub=$1
    shift
    exec cargo "$sub" --target "$triple" "$@"
fi

echo "build.sh: cargo build --release --target $triple${features:+ --features $features}" >&2
cargo build --release --target "$triple" ${features:+--features "$features"} "${quiet[@]}"
if ((etcd)) && [[ -f mactrunk-etcd/Cargo.toml ]]; then
    # A run of its own: features are unified per cargo run, so tonic's tokio features
    # stay out of the plugins' build above.
    echo "build.sh: cargo build --release --target $triple -p mactrunk-etcd" >&2
    cargo build --release --target "$triple" -p mactrunk-etcd "${quiet[@]}"
    BINARIES+=(mactrunk-etcd)
fi

# static: no program interpreter, no shared library (readelf comes with binutils, which
# every Rust build needs as the linker's)
src=target/$triple/release
for b in "${BINARIES[@]}"; do
    [[ -x $src/$b ]] || die "$src/$b was not built"
    if command -v readelf >/dev/null; then
        if readelf -lW "$src/$b" | grep -q 'program interpreter' || readelf -dW "$src/$b" | grep -q '(NEEDED)'; then
            die "$src/$b is not static: $(readelf -dW "$src/$b" | grep NEEDED | tr -s ' ' | tr '\n' ' ')"
        fi
    fi
done

mkdir -p "$out"
for b in "${BINARIES[@]}"; do
    tmp=$(mktemp "$out/.$b.XXXXXX")
    cp "$src/$b" "$tmp"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$out/$b"
done
echo "build.sh: $(cd "$out" && pwd): ${BINARIES[*]} ($triple, static)" >&2
