"""Train the iris example model and write examples/iris/model.onnx.

A multinomial LogisticRegression on scikit-learn's bundled iris data (no download),
exported by hand with onnx.helper as MatMul + Add -> Softmax / ArgMax, a graph that
tract-onnx and onnxruntime both run.

    python examples/iris/train.py

Inputs:  input          FP32  [N, 4]  sepal length, sepal width, petal length, petal width (cm)
Outputs: label          INT64 [N]     0 = setosa, 1 = versicolor, 2 = virginica
         probabilities  FP32  [N, 3]  softmax over the three classes
"""

import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "model.onnx")

OPSET = 13
IR_VERSION = 8  # what opset 13 shipped with; tract and onnxruntime both read it
SEED = 0
CLASSES = ["setosa", "versicolor", "virginica"]


def build_graph(coef: np.ndarray, intercept: np.ndarray) -> onnx.ModelProto:
    """coef: [3, 4], intercept: [3] -> ONNX model (logits = input @ coef.T + intercept)."""
    w = numpy_helper.from_array(np.ascontiguousarray(coef.T, dtype=np.float32), "coef")
    b = numpy_helper.from_array(intercept.astype(np.float32), "intercept")
    nodes = [
        helper.make_node("MatMul", ["input", "coef"], ["scores"], name="matmul"),
        helper.make_node("Add", ["scores", "intercept"], ["logits"], name="add"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "iris_logistic_regression",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        outputs=[
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
        ],
        initializer=[w, b],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="serve-examples",
        ir_version=IR_VERSION,
    )
    model.doc_string = (
        "Iris LogisticRegression (scikit-learn). input: FP32 [N,4] sepal length, sepal width, "
        "petal length, petal width in cm. label: INT64 [N] 0=setosa 1=versicolor 2=virginica. "
        "probabilities: FP32 [N,3]."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> int:
    t0 = time.perf_counter()
    X, y = load_iris(return_X_y=True)

    def make():
        return LogisticRegression(C=1.0, max_iter=1000, random_state=SEED)

    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    cv_acc = cross_val_score(make(), X, y, cv=cv)

    clf = make().fit(X, y)
    train_acc = clf.score(X, y)

    model = build_graph(clf.coef_, clf.intercept_)
    data = model.SerializeToString()
    with open(OUT, "wb") as f:
        f.write(data)

    # Check the file with onnxruntime against scikit-learn's own answers.
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    X32 = X.astype(np.float32)
    label, proba = sess.run(["label", "probabilities"], {"input": X32})
    assert label.dtype == np.int64 and label.shape == (150,), (label.dtype, label.shape)
    assert proba.dtype == np.float32 and proba.shape == (150, 3), (proba.dtype, proba.shape)
    ref = clf.predict_proba(X32.astype(np.float64))
    err = float(np.max(np.abs(proba - ref)))
    assert err < 1e-5, f"onnxruntime vs sklearn predict_proba: max abs diff {err}"
    assert np.array_equal(label, clf.predict(X32.astype(np.float64))), "labels differ"

    canon = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    clabel, cproba = sess.run(["label", "probabilities"], {"input": canon})
    assert clabel.tolist() == [0, 2], clabel
    assert np.max(np.abs(cproba - clf.predict_proba(canon.astype(np.float64)))) < 1e-5

    print(f"wrote {os.path.relpath(OUT)} ({len(data)} bytes)")
    print(f"5-fold CV accuracy {cv_acc.mean():.4f} (+/- {cv_acc.std():.4f}); training accuracy {train_acc:.4f}")
    print(f"onnxruntime vs sklearn predict_proba, 150 rows: max abs diff {err:.2e}")
    for row, lab, p in zip(canon.tolist(), clabel.tolist(), cproba.tolist()):
        print(f"  {[round(v, 1) for v in row]} -> {lab} ({CLASSES[lab]}), probabilities {[round(v, 6) for v in p]}")
    print(f"done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
