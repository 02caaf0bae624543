"""Write examples/{iris,titanic}/expected.json and examples/titanic/expected_sklearn.json:
inputs and onnxruntime's outputs for the Rust tests.

    python examples/expected.py

Reads the committed .onnx files (run the train scripts first if you changed them).
Tensors use KServe V2 naming: {"datatype": "FP32"|"INT64"|"BYTES", "shape": [...],
"data": [flat row-major list]}; BYTES data are plain strings; FP32 numbers are written as the
shortest decimal that parses back to the same float32. A ZipMap output (onnxruntime gives a
list of {label: probability} dicts) is written as serve's V2 answers it: the FP32 matrix
[N, C], columns in the ZipMap's label order, with those labels beside it as "classes".
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from sklearn.datasets import load_iris

HERE = os.path.dirname(os.path.abspath(__file__))

DATATYPE = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(object): "BYTES"}


def tensor(a: np.ndarray) -> dict:
    a = np.asarray(a)
    if a.dtype == np.float32:
        # the shortest decimal that reads back as the same float32: 5.1, not 5.099999904632568
        data = [float(str(x)) for x in a.reshape(-1)]
    else:
        data = a.reshape(-1).tolist()
    return {"datatype": DATATYPE[a.dtype], "shape": list(a.shape), "data": data}


def zipmap_classes(model_path: str) -> dict:
    """{graph output name: its labels, in order} for the outputs that a ZipMap node makes."""
    out = {}
    for node in onnx.load(model_path).graph.node:
        if node.op_type == "ZipMap" and node.domain == "ai.onnx.ml":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if "classlabels_strings" in attrs:
                labels = [b.decode("utf-8") for b in attrs["classlabels_strings"]]
            else:
                labels = [int(x) for x in attrs["classlabels_int64s"]]
            out[node.output[0]] = labels
    return out


def zipmap_tensor(rows, classes) -> dict:
    """onnxruntime's list of {label: probability} -> FP32 [N, C] in label order, + classes."""
    assert all(sorted(r, key=classes.index) == classes for r in rows), (rows[:1], classes)
    matrix = np.array([[r[c] for c in classes] for r in rows], dtype=np.float32).reshape(-1, len(classes))
    return {**tensor(matrix), "classes": classes}


def run_cases(model_path: str, cases):
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    zipmaps = zipmap_classes(model_path)
    out = []
    for name, feed in cases:
        results = sess.run(names, feed)
        out.append({
            "name": name,
            "inputs": {k: tensor(v) for k, v in feed.items()},
            "outputs": {k: zipmap_tensor(v, zipmaps[k]) if k in zipmaps else tensor(v)
                        for k, v in zip(names, results)},
        })
    return out


def dump(path: str, doc: dict) -> None:
    """JSON with one line per tensor, so diffs stay readable."""
    def enc(v, ind):
        pad = "  " * ind
        if isinstance(v, dict) and "datatype" in v:
            return json.dumps(v)
        if isinstance(v, dict):
            items = [f'{pad}  {json.dumps(k)}: {enc(x, ind + 1)}' for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list):
            items = [f"{pad}  {enc(x, ind + 1)}" for x in v]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(v)
    with open(path, "w") as f:
        f.write(enc(doc, 0) + "\n")
    print(f"wrote {os.path.relpath(path)} ({len(doc['cases'])} cases)")


def iris():
    f32 = np.float32
    X, _ = load_iris(return_X_y=True)
    cases = [
        ("setosa", {"input": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=f32)}),
        ("virginica", {"input": np.array([[6.7, 3.0, 5.2, 2.3]], dtype=f32)}),
        ("canonical_pair", {"input": np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=f32)}),
        # rows 0, 15, ..., 135 of load_iris: 4 setosa, 3 versicolor, 3 virginica
        ("batch10", {"input": X[::15].astype(f32)}),
    ]
    doc = {"model": "iris", "cases": run_cases(os.path.join(HERE, "iris", "model.onnx"), cases)}
    label = {c["name"]: c["outputs"]["label"]["data"] for c in doc["cases"]}
    assert label["setosa"] == [0] and label["virginica"] == [2] and label["canonical_pair"] == [0, 2], label
    dump(os.path.join(HERE, "iris", "expected.json"), doc)


def titanic_cases():
    """The titanic test cases, for both titanic models (they take the same inputs)."""
    def feed(rows):
        """rows: (Age, Fare, Embarked, Sex, Pclass) -> the five [N,1] inputs."""
        age, fare, emb, sex, pcl = zip(*rows)
        col = lambda v, dt: np.array(v, dtype=dt).reshape(-1, 1)
        return {
            "Age": col(age, np.float32),
            "Fare": col(fare, np.float32),
            "Embarked": col(emb, object),
            "Sex": col(sex, object),
            "Pclass": col(pcl, np.int64),
        }

    man3 = (22, 7.25, "S", "male", 3)  # the tutorial's request
    woman1 = (38, 71.2833, "C", "female", 1)
    cases = [
        ("tutorial_male_3rd", feed([man3])),
        ("female_1st", feed([woman1])),
        ("female_1st_vs_male_3rd", feed([woman1, man3])),
        ("unknown_categories", feed([(30, 20.0, "X", "other", 4)])),
        ("unknown_each", feed([(30, 20.0, "X", "male", 2),      # unknown port
                               (30, 20.0, "S", "other", 2),     # unknown sex
                               (30, 20.0, "S", "male", 4)])),   # unknown class
        # the first ten passengers of the well-known Kaggle train.csv (missing age set to 28)
        ("batch10", feed([
            (22, 7.25, "S", "male", 3),
            (38, 71.2833, "C", "female", 1),
            (26, 7.925, "S", "female", 3),
            (35, 53.1, "S", "female", 1),
            (35, 8.05, "S", "male", 3),
            (28, 8.4583, "Q", "male", 3),
            (54, 51.8625, "S", "male", 1),
            (2, 21.075, "S", "male", 3),
            (27, 11.1333, "S", "female", 3),
            (14, 30.0708, "C", "female", 2),
        ])),
    ]
    return cases


def titanic():
    cases = titanic_cases()
    doc = {"model": "titanic", "cases": run_cases(os.path.join(HERE, "titanic", "model.onnx"), cases)}
    pair = next(c for c in doc["cases"] if c["name"] == "female_1st_vs_male_3rd")["outputs"]["predict"]["data"]
    assert pair[0] > pair[1], pair
    dump(os.path.join(HERE, "titanic", "expected.json"), doc)


def titanic_sklearn():
    """The scikit-learn pipeline (train_sklearn.py): output_label INT64 [N] and the ZipMap
    output_probability, stored as FP32 [N, 2] with "classes": [0, 1]."""
    doc = {"model": "titanic_sklearn",
           "cases": run_cases(os.path.join(HERE, "titanic", "sklearn.onnx"), titanic_cases())}
    out = {c["name"]: c["outputs"] for c in doc["cases"]}
    pair = out["female_1st_vs_male_3rd"]
    assert pair["output_label"]["data"] == [1, 0], pair
    assert pair["output_probability"]["classes"] == [0, 1], pair
    p = pair["output_probability"]["data"]  # [[died, survived] woman, [died, survived] man]
    assert p[1] > p[3], p
    dump(os.path.join(HERE, "titanic", "expected_sklearn.json"), doc)


if __name__ == "__main__":
    iris()
    titanic()
    titanic_sklearn()
    sys.exit(0)
