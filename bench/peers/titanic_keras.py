"""The titanic tutorial's Flask + Keras app, as in the tutorial (gunicorn -w 2):

    TITANIC_KERAS=/path/titanic.keras gunicorn -w 2 -b 127.0.0.1:8006 titanic_keras:app

Unchanged from the tutorial but for the model path (an env var, and a `.keras` file, as Keras 3
loads no SavedModel directory) and the strings' numpy dtype (`object`, not the tutorial's
`'str'`: Keras 3 answers "Invalid dtype: str32" to numpy unicode arrays): the model is loaded lazily on the first request, each request
builds a dict of one-element arrays and calls `model.predict`, and the answer is
{"predict": float}.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from flask import Flask, request, jsonify  # noqa: E402
import tensorflow as tf  # noqa: E402,F401
from tensorflow import keras  # noqa: E402
import numpy as np  # noqa: E402

model = None

app = Flask(__name__)


@app.route("/model", methods=['POST'])
def call():
    global model
    payload = request.json
    age = payload.get('Age')
    fare = payload.get('Fare')
    embarked = payload.get('Embarked')
    sex = payload.get('Sex')
    pclass = payload.get('Pclass')

    if model is None:
        model = keras.models.load_model(os.environ["TITANIC_KERAS"], compile=True)

    X = {
        'Age': np.array([age], dtype='float32'),
        'Fare': np.array([fare], dtype='float32'),
        'Embarked': np.array([embarked], dtype=object),
        'Sex': np.array([sex], dtype=object),
        'Pclass': np.array([pclass], dtype='int64')
    }

    Y = model.predict(X)

    return jsonify({'predict': float(Y[0][0])})
