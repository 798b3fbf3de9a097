from __future__ import annotations

import numpy as np
import pytest

from prefkit.data.folds import assign_folds
from prefkit.data.table import TableBuilder, normalise_prompt
from prefkit.errors import PrefkitError


def repeated_prompts(n_prompts=60, per_prompt=4):
    b = TableBuilder("mem")
    rng = np.random.default_rng(0)
    row = 0
    for p in range(n_prompts):
        for k in range(per_prompt):
            row += 1
            text = f"Question {p}?" if k % 2 else f"  question {p}?  "  # same prompt up to case and spaces
            b.add(row, None, str(row), [text], ["x"], ["y"], label=str(rng.choice(["a", "b", "tie"])))
    return b.build()


def test_no_prompt_in_two_folds_and_folds_balanced():
    t = repeated_prompts()
    folds = assign_folds(t, 5, seed=1)
    groups = t.frame["prompt"].map(normalise_prompt)
    assert (groups.groupby(folds).nunique().sum()) == groups.nunique(), "each prompt in exactly one fold"
    for g, f in zip(groups, folds):
        assert len(set(folds[groups.to_numpy() == g])) == 1
    sizes = np.bincount(folds)
    assert len(sizes) == 5 and sizes.min() >= 40 and sizes.max() <= 56


def test_folds_seeded():
    t = repeated_prompts()
    assert np.array_equal(assign_folds(t, 5, 1), assign_folds(t, 5, 1))
    assert not np.array_equal(assign_folds(t, 5, 1), assign_folds(t, 5, 2))


def test_too_few_prompts():
    with pytest.raises(PrefkitError, match="distinct prompts"):
        assign_folds(repeated_prompts(n_prompts=3), 5, 0)
