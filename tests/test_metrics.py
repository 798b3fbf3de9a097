from __future__ import annotations

import math

import numpy as np
import pytest

from prefkit.metrics import (
    UNIFORM_LOGLOSS,
    expected_calibration_error,
    prior_logloss,
    reliability_plot,
    score,
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
    assert s["logloss"] == pytest.approx(UNIFORM_LOGLOSS) and UNIFORM_LOGLOSS == pytest.approx(1.0986, abs=1e-4)


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
    reliability_plot(p, rng.choice(["a", "b", "tie"], size=200), tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
