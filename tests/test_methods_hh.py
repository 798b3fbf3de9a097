"""benchmarks/methods_hh.py keeps each variant's finished folds: a fold kept again replaces the old one, and two runs
of the benchmark (one a core, as they are run) that keep folds at the same time lose none of them in folds.json."""

from __future__ import annotations

import fcntl
import json
import threading

import pandas as pd

from tests.conftest import load_benchmark


def _frame(fold: int, value: float) -> pd.DataFrame:
    ids = [f"{fold}-{i}" for i in range(3)]
    return pd.DataFrame({"fold": fold, "label": "a", "winner_model_a": value, "winner_model_b": 1 - value,
                         "winner_tie": 0.0}, index=pd.Index(ids, name="id"))


def test_a_fold_kept_again_replaces_the_old_one_and_the_others_stay(tmp_path):
    mh = load_benchmark("methods_hh")
    mh.KEPT = tmp_path
    mh.keep("v", pd.concat([_frame(0, 0.6), _frame(1, 0.7)]), {0: 10.0, 1: 11.0}, "bfloat16")
    mh.keep("v", _frame(1, 0.2), {1: 12.0}, "bfloat16")
    got = mh.kept("v")
    assert sorted(got.index) == ["0-0", "0-1", "0-2", "1-0", "1-1", "1-2"]
    assert got.loc["0-0", "winner_model_a"] == 0.6 and got.loc["1-0", "winner_model_a"] == 0.2
    book = json.loads((tmp_path / "folds.json").read_text())
    assert book["v"]["0"]["seconds"] == 10.0 and book["v"]["1"]["seconds"] == 12.0
    assert not list(tmp_path.glob(".*.tmp"))


def test_keeping_folds_waits_while_another_run_writes_folds_json(tmp_path):
    """Two runs of the benchmark (one a core) may finish a fold at the same time: folds.json is read, updated and
    rewritten under a lock, so neither run's entry is lost. Here the other run holds the lock."""
    mh = load_benchmark("methods_hh")
    mh.KEPT = tmp_path
    mh.keep("other", _frame(0, 0.5), {0: 1.0}, "float32")
    with open(tmp_path / ".folds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        worker = threading.Thread(target=mh.keep, args=("v", _frame(0, 0.4), {0: 2.0}, "float32"))
        worker.start()
        worker.join(1.0)
        assert worker.is_alive(), "keep wrote folds.json while another run held its lock"
        assert "v" not in json.loads((tmp_path / "folds.json").read_text())
    worker.join(30)
    book = json.loads((tmp_path / "folds.json").read_text())
    assert sorted(book) == ["other", "v"]


def test_two_runs_of_one_variant_on_other_folds_lose_neither_fold(tmp_path):
    """One variant's folds run on two cores at once (two work folders): each run merges its fold into the same
    kept CSV. The read of the kept predictions is under the lock too, else the run that waited would write its
    fold over a file read before the other run's fold was in it. Here the other run keeps fold 1 while it holds
    the lock; fold 2's keeper, started meanwhile, must still see it."""
    mh = load_benchmark("methods_hh")
    mh.KEPT = tmp_path
    mh.keep("v", _frame(0, 0.6), {0: 1.0}, "bfloat16")
    with open(tmp_path / ".folds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # the other run, holding the lock, reads the kept predictions ...
        both = pd.concat([mh.kept("v"), _frame(1, 0.7)])
        worker = threading.Thread(target=mh.keep, args=("v", _frame(2, 0.3), {2: 3.0}, "bfloat16"))
        worker.start()
        worker.join(1.0)
        # ... and writes them with its fold, as keep does
        both.round(6).to_csv(tmp_path / "v.csv.gz", compression={"method": "gzip", "mtime": 0})
    worker.join(30)
    assert sorted(mh.kept("v")["fold"].unique()) == [0, 1, 2]


def test_describe_compares_with_the_anchor_where_the_shorter_answer_won():
    """Length control is judged on the pairs where the shorter answer won: the paired accuracy difference on those
    rows alone, by hand. Rows 2, 4 and 6: the shorter won; the variant is right on all three, the anchor on one."""
    import numpy as np

    from prefkit.data.table import TableBuilder

    mh = load_benchmark("methods_hh")
    b = TableBuilder("lengths")
    rows = [(["xxxx"], ["xx"], "a"), (["x"], ["xxx"], "a"), (["xxx"], ["x"], "a"), (["xxxxx"], ["x"], "b"),
            (["x"], ["xxxx"], "b"), (["xx"], ["xxxxxx"], "a")]  # who won: longer, shorter, longer, shorter, longer, shorter
    for i, (ra, rb, label) in enumerate(rows, start=1):
        b.add(i, None, f"r{i}", ["q"], ra, rb, label=label)
    table = b.build()
    ids = [f"r{i}" for i in range(1, 7)]
    labels = [r[2] for r in rows]
    a_won = np.array([0.8, 0.2, 0.8, 0.2, 0.2, 0.2])  # anchor: right on rows 1, 3, 5 and 4; wrong on 2 and 6
    variant = np.array([0.8, 0.8, 0.8, 0.2, 0.2, 0.8])  # right everywhere
    frame = lambda p: pd.DataFrame({"fold": [0, 0, 0, 1, 1, 1], "label": labels, "winner_model_a": p,  # noqa: E731
                                    "winner_model_b": 1 - p, "winner_tie": 0.0}, index=pd.Index(ids, name="id"))
    anchor = frame(a_won)
    v = frame(variant)
    row = mh.describe("v", v[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy(), v, table, anchor, "", [])
    # the shorter won on rows 2, 4, 6: the anchor right on row 4 only, the variant on all three: +2/3, se of
    # (1, 0, 1): std 0.5774 / sqrt(3) = 0.3333
    assert row["where shorter won"] == 1.0
    assert row["vs anchor where shorter won"] == "+0.6667 ± 0.3333"
