"""Operator-level ONNX-ML graphs, built with onnx.helper, labelled by onnxruntime.

Run by hand (see ../README.md), from any directory:

    python corpus/ops/generate.py              # every case
    python corpus/ops/generate.py tree_ svm_   # only the cases whose name starts so

skl2onnx emits a narrow slice of each operator (BRANCH_LEQ trees, list attributes, float
inputs...). These cases cover the rest: every branch mode, missing-value tracking, each
aggregate function and post_transform, the opset 3 `*_as_tensor` attributes, tree and node
ids that do not start at 0, string labels, each SVM kernel with and without probabilities,
every input type an operator takes, the encoders' unknown values. Each graph is one operator
(or one operator and its constant inputs) with a symbolic batch `N`; the parameters are
random but fixed (seeded), or taken from a small scikit-learn fit where random numbers would
make a degenerate model (the SVMs). Only cases onnxruntime accepts are written: a case it
refuses is a bug here.
"""

import os
import sys
import warnings

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from sklearn import datasets
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, OneClassSVM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import corpus_io  # noqa: E402
from corpus_io import write_case  # noqa: E402

FLOAT, DOUBLE = TensorProto.FLOAT, TensorProto.DOUBLE
INT64, INT32, STRING = TensorProto.INT64, TensorProto.INT32, TensorProto.STRING
NUMPY = {FLOAT: np.float32, DOUBLE: np.float64, INT64: np.int64, INT32: np.int32, STRING: object}
POST = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]

# scikit-learn 1.9 deprecates SVC(probability=True), whose Platt parameters the SVM cases
# take; the parameters are what matter here.
warnings.filterwarnings("ignore", category=FutureWarning)
CASES = corpus_io.Cases()
case = CASES.case


def rng(salt=0):
    return np.random.default_rng(1234 + salt)


