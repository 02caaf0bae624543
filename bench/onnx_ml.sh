#!/usr/bin/env bash
# serve against onnxruntime on scikit-learn models: time per row at batch 1 and 64.
#
#   bench/onnx_ml.sh            # build (release, cached), time both sides, print the table
#
# The models are the corpus's bench_ cases (corpus/sklearn/generate.py): a 100-tree random
# forest, a 100-stage gradient-boosted classifier and an RBF SVC with probabilities, on 24
# features; the rows are the corpus's stored inputs (rows of the dataset). serve's side is
# crates/onnx-ml/examples/operator_bench.rs (release), onnxruntime's is bench/onnx_ml.py (the file as
# exported, and again with its ZipMap removed), one thread each, one after the other. The
# target is serve within 1.5x of the faster onnxruntime figure at batch 64.
# Results: bench/results/onnx_ml-<run>.json and onnx_ml-latest.json. Figures, not a test:
# run it on a quiet machine (the load average is recorded).
#
# Environment: BENCH_VENVS (default /work/bench-venvs; the venv is $BENCH_VENVS/onnx-ml, from
# corpus/sklearn/requirements.txt), BENCH_TARGET_DIR (/work/target-bench), PYTHON (python3,
# 3.11).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
VENV="${BENCH_VENVS:-/work/bench-venvs}/onnx-ml"
TARGET="${BENCH_TARGET_DIR:-/work/target-bench}"
PYTHON="${PYTHON:-python3}"
MODELS=(bench_random_forest bench_gradient_boosting bench_svc_rbf)

say() { printf '[onnx_ml %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

req="$REPO/corpus/sklearn/requirements.txt"
want="$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$VENV/.bench-stamp" ] || [ "$(cat "$VENV/.bench-stamp")" != "$want" ]; then
    say "venv: installing $req into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$VENV/.bench-stamp"
fi

say "building the benchmark (release, CARGO_TARGET_DIR=$TARGET)"
(cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet -p serve-onnx-ml --example operator_bench)
BENCH="$TARGET/release/examples/operator_bench"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${MODELS[@]}"; do
    model="$REPO/corpus/sklearn/$m.onnx"
    "$VENV/bin/python" "$HERE/onnx_ml.py" rows "$REPO/corpus/sklearn/$m.json" "$work/$m.f32"
    "$BENCH" "$model" "$work/$m.f32" "$m" >> "$work/lines.jsonl"
    "$VENV/bin/python" "$HERE/onnx_ml.py" ort "$model" "$work/$m.f32" "$m" >> "$work/lines.jsonl"
done
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$VENV/bin/python" "$HERE/onnx_ml.py" report "$work/lines.jsonl" "$HERE/results"
