#!/usr/bin/env bash
# The wheel, as ruff and uv ship their binaries: maturin (bindings = "bin") on the one release
# build (lib.sh's environment: zig links for glibc 2.17, so the tag is manylinux2014), then
# installed into a fresh venv, whose `serve` serves the embedded model.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

rm -rf target/wheels
"$TOOLS/bin/maturin" build --release --locked --target "$TRIPLE" --compatibility manylinux2014 \
    -o target/wheels
wheel=$(ls target/wheels/serve-*.whl)
echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) KB)"
case "$wheel" in
    *manylinux_2_17_x86_64*) ;;
    *) echo "FAILED: the wheel is not tagged manylinux_2_17 (glibc 2.17): $wheel" >&2; exit 1 ;;
esac

venv=$(mktemp -d /tmp/serve-wheel.XXXXXX)
pid=
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
serve=$venv/bin/serve
[ -x "$serve" ] || { echo "FAILED: installing the wheel put no serve in $venv/bin" >&2; exit 1; }
# The newest glibc symbol version the binary needs: what a machine must have to run it.
glibc=$(python3 - "$serve" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
versions = {tuple(map(int, v.split(b"."))) for v in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)", data)}
print(".".join(map(str, max(versions))))
PY
)
echo "the installed serve: $("$serve" --version); needs glibc >= $glibc; stripped: $(file -b "$serve" | grep -o 'not stripped\|stripped')"
case "$glibc" in
    2.1[0-7] | 2.[0-9]) ;;
    *) echo "FAILED: the binary needs glibc $glibc, newer than manylinux2014's 2.17" >&2; exit 1 ;;
esac

# serves_setosa LOG ARGS...: the venv's serve (from PATH, without ORT_DYLIB_PATH or an active
# venv) started with ARGS answers the setosa row of the embedded iris model; its log in LOG.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
serves_setosa() {
    local log=$1; shift
    env -u ORT_DYLIB_PATH -u VIRTUAL_ENV PATH="$venv/bin:$PATH" \
        serve -w 1 -b "127.0.0.1:$port" "$@" 2>"$log" &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:$port/v2/health/ready" >/dev/null && break
        sleep 0.2
    done
    answer=$(curl -sf "127.0.0.1:$port/v2/models/iris/infer" -H 'Content-Type: application/json' \
        -d '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}') || {
        echo "FAILED: the wheel's serve $* did not answer"; cat "$log"; exit 1
    }
    echo "the wheel's serve $* answered: $answer"
    grep -q '"name":"label".*"data":\[0\]' <<<"$answer" || { echo "FAILED: not setosa" >&2; exit 1; }
    kill -TERM "$pid"
    wait "$pid"
}

# It serves the embedded iris model from the venv's PATH.
serves_setosa "$venv/serve.log"

# The extra: `serve[onnxruntime]` pulls onnxruntime from PyPI, and the same serve finds its
# library in the venv with no flag and no ORT_DYLIB_PATH.
"$venv/bin/pip" install --quiet --disable-pip-version-check "$(realpath "$wheel")[onnxruntime]"
serves_setosa "$venv/serve-ort.log" --engine onnxruntime
grep -q 'model iris (on onnxruntime)' "$venv/serve-ort.log" || {
    echo "FAILED: the model did not run on onnxruntime"; cat "$venv/serve-ort.log"; exit 1
}
echo "wheel: ok"
