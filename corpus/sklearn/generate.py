"""Exports scikit-learn estimators with skl2onnx's default options and labels them with onnxruntime.

Run by hand (see ../README.md), from any directory:

    python corpus/sklearn/generate.py            # every case
    python corpus/sklearn/generate.py rf_ svc_   # only the cases whose name starts so

Each case is a fitted estimator exported as `to_onnx(model, X[:1])` (float32 features, or a
DataFrame for the column-transformer case: one input per column), and a few hundred input
rows: rows of the dataset, rows around and beyond its range, and edge rows (zeros, +-1e30,
1e-30, NaN where the model accepts it, unknown and empty categories for the encoder). Only
datasets shipped with scikit-learn are used; nothing is downloaded. The `bench_` cases are
the models bench/onnx_ml.sh times.
"""

import os
import sys
import warnings

import numpy as np
import pandas as pd
from skl2onnx import to_onnx
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    Binarizer,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    StandardScaler,
)
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import corpus_io  # noqa: E402
from corpus_io import write_case  # noqa: E402

SEED = 0
CASES = corpus_io.Cases()
case = CASES.case

# scikit-learn 1.9 deprecates SVC(probability=True) (removed in 1.11), and a few small fits
# stop before converging: neither changes what the exported models are.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", module="sklearn.neural_network")
warnings.filterwarnings("ignore", module="sklearn.svm")


def rows(X, n=200, nan=False, seed=SEED):
    """The input rows of a case: `n` rows of X, 40 rows drawn across (and past) each
    feature's range, then edge rows; float32."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float64)
    pick = X[rng.choice(len(X), size=min(n, len(X)), replace=False)]
    lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    wide = rng.uniform(lo - span, hi + span, size=(40, X.shape[1]))
    mean = np.nanmean(X, axis=0)
    f = X.shape[1]
    edges = [
        np.zeros(f),
        np.ones(f),
        -mean,
        np.full(f, 1e-30),
        np.full(f, 1e6),
        np.full(f, -1e6),
        np.full(f, 1e30),
        np.full(f, -1e30),
        np.where(np.arange(f) % 2 == 0, 1e30, -1e30),
        np.where(np.arange(f) == 0, 1e30, mean),
        np.where(np.arange(f) == f - 1, -1e30, mean),
    ]
    if nan:
        edges += [np.full(f, np.nan)]
        edges += [np.where(np.arange(f) == j, np.nan, mean) for j in range(min(f, 4))]
        half = pick[: len(pick) // 4].copy()
        mask = rng.random(half.shape) < 0.2
        half[mask] = np.nan
        edges += list(half)
    return np.vstack([pick, wide, np.array(edges)]).astype(np.float32)


def export(model, X):
    """skl2onnx's default export: the first row's type and width, nothing else."""
    return to_onnx(model, X[:1])


def save(name, model, X, inputs):
    """Exports the fitted `model` and writes the case with onnxruntime's answers."""
    write_case(HERE, name, export(model, X), {"X": inputs})


def iris():
    return datasets.load_iris(return_X_y=True)


def cancer():
    return datasets.load_breast_cancer(return_X_y=True)


def wine():
    return datasets.load_wine(return_X_y=True)


def diabetes():
    return datasets.load_diabetes(return_X_y=True)


def f32(X):
    return np.asarray(X, dtype=np.float32)


def fit_save(name, model, X, y, nan=False):
    X = f32(X)
    model.fit(X, y)
    save(name, model, X, rows(X, nan=nan))


# Linear models.


@case
def logreg_binary():
    X, y = cancer()
    fit_save("logreg_binary", LogisticRegression(max_iter=10000), X, y)


@case
def logreg_multiclass():
    X, y = iris()
    fit_save("logreg_multiclass", LogisticRegression(max_iter=1000), X, y)


@case
def logreg_string_labels():
    X, y = iris()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    fit_save("logreg_string_labels", LogisticRegression(max_iter=1000), X, names)


@case
def logreg_binary_string_labels():
    X, y = cancer()
    names = np.array(["malignant", "benign"])[y]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    fit_save("logreg_binary_string_labels", model, X, names)


@case
def linear_regression():
    X, y = diabetes()
    fit_save("linear_regression", LinearRegression(), X, y)


@case
def ridge():
    X, y = diabetes()
    fit_save("ridge", Ridge(alpha=0.5), X, y)


@case
def ridge_two_targets():
    X, y = diabetes()
    fit_save("ridge_two_targets", Ridge(alpha=0.5), X, np.c_[y, X[:, 2] * 100 - y])


@case
def pipeline_scaler_logreg():
    X, y = wine()
    model = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=1000))])
    fit_save("pipeline_scaler_logreg", model, X, y)


