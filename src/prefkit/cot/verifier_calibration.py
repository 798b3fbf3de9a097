"""P(right) of a sampled rationale from its verifier scores: Platt scaling of one verifier, a logistic-regression
blend of several (and of the vote share, `best_of_k.vote_share`), a fit per dataset where it has the samples,
and cross-fitted logits for the held-out figures of a calibration. Fitted on scores of samples whose questions
the verifiers did not train on (`verifier_scores.held_out`).
"""

from __future__ import annotations

import numpy as np

from prefkit.errors import PrefkitError

MIN_EACH = 20  # right and wrong held-out samples a dataset needs for a calibration of its own


class Calibration:
    """P(right) from one verifier's score (Platt scaling) or from several (their logistic-regression blend),
    fitted on scores of samples whose questions the verifiers did not train on. `s`: (samples,) or (samples,
    verifiers). With `datasets` (one name a sample), each dataset with at least `MIN_EACH` right and wrong
    samples gets a regression of its own: datasets differ in how often the student is right and in which
    verifier reads them (an arithmetic check says nothing of a date), and the dataset of a test question is
    known; the others share one fitted on every sample."""

    def __init__(self, s: np.ndarray, labels: np.ndarray, datasets: list[str] | None = None):
        labels = np.asarray(labels, dtype=bool)
        if len(set(labels.tolist())) < 2:
            raise PrefkitError("calibration needs right and wrong samples among the held-out training questions")
        self.pooled = _logistic(s, labels)
        self.by_dataset = {}
        if datasets is not None:
            names = np.asarray(datasets)
            for d in sorted(set(datasets)):
                m = names == d
                if min(labels[m].sum(), (~labels[m]).sum()) >= MIN_EACH:
                    self.by_dataset[d] = _logistic(s[m], labels[m])

    def logit(self, s: np.ndarray, datasets: list[str] | None = None) -> np.ndarray:
        """The calibrated logit of P(right) of each sample."""
        out = self.pooled.decision_function(_columns(s))
        if datasets is not None:
            names = np.asarray(datasets)
            for d, model in self.by_dataset.items():
                m = names == d
                if m.any():
                    out[m] = model.decision_function(_columns(s[m]))
        return out

    def describe(self) -> dict:
        def one(model) -> dict:
            return {"coef": [round(float(c), 6) for c in model.coef_[0]], "intercept": round(float(model.intercept_[0]), 6)}

        return {"pooled": one(self.pooled), "by_dataset": {d: one(m) for d, m in self.by_dataset.items()}}


def cross_fitted(s: np.ndarray, labels: np.ndarray, groups: list[str], datasets: list[str] | None = None,
                 n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """The calibrated logit of each sample from a calibration fitted on other questions only (grouped k-fold):
    the held-out figures of a calibration, or of a blend, are then not scored on the samples it was fitted on."""
    from sklearn.model_selection import GroupKFold

    out = np.zeros(len(s))
    names = None if datasets is None else np.asarray(datasets)
    splits = min(n_splits, len(set(groups)))
    for fit, held in GroupKFold(n_splits=splits, shuffle=True, random_state=seed).split(_columns(s), labels, groups):
        if len(set(labels[fit].tolist())) < 2:  # every right sample is in the held part: the other questions' rate
            rate = (labels[fit].sum() + 0.5) / (len(fit) + 1)  # (Laplace), the one estimate they allow
            out[held] = np.log(rate / (1 - rate))
            continue
        cal = Calibration(s[fit], labels[fit], None if names is None else names[fit].tolist())
        out[held] = cal.logit(s[held], None if names is None else names[held].tolist())
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    """P(right) of a calibrated logit."""
    return 1.0 / (1.0 + np.exp(-x))


def _logistic(s: np.ndarray, labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1e4).fit(_columns(s), labels.astype(int))


def _columns(s: np.ndarray) -> np.ndarray:
    return s.reshape(len(s), -1)
