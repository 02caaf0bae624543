"""A Python stack on onnxruntime that speaks KServe V2's binary tensor extension, as serve does:
the peer of bench/engines.py, and its timing of `session.run` alone.

    V2_MODELS=resnet18.onnx gunicorn -w 2 -b 127.0.0.1:8004 v2_binary:app
    python v2_binary.py MODEL BODY JSON_LENGTH SECONDS   # session.run on BODY's inputs, timed

`POST /v2/models/NAME/infer` (NAME: the file's stem, as serve names it) takes what serve takes
from tritonclient: a JSON header of `Inference-Header-Content-Length` bytes whose inputs carry
`"parameters": {"binary_data_size": n}`, then each input's little-endian bytes in order. It
answers the same way: the outputs asked for (all when none is) as `binary_data_size` in the
JSON, their bytes after it. Both sides parse a header and read the tensors in place
(np.frombuffer), so the work besides the model call is the same.

Each session has one intra-op and one inter-op thread, as serve's workers (--model-threads 1):
each worker process owns a core.
"""

import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from flask import Flask, Response, jsonify, request

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
DATATYPES = {np.dtype(v): k for k, v in DTYPES.items()}


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def decode(body, json_length):
    """A binary-extension body: (its JSON header, {input name: array viewing the body})."""
    header = json.loads(body[:json_length])
    feeds, at = {}, json_length
    for i in header["inputs"]:
        size, dtype = i["parameters"]["binary_data_size"], np.dtype(DTYPES[i["datatype"]])
        feeds[i["name"]] = np.frombuffer(body, dtype, size // dtype.itemsize, at).reshape(
            i["shape"])
        at += size
    return header, feeds


def encode(model, outputs):
    """The answer: (body, its JSON header's length)."""
    meta = [{"name": name, "datatype": DATATYPES[v.dtype], "shape": list(v.shape),
             "parameters": {"binary_data_size": v.nbytes}} for name, v in outputs.items()]
    head = json.dumps({"model_name": model, "outputs": meta}, separators=(",", ":")).encode()
    return head + b"".join(np.ascontiguousarray(v).tobytes() for v in outputs.values()), len(head)


def wanted(sess, header):
    return [o["name"] for o in header.get("outputs", [])] or [o.name for o in sess.get_outputs()]


app = Flask(__name__)
SESSIONS = {os.path.splitext(os.path.basename(p))[0]: session(p)
            for p in os.environ.get("V2_MODELS", "").split(os.pathsep) if p}


@app.route("/v2/health/ready")
def ready():
    return jsonify(ready=True)


@app.route("/v2/models/<name>/infer", methods=["POST"])
def infer(name):
    sess = SESSIONS.get(name)
    if sess is None:
        return jsonify(error=f"no model {name}"), 404
    header, feeds = decode(request.get_data(),
                           int(request.headers["Inference-Header-Content-Length"]))
    names = wanted(sess, header)
    body, length = encode(name, dict(zip(names, sess.run(names, feeds))))
    return Response(body, content_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(length)})


def time_calls(model, body_file, json_length, seconds):
    """session.run on the body's inputs, one call after the other for `seconds` (at least 3
    calls) after 2 calls of warm-up: milliseconds per call, as one JSON line."""
    sess = session(model)
    with open(body_file, "rb") as f:
        header, feeds = decode(f.read(), json_length)
    names = wanted(sess, header)
    for _ in range(2):
        sess.run(names, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        sess.run(names, feeds)
        times.append(time.perf_counter() - t)
    print(json.dumps({"calls": len(times), "mean_ms": 1000 * statistics.fmean(times),
                      "median_ms": 1000 * statistics.median(times),
                      "min_ms": 1000 * min(times), "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: v2_binary.py MODEL BODY JSON_LENGTH SECONDS")
    time_calls(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
