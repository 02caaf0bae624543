"""The iris tutorial's Flask app on onnxruntime instead of a pickle, as the bench serves it.

    IRIS_ONNX=examples/iris/model.onnx gunicorn -w 2 -b 127.0.0.1:8003 iris_onnx:app
    IRIS_ONNX=examples/iris/model.onnx granian --interface wsgi --workers 2 ... iris_onnx:app

The same model file as `serve` runs, the same routes and answers as iris_sklearn.py. The
session uses one intra-op thread: each worker process owns a core, as serve's workers do
(onnxruntime's default of one thread per core oversubscribes 2 cores with 2 workers).
"""

import os

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request

_opts = ort.SessionOptions()
_opts.intra_op_num_threads = 1
_opts.inter_op_num_threads = 1
sess = ort.InferenceSession(os.environ["IRIS_ONNX"], _opts, providers=["CPUExecutionProvider"])

app = Flask(__name__)


def predict(rows):
    label, proba = sess.run(["label", "probabilities"], {"input": rows})
    return label, proba


@app.route("/v1/models/iris:predict", methods=["POST"])
def v1():
    rows = np.asarray(request.get_json(force=True)["instances"], dtype=np.float32)
    label, proba = predict(rows)
    return jsonify(predictions=[{"label": int(lab), "probabilities": p.tolist()}
                                for lab, p in zip(label, proba)])


@app.route("/v2/models/iris/infer", methods=["POST"])
def v2():
    inp = request.get_json(force=True)["inputs"][0]
    rows = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
    label, proba = predict(rows)
    return jsonify(model_name="iris", outputs=[
        {"name": "label", "datatype": "INT64", "shape": [len(label)], "data": label.tolist()},
        {"name": "probabilities", "datatype": "FP32", "shape": list(proba.shape),
         "data": proba.ravel().tolist()},
    ])