def value(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def one_op(op_type, inputs, outputs, ml=3, initializers=(), **attrs):
    """A graph of one ai.onnx.ml node; `inputs`/`outputs` are (name, type, shape) triples,
    `initializers` numpy arrays by name that feed the node after the graph inputs."""
    names = [n for n, _, _ in inputs] + [n for n, _ in initializers]
    node = helper.make_node(
        op_type,
        names,
        [n for n, _, _ in outputs],
        domain="ai.onnx.ml",
        name=f"{op_type}_0",
        **attrs,
    )
    graph = helper.make_graph(
        [node],
        f"{op_type.lower()}_case",
        [value(*i) for i in inputs],
        [value(*o) for o in outputs],
        initializer=[numpy_helper.from_array(a, name=n) for n, a in initializers],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", ml)],
        ir_version=8,
        producer_name="serve corpus/ops",
    )


def save(name, model, feeds):
    write_case(HERE, name, model, feeds)


# Inputs.

EDGES = [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 1e6, -1e6]


def floats(f, n=120, salt=0, nan=False, grid=None, dtype=np.float32):
    """n rows of f features: normal values (or values of `grid`, so that equality and
    thresholds are hit exactly), then edge rows; NaN rows when `nan`."""
    r = rng(salt)
    if grid is None:
        body = r.normal(0, 2, size=(n, f))
    else:
        body = r.choice(np.asarray(grid, dtype=np.float64), size=(n, f))
    edges = [np.full(f, e) for e in EDGES]
    edges.append(np.where(np.arange(f) % 2 == 0, 1e30, -1e30))
    if nan:
        edges.append(np.full(f, np.nan))
        edges += [np.where(np.arange(f) == j, np.nan, body[j]) for j in range(f)]
        mixed = body[:20].copy()
        mixed[r.random(mixed.shape) < 0.3] = np.nan
        edges += list(mixed)
    return np.vstack([body, np.array(edges)]).astype(dtype)


def ints(f, n=120, salt=0, lo=-3, hi=6, dtype=np.int64, extremes=True):
    """n rows of small integers, a row of zeros, then (when `extremes`) rows of the int32
    limits."""
    r = rng(salt)
    body = r.integers(lo, hi, size=(n, f))
    edges = [[0] * f]
    if extremes:
        edges += [[np.iinfo(np.int32).max] * f, [np.iinfo(np.int32).min] * f]
    return np.vstack([body, np.array(edges)]).astype(dtype)


# Trees.

GRID = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def tree_nodes(r, tree_id, depth, n_features, modes, node_base=0, tracks=None, shuffle=False):
    """A full binary tree of `depth` levels, node ids from `node_base` in breadth-first
    order (shuffled in the lists when `shuffle`). Returns the node attribute lists and
    the ids of the leaves."""
    count = 2 ** (depth + 1) - 1
    ids = list(range(count))
    # Shuffled, the root stays first: onnxruntime takes each tree's first listed node as
    # its root (and with the root elsewhere answers neither from it nor from node 0).
    order = np.r_[0, 1 + r.permutation(count - 1)] if shuffle else np.arange(count)
    nodes = {
        k: []
        for k in [
            "treeids",
            "nodeids",
            "featureids",
            "values",
            "modes",
            "truenodeids",
            "falsenodeids",
            "tracks",
        ]
    }
    leaves = []
    for i in order:
        i = int(i)
        leaf = 2 * i + 1 >= count
        nodes["treeids"].append(tree_id)
        nodes["nodeids"].append(node_base + ids[i])
        if leaf:
            leaves.append(node_base + i)
            nodes["featureids"].append(0)
            nodes["values"].append(0.0)
            nodes["modes"].append("LEAF")
            nodes["truenodeids"].append(0)
            nodes["falsenodeids"].append(0)
            nodes["tracks"].append(0)
        else:
            nodes["featureids"].append(int(r.integers(n_features)))
            nodes["values"].append(float(r.choice(GRID)))
            nodes["modes"].append(modes[int(r.integers(len(modes)))])
            nodes["truenodeids"].append(node_base + 2 * i + 1)
            nodes["falsenodeids"].append(node_base + 2 * i + 2)
            nodes["tracks"].append(int(r.integers(2)) if tracks == "mixed" else int(tracks or 0))
    return nodes, leaves


def forest(
    salt, n_trees, depth, n_features, modes, tree_base=0, node_base=0, tracks=None, shuffle=False
):
    r = rng(salt)
    attrs = {
        k: []
        for k in [
            "treeids",
            "nodeids",
            "featureids",
            "values",
            "modes",
            "truenodeids",
            "falsenodeids",
            "tracks",
        ]
    }
    leaves = []
    for t in range(n_trees):
        nodes, tree_leaves = tree_nodes(
            r, tree_base + t, depth, n_features, modes, node_base, tracks, shuffle
        )
        for k in attrs:
            attrs[k] += nodes[k]
        leaves += [(tree_base + t, leaf) for leaf in tree_leaves]
    out = {
        "nodes_treeids": attrs["treeids"],
        "nodes_nodeids": attrs["nodeids"],
        "nodes_featureids": attrs["featureids"],
        "nodes_values": attrs["values"],
        "nodes_modes": attrs["modes"],
        "nodes_truenodeids": attrs["truenodeids"],
        "nodes_falsenodeids": attrs["falsenodeids"],
    }
    if tracks is not None:
        out["nodes_missing_value_tracks_true"] = attrs["tracks"]
    return out, leaves, r


def leaf_weights(r, leaves, n_outputs, prefix, every_output=True, positive=False):
    """Leaf weights: each leaf gives every output (or one random output) a weight."""
    tree, node, out, weight = [], [], [], []
    for t, leaf in leaves:
        targets = range(n_outputs) if every_output else [int(r.integers(n_outputs))]
        for k in targets:
            tree.append(t)
            node.append(leaf)
            out.append(k)
            w = r.uniform(0, 1) if positive else r.normal(0, 1)
            weight.append(float(np.float32(w)))
    return {
        f"{prefix}_treeids": tree,
        f"{prefix}_nodeids": node,
        f"{prefix}_ids": out,
        f"{prefix}_weights": weight,
    }


def as_tensor(attrs, names, dtype):
    """The opset 3 form: the listed float lists as tensors `<name>_as_tensor`, of the input's
    float type (onnxruntime refuses a double tensor for a float input)."""
    attrs = dict(attrs)
    for n in names:
        attrs[f"{n}_as_tensor"] = numpy_helper.from_array(
            np.array(attrs.pop(n), dtype=dtype), name=n
        )
    return attrs


def regressor(
    name,
    salt,
    n_targets=1,
    modes=("BRANCH_LEQ",),
    aggregate=None,
    post=None,
    base=None,
    tracks=None,
    n_trees=3,
    depth=3,
    f=4,
    elem=FLOAT,
    x=None,
    tensors=False,
    tree_base=0,
    node_base=0,
    shuffle=False,
    nan=True,
):
    attrs, leaves, r = forest(
        salt, n_trees, depth, f, list(modes), tree_base, node_base, tracks, shuffle
    )
    attrs.update(leaf_weights(r, leaves, n_targets, "target"))
    attrs["n_targets"] = n_targets
    if aggregate:
        attrs["aggregate_function"] = aggregate
    if post:
        attrs["post_transform"] = post
    if base is not None:
        attrs["base_values"] = base
    if tensors:
        attrs = as_tensor(
            attrs,
            ["nodes_values", "target_weights"] + (["base_values"] if base is not None else []),
            NUMPY[elem],
        )
    model = one_op(
        "TreeEnsembleRegressor", [("X", elem, ["N", f])], [("Y", FLOAT, ["N", n_targets])], **attrs
    )
    if x is None:
        x = (
            floats(f, salt=salt, nan=nan, grid=GRID, dtype=NUMPY[elem])
            if elem in (FLOAT, DOUBLE)
            else ints(f, salt=salt, lo=-1, hi=4, dtype=NUMPY[elem])
        )
    save(name, model, {"X": x})


def classifier(
    name,
    salt,
    labels=(0, 1, 2),
    modes=("BRANCH_LEQ",),
    post=None,
    base=None,
    tracks=None,
    n_trees=3,
    depth=3,
    f=4,
    elem=FLOAT,
    tensors=False,
    class_count=None,
    every_class=True,
    positive=False,
    tree_base=0,
    node_base=0,
    nan=True,
):
    """A TreeEnsembleClassifier; `class_count` classes get leaf weights (default: one per
    label)."""
    attrs, leaves, r = forest(salt, n_trees, depth, f, list(modes), tree_base, node_base, tracks)
    count = len(labels) if class_count is None else class_count
    attrs.update(leaf_weights(r, leaves, count, "class", every_class, positive))
    strings = isinstance(labels[0], str)
    attrs["classlabels_strings" if strings else "classlabels_int64s"] = list(labels)
    if post:
        attrs["post_transform"] = post
    if base is not None:
        attrs["base_values"] = base
    if tensors:
        attrs = as_tensor(
            attrs,
            ["nodes_values", "class_weights"] + (["base_values"] if base is not None else []),
            NUMPY[elem],
        )
    label = STRING if strings else INT64
    scores = len(labels)
    model = one_op(
        "TreeEnsembleClassifier",
        [("X", elem, ["N", f])],
        [("label", label, ["N"]), ("scores", FLOAT, ["N", scores])],
        **attrs,
    )
    x = (
        floats(f, salt=salt, nan=nan, grid=GRID, dtype=NUMPY[elem])
        if elem in (FLOAT, DOUBLE)
        else ints(f, salt=salt, lo=-1, hi=4, dtype=NUMPY[elem])
    )
    save(name, model, {"X": x})


MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


@case
def tree_regressor_modes():
    for i, mode in enumerate(MODES):
        regressor(f"tree_regressor_mode_{mode[7:].lower()}", 10 + i, modes=[mode])
    regressor("tree_regressor_mode_mixed", 20, modes=MODES, n_trees=5, depth=4)


@case
def tree_regressor_missing():
    for i, mode in enumerate(MODES):
        regressor(
            f"tree_regressor_nan_tracks_true_{mode[7:].lower()}", 30 + i, modes=[mode], tracks=1
        )
    regressor("tree_regressor_nan_tracks_mixed", 40, modes=MODES, tracks="mixed", n_trees=4)


@case
def tree_regressor_aggregate():
    for i, agg in enumerate(["SUM", "AVERAGE", "MIN", "MAX"]):
        regressor(
            f"tree_regressor_aggregate_{agg.lower()}",
            50 + i,
            n_targets=2,
            aggregate=agg,
            base=[0.5, -1.0],
        )
        regressor(f"tree_regressor_aggregate_{agg.lower()}_one_target", 55 + i, aggregate=agg)


@case
def tree_regressor_post_transform():
    for i, post in enumerate(POST):
        regressor(f"tree_regressor_post_{post.lower()}", 60 + i, n_targets=3, post=post)
    regressor("tree_regressor_post_probit_one_target", 66, post="PROBIT", base=[0.0])
    regressor("tree_regressor_post_logistic_one_target", 67, post="LOGISTIC")


@case
def tree_regressor_layout():
    regressor("tree_regressor_ids_not_from_zero", 70, tree_base=7, node_base=20, n_targets=2)
    regressor("tree_regressor_nodes_shuffled", 71, shuffle=True, n_trees=2, depth=4)
    regressor("tree_regressor_as_tensor", 72, n_targets=2, base=[1.25, -0.5], tensors=True)
    regressor(
        "tree_regressor_as_tensor_double",
        77,
        n_targets=2,
        base=[1.25, -0.5],
        tensors=True,
        elem=DOUBLE,
    )
    regressor("tree_regressor_input_double", 73, elem=DOUBLE, n_targets=2)
    # onnxruntime has no integer-input TreeEnsembleRegressor (the classifier has one).
    regressor("tree_regressor_single_leaf", 76, n_trees=2, depth=0, base=[3.0])


@case
def tree_classifier_post_transform():
    for i, post in enumerate(POST):
        classifier(
            f"tree_classifier_post_{post.lower()}", 100 + i, post=post, base=[0.1, 0.0, -0.2]
        )


@case
def tree_classifier_binary():
    # skl2onnx's binary layout: every leaf weight on class id 0 (the positive class).
    # Not PROBIT: onnxruntime leaves the second score unwritten there (its value changes
    # from process to process) and answers NaN for the first.
    for i, post in enumerate(["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]):
        classifier(
            f"tree_classifier_binary_one_class_{post.lower()}",
            110 + i,
            labels=(0, 1),
            class_count=1,
            post=post,
            positive=True,
        )
        classifier(
            f"tree_classifier_binary_one_class_mixed_signs_{post.lower()}",
            115 + i,
            labels=(0, 1),
            class_count=1,
            post=post,
        )
    classifier(
        "tree_classifier_binary_one_class_base",
        120,
        labels=(0, 1),
        class_count=1,
        post="LOGISTIC",
        base=[-0.3],
    )
    classifier("tree_classifier_binary_two_classes", 121, labels=(0, 1))
    classifier("tree_classifier_binary_two_classes_logistic", 122, labels=(0, 1), post="LOGISTIC")
    classifier(
        "tree_classifier_binary_strings", 123, labels=("no", "yes"), class_count=1, positive=True
    )


@case
def tree_classifier_layout():
    classifier(
        "tree_classifier_strings", 130, labels=("cat", "dog", "bird", "fish"), post="SOFTMAX"
    )
    classifier("tree_classifier_ids_not_from_zero", 131, tree_base=3, node_base=25, post="SOFTMAX")
    classifier("tree_classifier_as_tensor", 132, tensors=True, base=[0.1, 0.2, 0.3], post="SOFTMAX")
    classifier("tree_classifier_as_tensor_double", 139, tensors=True, elem=DOUBLE, post="LOGISTIC")
    classifier(
        "tree_classifier_one_class_per_leaf", 133, labels=(10, 20, 30, 40), every_class=False
    )
    classifier(
        "tree_classifier_classes_without_weights",
        134,
        labels=(0, 1, 2, 3),
        class_count=3,
        post="SOFTMAX",
    )
    classifier(
        "tree_classifier_modes_tracks_mixed", 135, modes=MODES, tracks="mixed", n_trees=4, depth=4
    )
    classifier("tree_classifier_input_double", 136, elem=DOUBLE)
    classifier("tree_classifier_input_int64", 137, elem=INT64, modes=MODES)
    classifier("tree_classifier_input_int32", 138, elem=INT32)


# Linear models.


def linear_classifier(name, salt, labels, rows, post=None, elem=FLOAT, f=4, scale=1.0):
    r = rng(salt)
    coefficients = (r.normal(0, scale, size=(rows, f))).astype(np.float32).ravel().tolist()
    intercepts = r.normal(0, 1, size=rows).astype(np.float32).tolist()
    strings = isinstance(labels[0], str)
    attrs = {"coefficients": coefficients, "intercepts": intercepts}
    attrs["classlabels_strings" if strings else "classlabels_ints"] = list(labels)
    if post:
        attrs["post_transform"] = post
    model = one_op(
        "LinearClassifier",
        [("X", elem, ["N", f])],
        [
            ("label", STRING if strings else INT64, ["N"]),
            ("scores", FLOAT, ["N", max(rows, len(labels))]),
        ],
        ml=1,
        **attrs,
    )
    x = (
        floats(f, salt=salt, dtype=NUMPY[elem])
        if elem in (FLOAT, DOUBLE)
        else ints(f, salt=salt, dtype=NUMPY[elem])
    )
    save(name, model, {"X": x})


@case
def linear_classifier_cases():
    for i, post in enumerate(POST):
        linear_classifier(
            f"linear_classifier_multiclass_{post.lower()}", 200 + i, (0, 1, 2), 3, post
        )
        # One row of weights for two labels: the lone score is expanded to two. Not under
        # PROBIT: onnxruntime then leaves part of the scores unwritten (they change from
        # process to process).
        if post != "PROBIT":
            linear_classifier(
                f"linear_classifier_one_row_binary_{post.lower()}", 210 + i, (0, 1), 1, post
            )
        linear_classifier(
            f"linear_classifier_two_rows_binary_{post.lower()}", 220 + i, (0, 1), 2, post
        )
    linear_classifier("linear_classifier_strings", 230, ("a", "b", "c"), 3, "SOFTMAX")
    linear_classifier(
        "linear_classifier_one_row_binary_strings", 231, ("neg", "pos"), 1, "LOGISTIC"
    )
    linear_classifier("linear_classifier_input_double", 232, (0, 1, 2), 3, "SOFTMAX", elem=DOUBLE)
    linear_classifier("linear_classifier_input_int64", 233, (5, 6, 7), 3, elem=INT64)
    linear_classifier("linear_classifier_input_int32", 234, (5, 6, 7), 3, "LOGISTIC", elem=INT32)
    linear_classifier(
        "linear_classifier_softmax_zero_tiny_scores", 235, (0, 1, 2), 3, "SOFTMAX_ZERO", scale=1e-8
    )


def linear_regressor(name, salt, targets, post=None, f=5):
    r = rng(salt)
    attrs = {
        "coefficients": r.normal(0, 1, size=targets * f).astype(np.float32).tolist(),
        "intercepts": r.normal(0, 1, size=targets).astype(np.float32).tolist(),
        "targets": targets,
    }
    if post:
        attrs["post_transform"] = post
    model = one_op(
        "LinearRegressor", [("X", FLOAT, ["N", f])], [("Y", FLOAT, ["N", targets])], ml=1, **attrs
    )
    save(name, model, {"X": floats(f, salt=salt)})


@case
def linear_regressor_cases():
    for i, post in enumerate(POST):
        linear_regressor(f"linear_regressor_{post.lower()}", 250 + i, 3, post)
        linear_regressor(f"linear_regressor_one_target_{post.lower()}", 260 + i, 1, post)
    # onnxruntime's LinearRegressor takes float inputs only.


# Support vector machines: parameters from small scikit-learn fits on iris.

KERNELS = {"LINEAR": "linear", "POLY": "poly", "RBF": "rbf", "SIGMOID": "sigmoid"}


def iris_scaled(binary=False):
    X, y = datasets.load_iris(return_X_y=True)
    if binary:
        X, y = X[y > 0], y[y > 0] - 1
    return StandardScaler().fit_transform(X).astype(np.float32), y


def kernel_params(svm):
    return [float(svm._gamma), float(svm.coef0), float(svm.degree)]


def svm_classifier(
    name, kernel, binary=False, probabilities=False, labels=None, post=None, elem=FLOAT
):
    X, y = iris_scaled(binary)
    svc = SVC(
        kernel=KERNELS[kernel], degree=3, coef0=0.5, probability=probabilities, random_state=0
    ).fit(X, y)
    classes = len(svc.classes_)
    labels = list(labels or range(classes))
    strings = isinstance(labels[0], str)
    attrs = {
        "kernel_type": kernel,
        "kernel_params": kernel_params(svc),
        "vectors_per_class": [int(v) for v in svc.n_support_],
        "support_vectors": svc.support_vectors_.astype(np.float32).ravel().tolist(),
        "coefficients": svc.dual_coef_.astype(np.float32).ravel().tolist(),
        "rho": svc.intercept_.astype(np.float32).tolist(),
        "classlabels_strings" if strings else "classlabels_ints": labels,
    }
    if probabilities:
        attrs["prob_a"] = svc.probA_.astype(np.float32).tolist()
        attrs["prob_b"] = svc.probB_.astype(np.float32).tolist()
    if post:
        attrs["post_transform"] = post
    width = classes if probabilities or classes == 2 else classes * (classes - 1) // 2
    model = one_op(
        "SVMClassifier",
        [("X", elem, ["N", 4])],
        [("label", STRING if strings else INT64, ["N"]), ("scores", FLOAT, ["N", width])],
        ml=1,
        **attrs,
    )
    x = np.vstack([X[::2], floats(4, n=40, salt=len(name))]).astype(NUMPY[elem])
    save(name, model, {"X": x})


@case
def svm_classifier_cases():
    for kernel in KERNELS:
        k = kernel.lower()
        svm_classifier(f"svm_classifier_{k}", kernel)
        svm_classifier(f"svm_classifier_{k}_probabilities", kernel, probabilities=True)
        svm_classifier(f"svm_classifier_{k}_binary", kernel, binary=True)
        svm_classifier(
            f"svm_classifier_{k}_binary_probabilities", kernel, binary=True, probabilities=True
        )
    svm_classifier(
        "svm_classifier_rbf_strings",
        "RBF",
        probabilities=True,
        labels=["setosa", "versicolor", "virginica"],
    )
    svm_classifier("svm_classifier_rbf_binary_logistic", "RBF", binary=True, post="LOGISTIC")
    svm_classifier("svm_classifier_rbf_input_double", "RBF", elem=DOUBLE)


def svm_linear_mode(name, salt, labels, post=None):
    """No support vectors: liblinear's mode, one row of coefficients per class."""
    r = rng(salt)
    f = 4
    attrs = {
        "kernel_type": "LINEAR",
        "kernel_params": [0.0, 0.0, 0.0],  # onnxruntime requires them, even unused
        "coefficients": r.normal(0, 1, size=len(labels) * f).astype(np.float32).tolist(),
        "rho": [float(np.float32(r.normal()))],
        "classlabels_ints": list(labels),
    }
    if post:
        attrs["post_transform"] = post
    model = one_op(
        "SVMClassifier",
        [("X", FLOAT, ["N", f])],
        [("label", INT64, ["N"]), ("scores", FLOAT, ["N", len(labels)])],
        ml=1,
        **attrs,
    )
    save(name, model, {"X": floats(f, salt=salt)})


@case
def svm_classifier_linear_mode():
    svm_linear_mode("svm_classifier_no_vectors", 300, (0, 1, 2))
    svm_linear_mode("svm_classifier_no_vectors_binary", 301, (0, 1))
    svm_linear_mode("svm_classifier_no_vectors_softmax", 302, (0, 1, 2), "SOFTMAX")


def svm_regressor(name, kernel, one_class=False, post=None):
    X, _ = iris_scaled()
    target = X[:, 3] * 2 + X[:, 0]
    if one_class:
        svm = OneClassSVM(kernel=KERNELS[kernel], degree=3, coef0=0.5, nu=0.2).fit(X)
    else:
        svm = SVR(kernel=KERNELS[kernel], degree=3, coef0=0.5, C=5.0).fit(X, target)
    attrs = {
        "kernel_type": kernel,
        "kernel_params": kernel_params(svm),
        "n_supports": int(len(svm.support_vectors_)),
        "support_vectors": svm.support_vectors_.astype(np.float32).ravel().tolist(),
        "coefficients": svm.dual_coef_.astype(np.float32).ravel().tolist(),
        "rho": svm.intercept_.astype(np.float32).tolist(),
        "one_class": int(one_class),
    }
    if post:
        attrs["post_transform"] = post
    model = one_op(
        "SVMRegressor", [("X", FLOAT, ["N", 4])], [("Y", FLOAT, ["N", 1])], ml=1, **attrs
    )
    x = np.vstack([X[::2], floats(4, n=40, salt=len(name))]).astype(np.float32)
    save(name, model, {"X": x})


@case
def svm_regressor_cases():
    for kernel in KERNELS:
        svm_regressor(f"svm_regressor_{kernel.lower()}", kernel)
        svm_regressor(f"svm_regressor_{kernel.lower()}_one_class", kernel, one_class=True)
    svm_regressor("svm_regressor_rbf_post_logistic_ignored", "RBF", post="LOGISTIC")
    # No support vectors: coefficients are the weights of a linear model.
    r = rng(310)
    attrs = {
        "kernel_type": "LINEAR",
        "kernel_params": [0.0, 0.0, 0.0],
        "n_supports": 0,
        "coefficients": r.normal(0, 1, size=4).astype(np.float32).tolist(),
        "rho": [0.25],
    }
    model = one_op(
        "SVMRegressor", [("X", FLOAT, ["N", 4])], [("Y", FLOAT, ["N", 1])], ml=1, **attrs
    )
    save("svm_regressor_no_vectors", model, {"X": floats(4, salt=310)})


# Preprocessing.


@case
def scaler_cases():
    f = 5
    r = rng(400)
    offset = r.normal(0, 2, f).astype(np.float32).tolist()
    scale = r.uniform(-2, 2, f).astype(np.float32).tolist()
    for elem, x in [
        (FLOAT, floats(f, salt=400, nan=True)),
        (DOUBLE, floats(f, salt=401, nan=True, dtype=np.float64)),
        (INT64, ints(f, salt=402)),
        (INT32, ints(f, salt=403, dtype=np.int32)),
    ]:
        tag = TensorProto.DataType.Name(elem).lower()
        model = one_op(
            "Scaler",
            [("X", elem, ["N", f])],
            [("Y", FLOAT, ["N", f])],
            ml=1,
            offset=offset,
            scale=scale,
        )
        save(f"scaler_{tag}", model, {"X": x})
    model = one_op(
        "Scaler",
        [("X", FLOAT, ["N", f])],
        [("Y", FLOAT, ["N", f])],
        ml=1,
        offset=[1.5],
        scale=[-0.25],
    )
    save("scaler_one_value_for_all", model, {"X": floats(f, salt=404)})
    # onnxruntime refuses a Scaler without `offset` (scale and offset must be as long).


@case
def imputer_cases():
    f = 4
    x = floats(f, salt=410, nan=True)
    model = one_op(
        "Imputer",
        [("X", FLOAT, ["N", f])],
        [("Y", FLOAT, ["N", f])],
        ml=1,
        imputed_value_floats=[1.0, -2.0, 3.5, 0.25],
        replaced_value_float=float("nan"),
    )
    save("imputer_float_nan", model, {"X": x})
    model = one_op(
        "Imputer",
        [("X", FLOAT, ["N", f])],
        [("Y", FLOAT, ["N", f])],
        ml=1,
        imputed_value_floats=[9.0],
        replaced_value_float=0.0,
    )
    save(
        "imputer_float_zero_one_value",
        model,
        {"X": floats(f, salt=411, grid=[0.0, 1.0, -1.0, 2.5])},
    )
    xi = ints(f, salt=412, lo=-2, hi=3)
    model = one_op(
        "Imputer",
        [("X", INT64, ["N", f])],
        [("Y", INT64, ["N", f])],
        ml=1,
        imputed_value_int64s=[10, 20, 30, 40],
        replaced_value_int64=-1,
    )
    save("imputer_int64", model, {"X": xi})
    model = one_op(
        "Imputer",
        [("X", INT64, ["N", f])],
        [("Y", INT64, ["N", f])],
        ml=1,
        imputed_value_int64s=[7],
        replaced_value_int64=0,
    )
    save("imputer_int64_one_value", model, {"X": xi})


@case
def binarizer_cases():
    f = 4
    grid = [-1.0, 0.0, 0.5, 1.0, 2.0, 1e30, -1e30]
    for name, attrs in [
        ("binarizer_threshold", {"threshold": 0.5}),
        ("binarizer_default_threshold", {}),
    ]:
        model = one_op(
            "Binarizer", [("X", FLOAT, ["N", f])], [("Y", FLOAT, ["N", f])], ml=1, **attrs
        )
        save(name, model, {"X": floats(f, salt=420, grid=grid)})
    # onnxruntime's Binarizer takes float inputs only.


@case
def normalizer_cases():
    f = 5
    x = floats(f, salt=430)
    x = np.vstack([x, np.zeros((1, f)), -np.abs(x[:5]), [[-3, -1, -2, -5, -4]]]).astype(np.float32)
    for norm in ["MAX", "L1", "L2"]:
        model = one_op(
            "Normalizer", [("X", FLOAT, ["N", f])], [("Y", FLOAT, ["N", f])], ml=1, norm=norm
        )
        save(f"normalizer_{norm.lower()}", model, {"X": x})
    for elem in [DOUBLE, INT64, INT32]:
        tag = TensorProto.DataType.Name(elem).lower()
        # No int32 limits: onnxruntime squares integers in their own type, which overflows
        # (undefined behaviour in C++, no reference to match).
        xs = (
            x.astype(np.float64)
            if elem == DOUBLE
            else ints(f, salt=431, dtype=NUMPY[elem], extremes=False)
        )
        model = one_op(
            "Normalizer", [("X", elem, ["N", f])], [("Y", FLOAT, ["N", f])], ml=1, norm="L2"
        )
        save(f"normalizer_l2_{tag}", model, {"X": xs})


@case
def one_hot_encoder_cases():
    cats = [1, 3, 5, 7]
    xi = np.array([[1], [3], [5], [7], [0], [2], [-1], [7], [5], [100]] * 5, dtype=np.int64)
    model = one_op(
        "OneHotEncoder",
        [("X", INT64, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 4])],
        ml=1,
        cats_int64s=cats,
        zeros=1,
    )
    save("one_hot_encoder_ints_unknown", model, {"X": xi})
    known = np.array([[1], [3], [5], [7]] * 10, dtype=np.int64)
    model = one_op(
        "OneHotEncoder",
        [("X", INT64, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 4])],
        ml=1,
        cats_int64s=cats,
        zeros=0,
    )
    save("one_hot_encoder_ints_zeros_0", model, {"X": known})
    model = one_op(
        "OneHotEncoder", [("X", INT64, ["N"])], [("Y", FLOAT, ["N", 4])], ml=1, cats_int64s=cats
    )
    save("one_hot_encoder_ints_rank_1", model, {"X": xi.ravel()})
    model = one_op(
        "OneHotEncoder",
        [("X", INT64, ["N", 2])],
        [("Y", FLOAT, ["N", 2, 4])],
        ml=1,
        cats_int64s=cats,
    )
    save("one_hot_encoder_ints_two_columns", model, {"X": xi.reshape(-1, 2)})
    xf = np.array([[1.0], [3.0], [5.9], [7.0], [0.5], [-1.0], [2.0]] * 5, dtype=np.float32)
    model = one_op(
        "OneHotEncoder",
        [("X", FLOAT, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 4])],
        ml=1,
        cats_int64s=cats,
    )
    save("one_hot_encoder_floats", model, {"X": xf})
    model = one_op(
        "OneHotEncoder",
        [("X", DOUBLE, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 4])],
        ml=1,
        cats_int64s=cats,
    )
    save("one_hot_encoder_doubles", model, {"X": xf.astype(np.float64)})
    words = ["red", "green", "blue"]
    xs = np.array(
        [["red"], ["green"], ["blue"], [""], ["Red"], ["purple"], [" red"], ["blue"]] * 5,
        dtype=object,
    )
    model = one_op(
        "OneHotEncoder",
        [("X", STRING, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 3])],
        ml=1,
        cats_strings=words,
        zeros=1,
    )
    save("one_hot_encoder_strings_unknown", model, {"X": xs})
    xk = np.array([["red"], ["green"], ["blue"]] * 10, dtype=object)
    model = one_op(
        "OneHotEncoder",
        [("X", STRING, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 3])],
        ml=1,
        cats_strings=words,
        zeros=0,
    )
    save("one_hot_encoder_strings_zeros_0", model, {"X": xk})
    model = one_op(
        "OneHotEncoder",
        [("X", STRING, ["N", 1])],
        [("Y", FLOAT, ["N", 1, 4])],
        ml=1,
        cats_strings=["a", "", "b", "c"],
    )
    save(
        "one_hot_encoder_strings_empty_category",
        model,
        {"X": np.array([["a"], [""], ["c"], ["d"], ["b"]] * 4, dtype=object)},
    )


