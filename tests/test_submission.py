from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefkit.errors import PrefkitError
from prefkit.submission import write_submission


def test_order_clip_and_sum(tmp_path):
    out = tmp_path / "sub.csv"
    probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]])
    write_submission(["c", "a", "b"], ["a", "b", "c"], probs, out, clip=1e-3)
    s = pd.read_csv(out, dtype={"id": str})
    assert list(s.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    assert list(s["id"]) == ["c", "a", "b"], "test file order"
    v = s[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy()
    assert np.allclose(v.sum(axis=1), 1.0, atol=1e-7)
    assert v.min() > 0 and v.max() < 1
    assert v[0] == pytest.approx([0.0, 0.5, 0.5], abs=2e-3) and v[2, 2] == pytest.approx(0.5, abs=1e-7)
    assert list(tmp_path.iterdir()) == [out], "no temporary file left"


@pytest.mark.parametrize("pred_ids,words", [
    (["a", "b"], "1 test ids have no prediction (first: 'c')"),
    (["a", "b", "c", "d"], "1 predicted ids are not in the test file (first: 'd')"),
    (["a", "a", "b"], "repeat id 'a'"),
])
def test_refuses_wrong_ids(tmp_path, pred_ids, words):
    out = tmp_path / "sub.csv"
    with pytest.raises(PrefkitError, match=words.replace("(", r"\(").replace(")", r"\)")):
        write_submission(["a", "b", "c"], pred_ids, np.full((len(pred_ids), 3), 1 / 3), out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_refuses_nan(tmp_path):
    with pytest.raises(PrefkitError, match="NaN"):
        write_submission(["a"], ["a"], np.array([[np.nan, 0.5, 0.5]]), tmp_path / "s.csv")
