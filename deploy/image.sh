#!/bin/bash
# deploy/image.sh: build the installer image of the DaemonSet (deploy/mactrunk-daemonset.yaml)
# as an OCI image tarball, offline: no registry, no Docker, no buildah. The image holds
# nothing but the static binaries (./build.sh), in /opt/mactrunk/bin/.
#
#   deploy/image.sh [--bin-dir DIR] [--out FILE] [--tag TAG]
#   deploy/image.sh --print-name [--tag TAG]
#
#   --bin-dir DIR   take the binaries from DIR (default: ./build.sh, then target/static);
#                   they must be static (checked: no program interpreter)
#   --out FILE      the tarball (default: target/image/mactrunk-image.tar)
#   --tag TAG       the image's tag (default: the crate's version in Cargo.toml)
#   --print-name    print the image name (localhost/mactrunk:TAG) and exit
#
# The tarball is an OCI image layout (oci-layout, index.json, blobs/sha256/...) plus a
# Docker-style manifest.json, so every loader takes it:
#   ctr -n k8s.io images import FILE        (containerd, the CRI plugin's namespace)
#   podman load -i FILE   /   docker load -i FILE
# The name comes from the index's io.containerd.image.name annotation (and
# org.opencontainers.image.ref.name, the tag). One layer (gzip, deterministic: sorted,
# owner 0:0, mtime SOURCE_DATE_EPOCH or 0), so the same binaries give the same digests.
# Needs: tar (GNU), gzip, sha256sum, jq.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

bin_dir=""
out=$repo/target/image/mactrunk-image.tar
tag=""
print_name=0
die() {
    echo "image.sh: $*" >&2
    exit 1
}
while (($#)); do
    case $1 in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --tag) tag=${2:?--tag needs a value}; shift ;;
        --print-name) print_name=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

if [[ -z $tag ]]; then
    tag=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$repo/Cargo.toml" | head -n1)
    [[ -n $tag ]] || die "no version in Cargo.toml"
fi
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--tag $tag is not a valid tag"
name=localhost/mactrunk:$tag
if ((print_name)); then
    echo "$name"
    exit 0
fi
for t in tar gzip sha256sum jq; do command -v "$t" >/dev/null || die "missing $t"; done

if [[ -z $bin_dir ]]; then
    "$repo/build.sh" -q
    bin_dir=$repo/target/static
fi
binaries=(mactrunk mactrunk-ipam mactrunk-install)
[[ -x $bin_dir/mactrunk-etcd ]] && binaries+=(mactrunk-etcd) # the cluster IPAM's helper
for b in "${binaries[@]}"; do
    [[ -x $bin_dir/$b ]] || die "$bin_dir/$b not found or not executable"
    if command -v readelf >/dev/null && readelf -lW "$bin_dir/$b" | grep -q 'program interpreter'; then
        die "$bin_dir/$b is not static (the image has no libc): build it with ./build.sh"
    fi
done

case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac
epoch=${SOURCE_DATE_EPOCH:-0}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d "${TMPDIR:-/tmp}/mactrunk-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/opt/mactrunk/bin" "$work/layout/blobs/sha256"
for b in "${binaries[@]}"; do
    cp "$bin_dir/$b" "$work/root/opt/mactrunk/bin/$b"
    chmod 0755 "$work/root/opt/mactrunk/bin/$b"
done
chmod 0755 "$work/root/opt" "$work/root/opt/mactrunk" "$work/root/opt/mactrunk/bin"

# blob FILE: move FILE into blobs/sha256/<digest>; prints "sha256:<hex> <size>"
blob() {
    local hex size
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    mv "$1" "$work/layout/blobs/sha256/$hex"
    echo "sha256:$hex $size"
}

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=ustar \
    -C "$work/root" -cf "$work/layer.tar" opt
diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -9 -n <"$work/layer.tar" >"$work/layer.tar.gz"
read -r layer_digest layer_size < <(blob "$work/layer.tar.gz")

jq -cn --arg arch "$arch" --arg created "$created" --arg diff "$diff_id" --arg tag "$tag" '{
    created: $created, architecture: $arch, os: "linux",
    config: {
        Entrypoint: ["/opt/mactrunk/bin/mactrunk-install"],
        Cmd: ["watch"],
        Env: ["PATH=/opt/mactrunk/bin"],
        WorkingDir: "/",
        Labels: {"org.opencontainers.image.title": "mactrunk",
                 "org.opencontainers.image.description": "mactrunk CNI plugins and their DaemonSet installer (static binaries only)",
                 "org.opencontainers.image.version": $tag}
    },
    rootfs: {type: "layers", diff_ids: [$diff]},
    history: [{created: $created, created_by: "deploy/image.sh: static binaries in /opt/mactrunk/bin"}]
}' >"$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")

jq -cn --arg cd "$config_digest" --argjson cs "$config_size" --arg ld "$layer_digest" --argjson ls "$layer_size" '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
}' >"$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

jq -cn --arg md "$manifest_digest" --argjson ms "$manifest_size" --arg name "$name" --arg tag "$tag" --arg arch "$arch" '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                 platform: {architecture: $arch, os: "linux"},
                 annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": $tag}}]
}' >"$work/layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
# docker/podman load
jq -cn --arg c "blobs/sha256/${config_digest#sha256:}" --arg l "blobs/sha256/${layer_digest#sha256:}" --arg name "$name" \
    '[{Config: $c, RepoTags: [$name], Layers: [$l]}]' >"$work/layout/manifest.json"

mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$(dirname "$out")/.image.XXXXXX")
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" --format=ustar \
    -C "$work/layout" -cf "$tmp" oci-layout index.json manifest.json blobs || { rm -f "$tmp"; die "tar failed"; }
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
echo "image.sh: $out: $name ($arch, ${binaries[*]}; manifest $manifest_digest, layer $((layer_size / 1024)) KiB)" >&2
