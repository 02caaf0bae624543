#!/usr/bin/env bash
# Real Python clients (tritonclient[http] with its binary-tensor defaults, tritonclient[grpc],
# grpc.health.v1 and reflection clients, requests) against the real binary, in a venv this
# script makes. Needs the debug binary that `cargo test`
# built (it builds it if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${SERVE_CI_VENV:-.venv-ci}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
[ -x target/debug/serve ] || cargo build --bin serve
"$venv/bin/python" tests/python/test_clients.py target/debug/serve
"$venv/bin/python" tests/python/test_grpc.py target/debug/serve
