#!/usr/bin/env bash
# The onnxruntime engine: the corpus through it, with the library from PyPI's onnxruntime
# wheel (where users get it), in a venv this script makes. Here the library must be found:
# SERVE_REQUIRE_ONNXRUNTIME=1 makes its absence a failure, never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${SERVE_ORT_VENV:-.venv-onnxruntime}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/onnxruntime/requirements.txt
# Absolute: cargo runs each test binary in its own package's directory.
ORT_DYLIB_PATH=$(realpath "$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | sort -V | tail -n 1)")
export ORT_DYLIB_PATH SERVE_REQUIRE_ONNXRUNTIME=1
echo "onnxruntime library: $ORT_DYLIB_PATH"
# --workspace, as the README's test command builds: selecting one package would unify the
# dependencies' features differently and compile everything again.
cargo test --workspace --test corpus --test files -- --nocapture
# The engine through the binary: chosen by --engine, refused and proven as it must be, loaded
# by the workers and never by the master, the corpus sample and the heavy shapes over V2.
cargo test --workspace --test onnxruntime -- --nocapture
cargo test --workspace --test sklearn on_onnxruntime -- --nocapture
