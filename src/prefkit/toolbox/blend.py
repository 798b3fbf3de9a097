"""Blending runs: weights fitted on their out-of-fold predictions, and the blender's own CV.

    simplex  p = sum_i w_i p_i, w on the simplex (w_i >= 0, sum 1), fitted by minimising log loss (L-BFGS-B on
             w = softmax(z); scipy). The usual Kaggle blend: few parameters, hard to overfit.
    stack    multinomial logistic regression on the members' log-probabilities (scikit-learn): can also
             recalibrate and use one member's confidence to trust another, at the cost of k * (m * k + 1) weights.

The blender's CV: for each fold of the members' OOF, the blender is fitted on the other folds and predicts this
one, so the blend's reported score is out of fold for the blender too (fitting and scoring on the same OOF
rows would flatter it). The final blender is then fitted on all OOF rows.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax

from prefkit.metrics import clip_normalise, label_ids

METHODS = ("simplex", "stack")


def _logloss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(clip_normalise(p)[np.arange(len(y)), y]).mean())


class Blender:
    def __init__(self, method: str = "simplex", seed: int = 0):
        if method not in METHODS:
            raise ValueError(f"blend method {method!r}: one of {', '.join(METHODS)}")
        self.method, self.seed = method, seed
        self.weights: np.ndarray | None = None  # simplex
        self.model = None  # stack

    def fit(self, members: list[np.ndarray], labels) -> "Blender":
        """`members`: each run's probabilities of the same rows (rows x classes)."""
        y = label_ids(labels)
        if self.method == "simplex":
            stacked = np.stack(members)  # (m, rows, k)

            def loss(z: np.ndarray) -> float:
                return _logloss(np.tensordot(softmax(z), stacked, axes=1), y)

            res = minimize(loss, np.zeros(len(members)), method="L-BFGS-B")
            self.weights = softmax(res.x)
        else:
            from sklearn.linear_model import LogisticRegression

            k = members[0].shape[1]
            self.model = LogisticRegression(C=1.0, max_iter=1000, random_state=self.seed)
            self.model.fit(self._design(members), y)
            self.classes = k
        return self

    @staticmethod
    def _design(members: list[np.ndarray]) -> np.ndarray:
        return np.hstack([np.log(clip_normalise(m)) for m in members])

    def predict(self, members: list[np.ndarray]) -> np.ndarray:
        if self.method == "simplex":
            return np.tensordot(self.weights, np.stack(members), axes=1)
        p = np.zeros((len(members[0]), self.classes))
        p[:, self.model.classes_] = self.model.predict_proba(self._design(members))
        return p

    def describe(self) -> dict:
        if self.method == "simplex":
            return {"method": "simplex", "weights": [round(float(w), 6) for w in self.weights]}
        return {"method": "stack", "coefficients": np.round(self.model.coef_, 6).tolist(),
                "intercept": np.round(self.model.intercept_, 6).tolist()}

    def save(self, path: Path) -> None:
        from prefkit.io import atomic_path

        with atomic_path(path) as tmp:
            joblib.dump(self, tmp)

    @staticmethod
    def load(path: Path) -> "Blender":
        return joblib.load(path)


def blender_cv(members: list[np.ndarray], labels, folds: np.ndarray, method: str) -> np.ndarray:
    """Out-of-fold blended probabilities: each fold predicted by a blender fitted on the other folds."""
    labels = np.asarray(labels)
    out = np.zeros_like(members[0])
    for k in np.unique(folds):
        va = folds == k
        b = Blender(method).fit([m[~va] for m in members], labels[~va])
        out[va] = b.predict([m[va] for m in members])
    return out
