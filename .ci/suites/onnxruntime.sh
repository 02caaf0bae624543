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
# The test binaries the README's test command built (`--no-run` with the same selection
# compiles nothing; selecting some tests with -p or --test would unify the dependencies'
# features differently and compile tract again, 4 minutes), run from their package's
# directory as cargo runs them.
tests=$(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"], os.path.dirname(m["manifest_path"]))
')
run() {  # run TEST [FILTER...]: one test binary, as `cargo test --test TEST -- FILTER` would
    local name=$1; shift
    local line; line=$(grep "^$name " <<<"$tests") || { echo "FAILED: no test binary $name" >&2; exit 1; }
    read -r _ exe dir <<<"$line"
    echo "== $name $*"
    (cd "$dir" && "$exe" --nocapture "$@")
}
run corpus
run files
# The engine through the binary: chosen by --engine, refused and proven as it must be, loaded
# by the workers and never by the master, the corpus sample and the heavy shapes over V2.
run onnxruntime
run sklearn on_onnxruntime