@case
def linear_svc_binary():
    # skl2onnx cannot export a Pipeline ending in LinearSVC (it passes the zipmap option
    # LinearSVC lacks), so the features are already on a common scale.
    X, y = datasets.make_classification(n_samples=400, n_features=10, random_state=SEED)
    fit_save("linear_svc_binary", LinearSVC(), X, y)


@case
def linear_svc_multiclass():
    X, y = iris()
    fit_save("linear_svc_multiclass", LinearSVC(max_iter=10000), X, y)


# Preprocessing.


@case
def minmax_scaler():
    X, _ = wine()
    X = f32(X)
    save("minmax_scaler", MinMaxScaler().fit(X), X, rows(X))


@case
def standard_scaler():
    X, _ = wine()
    X = f32(X)
    save("standard_scaler", StandardScaler().fit(X), X, rows(X))


def with_missing(X, rate=0.1, seed=SEED):
    rng = np.random.default_rng(seed)
    X = f32(X).copy()
    X[rng.random(X.shape) < rate] = np.nan
    return X


@case
def simple_imputer_mean():
    X, _ = diabetes()
    X = with_missing(X)
    save("simple_imputer_mean", SimpleImputer().fit(X), X, rows(X, nan=True))


@case
def simple_imputer_constant():
    X, _ = diabetes()
    X = with_missing(X)
    model = SimpleImputer(strategy="constant", fill_value=-1.5).fit(X)
    save("simple_imputer_constant", model, X, rows(X, nan=True))


@case
def pipeline_imputer_logreg():
    # The pipeline users fit on data with missing values, whose rows arrive with NaN (as
    # Python's json writes it) or null (as pandas' to_json does).
    X, y = iris()
    X = with_missing(X)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    fit_save("pipeline_imputer_logreg", model, X, y, nan=True)


@case
def binarizer():
    X, _ = iris()
    X = f32(X)
    save("binarizer", Binarizer(threshold=2.5).fit(X), X, rows(X))


@case
def normalizer_l2():
    X, _ = iris()
    X = f32(X)
    save("normalizer_l2", Normalizer().fit(X), X, rows(X))


@case
def normalizer_l1():
    X, _ = wine()
    X = f32(X)
    save("normalizer_l1", Normalizer(norm="l1").fit(X), X, rows(X))


@case
def normalizer_max():
    X, _ = wine()
    X = f32(X)
    save("normalizer_max", Normalizer(norm="max").fit(X), X, rows(X))


@case
def pca():
    X, _ = wine()
    X = f32(X)
    save("pca", PCA(n_components=4).fit(X), X, rows(X))


@case
def column_transformer_logreg():
    """A DataFrame with string and float columns: skl2onnx makes one input per column."""
    rng = np.random.default_rng(SEED)
    n = 400
    df = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], n),
            "size": rng.choice(["S", "M", "L", "XL"], n),
            "weight": rng.normal(50, 10, n).astype(np.float32),
            "height": rng.normal(170, 10, n).astype(np.float32),
        }
    )
    y = (df.weight > 50).astype(int) + (df.color == "red") + (df["size"] == "XL")
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "size"]),
            ("num", StandardScaler(), ["weight", "height"]),
        ]
    )
    model = Pipeline([("encode", encode), ("lr", LogisticRegression(max_iter=1000))])
    model.fit(df, y)
    onx = to_onnx(model, df[:1])
    test = df.sample(200, random_state=SEED).reset_index(drop=True)
    edges = pd.DataFrame(
        {
            "color": ["purple", "", "RED", "red", "", "blue", "green", "red"],
            "size": ["XXL", "", "s", "", "M", "L", "S", "XL"],
            "weight": np.array([50, 0, 1e30, -1e30, 0, 1e-30, 1e6, np.inf], dtype=np.float32),
            "height": np.array([170, 0, -1e30, 1e30, 0, 0, -1e6, 170], dtype=np.float32),
        }
    )
    test = pd.concat([test, edges], ignore_index=True)
    feeds = {
        "color": test["color"].to_numpy(dtype=object).reshape(-1, 1),
        "size": test["size"].to_numpy(dtype=object).reshape(-1, 1),
        "weight": test["weight"].to_numpy(dtype=np.float32).reshape(-1, 1),
        "height": test["height"].to_numpy(dtype=np.float32).reshape(-1, 1),
    }
    write_case(HERE, "column_transformer_logreg", onx, feeds)


# Trees.


@case
def decision_tree_binary():
    X, y = cancer()
    fit_save("decision_tree_binary", DecisionTreeClassifier(max_depth=6, random_state=SEED), X, y)


@case
def decision_tree_multiclass():
    X, y = wine()
    fit_save("decision_tree_multiclass", DecisionTreeClassifier(random_state=SEED), X, y)


@case
def decision_tree_regressor():
    X, y = diabetes()
    model = DecisionTreeRegressor(max_depth=8, random_state=SEED)
    fit_save("decision_tree_regressor", model, X, y)


