"""benchmarks/distill_hh.py's nested teachers: a student fold's soft target for a training row comes from the one
teacher that saw neither the student's validation fold nor the row's own fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_benchmark


def test_every_soft_target_comes_from_a_teacher_blind_to_the_row_and_the_validation_fold():
    d = load_benchmark("distill_hh")
    n = 4
    fold = pd.Series([0, 1, 2, 3, 1, 0, 3, 2, 2, 1, 0, 3], index=pd.Index([f"r{i}" for i in range(12)], name="id"))
    # teacher pair (a, b) predicts the rows of folds a and b; its logit_a names the pair
    pair_logits = {p: pd.DataFrame({"logit_a": 10.0 * p[0] + p[1], "logit_b": 0.0, "logit_tie": 0.0},
                                   index=fold.index[fold.isin(p)]) for p in d.pairs(n)}
    assert len(pair_logits) == 6  # n(n-1)/2 teachers, each trained on n - 2 folds
    assert all(sorted(d.trained_on(p, n) + list(p)) == list(range(n)) for p in pair_logits)
    for k in range(n):
        teacher = d.teacher_of_fold(k, fold, pair_logits)
        assert sorted(teacher.index) == sorted(fold.index[fold != k])  # every training row, no validation row
        for rid, code in teacher["logit_a"].items():
            pair = divmod(int(code), 10)
            assert set(pair) == {k, fold[rid]}
            assert k not in d.trained_on(pair, n) and fold[rid] not in d.trained_on(pair, n)
    with pytest.raises(ValueError):
        d.pair_of(2, 2)
    pair_logits[(1, 3)] = pair_logits[(1, 3)].drop(index="r1")
    with pytest.raises(SystemExit, match=r"teacher pair \(1, 3\) lacks 1 rows of fold 1 \(first: 'r1'\)"):
        d.teacher_of_fold(3, fold, pair_logits)


def test_an_averaged_teacher_is_the_mean_of_its_members_probabilities():
    d = load_benchmark("distill_hh")
    ids = pd.Index(["x", "y"], name="id")
    first = pd.DataFrame(np.log([[0.8, 0.2, 1e-12], [0.5, 0.25, 0.25]]), index=ids, columns=d.LOGITS)
    second = pd.DataFrame(np.log([[0.4, 0.6, 1e-12], [0.1, 0.65, 0.25]]), index=ids, columns=d.LOGITS)
    mean = d.average([first, second.iloc[::-1]])  # rows matched by id, not by position
    assert np.allclose(np.exp(mean.to_numpy()), [[0.6, 0.4, 1e-12], [0.3, 0.45, 0.25]])
