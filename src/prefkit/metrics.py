"""Scores of predicted probabilities over the competition's labels (A, B[, tie]): log loss, accuracy,
calibration; the one reliability plot and the one bootstrap interval of the package (the CoT verifier's
P(right) and the Bradley-Terry strengths use them too). The number of labels is the number of probability
columns.

Log loss is scikit-learn's with every class named, so a fold without ties is still scored over all columns.
Probabilities are clipped to [eps, 1 - eps] and renormalised first, as Kaggle's scorer does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import log_loss

from prefkit.competition import swap_index
from prefkit.data.table import LABELS
from prefkit.io import new_figure, save_figure

LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}  # a, b, tie: the order of every label set


def uniform_logloss(k: int) -> float:
    """Log loss of predicting 1/k for every class: log 3 = 1.0986 (LMSYS), log 2 = 0.6931 (WSDM)."""
    return float(np.log(k))


def prior_logloss(labels, k: int) -> float:
    """Log loss of the best constant prediction, the labels' own frequencies: the bar a model must pass on these
    rows (ln 2 = 0.693 on pairs without ties scored over LMSYS's three columns, where uniform says 1.0986)."""
    y = label_ids(labels)
    if not len(y):
        return float("nan")
    freq = np.bincount(y, minlength=k) / len(y)
    return float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())


def label_ids(labels) -> np.ndarray:
    return np.array([LABEL_INDEX[x] for x in labels], dtype=np.int64)


def hard_targets(labels, k: int) -> np.ndarray:
    """One-hot targets over k classes."""
    y = label_ids(labels)
    if len(y) and y.max() >= k:
        raise ValueError(f"label {LABELS[y.max()]!r} outside the {k} classes")
    t = np.zeros((len(y), k), dtype=np.float32)
    t[np.arange(len(y)), y] = 1.0
    return t


def clip_normalise(probs: np.ndarray, eps: float = 1e-15) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0 - eps)
    return p / p.sum(axis=1, keepdims=True)


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((p * n_bins).astype(int), n_bins - 1)


def calibration_error(p: np.ndarray, hit: np.ndarray, n_bins: int = 10) -> float:
    """ECE of probabilities `p` of an event against whether it happened (`hit`, 0/1): sum over equal-width bins
    of |observed share - mean probability| * bin share."""
    bins = _bins(p, n_bins)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(hit[m].mean() - p[m].mean())
    return float(ece)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE of the top-class confidence: is the most probable label the true one as often as its probability says."""
    return calibration_error(probs.max(axis=1), (probs.argmax(axis=1) == y).astype(np.float64), n_bins)


def score(probs: np.ndarray, labels) -> dict:
    y = label_ids(labels)
    p = clip_normalise(probs)
    return {
        "logloss": float(log_loss(y, p, labels=list(range(p.shape[1])))),
        "accuracy": float((p.argmax(axis=1) == y).mean()),
        "ece": expected_calibration_error(p, y),
        "n": int(len(y)),
    }


def margins(probs: np.ndarray) -> np.ndarray:
    """The gap between a row's two most probable labels: |P(A) - P(B)| for A-or-B (WSDM); with ties, a sure tie
    has a wide gap too. How sure a prediction is: the order of budgeted TTA and the cascade, and the
    pseudo-label cut."""
    top = np.sort(probs, axis=1)
    return top[:, -1] - top[:, -2]


def swap_probs(p: np.ndarray) -> np.ndarray:
    """Probabilities (or targets) of the A/B-swapped row mapped back: P(A) and P(B) exchange, P(tie) stays."""
    return p[:, swap_index(p.shape[1])]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Each row's logits (log-probabilities up to a constant per row) as probabilities: their softmax. The one
    logits -> probabilities: heads, prediction files, teachers, temperature."""
    return softmax(logits, axis=1)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident predictions, T < 1 sharpens."""
    return probabilities(np.log(clip_normalise(probs)) / temperature)


def fit_temperature(probs: np.ndarray, labels) -> float:
    """The temperature that minimises log loss on (out-of-fold) predictions."""
    from scipy.optimize import minimize_scalar

    y = label_ids(labels)
    classes = list(range(np.shape(probs)[1]))
    res = minimize_scalar(lambda t: log_loss(y, apply_temperature(probs, t), labels=classes),
                          bounds=(0.05, 20.0), method="bounded")
    return float(res.x)


def label_curves(probs: np.ndarray, labels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The reliability curves of a prediction table: per label, its probability and whether it was the label."""
    y = label_ids(labels)
    p = clip_normalise(probs)
    return {name: (p[:, k], y == k) for k, name in enumerate(("A wins", "B wins", "tie")[: p.shape[1]])}


def reliability_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "",
                     xlabel: str = "predicted probability", ylabel: str = "observed frequency", n_bins: int = 10,
                     counts: bool = False) -> None:
    """Each curve's (probability, hit) as mean probability against observed share in equal-width bins of 5
    rows or more (PNG); `counts` writes each bin's rows beside its point."""
    fig, ax = new_figure((5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    for name, (p, hit) in curves.items():
        bins = _bins(p, n_bins)
        kept = [bins == b for b in range(n_bins) if (bins == b).sum() >= 5]
        xs, ys = [p[m].mean() for m in kept], [hit[m].mean() for m in kept]
        ax.plot(xs, ys, marker="o", label=name)
        if counts:
            for x, y, m in zip(xs, ys, kept):
                ax.annotate(str(int(m.sum())), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "reliability")
    ax.legend(loc="upper left")
    save_figure(fig, path)


def bootstrap(statistic, n: int, rounds: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The central `level` percentile interval of `statistic(rows)` (a number or an array), `rows` being n
    indices drawn with replacement in each of `rounds` resamples: items (questions) resampled, not their parts."""
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(rng.integers(0, n, n)) for _ in range(rounds)])
    tail = (1 - level) / 2
    return np.quantile(stats, tail, axis=0), np.quantile(stats, 1 - tail, axis=0)
