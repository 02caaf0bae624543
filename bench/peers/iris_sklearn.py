"""The iris tutorial's Flask app (scikit-learn pickle), as the bench serves it.

    IRIS_PKL=/path/iris-logreg.pkl gunicorn -w 2 -b 127.0.0.1:8002 iris_sklearn:app

The tutorial's app unpickles a LogisticRegression at import and predicts per request. Here it
answers the same requests as `serve examples/iris/model.onnx`, so one wrk script drives both:
TF-Serving V1 `POST /v1/models/iris:predict` {"instances": [[...], ...]} and KServe V2
`POST /v2/models/iris/infer`, with label and probabilities per row (one predict_proba call).
"""

import os
import pickle

import numpy as np
from flask import Flask, jsonify, request

with open(os.environ["IRIS_PKL"], "rb") as f:
    model = pickle.load(f)

app = Flask(__name__)


def predict(rows):
    proba = model.predict_proba(np.asarray(rows, dtype=np.float64))
    return proba.argmax(axis=1), proba


@app.route("/v1/models/iris:predict", methods=["POST"])
def v1():
    label, proba = predict(request.get_json(force=True)["instances"])
    return jsonify(predictions=[{"label": int(lab), "probabilities": p.tolist()}
                                for lab, p in zip(label, proba)])


@app.route("/v2/models/iris/infer", methods=["POST"])
def v2():
    inp = request.get_json(force=True)["inputs"][0]
    rows = np.asarray(inp["data"], dtype=np.float64).reshape(inp["shape"])
    label, proba = predict(rows)
    return jsonify(model_name="iris", outputs=[
        {"name": "label", "datatype": "INT64", "shape": [len(label)], "data": label.tolist()},
        {"name": "probabilities", "datatype": "FP32", "shape": list(proba.shape),
         "data": proba.ravel().tolist()},
    ])
