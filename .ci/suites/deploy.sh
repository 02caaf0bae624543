#!/usr/bin/env bash
# Deploy for real (issue 10): the one release build, the wheel, the systemd units, the
# Kubernetes manifests, the KServe runtime (issue 24), the container image built from the
# Dockerfile and run with podman, podman kube play, and a rolling update behind haproxy.
# Installs what it needs itself (.ci/deploy/setup.sh). Each step prints its duration.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/deploy/lib.sh

timed "setup: podman, haproxy, debootstrap, tools venv" bash .ci/deploy/setup.sh
timed "the one release build (zig, glibc 2.17)" cargo build --release --locked --bin serve
timed "wheel: build, install in a fresh venv, serve" bash .ci/deploy/wheel.sh
timed "systemd: units verified, socket activation, notify" bash .ci/deploy/systemd.sh "$RELEASE_BIN"
timed "kubernetes: manifests against the schemas" bash .ci/deploy/k8s-validate.sh "$RELEASE_BIN"
timed "kserve: manifests against KServe's CRD schemas, the pods it would make, serve's arguments" bash .ci/deploy/kserve-validate.sh "$RELEASE_BIN"
timed "base images: debootstrap minbase, builder" bash .ci/deploy/images.sh
timed "image: the Dockerfile on the release build" bash .ci/deploy/image.sh
timed "container: health, tutorials, PID 1, HUP and stop under load" python3 tests/deploy/test_container.py
timed "image: Dockerfile.onnxruntime (the library from PyPI's wheel)" bash .ci/deploy/image-onnxruntime.sh
timed "container on onnxruntime: tutorials, workers load it, master never, HUP" python3 tests/deploy/test_container_onnxruntime.py
timed "kubernetes: podman kube play" python3 tests/deploy/test_kube.py
timed "kserve: the runtime's pod with podman kube play, V2, V1 and gRPC by the InferenceService's name" "$TOOLS/bin/python" tests/deploy/test_kserve.py
timed "rolling update behind haproxy" python3 tests/deploy/test_rolling.py
