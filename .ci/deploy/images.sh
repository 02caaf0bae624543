#!/usr/bin/env bash
# The base images this machine cannot pull: a minbase Debian 12 made by debootstrap (the
# runtime base, as debian:bookworm-slim is), one with Python's pip on it (for
# Dockerfile.onnxruntime), and a builder on it with gcc, whose Rust
# toolchain and crates are the host's own, mounted at the paths they have on the host (so the
# builder's cargo finds the host's release build fresh and compiles nothing again).
# Skips an image that exists: delete it (podman rmi) to make it again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! podman image exists localhost/debian:bookworm-minbase; then
    rootfs=$(mktemp -d /var/tmp/serve-rootfs.XXXXXX)
    debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    # apt's lists and caches are not part of an image's base.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | podman import --quiet - localhost/debian:bookworm-minbase >/dev/null
    rm -rf "$rootfs"
fi

if ! podman image exists localhost/serve-builder:ci; then
    # PATH and homes as the official rust image sets them, pointed at the host's toolchain.
    podman build --quiet --network host -t localhost/serve-builder:ci -f - "$ROOT/.ci/deploy" <<EOF2
FROM localhost/debian:bookworm-minbase
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup} CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} \
    PATH=${CARGO_HOME:-$HOME/.cargo}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF2
fi
if ! podman image exists localhost/python:ci; then
    # Dockerfile.onnxruntime's first stage (python:3.12-slim-bookworm elsewhere): pip, to take
    # onnxruntime's library out of PyPI's wheel.
    podman build --quiet --network host -t localhost/python:ci -f - "$ROOT/.ci/deploy" <<EOF2
FROM localhost/debian:bookworm-minbase
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
EOF2
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'minbase|serve-builder|python'
