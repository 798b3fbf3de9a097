"""benchmarks/cross_hh.py's length control across sets: the anchor's length fit comes from its helpful-base
predictions alone, so the cross-set probabilities do not depend on any cross-set label, and they take length out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefkit.data.table import TableBuilder

from tests.conftest import load_benchmark


def _pairs(name: str, lengths: list[tuple[int, int]], labels: list[str]):
    b = TableBuilder(name)
    for i, ((la, lb), label) in enumerate(zip(lengths, labels)):
        b.add(i, f"{name}-{i}", f"p{i}", [f"question {i}?"], ["x" * la], ["y" * lb], label=label)
    return b.build()


def _probs(ids, p_a, labels) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "winner_model_a": p_a, "winner_model_b": 1 - p_a, "winner_tie": 0.0},
                        index=pd.Index(ids, name="id"))


def test_length_removed_across_sets_reads_no_cross_label_and_takes_length_out():
    c = load_benchmark("cross_hh")
    rng = np.random.default_rng(0)
    n = 80
    lengths = [(int(a), int(b)) for a, b in rng.integers(5, 400, size=(n, 2))]
    z = np.array([np.log1p(a) - np.log1p(b) for a, b in lengths])
    content = rng.normal(size=n)
    labels = np.where(content + 0.5 * z + rng.normal(scale=0.3, size=n) > 0, "a", "b")
    helpful = _pairs("helpful", lengths, list(labels))
    # the anchor's logit: length (slope 2) and content
    p_fit = 1 / (1 + np.exp(-(2.0 * z + content)))
    anchor_oof = _probs(helpful.frame["id"].astype(str), p_fit, labels)
    cross_lengths = lengths[::-1]
    zc = np.array([np.log1p(a) - np.log1p(b) for a, b in cross_lengths])
    p_cross = 1 / (1 + np.exp(-(2.0 * zc)))  # length alone: nothing left once length is out
    harmless = _pairs("harmless", cross_lengths, ["a"] * n)
    cross = _probs(harmless.frame["id"].astype(str), p_cross, ["a"] * n)
    out = c.length_removed_across(anchor_oof, helpful, cross, harmless)
    scrambled = _pairs("harmless", cross_lengths, list(rng.choice(["a", "b"], size=n)))
    again = c.length_removed_across(anchor_oof, helpful, cross.assign(label="b"), scrambled)
    assert np.allclose(out, again)  # no cross-set label read
    # the fitted slope is about 2 (content is independent of length), so a pure-length logit loses nearly all of
    # its spread: far less than the raw probabilities' dependence on length
    assert np.std(out) < 0.25 * np.std(p_cross)