def label_encoder(name, x, elem_in, elem_out, ml=2, **attrs):
    shape = ["N"] if x.ndim == 1 else ["N", x.shape[1]]
    model = one_op(
        "LabelEncoder", [("X", elem_in, shape)], [("Y", elem_out, shape)], ml=ml, **attrs
    )
    save(name, model, {"X": x})


@case
def label_encoder_cases():
    words = np.array(
        ["apple", "banana", "cherry", "", "durian", "Apple", "banana"] * 6, dtype=object
    )
    label_encoder(
        "label_encoder_string_to_int",
        words,
        STRING,
        INT64,
        keys_strings=["apple", "banana", "cherry"],
        values_int64s=[10, 20, 30],
    )
    label_encoder(
        "label_encoder_string_to_int_default",
        words.reshape(-1, 1),
        STRING,
        INT64,
        keys_strings=["apple", "banana", "cherry"],
        values_int64s=[10, 20, 30],
        default_int64=-7,
    )
    numbers = np.array([0, 1, 2, 3, -1, 100, 2, 1] * 5, dtype=np.int64)
    label_encoder(
        "label_encoder_int_to_string",
        numbers,
        INT64,
        STRING,
        keys_int64s=[0, 1, 2],
        values_strings=["zero", "one", "two"],
    )
    label_encoder(
        "label_encoder_int_to_string_default",
        numbers.reshape(-1, 2),
        INT64,
        STRING,
        keys_int64s=[0, 1, 2],
        values_strings=["zero", "one", "two"],
        default_string="many",
    )
    label_encoder(
        "label_encoder_int_to_float",
        numbers,
        INT64,
        FLOAT,
        keys_int64s=[0, 1, 2],
        values_floats=[0.5, 1.5, -2.5],
    )
    fl = np.array([0.0, 0.5, 1.5, -2.0, 3.25, np.nan, 0.5, 7.0] * 5, dtype=np.float32)
    label_encoder(
        "label_encoder_float_to_int",
        fl,
        FLOAT,
        INT64,
        keys_floats=[0.5, 1.5, 3.25],
        values_int64s=[1, 2, 3],
        default_int64=0,
    )
    label_encoder(
        "label_encoder_float_to_float",
        fl,
        FLOAT,
        FLOAT,
        keys_floats=[0.5, 1.5, 3.25],
        values_floats=[10.0, 20.0, 30.0],
    )
    label_encoder(
        "label_encoder_float_to_string",
        fl,
        FLOAT,
        STRING,
        keys_floats=[0.5, 1.5],
        values_strings=["half", "one and a half"],
    )
    label_encoder(
        "label_encoder_string_to_string",
        words,
        STRING,
        STRING,
        keys_strings=["apple", "banana"],
        values_strings=["red", "yellow"],
        default_string="?",
    )
    label_encoder(
        "label_encoder_string_to_float",
        words,
        STRING,
        FLOAT,
        keys_strings=["apple", "cherry"],
        values_floats=[1.0, 2.0],
    )
    label_encoder(
        "label_encoder_int_to_int",
        numbers,
        INT64,
        INT64,
        keys_int64s=[0, 1, 2],
        values_int64s=[5, 6, 7],
        default_int64=99,
    )
    # Duplicate keys: onnxruntime keeps the first (the spec of version 4 says the last).
    label_encoder(
        "label_encoder_duplicate_keys",
        words,
        STRING,
        INT64,
        keys_strings=["apple", "banana", "apple"],
        values_int64s=[1, 2, 3],
    )
    # Version 4: the tensor attributes.
    label_encoder(
        "label_encoder_v4_tensors_string_to_int",
        words,
        STRING,
        INT64,
        ml=4,
        keys_tensor=helper.make_tensor("keys", STRING, [3], [b"apple", b"banana", b"cherry"]),
        values_tensor=numpy_helper.from_array(np.array([1, 2, 3], dtype=np.int64), "values"),
        default_tensor=numpy_helper.from_array(np.array([-5], dtype=np.int64), "default"),
    )
    label_encoder(
        "label_encoder_v4_double_to_string",
        fl.astype(np.float64),
        DOUBLE,
        STRING,
        ml=4,
        keys_tensor=numpy_helper.from_array(np.array([0.5, 1.5], dtype=np.float64), "keys"),
        values_tensor=helper.make_tensor("values", STRING, [2], [b"a", b"b"]),
    )


