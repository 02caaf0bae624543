"""Keras models converted by tf2onnx as users convert them, labelled by Keras itself.

Run by hand (see ../README.md), from any directory, with the packages of requirements.txt:

    python corpus/keras/generate.py               # every case
    python corpus/keras/generate.py titanic_      # only the cases whose name starts so

Each case is a small Keras 3 functional model trained for a few epochs on synthetic data
made here (nothing is downloaded), then exported the way users do today:

    model.export(DIR)                                              # a TF SavedModel
    python -m tf2onnx.convert --saved-model DIR --output model.onnx

(the command runs as a subprocess, exactly so). The expected outputs are Keras's own
`model.predict` for 8 rows at once, which must agree with `model.predict` on each row
alone, with the exported SavedModel's signature and with onnxruntime on the converted file
(framework_io.py).

What tf2onnx 1.17 does to a Keras model (the first three points and the last are checked
by `check_names` and `integer_lookup_fails`, which stop the script if a later version
behaves otherwise):
- the input names are the Keras `Input` names lower-cased ("Age" -> "age": TensorFlow
  lower-cases the SavedModel signature's placeholder names), in alphabetical order;
- the output of `model.export` is called `output_0`, whatever the Keras output layer's name;
- every dimension that is None in Keras becomes its own `unk__<n>` (each input's batch has
  another name, and the output's another): serve unifies the inputs' first dimensions;
- StringLookup becomes CategoryMapper (ai.onnx.ml; unknown strings map to the OOV index 0);
  CategoryEncoding becomes OneHot; Normalization becomes Sub and Mul (opset 15, ai.onnx.ml 2);
- IntegerLookup does not convert: tf2onnx stops with "Only lookup tables of type
  string<->int64 are currently supported.". An integer category goes through
  CategoryEncoding on the integer itself instead.

The cases:
- `titanic_onehot`: the titanic tutorial's five inputs (Age, Fare FP32; Embarked, Sex
  strings; Pclass INT64), Normalization on the numbers, StringLookup(output_mode="one_hot")
  on the strings, CategoryEncoding on Pclass, concatenated, two Dense layers, a sigmoid.
- `titanic_lookup_encoding`: the same with StringLookup (integer indices) followed by
  CategoryEncoding, the other common way to write it. tf2onnx does not know the lookup's
  output shape, so Keras's CategoryEncoding reshapes by a size computed from Shape: tract
  can type that graph only for a known batch, and serve plans it with the batch pinned to 1.
- `dense_softmax`: one FP32 input of 6 features, two Dense layers, a softmax over 3 classes.
- `category_encoding_out_of_range`: CategoryEncoding(num_tokens=4) on an INT64 input, with
  rows past the range (4, 5, 1000): Keras and onnxruntime answer an all-zero block there.
"""

import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import corpus_io  # noqa: E402
from framework_io import batch_of, write_case  # noqa: E402

SEED = 0
CASES = corpus_io.Cases()
case = CASES.case

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()


