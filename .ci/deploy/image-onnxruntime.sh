#!/usr/bin/env bash
# Builds Dockerfile.onnxruntime on the image image.sh built (localhost/serve:ci) into
# localhost/serve:ci-onnxruntime, its first stage on images.sh's Python base. pip reaches
# PyPI through the host's network and CA bundle (mounted), as cargo and the other pips here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
podman build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro \
    -f Dockerfile.onnxruntime \
    --build-arg SERVE_IMAGE=localhost/serve:ci --build-arg PYTHON_IMAGE=localhost/python:ci \
    -t localhost/serve:ci-onnxruntime .
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' localhost/serve