@case
def feature_vectorizer_cases():
    # The inputs of one node share one type (T1): one case per type.
    n = 60
    r = rng(450)
    a = r.normal(size=(n, 2)).astype(np.float32)
    b = r.normal(size=(n, 3)).astype(np.float32)
    c = r.normal(size=(n, 1)).astype(np.float32)
    inputs = [("a", FLOAT, ["N", 2]), ("b", FLOAT, ["N", 3]), ("c", FLOAT, ["N", 1])]
    model = one_op(
        "FeatureVectorizer", inputs, [("Y", FLOAT, ["N", 6])], ml=1, inputdimensions=[2, 3, 1]
    )
    save("feature_vectorizer_floats", model, {"a": a, "b": b, "c": c})
    # Dimensions that cut (b to 2) and pad (a to 4) the inputs.
    model = one_op(
        "FeatureVectorizer", inputs, [("Y", FLOAT, ["N", 7])], ml=1, inputdimensions=[4, 2, 1]
    )
    save("feature_vectorizer_cut_and_pad", model, {"a": a, "b": b, "c": c})
    for elem in [INT64, INT32, DOUBLE]:
        tag = TensorProto.DataType.Name(elem).lower()
        dtype = NUMPY[elem]
        x = (r.integers(-5, 5, size=(n, 2)) if elem != DOUBLE else r.normal(size=(n, 2))).astype(
            dtype
        )
        y = (r.integers(-5, 5, size=(n, 1)) if elem != DOUBLE else r.normal(size=(n, 1))).astype(
            dtype
        )
        model = one_op(
            "FeatureVectorizer",
            [("x", elem, ["N", 2]), ("y", elem, ["N", 1])],
            [("Y", FLOAT, ["N", 3])],
            ml=1,
            inputdimensions=[2, 1],
        )
        save(f"feature_vectorizer_{tag}", model, {"x": x, "y": y})