def seed():
    """Seeds everything and resets Keras's layer-name counters (the names end up in the
    file), so that a case gives the same bytes alone or after others."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    return np.random.default_rng(SEED)


def as_tf(feeds):
    """numpy feeds as tensors (Keras cannot take an object array of strings)."""
    return {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in feeds.items()}


def convert(model, workdir, name):
    """`model.export(name)` then `python -m tf2onnx.convert --saved-model name`, run in
    `workdir`; the .onnx bytes and the SavedModel's path. tf2onnx writes "converted from
    <the --saved-model argument>" into the file's doc_string, hence the relative name.
    Even so tf2onnx 1.17 is not byte-for-byte reproducible: from one run to the next (same
    SavedModel, same PYTHONHASHSEED) it orders some nodes differently and numbers its
    folded constants (`const_fold_opt__<n>`) differently; the graph computes the same, and
    the JSON files come out the same."""
    saved = os.path.join(workdir, name)
    model.export(saved, verbose=False)
    run = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", name, "--output", "model.onnx"],
        check=False,
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr.strip().splitlines()[-1])
    with open(os.path.join(workdir, "model.onnx"), "rb") as f:
        return f.read(), saved


def label_and_write(name, model, feeds):
    """Converts `model`, asks Keras (all rows, each row, the SavedModel) and writes the case.

    `feeds` are keyed by the Keras input names (a model built on one `Input`, not a dict of
    them, is called with the tensor alone); the ONNX names are checked to be those
    lower-cased, and the ONNX output to be `output_0`."""

    def call_form(f):
        f = as_tf(f)
        return f if isinstance(model.input, dict) else next(iter(f.values()))

    with tempfile.TemporaryDirectory() as workdir:
        onnx_bytes, saved = convert(model, workdir, name)
        predict = model.predict(call_form(feeds), verbose=0)
        rows = len(next(iter(feeds.values())))
        per_row = [model.predict(call_form(batch_of(feeds, r)), verbose=0) for r in range(rows)]
        # The exported signature, what tf2onnx converted, answers as model.predict.
        loaded = tf.saved_model.load(saved)
        served = loaded.serve(call_form(feeds)).numpy()
        if not np.allclose(served, predict, rtol=1e-5, atol=1e-6):
            raise AssertionError(f"{name}: the SavedModel answers differently from Keras")
    lowered = {k.lower(): v for k, v in feeds.items()}
    check_names(name, onnx_bytes, sorted(lowered))
    write_case(
        HERE,
        name,
        onnx_bytes,
        lowered,
        {"output_0": predict},
        [{"output_0": p} for p in per_row],
    )


def check_names(name, onnx_bytes, inputs):
    """What the module docstring says tf2onnx does to names and dimensions: the inputs are
    the Keras names lower-cased, in alphabetical order, the output is `output_0`, and each
    input's and output's batch is a `unk__<n>` of its own."""
    graph = onnx.load_from_string(onnx_bytes).graph
    got = [i.name for i in graph.input]
    if got != inputs or [o.name for o in graph.output] != ["output_0"]:
        raise AssertionError(f"{name}: tf2onnx named the inputs {got}, outputs {graph.output}")
    batch = [v.type.tensor_type.shape.dim[0].dim_param for v in [*graph.input, *graph.output]]
    if len(set(batch)) != len(batch) or not all(b.startswith("unk__") for b in batch):
        raise AssertionError(f"{name}: tf2onnx named the batch dimensions {batch}")


# --- titanic-like data ---------------------------------------------------------------

PORTS = ["S", "C", "Q"]
SEXES = ["male", "female"]


def titanic_data(rng, n=512):
    """Passengers and a survival drawn from a made-up logistic rule."""
    sex = rng.choice(SEXES, n, p=[0.64, 0.36])
    pclass = rng.choice([1, 2, 3], n, p=[0.25, 0.2, 0.55])
    port = rng.choice(PORTS, n, p=[0.72, 0.19, 0.09])
    age = np.clip(rng.normal(30, 14, n), 0.4, 80).round(1)
    fare = np.round(rng.gamma(2.0, 8.0 * (4 - pclass)), 2)
    logit = (
        -0.4
        + 2.5 * (sex == "female")
        + 1.0 * (3 - pclass)
        - 0.02 * (age - 30)
        + 0.005 * fare
        + 0.3 * (port == "C")
    )
    survived = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    feeds = {
        "Age": age.astype(np.float32).reshape(-1, 1),
        "Fare": fare.astype(np.float32).reshape(-1, 1),
        "Embarked": port.astype(object).reshape(-1, 1),
        "Sex": sex.astype(object).reshape(-1, 1),
        "Pclass": pclass.astype(np.int64).reshape(-1, 1),
    }
    return feeds, survived.reshape(-1, 1)


# Eight passengers: the tutorial's own, then unknown, empty and differently-cased
# categories, a class-0 passenger (an index CategoryEncoding knows but training never saw),
# and ages and fares past the training range.
TITANIC_ROWS = {
    "Age": np.array([[22], [38], [26], [54], [2], [80], [0], [-5]], np.float32),
    "Fare": np.array(
        [[7.25], [71.2833], [7.925], [51.8625], [21.075], [0], [512.3292], [1e4]], np.float32
    ),
    "Embarked": np.array([["S"], ["C"], ["Q"], ["S"], ["C"], ["X"], ["s"], [""]], object),
    "Sex": np.array(
        [["male"], ["female"], ["female"], ["male"], ["male"], [""], ["MALE"], ["female"]], object
    ),
    "Pclass": np.array([[3], [1], [3], [1], [2], [2], [1], [0]], np.int64),
}


def titanic_model(data, one_hot_lookup):
    inputs = {
        "Age": keras.Input(shape=(1,), name="Age", dtype="float32"),
        "Fare": keras.Input(shape=(1,), name="Fare", dtype="float32"),
        "Embarked": keras.Input(shape=(1,), name="Embarked", dtype="string"),
        "Sex": keras.Input(shape=(1,), name="Sex", dtype="string"),
        "Pclass": keras.Input(shape=(1,), name="Pclass", dtype="int64"),
    }
    parts = []
    for key in ("Age", "Fare"):
        norm = keras.layers.Normalization(name=f"norm_{key.lower()}")
        norm.adapt(data[key])
        parts.append(norm(inputs[key]))
    for key, vocabulary in (("Embarked", PORTS), ("Sex", SEXES)):
        if one_hot_lookup:
            lookup = keras.layers.StringLookup(vocabulary=vocabulary, output_mode="one_hot")
            parts.append(lookup(inputs[key]))
        else:
            lookup = keras.layers.StringLookup(vocabulary=vocabulary)
            encode = keras.layers.CategoryEncoding(
                num_tokens=lookup.vocabulary_size(), output_mode="one_hot"
            )
            parts.append(encode(lookup(inputs[key])))
    # Pclass 1..3 (0 unused): IntegerLookup would be the natural layer but does not convert.
    parts.append(
        keras.layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")(inputs["Pclass"])
    )
    x = keras.layers.Concatenate()(parts)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="survived")(x)
    return keras.Model(inputs, out)


def train_titanic(one_hot_lookup):
    rng = seed()
    data, y = titanic_data(rng)
    model = titanic_model(data, one_hot_lookup)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices((as_tf(data), y)).batch(64)
    model.fit(ds, epochs=8, verbose=0)
    return model


@case
def titanic_onehot():
    label_and_write("titanic_onehot", train_titanic(True), TITANIC_ROWS)


@case
def titanic_lookup_encoding():
    label_and_write("titanic_lookup_encoding", train_titanic(False), TITANIC_ROWS)


@case
def dense_softmax():
    rng = seed()
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.5 * x[:, 3:], axis=1)
    inputs = keras.Input(shape=(6,), name="features", dtype="float32")
    h = keras.layers.Dense(12, activation="tanh")(inputs)
    out = keras.layers.Dense(3, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    rows = np.concatenate(
        [x[:5], np.zeros((1, 6)), np.full((1, 6), -40.0), [[1e3, -1e3, 0.5, 0, 0, 1e-30]]]
    ).astype(np.float32)
    label_and_write("dense_softmax", model, {"features": rows})


@case
def category_encoding_out_of_range():
    """CategoryEncoding on integers past `num_tokens`: Keras (tf.one_hot) and onnxruntime
    give an all-zero block. Negative integers are left out: Keras gives zeros there too, but
    the converted OneHot counts them from the end (ONNX's rule), so the converted file
    itself answers otherwise (-1 as 3)."""
    rng = seed()
    pclass = rng.choice([1, 2, 3], (300, 1)).astype(np.int64)
    y = (pclass == 1).astype(np.float32)
    inputs = keras.Input(shape=(1,), name="Pclass", dtype="int64")
    x = keras.layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(pclass, y, epochs=3, batch_size=32, verbose=0)
    rows = np.array([[1], [2], [3], [0], [4], [5], [1000], [3]], np.int64)
    label_and_write("category_encoding_out_of_range", model, {"Pclass": rows})


@case
def integer_lookup_fails():
    """IntegerLookup does not convert; no file is written. Stops if a tf2onnx converts it."""
    seed()
    inputs = keras.Input(shape=(1,), name="Pclass", dtype="int64")
    lookup = keras.layers.IntegerLookup(vocabulary=[1, 2, 3], output_mode="one_hot")
    out = keras.layers.Dense(1, activation="sigmoid")(lookup(inputs))
    model = keras.Model(inputs, out)
    with tempfile.TemporaryDirectory() as workdir:
        try:
            convert(model, workdir, "integer_lookup")
        except RuntimeError as e:
            print(f"integer_lookup_fails: tf2onnx refuses IntegerLookup: {e}")
            return
    raise AssertionError("tf2onnx converted IntegerLookup: add a case for it")


if __name__ == "__main__":
    CASES.main(HERE)
