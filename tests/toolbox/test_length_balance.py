"""Length-balanced training (`train.length_balance`, `prefkit.toolbox.rules.length_balanced`): the pairs of the
smaller of two groups (the shorter last answer won, the longer won) copied until the groups are as many, in the
training rows only: counts by hand, the refusals, and `prefkit cv` / `prefkit train` runs whose folds train on the
copies while their validation rows and the OOF keep the original ids."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.core.runs import MARKER
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.table import TableBuilder
from prefkit.errors import PrefkitError
from prefkit.rm import probes
from prefkit.toolbox.pseudo import write_pseudo_labels
from prefkit.toolbox.rules import balance_line, last_turn_lengths, length_balanced
from tests.conftest import FAST, TINY

# (characters of A, of B, label)
LONGER = [(9, 3, "a"), (2, 8, "b"), (7, 1, "a"), (4, 6, "b"), (10, 5, "a"), (1, 9, "b"), (6, 2, "a")]
SHORTER = [(3, 9, "a"), (8, 2, "b"), (5, 7, "a")]
NEITHER = [(4, 4, "a"), (5, 5, "b"), (2, 6, "tie")]  # equal lengths twice, a tie


def _pairs(spec: list[tuple[int, int, str]], source: str = "lengths", ids=None):
    """A table of pairs by (characters of A, of B, label), ids p0, p1, ... (or `ids`), a prompt each."""
    b = TableBuilder(source)
    for i, (la, lb, label) in enumerate(spec):
        b.add(i, None, ids[i] if ids else f"p{i}", [f"question {i}?"], ["x" * la], ["y" * lb], label=label)
    return b.build()


def test_the_length_balanced_set_copies_only_shorter_won_pairs_until_the_groups_are_equal():
    table = _pairs(LONGER + SHORTER + NEITHER)
    out, counts = length_balanced(table, seed=0)
    assert counts == {"rows": 13, "shorter_won": 3, "longer_won": 7, "equal_lengths": 2, "ties": 1,
                      "copied": "shorter won", "duplicated": 4, "rows_trained": 17}
    assert balance_line(counts) == ("13 rows: shorter won 3, longer won 7, equal lengths 2, ties 1; 4 copies of "
                                    "'shorter won' pairs: 17 trained on")
    ids = out.frame["id"].astype(str)
    originals = ids[~ids.str.contains("~dup")]
    assert list(originals) == list(table.frame["id"])  # every row once, first, in its order
    shorter_ids = {f"p{i}" for i in range(7, 10)}
    copies = ids[ids.str.contains("~dup")]
    assert {c.split("~")[0] for c in copies} <= shorter_ids
    # 4 copies of 3 pairs: each once (~dup1) and one seeded pair twice (~dup2)
    assert sorted(c.split("~")[1] for c in copies) == ["dup1", "dup1", "dup1", "dup2"]
    by_id = out.frame.set_index(out.frame["id"].astype(str))
    for c in copies:
        assert by_id.loc[c, ["prompt", "response_a", "response_b", "label"]].tolist() == \
            by_id.loc[c.split("~")[0], ["prompt", "response_a", "response_b", "label"]].tolist()
    la, lb = last_turn_lengths(out)
    y = out.frame["label"].to_numpy()
    decided = (la != lb) & (y != "tie")
    longer_won = decided & ((y == "a") == (la > lb))
    assert longer_won.sum() == (decided & ~longer_won).sum() == 7
    assert length_balanced(table, seed=0)[0].frame["id"].tolist() == ids.tolist()  # seeded
    assert out.source == table.source and len(table) == 13  # the input is left as it was

    balanced = _pairs(LONGER[:3] + SHORTER)  # already equal: nothing copied
    out, counts = length_balanced(balanced, seed=0)
    assert counts["duplicated"] == 0 and len(out) == len(balanced)


def test_the_smaller_group_is_the_one_copied_whichever_it_is():
    # 5 where the shorter won, 2 where the longer won: the 2 longer-won pairs copied 3 times (each once, one twice)
    table = _pairs(SHORTER + [(2, 9, "a"), (6, 3, "b")] + LONGER[:2] + [(3, 3, "tie")])
    out, counts = length_balanced(table, seed=1)
    assert counts == {"rows": 8, "shorter_won": 5, "longer_won": 2, "equal_lengths": 0, "ties": 1,
                      "copied": "longer won", "duplicated": 3, "rows_trained": 11}
    copies = sorted(out.frame["id"][8:])
    assert len(copies) == 3 and {c.split("~")[0] for c in copies} == {"p5", "p6"}
    assert sorted(c.split("~")[1] for c in copies) == ["dup1", "dup1", "dup2"]


def test_length_balancing_refuses_what_it_cannot_balance_naming_the_file():
    with pytest.raises(PrefkitError, match=r"only-longer: length balancing: no pair where the shorter answer won "
                                           r"among its 3 rows \(the longer won 3\)"):
        length_balanced(_pairs(LONGER[:3], "only-longer"), seed=0)
    unlabelled = _pairs(LONGER + SHORTER, "mixed")
    unlabelled.frame.loc[4, "label"] = None
    with pytest.raises(PrefkitError, match=r"mixed: length balancing: 1 rows have no label \(first: id 'p4'\)"):
        length_balanced(unlabelled, seed=0)
    # a copy's id would be the id of another row of the file
    clash = _pairs(LONGER[:2] + SHORTER[:1] + LONGER[2:4], "clash", ids=["a", "b", "s", "s~dup1", "c"])
    with pytest.raises(PrefkitError, match=r"clash: length balancing would name a copy 's~dup1'"):
        length_balanced(clash, seed=0)


def test_length_balance_is_refused_with_soft_labels_or_a_teacher_and_allowed_with_pseudo_labels():
    assert load_config(None).train.length_balance is False
    for key in ("train.soft_labels=soft.csv", "train.distill.teacher=[runs/teacher]"):
        with pytest.raises(PrefkitError, match=rf"command line: train.length_balance with {key.split('=')[0]}: the "
                                               r"copies that balancing adds have new ids"):
            load_config(None, ["model.kind=seq_cls", "train.length_balance=true", key])
        load_config(None, ["model.kind=seq_cls", key])  # each alone is fine
    cfg = load_config(None, ["model.kind=seq_cls", "train.length_balance=true", "train.pseudo_labels=pl.csv"])
    assert cfg.train.length_balance and cfg.train.pseudo_labels == "pl.csv"
    assert load_config(None, ["model.kind=features", "train.length_balance=true"]).train.length_balance


# the planted cv data: a pattern of 6 rows, 3 where the longer answer won, 1 where the shorter won, 1 of equal
# lengths, 1 tie; each row its own prompt (its own group for the folds)
PATTERN = [(20, 5, "a"), (5, 20, "b"), (18, 6, "a"), (6, 18, "a"), (9, 9, "b"), (7, 14, "tie")]


def _expected(kinds: pd.Series) -> dict:
    """The counts of a fold's training rows by hand, from each row's place in PATTERN."""
    n = {j: int((kinds == j).sum()) for j in range(6)}
    longer, shorter = n[0] + n[1] + n[2], n[3]
    return {"rows": len(kinds), "shorter_won": shorter, "longer_won": longer, "equal_lengths": n[4], "ties": n[5],
            "copied": "shorter won", "duplicated": longer - shorter, "rows_trained": 2 * longer + n[4] + n[5]}


def test_cv_balances_each_folds_training_rows_and_never_its_validation_rows_or_the_oof(tmp_path, run_cli):
    n = 36
    table = _pairs([PATTERN[i % 6] for i in range(n)])
    write_lmsys_csv(table, tmp_path / "train.csv")
    out = tmp_path / "run"
    res = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'train.csv'}", "cv.n_splits=3",
                  "features.max_iter=20", "train.probe_rows=0", "train.length_balance=true", f"output_dir={out}")
    assert res.code == 0, res.err
    oof = pd.read_csv(out / "oof.csv", dtype={"id": str})
    assert sorted(oof["id"]) == sorted(table.frame["id"]) and len(oof) == n  # the original ids, each once
    kind = pd.Series([i % 6 for i in range(n)], index=[f"p{i}" for i in range(n)])
    fold = oof.set_index("id")["fold"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["length_balance"]) == {"0", "1", "2"}
    for k in range(3):
        folder = out / f"fold{k}"
        held_out = fold.index[fold == k]
        counts = _expected(kind[fold.index[fold != k]])
        assert counts["duplicated"] > 0
        assert metrics["length_balance"][str(k)] == counts
        trained = json.loads((folder / MARKER).read_text())
        assert trained["rows"] == counts["rows_trained"] > n - len(held_out)  # the copies trained
        assert trained["length_balance"] == counts
        assert f"fold {k}: length-balanced training rows: {balance_line(counts)}" in res.err
        # validated on exactly its own rows, no copy among them
        assert sorted(probes.read_record(folder)["held_out"]) == sorted(held_out)
        assert len(np.load(folder / "valid_predictions.npy")) == len(held_out)
    assert metrics["n"] == n and sum(f["n"] for f in metrics["folds"]) == n
    # --resume keeps the finished folds, and their counts from their trained.json
    res = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'train.csv'}", "cv.n_splits=3",
                  "features.max_iter=20", "train.probe_rows=0", "train.length_balance=true", f"output_dir={out}",
                  "--resume")
    assert res.code == 0, res.err
    assert res.err.count("finished earlier, kept") == 3 and "length-balanced training rows" not in res.err
    assert json.loads((out / "metrics.json").read_text())["length_balance"] == metrics["length_balance"]

    plain = tmp_path / "plain"
    res = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'train.csv'}", "cv.n_splits=3",
                  "features.max_iter=20", "train.probe_rows=0", f"output_dir={plain}")
    assert res.code == 0, res.err
    assert "length_balance" not in json.loads((plain / "metrics.json").read_text())
    assert json.loads((plain / "fold0" / MARKER).read_text())["rows"] == int((fold != 0).sum())


def test_a_reward_model_trains_on_the_balanced_rows_with_pseudo_labels_joined_after(tmp_path, run_cli):
    """`prefkit train` of the tiny model: the labelled rows balanced, the pseudo-labelled pairs joined after and not
    counted in the balance (nor copied); the token cache and the learner take the copies' new ids."""
    table = _pairs([PATTERN[i % 6] for i in range(12)])
    write_lmsys_csv(table, tmp_path / "train.csv")
    extra = _pairs([(4, 11, "a"), (12, 3, "b"), (8, 2, "a")], ids=["u0", "u1", "u2"])
    extra.frame["prompt"] = [["unlabelled question 0?"], ["unlabelled question 1?"], ["unlabelled question 2?"]]
    extra.frame["label"] = None
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    write_pseudo_labels(tmp_path / "pl.csv", extra, probs, COMPETITIONS["lmsys"])
    out = tmp_path / "run"
    res = run_cli("train", TINY, f"data.train={tmp_path / 'train.csv'}", *FAST, "train.probe_rows=0",
                  "quantization.mode=none", "train.length_balance=true", f"train.pseudo_labels={tmp_path / 'pl.csv'}",
                  f"output_dir={out}")
    assert res.code == 0, res.err
    counts = {"rows": 12, "shorter_won": 2, "longer_won": 6, "equal_lengths": 2, "ties": 2, "copied": "shorter won",
              "duplicated": 4, "rows_trained": 16}
    trained = json.loads((out / "model" / MARKER).read_text())
    assert trained["length_balance"] == counts and trained["rows"] == 16 + 3
    assert json.loads((out / "metrics.json").read_text())["length_balance"] == counts
    assert f"length-balanced training rows: {balance_line(counts)}" in res.err and "trained on 19 rows" in res.err