@case
def random_forest_binary():
    X, y = cancer()
    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=SEED)
    fit_save("random_forest_binary", model, X, y)


@case
def random_forest_multiclass():
    X, y = iris()
    model = RandomForestClassifier(n_estimators=10, random_state=SEED)
    fit_save("random_forest_multiclass", model, X, y)


@case
def random_forest_string_labels():
    X, y = wine()
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    model = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=SEED)
    fit_save("random_forest_string_labels", model, X, names)


@case
def random_forest_regressor():
    X, y = diabetes()
    model = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=SEED)
    fit_save("random_forest_regressor", model, X, y)


@case
def gradient_boosting_binary():
    X, y = cancer()
    model = GradientBoostingClassifier(n_estimators=20, random_state=SEED)
    fit_save("gradient_boosting_binary", model, X, y)


@case
def gradient_boosting_multiclass():
    X, y = wine()
    model = GradientBoostingClassifier(n_estimators=15, random_state=SEED)
    fit_save("gradient_boosting_multiclass", model, X, y)


@case
def gradient_boosting_regressor():
    X, y = diabetes()
    model = GradientBoostingRegressor(n_estimators=30, random_state=SEED)
    fit_save("gradient_boosting_regressor", model, X, y)


@case
def hist_gradient_boosting_binary():
    X, y = cancer()
    model = HistGradientBoostingClassifier(max_iter=20, random_state=SEED)
    fit_save("hist_gradient_boosting_binary", model, with_missing(X), y, nan=True)


@case
def hist_gradient_boosting_multiclass():
    X, y = wine()
    model = HistGradientBoostingClassifier(max_iter=15, random_state=SEED)
    fit_save("hist_gradient_boosting_multiclass", model, with_missing(X), y, nan=True)


@case
def hist_gradient_boosting_regressor():
    X, y = diabetes()
    model = HistGradientBoostingRegressor(max_iter=30, random_state=SEED)
    fit_save("hist_gradient_boosting_regressor", model, with_missing(X), y, nan=True)


# Support vector machines.


@case
def svc_linear_multiclass():
    X, y = iris()
    model = SVC(kernel="linear", probability=True, random_state=SEED)
    fit_save("svc_linear_multiclass", model, X, y)


@case
def svc_linear_binary():
    X, y = cancer()
    model = make_pipeline(
        StandardScaler(), SVC(kernel="linear", probability=True, random_state=SEED)
    )
    fit_save("svc_linear_binary", model, X, y)


@case
def svc_rbf_binary():
    X, y = cancer()
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=SEED))
    fit_save("svc_rbf_binary", model, X, y)


@case
def svc_rbf_multiclass():
    X, y = wine()
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=SEED))
    fit_save("svc_rbf_multiclass", model, X, y)


@case
def svc_poly_binary_no_probability():
    X, y = cancer()
    model = make_pipeline(StandardScaler(), SVC(kernel="poly", degree=2))
    fit_save("svc_poly_binary_no_probability", model, X, y)


@case
def svc_sigmoid_multiclass_ovo():
    X, y = iris()
    model = make_pipeline(StandardScaler(), SVC(kernel="sigmoid", decision_function_shape="ovo"))
    fit_save("svc_sigmoid_multiclass_ovo", model, X, y)


@case
def svr_rbf():
    X, y = diabetes()
    fit_save("svr_rbf", SVR(C=50.0), X, y)


@case
def svr_linear():
    X, y = diabetes()
    fit_save("svr_linear", SVR(kernel="linear", C=50.0), X, y)


# Neighbours and networks.


@case
def knn_classifier():
    X, y = iris()
    fit_save("knn_classifier", KNeighborsClassifier(n_neighbors=5), X, y)


@case
def mlp_classifier():
    X, y = iris()
    model = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=SEED)
    )
    fit_save("mlp_classifier", model, X, y)


@case
def mlp_regressor():
    X, y = diabetes()
    model = make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=3000, random_state=SEED)
    )
    fit_save("mlp_regressor", model, X, y)


# The benchmark's models: a binary task of realistic width (24 features).


def bench_data():
    return datasets.make_classification(
        n_samples=2000, n_features=24, n_informative=12, n_redundant=4, random_state=SEED
    )


@case
def bench_random_forest():
    X, y = bench_data()
    model = RandomForestClassifier(n_estimators=100, max_depth=7, random_state=SEED)
    fit_save("bench_random_forest", model, X, y)


@case
def bench_gradient_boosting():
    X, y = bench_data()
    model = GradientBoostingClassifier(n_estimators=100, random_state=SEED)
    fit_save("bench_gradient_boosting", model, X, y)


@case
def bench_svc_rbf():
    X, y = bench_data()
    model = SVC(probability=True, random_state=SEED)
    fit_save("bench_svc_rbf", model, X[:1000], y[:1000])


if __name__ == "__main__":
    CASES.main(HERE)
