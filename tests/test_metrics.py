from __future__ import annotations

import math

import numpy as np
import pytest

from prefkit.metrics import (
    bootstrap,
    calibration_error,
    expected_calibration_error,
    label_curves,
    prior_logloss,
    reliability_plot,
    score,
    uniform_logloss,
)


def test_score_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    labels = ["a", "b", "tie", "tie"]
    s = score(probs, labels)
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.2) + math.log(0.6)) / 4
    assert s["logloss"] == pytest.approx(expected, abs=1e-12)
    assert s["accuracy"] == 0.75 and s["n"] == 4


def test_uniform_and_missing_class():
    s = score(np.full((2, 3), 1 / 3), ["a", "b"])  # no tie in the labels: still scored over 3 classes
    assert s["logloss"] == pytest.approx(uniform_logloss(3)) and uniform_logloss(3) == pytest.approx(1.0986, abs=1e-4)


def test_prior_logloss_by_hand():
    # frequencies 1/2, 1/4, 1/4: -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.0397; pairs without ties: ln 2 over 3 columns
    assert prior_logloss(["a", "a", "b", "tie"], 3) == pytest.approx(1.5 * math.log(2), abs=1e-12)
    assert prior_logloss(["a", "b"] * 5, 3) == pytest.approx(math.log(2), abs=1e-12)
    assert prior_logloss(["b"] * 4, 2) == 0.0


def test_ece_by_hand():
    # top-class confidences 0.9, 0.9 (bin 9: one right, one wrong -> |0.5 - 0.9|), 0.6 (bin 6: right -> |1 - 0.6|)
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2]])
    y = np.array([0, 1, 1])
    assert expected_calibration_error(probs, y) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.4)


def test_reliability_plot_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=200)
    reliability_plot(label_curves(p, rng.choice(["a", "b", "tie"], size=200)), tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_error_of_an_event_by_hand():
    """The CoT verifier's P(right) against right/wrong: bins [0.1, 0.2) and [0.8, 0.9), each half the rows."""
    p = np.array([0.1, 0.1, 0.8, 0.8])
    hit = np.array([False, False, True, False])
    assert calibration_error(p, hit) == pytest.approx(0.5 * 0.1 + 0.5 * 0.3)
    probs = np.c_[1 - p, p]  # the same rows as two labels: the top-class ECE reads 0.9, 0.9, 0.8, 0.8
    assert expected_calibration_error(probs, hit.astype(int)) == pytest.approx(0.5 * 0.1 + 0.5 * 0.3)


def test_bootstrap_resamples_items_and_gives_a_number_or_an_array():
    hits = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    lo, hi = bootstrap(lambda rows: hits[rows].mean(), len(hits), rounds=500, seed=1)
    assert 0.0 <= lo < hits.mean() < hi <= 1.0 and np.ndim(lo) == 0
    assert bootstrap(lambda rows: hits[rows].mean(), len(hits), rounds=500, seed=1) == (lo, hi), "seeded"
    lo2, hi2 = bootstrap(lambda rows: np.array([hits[rows].mean(), 1.0]), len(hits), rounds=500, seed=1)
    assert lo2.shape == (2,) and (lo2[0], hi2[0]) == (lo, hi) and lo2[1] == hi2[1] == 1.0
    narrow = bootstrap(lambda rows: hits[rows].mean(), len(hits), rounds=500, seed=1, level=0.5)
    assert lo <= narrow[0] <= narrow[1] <= hi
