#!/usr/bin/env bash
# Build the offline Python base image for one architecture from Debian packages, without Docker Hub:
#   scripts/build-base-image.sh amd64|arm64      -> image edgebench/base:bookworm-py311-<arch>
# Debian bookworm's python3 (3.11) on a minbase root. The foreign architecture is only unpacked
# (debootstrap --foreign, then dpkg-deb -x), never executed. The root file system becomes a one-layer image
# whose config names the right architecture (scripts/rootfs_image.py) and is loaded with `docker load`.
# Cached under $EDGEBENCH_CACHE/base, keyed by this script, rootfs_image.py, the suite, arch and packages.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: $0 amd64|arm64}
suite=bookworm
packages=python3
mirror=${EDGEBENCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
tag=edgebench/base:$suite-py311-$arch
cache=${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/base
key=$(cat "$0" scripts/rootfs_image.py | sha256sum | cut -c1-16)-$suite-$arch
archive=$cache/$key.tar
mkdir -p "$cache"

current=$(docker image inspect --format '{{ index .Config.Labels "org.edgebench.base.key" }}' "$tag" 2>/dev/null || true)
if [ "$current" = "$key" ]; then
    echo "base image $tag is up to date"
    exit 0
fi
if [ ! -s "$archive" ]; then
    work=$(mktemp -d "$cache/build.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    start=$(date +%s)
    host_arch=$(dpkg --print-architecture)
    if [ "$arch" = "$host_arch" ]; then
        echo "debootstrap $suite $arch (native) ..."
        debootstrap --variant=minbase --include="$packages" --arch "$arch" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 \
            || { tail -20 "$work/log"; exit 1; }
    else
        echo "debootstrap --foreign $suite $arch (unpacked only) ..."
        debootstrap --foreign --variant=minbase --include="$packages" --arch "$arch" "$suite" "$work/root" "$mirror" \
            >"$work/log" 2>&1 || { tail -20 "$work/log"; exit 1; }
        for deb in "$work"/root/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
        rm -rf "$work/root/debootstrap"
    fi
    rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/* \
        "$work"/root/usr/share/doc "$work"/root/usr/share/man "$work"/root/usr/share/locale "$work"/root/usr/share/info
    python3 scripts/rootfs_image.py "$work/root" "$arch" "$tag" "$archive.tmp" --label "org.edgebench.base.key=$key"
    mv "$archive.tmp" "$archive"
    echo "built $archive in $(( $(date +%s) - start )) s"
fi
docker load -i "$archive"
