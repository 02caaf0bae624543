"""Train the iris tutorial's model and pickle it: python train_iris.py OUT.pkl|OUT.joblib

The same LogisticRegression as examples/iris/train.py (C=1, lbfgs, max_iter=1000,
random_state=0, on scikit-learn's bundled iris: no download). Each venv runs this with its
own scikit-learn, since a pickle is only safe to load with the version that wrote it.
"""

import pickle
import sys

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main() -> int:
    out = sys.argv[1]
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(X, y)
    if out.endswith(".joblib"):  # MLServer's scikit-learn runtime loads with joblib
        import joblib

        joblib.dump(clf, out)
    else:
        with open(out, "wb") as f:
            pickle.dump(clf, f)
    print(f"wrote {out}: training accuracy {clf.score(X, y):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
