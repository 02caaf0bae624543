#!/usr/bin/env bash
# Builds the repository's Dockerfile into localhost/serve:ci, on the local base images
# (images.sh), reusing the one release build: the checkout, its target dir, cargo's home and
# the toolchain are mounted at their host paths and the builder's environment is lib.sh's,
# so cargo in the builder stage finds everything fresh. Fails if it compiled anything.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}

# The builder: images.sh's, with the release build's environment.
{
    echo "FROM localhost/serve-builder:ci"
    for name in $RELEASE_ENV_NAMES; do echo "ENV $name=${!name}"; done
} | podman build --quiet -t localhost/serve-builder:release -f - "$ROOT/.ci/deploy" >/dev/null

log=$(mktemp)
podman build --format docker --network host --no-cache \
    --build-arg BUILDER_IMAGE=localhost/serve-builder:release \
    --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-minbase \
    --build-arg SRC="$ROOT" --build-arg CARGO_BUILD_TARGET="$TRIPLE" \
    -v "$ROOT:$ROOT" -v "$cargo_home:$cargo_home" -v "$rustup_home:$rustup_home:ro" \
    -v /etc/ssl/certs:/etc/ssl/certs:ro \
    -t localhost/serve:ci . 2>&1 | tee "$log"
if grep -q '^ *Compiling ' "$log"; then
    echo "FAILED: the builder stage compiled again what the release build had built:" >&2
    grep '^ *Compiling ' "$log" >&2
    exit 1
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' localhost/serve:ci