@case
def array_feature_extractor_cases():
    x = floats(5, salt=460)
    for name, y, width in [
        ("array_feature_extractor_two", np.array([3, 1], dtype=np.int64), 2),
        ("array_feature_extractor_scalar_index", np.array(2, dtype=np.int64), 1),
        ("array_feature_extractor_one", np.array([4], dtype=np.int64), 1),
        ("array_feature_extractor_repeated", np.array([0, 0, 4, 2], dtype=np.int64), 4),
    ]:
        model = one_op(
            "ArrayFeatureExtractor",
            [("X", FLOAT, ["N", 5])],
            [("Z", FLOAT, ["N", width])],
            ml=1,
            initializers=[("Y", y)],
        )
        save(name, model, {"X": x})
    xi = ints(5, salt=461)
    model = one_op(
        "ArrayFeatureExtractor",
        [("X", INT64, ["N", 5])],
        [("Z", INT64, ["N", 2])],
        ml=1,
        initializers=[("Y", np.array([4, 0], dtype=np.int64))],
    )
    save("array_feature_extractor_int64", model, {"X": xi})
    xs = np.array([["a", "b", "c"], ["d", "", "f"], ["g", "h", "i"]] * 10, dtype=object)
    model = one_op(
        "ArrayFeatureExtractor",
        [("X", STRING, ["N", 3])],
        [("Z", STRING, ["N", 2])],
        ml=1,
        initializers=[("Y", np.array([2, 1], dtype=np.int64))],
    )
    save("array_feature_extractor_strings", model, {"X": xs})


@case
def zipmap_cases():
    x = floats(3, salt=470)
    model = one_op(
        "ZipMap",
        [("X", FLOAT, ["N", 3])],
        [("Z", FLOAT, ["N", 3])],
        ml=1,
        classlabels_int64s=[10, 0, 5],
    )
    model.graph.output[0].CopyFrom(
        helper.make_value_info(
            "Z",
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(INT64, helper.make_tensor_type_proto(FLOAT, []))
            ),
        )
    )
    save("zipmap_int_labels", model, {"X": x})
    model = one_op(
        "ZipMap",
        [("X", FLOAT, ["N", 3])],
        [("Z", FLOAT, ["N", 3])],
        ml=1,
        classlabels_strings=["b", "a", "c"],
    )
    model.graph.output[0].CopyFrom(
        helper.make_value_info(
            "Z",
            helper.make_sequence_type_proto(
                helper.make_map_type_proto(STRING, helper.make_tensor_type_proto(FLOAT, []))
            ),
        )
    )
    save("zipmap_string_labels", model, {"X": x})


if __name__ == "__main__":
    CASES.main(HERE)
