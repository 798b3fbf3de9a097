"""benchmarks/trainsets_hh.py's training sets: fold k's pseudo-label file holds fold k's pairs with the anchor's
probabilities and reads no label of fold k; the length-balanced set is prefkit's
(`prefkit.toolbox.rules.length_balanced`, tested in tests/toolbox/test_length_balance.py) with the benchmark's seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefkit.competition import COMPETITIONS
from prefkit.data.table import TableBuilder
from prefkit.metrics import margins
from prefkit.toolbox.predictions import lookup
from tests.conftest import learnable, load_benchmark

LMSYS = COMPETITIONS["lmsys"]


def _anchor(table, fold: pd.Series, seed: int = 3) -> pd.DataFrame:
    """Kept out-of-fold predictions of every row (methods_hh's columns), in another row order than the table's."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([2.0, 2.0, 0.3], size=len(fold))
    frame = pd.DataFrame({"fold": fold.to_numpy(), "label": table.frame["label"].to_numpy(),
                          **{c: p[:, i] for i, c in enumerate(LMSYS.columns)}}, index=fold.index)
    return frame.iloc[::-1]


def test_the_pseudo_file_of_fold_k_is_its_pairs_with_the_anchors_probabilities_and_no_label(tmp_path):
    t = load_benchmark("trainsets_hh")
    table = learnable(30, seed=1)
    ids = pd.Index(table.frame["id"].astype(str), name="id")
    fold = pd.Series(np.arange(len(ids)) * 7 % 5, index=ids)
    anchor = _anchor(table, fold)
    k = 2
    path = tmp_path / "fold2.pseudo.csv"
    info = t.write_pseudo(path, table, fold, k, anchor, LMSYS)
    assert info == {"rows": 6, "kept": 6, "dropped": 0, "min_margin": 0.0}
    written = pd.read_csv(path, dtype={"id": str})
    assert list(written["id"]) == list(ids[fold == k])  # exactly fold k's rows, in the table's order
    assert np.allclose(written[list(LMSYS.columns)], anchor.loc[written["id"], list(LMSYS.columns)], atol=1e-7)
    assert not {"label", "fold"} & set(written.columns)
    # prefkit reads it back as the soft targets of those ids
    back = np.exp(lookup([path], list(written["id"]), LMSYS, "train.pseudo_labels"))
    back /= back.sum(axis=1, keepdims=True)
    assert np.allclose(back, anchor.loc[written["id"], list(LMSYS.columns)], atol=1e-6)

    # fold k's labels scrambled, in the table and in the anchor's file: the same bytes
    scrambled = table.subset(np.ones(len(table), bool))
    in_k = (fold.loc[ids] == k).to_numpy()
    scrambled.frame.loc[in_k, "label"] = np.roll(scrambled.frame.loc[in_k, "label"].map(
        {"a": "b", "b": "tie", "tie": "a"}).to_numpy(), 1)
    assert (scrambled.frame["label"] != table.frame["label"]).sum() >= 4
    other = anchor.assign(label=np.where(anchor["fold"] == k, "tie", anchor["label"]))
    again = tmp_path / "again.csv"
    t.write_pseudo(again, scrambled, fold, k, other, LMSYS)
    assert again.read_bytes() == path.read_bytes()

    # WSDM Cup 2nd's cut: the pairs with |P(A) - P(B)| <= margin dropped and counted
    margin = float(np.sort(margins(anchor.loc[fold.index[fold == k], list(LMSYS.columns)].to_numpy()))[2])
    info = t.write_pseudo(tmp_path / "cut.csv", table, fold, k, anchor, LMSYS, min_margin=margin)
    assert (info["kept"], info["dropped"]) == (3, 3)

    # an anchor whose fold k is not this fold k is refused, naming a row
    first = fold.index[fold == k][0]
    with pytest.raises(SystemExit, match=rf"1 rows lacking \(first: '{first}'\), 0 others"):
        t.write_pseudo(tmp_path / "x.csv", table, fold, k, anchor.drop(index=first), LMSYS)
    with pytest.raises(SystemExit, match=rf"0 rows lacking \(first: None\), 1 others \(first: '{first}'\)"):
        t.write_pseudo(tmp_path / "x.csv", table, fold.where(fold.index != first, k + 1), k, anchor, LMSYS)


def _pairs(spec: list[tuple[int, int, str]]):
    """A table of pairs by (characters of A, of B, label)."""
    b = TableBuilder("lengths")
    for i, (la, lb, label) in enumerate(spec):
        b.add(i, None, f"p{i}", [f"question {i}?"], ["x" * la], ["y" * lb], label=label)
    return b.build()


def test_the_length_balanced_set_is_prefkits_with_the_benchmarks_seed(tmp_path, capsys):
    """Fold k's balanced file is `prefkit.toolbox.rules.length_balanced` of the 4 other folds' rows with SEED (the
    function moved into prefkit; its kept folds' training sets stay as they were), its counts line prefkit's."""
    t = load_benchmark("trainsets_hh")
    from prefkit.config import load_config
    from prefkit.data import load_pairs
    from prefkit.toolbox.rules import balance_line, length_balanced

    longer = [(9, 3, "a"), (2, 8, "b"), (7, 1, "a"), (4, 6, "b"), (10, 5, "a"), (1, 9, "b"), (6, 2, "a")]
    shorter = [(3, 9, "a"), (8, 2, "b"), (5, 7, "a")]
    table = _pairs(longer * 2 + shorter * 2 + [(4, 4, "a")])
    bench = t.Trainsets.__new__(t.Trainsets)
    bench.work, bench.data, bench.extra, bench.table = tmp_path, tmp_path / "lengths.jsonl.gz", [], table
    bench.fold = pd.Series(np.arange(len(table)) % 5, index=pd.Index(table.frame["id"].astype(str), name="id"))
    path, sets, counts = bench.training_set(t.BALANCED, 1, None, 0.0)
    want, want_counts = length_balanced(table.subset((bench.fold != 1).to_numpy()), t.SEED)
    assert sets == [] and counts == want_counts and counts["duplicated"] > 0
    assert list(load_pairs(str(path), load_config(None).data).frame["id"]) == list(want.frame["id"])
    assert f"{t.BALANCED} fold 1: {balance_line(counts)}" in capsys.readouterr().out
    assert t.counts_line(counts) == balance_line(counts) and not hasattr(t, "length_balanced")


def test_the_16_layer_length_balanced_variant_trains_the_balanced_set_with_16_layers(tmp_path, monkeypatch):
    """Its `prefkit train` reads the fold's length-balanced file and sets the adapters on the last 16 layers after the
    anchor's 8 (the last override of a key wins); the 8-layer variant keeps the anchor's."""
    t = load_benchmark("trainsets_hh")
    from prefkit.config import load_config
    from prefkit.shipped import config_path

    class Stop(Exception):
        pass

    calls = []

    def train(args, log):  # the train command recorded, and nothing run
        calls.append(args)
        raise Stop

    monkeypatch.setattr(t, "_prefkit", train)
    bench = t.Trainsets.__new__(t.Trainsets)
    bench.config, bench.overrides, bench.extra, bench.work = t.mh._DECODER[0], t.mh._DECODER[1], [], tmp_path
    monkeypatch.setattr(t.mh, "kept", lambda name: None)
    monkeypatch.setattr(bench, "check_fold", lambda anchor, k: None)
    monkeypatch.setattr(bench, "training_set", lambda name, k, anchor, m: (tmp_path / "balanced.parquet", [], {}))
    for name, layers in ((t.BALANCED_16, 14), (t.BALANCED, 22)):
        with pytest.raises(Stop):
            bench.train_fold(name, 0, 0.0)
        args = calls[-1]
        assert args[0] == "train" and f"data.train={tmp_path / 'balanced.parquet'}" in args
        sets = [a for a in args[2:] if not a.startswith(("data.train=", "output_dir="))]
        cfg = load_config(config_path(args[1]), sets)
        assert cfg.lora.skip_first_layers == layers
