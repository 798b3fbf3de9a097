"""`prefkit compare` (issue 38, item 1): paired differences and their errors by hand, verdicts on planted pairs (a
run against a copy of itself, against its own predictions shuffled across rows), refusals of other rows, folds and
competitions; and the length view every cv run writes (`rules.length_view`) by hand."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import TableBuilder
from prefkit.errors import PrefkitError
from prefkit.metrics import score
from prefkit.toolbox.compare import align, paired, row_scores, verdict
from prefkit.toolbox.rules import length_groups, length_view


def test_paired_differences_and_errors_by_hand():
    labels, folds = ["a", "b", "a", "b"], [0, 0, 1, 1]
    # the labels' probabilities: baseline 0.5, 0.25, 0.5, 0.25; run 0.8, 0.5, 0.4, 0.25
    base = np.array([[0.5, 0.3, 0.2], [0.5, 0.25, 0.25], [0.5, 0.4, 0.1], [0.6, 0.25, 0.15]])  # right, wrong, right, wrong
    run = np.array([[0.8, 0.1, 0.1], [0.3, 0.5, 0.2], [0.4, 0.5, 0.1], [0.35, 0.25, 0.4]])  # right, right, wrong, wrong
    d = np.log([0.5 / 0.8, 0.25 / 0.5, 0.5 / 0.4, 1.0])  # run minus baseline: -ln p_run + ln p_base
    assert np.allclose(d, [-0.470004, -0.693147, 0.223144, 0.0], atol=1e-6)
    out = paired(base, run, labels, folds)
    assert out["rows"] == 4
    # mean -0.940007 / 4; sd: deviations -0.235002, -0.458145, +0.458146, +0.235002 -> sqrt(0.530247 / 3) = 0.420415
    assert out["logloss"]["mean"] == pytest.approx(-0.235002, abs=1e-6)
    assert out["logloss"]["se"] == pytest.approx(0.420415 / 2, abs=1e-6)
    # accuracy: 0, +1, -1, 0 -> mean 0, sd sqrt(2 / 3), se sqrt(2 / 3) / 2
    assert out["accuracy"]["mean"] == 0.0 and out["accuracy"]["se"] == pytest.approx(0.408248, abs=1e-6)
    # per fold, two rows each: mean (x + y) / 2, se |x - y| / 2
    f0, f1 = out["folds"]
    assert (f0["fold"], f0["rows"], f1["fold"], f1["rows"]) == (0, 2, 1, 2)
    assert f0["logloss"]["mean"] == pytest.approx(-0.581576, abs=1e-6) and f0["logloss"]["se"] == pytest.approx(0.111572, abs=1e-6)
    assert f1["logloss"]["mean"] == pytest.approx(0.111572, abs=1e-6) and f1["logloss"]["se"] == pytest.approx(0.111572, abs=1e-6)
    assert f0["accuracy"] == {"mean": 0.5, "se": 0.5} and f1["accuracy"] == {"mean": -0.5, "se": 0.5}
    # the rows' own log losses average to the competition's score
    assert row_scores(run, labels)[0].mean() == pytest.approx(score(run, labels)["logloss"], abs=1e-9)
    # 0.235 is within 2 x 0.210
    assert verdict("B", "A", out) == "B against A: within noise (-0.2350 ± 0.2102 log loss; accuracy +0.0000 ± 0.4082)"


def test_verdict_beyond_noise_says_better_or_worse_by_how_much():
    def diff(m, se):
        return {"rows": 100, "logloss": {"mean": m, "se": se}, "accuracy": {"mean": 0.02, "se": 0.01}}

    assert verdict("B", "A", diff(-0.012, 0.004)) == "B is better than A by 0.0120 ± 0.0040 log loss (accuracy +0.0200 ± 0.0100)"
    assert verdict("B", "A", diff(0.012, 0.004)).startswith("B is worse than A by 0.0120 ± 0.0040 log loss")
    assert "within noise (+0.0080 ± 0.0040" in verdict("B", "A", diff(0.008, 0.004)), "2 SE exactly is not beyond"


def _frame(ids, folds, labels) -> pd.DataFrame:
    return pd.DataFrame({"logit_a": 0.0, "logit_b": 0.0, "logit_tie": 0.0, "fold": folds, "label": labels},
                        index=pd.Index(ids, name="id"))


def test_align_puts_rows_in_the_baseline_order_and_refuses_other_rows_and_folds():
    base = _frame(["r1", "r2", "r3", "r4"], [0, 0, 1, 1], ["a", "b", "a", "b"])
    same = base.iloc[::-1]
    assert list(align([base, same], ["A", "B"])[1].index) == ["r1", "r2", "r3", "r4"]
    other = _frame(["r1", "r5", "r6", "r7", "r8"], [0, 0, 1, 1, 1], ["a", "b", "a", "b", "a"])
    with pytest.raises(PrefkitError, match=r"B: predicts other rows than A: 3 of A's rows missing \('r2', 'r3', 'r4'\), "
                                           r"4 extra \('r5', 'r6', 'r7', \.\.\.\)"):
        align([base, other], ["A", "B"])
    moved = _frame(["r1", "r2", "r3", "r4"], [0, 1, 1, 1], ["a", "b", "a", "b"])
    with pytest.raises(PrefkitError, match=r"B: 1 row in another fold than in A \(id 'r2': fold 1 here, 0 there\); "
                                           r"compare runs of the same folds"):
        align([base, moved], ["A", "B"])
    relabelled = _frame(["r1", "r2", "r3", "r4"], [0, 0, 1, 1], ["a", "a", "a", "a"])
    with pytest.raises(PrefkitError, match=r"2 rows with another label"):
        align([base, relabelled], ["A", "B"])


def test_length_view_by_hand():
    b = TableBuilder("lengths")
    rows = [  # (A's turns, B's turns, label): the last turn's characters decide
        (["xxxx"], ["xx"], "a"),      # A longer, A won: the longer won; the rule is right
        (["x"], ["xxx"], "a"),        # B longer, A won: the shorter won; the rule is wrong
        (["abc"], ["xyz"], "b"),      # equal: neither group; the rule counts 1/2
        (["a long first answer", "xy"], ["s", "xyz"], "tie"),  # B longer (2 < 3), a tie: neither group; the rule 0
        ([None], ["hello"], "b"),     # a null turn is 0 characters: B longer, B won
        (["xxxxxx"], ["xxx"], "b"),   # A longer, B won: the shorter won
    ]
    for i, (ra, rb, label) in enumerate(rows, start=1):
        b.add(i, None, f"r{i}", [f"q{t}" for t in range(len(ra))], ra, rb, label=label)
    table = b.build()
    probs = np.array([[0.6, 0.3, 0.1],   # right
                      [0.2, 0.7, 0.1],   # wrong (shorter won)
                      [0.3, 0.6, 0.1],
                      [0.1, 0.2, 0.7],
                      [0.1, 0.8, 0.1],   # right
                      [0.3, 0.6, 0.1]])  # right (shorter won)
    view = length_view(table, probs)
    assert view == {"rows": 6, "rule_accuracy": round(2.5 / 6, 4), "differ_share": round(5 / 6, 4),
                    "shorter_won": {"rows": 2, "accuracy": 0.5}, "longer_won": {"rows": 2, "accuracy": 1.0}}
    shorter_won, longer_won = length_groups(table)
    assert shorter_won.tolist() == [False, True, False, False, False, True]
    assert longer_won.tolist() == [True, False, False, False, True, False]


def _cv(run_cli, tmp_path, data, name, *extra):
    res = run_cli("cv", "rm/features_baseline", f"data.train={data}", "cv.n_splits=3", f"output_dir={tmp_path / name}",
                  *extra)
    assert res.code == 0, res.err
    return tmp_path / name


@pytest.fixture
def base_run(tmp_path, run_cli):
    data = tmp_path / "train.csv"
    write_lmsys_csv(make_pairs(150, seed=0), data)
    return _cv(run_cli, tmp_path, data, "base")


def _copy(run, name, change=None):
    """A copy of a run folder; `change` edits its out-of-fold logits (a frame) in place."""
    out = run.parent / name
    shutil.copytree(run, out)
    if change is not None:
        frame = pd.read_csv(out / "oof_logits.csv", dtype={"id": str})
        change(frame)
        frame.to_csv(out / "oof_logits.csv", index=False)
    return out


def test_planted_pairs_a_copy_is_within_noise_shuffled_predictions_are_worse(tmp_path, run_cli, base_run):
    m = json.loads((base_run / "metrics.json").read_text())
    view = m["length"]  # every cv run: the length rule beside the model
    assert view["rows"] == m["n"] and 0 <= view["rule_accuracy"] <= 1
    assert view["shorter_won"]["rows"] + view["longer_won"]["rows"] <= m["n"]
    copy = _copy(base_run, "copy")
    rng = np.random.default_rng(0)

    def shuffle(frame):
        cols = ["logit_a", "logit_b", "logit_tie"]
        frame[cols] = frame[cols].to_numpy()[rng.permutation(len(frame))]

    shuffled = _copy(base_run, "shuffled", shuffle)
    res = run_cli("compare", base_run, copy, shuffled, "--out", tmp_path / "cmp.json")
    assert res.code == 0, res.err
    assert f"{copy} against {base_run}: within noise (+0.0000 ± 0.0000 log loss; accuracy +0.0000 ± 0.0000)" in res.out
    assert f"{shuffled} is worse than {base_run} by " in res.out
    assert "accuracy where the shorter won" in res.out and "Δ log loss per fold" in res.out
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert report["rows"] == m["n"] and report["folds"] == [0, 1, 2]
    base, same, worse = report["runs"]
    assert base["logloss"] == pytest.approx(m["logloss"]) and base["length"] == view
    assert same["vs_baseline"]["logloss"] == {"mean": 0.0, "se": 0.0}
    d = worse["vs_baseline"]["logloss"]
    assert d["mean"] > 2 * d["se"] > 0 and worse["vs_baseline"]["accuracy"]["mean"] < 0
    assert [f["rows"] for f in worse["vs_baseline"]["folds"]] == [f["n"] for f in m["folds"]]


def test_a_blend_is_compared_like_a_run(tmp_path, run_cli, base_run):
    data = tmp_path / "train.csv"
    other = _cv(run_cli, tmp_path, data, "logreg", "features.estimator=logreg")
    assert run_cli("blend", base_run, other, "--out", tmp_path / "blend").code == 0
    res = run_cli("compare", base_run, tmp_path / "blend")
    assert res.code == 0, res.err
    assert f"{tmp_path / 'blend'} " in res.out and "where the longer won" in res.out


def test_refuses_other_rows_folds_and_competitions(tmp_path, run_cli, base_run):
    def drop_two_add_one(frame):
        frame.drop(index=[0, 1], inplace=True)
        frame.loc[len(frame) + 5] = ["zz", 0, "a", 0.0, 0.0, 0.0]

    fewer = _copy(base_run, "fewer", drop_two_add_one)
    res = run_cli("compare", base_run, fewer)
    assert res.code == 2 and "Traceback" not in res.err
    assert f"{fewer}: predicts other rows than {base_run}: 2 of {base_run}'s rows missing" in res.err
    assert "1 extra ('zz')" in res.err
    reseeded = _cv(run_cli, tmp_path, tmp_path / "train.csv", "reseeded", "cv.seed=7")  # the same rows, other folds
    res = run_cli("compare", base_run, reseeded)
    assert res.code == 2 and "in another fold than in" in res.err and "compare runs of the same folds" in res.err
    wsdm = _copy(base_run, "wsdm")
    (wsdm / "config.yaml").write_text((wsdm / "config.yaml").read_text().replace("competition: lmsys\n", "competition: wsdm\n", 1))
    res = run_cli("compare", base_run, wsdm)
    assert res.code == 2 and "different competitions" in res.err and f"{wsdm}: wsdm" in res.err
    res = run_cli("compare", base_run)
    assert res.code == 2 and "at least two runs" in res.err
    res = run_cli("compare", base_run, tmp_path)
    assert res.code == 2 and "neither a cv run" in res.err
    res = run_cli("compare", base_run, base_run, "--out", base_run / "cmp.json")
    assert res.code == 2 and "inside RUN" in res.err
