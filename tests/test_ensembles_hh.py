"""benchmarks/ensembles_hh.py with `--inner teachers`: outer fold k's inner fold models are distill_hh's teacher
pairs {k, j}, each trained on neither fold k nor fold j, read from their kept logits of fold k."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_benchmark


def test_the_inner_models_of_outer_fold_k_are_the_teachers_blind_to_fold_k(tmp_path):
    e = load_benchmark("ensembles_hh")
    assert e.teacher_pairs(0) == ["pair01", "pair02", "pair03", "pair04"]
    assert e.teacher_pairs(2) == ["pair02", "pair12", "pair23", "pair24"]  # each names fold 2: none trained on it
    ids = [f"r{i}" for i in range(6)]
    heldout = pd.DataFrame({"fold": 2, "label": ["a", "b", "a", "b", "a", "b"]}, index=pd.Index(ids, name="id"))
    prob_cols = ["winner_model_a", "winner_model_b", "winner_tie"]
    for j, name in enumerate(e.teacher_pairs(2)):  # pair j: logit_a - logit_b = j on fold 2's rows, in another order
        other = [f"o{i}" for i in range(3)]  # the rows of the pair's other fold: not fold k's
        frame = pd.DataFrame({"id": ids[::-1] + other, "fold": [2] * 6 + [9] * 3, "logit_a": float(j),
                              "logit_b": 0.0, "logit_tie": -np.inf})
        frame.to_csv(tmp_path / f"{name}.csv.gz", index=False)
    inner = e.teacher_inner(2, heldout, prob_cols, tmp_path)
    assert len(inner) == 4
    for j, p in enumerate(inner):
        assert p.shape == (6, 3)
        assert np.allclose(p[:, 0], 1 / (1 + np.exp(-j))) and np.allclose(p[:, 2], 0)  # P(A) = sigmoid(j)
    (tmp_path / "pair24.csv.gz").unlink()
    with pytest.raises(SystemExit, match="pair24"):
        e.teacher_inner(2, heldout, prob_cols, tmp_path)
