"""The verifier loop: same-source pairs, the reranking methods and their figures by hand, the arithmetic
features, and a feature verifier trained with `prefkit cv` that reranks better than the first sample."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from prefkit.cot import best_of_k, verifier_calibration, verifier_pairs, verifier_scores
from prefkit.cot.completions import own_samples
from prefkit.cot.formats import finetune_cot
from prefkit.errors import PrefkitError
from tests.conftest import SHARED, need_shared
from prefkit.rm.features import ARITHMETIC_FEATURES, arithmetic_features


def row(index, sample, answer, correct, completion=None, dataset="addsub", split="train", question=None):
    return {"dataset": dataset, "split": split, "index": index, "sample": sample,
            "question": question or f"question {index}", "completion": completion or f"rationale {sample} --> {answer}",
            "answer": None if answer is None else str(answer), "correct": correct}


def test_each_method_picks_by_hand():
    rows = [row(1, 0, 5, True), row(1, 1, 7, False), row(1, 2, 7, False), row(1, 3, None, False)]
    s = np.array([2.0, 0.1, 0.2, -1.0])
    picks = best_of_k.choose(rows, s, np.array([0.9, 0.2, 0.2, 0.1]))
    assert picks["first"]["answer"] == "5" and picks["majority"]["answer"] == "7"  # 7 twice, 5 once
    assert picks["verifier"]["sample"] == 0
    assert picks["weighted"]["answer"] == "5"  # 0.9 against 0.2 + 0.2
    # a vote tie goes to the answer seen first; weights can overturn a majority
    tied = [row(2, 0, 3, False), row(2, 1, 4, True), row(2, 2, 4, True), row(2, 3, 3, False)]
    assert best_of_k.choose(tied, np.zeros(4), np.array([0.1, 0.1, 0.1, 0.1]))["majority"]["answer"] == "3"
    assert best_of_k.choose(tied, np.zeros(4), np.array([0.1, 0.5, 0.5, 0.1]))["weighted"]["answer"] == "4"


def test_vote_share_by_hand():
    rows = [row(1, 0, 5, True), row(1, 1, 7, False), row(1, 2, 7, False), row(1, 3, None, False),
            row(2, 0, 3, True, dataset="svamp"), row(2, 1, 3, True, dataset="svamp")]
    assert best_of_k.vote_share(rows).tolist() == [0.25, 0.5, 0.5, 0.0, 1.0, 1.0]


def test_rerank_figures_by_hand():
    rows = [row(1, 0, 5, False), row(1, 1, 6, True), row(1, 2, 5, False),   # majority wrong, verifier right
            row(2, 0, 9, True), row(2, 1, 8, False), row(2, 2, 9, True),    # all but the verifier right
            row(3, 0, 1, False), row(3, 1, 2, False), row(3, 2, 3, False)]  # nothing right
    s = np.array([0.0, 1.0, -1.0, 0.0, 2.0, 0.5, 0.0, 0.0, 0.0])
    r = best_of_k.rerank(rows, s, rounds=200)
    assert (r["n"], r["k"], r["samples"]) == (3, 3, 9)
    assert r["first"] == pytest.approx(1 / 3, abs=1e-4) and r["majority"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["verifier"] == pytest.approx(1 / 3, abs=1e-4) and r["pass_at_k"] == pytest.approx(2 / 3, abs=1e-4)
    # same-source pairs: q1 right 1.0 beats wrong 0.0 and -1.0 (2 of 2); q2 rights 0.0, 0.5 lose to wrong 2.0 (0 of 2)
    assert r["same_source_gold"] == pytest.approx(0.5) and r["same_source_pairs"] == 4
    from sklearn.metrics import roc_auc_score

    assert r["auc"] == pytest.approx(roc_auc_score([x["correct"] for x in rows], s), abs=1e-4)
    lo, hi = r["first_ci"]
    assert 0 <= lo <= r["first"] <= hi <= 1


def test_held_out_calibration_never_sees_the_question_it_scores():
    """Leave-one-question-out: each question's calibrated logit comes from a fit on the other questions only."""
    rng = np.random.default_rng(0)
    groups = [f"addsub:{q}" for q in range(6) for _ in range(8)]
    s = rng.normal(size=(48, 2))
    y = (s[:, 0] + rng.normal(size=48) > 0)
    got = verifier_calibration.cross_fitted(s, y, groups, n_splits=6)
    g = np.array(groups)
    for q in set(groups):
        fit = verifier_calibration.Calibration(s[g != q], y[g != q])
        assert np.allclose(got[g == q], fit.logit(s[g == q]))
    whole = verifier_calibration.Calibration(s, y).logit(s)
    assert not np.allclose(got, whole), "a fit on every question would score its own samples"


def test_held_out_calibration_of_a_few_right_samples_falls_back_to_the_rate():
    """A small run (the cot demo's 16 questions) can have all its right samples in one question: the fit without
    it has none, and its held-out logit is the other questions' smoothed rate instead of an error."""
    groups = [f"addsub:{q}" for q in range(4) for _ in range(4)]
    y = np.array([q == 0 and k < 2 for q in range(4) for k in range(4)])
    s = np.arange(16, dtype=float)
    got = verifier_calibration.cross_fitted(s, y, groups, n_splits=4)
    assert np.allclose(got[:4], np.log((0.5 / 13) / (1 - 0.5 / 13)))


def test_each_dataset_gets_its_own_blend_where_it_has_the_samples():
    """Verifier 0 reads dataset x, verifier 1 dataset y: one regression for both weighs them alike; one a dataset
    follows the verifier that reads it. A dataset with fewer than MIN_EACH right samples shares the pooled fit."""
    rng = np.random.default_rng(1)
    n = 400
    s = rng.normal(size=(n, 2))
    names = np.array(["x"] * n + ["y"] * n + ["z"] * 30)
    s = np.vstack([s, rng.normal(size=(n, 2)), rng.normal(size=(30, 2))])
    y = np.r_[s[:n, 0] > 0, s[n:2 * n, 1] > 0, np.arange(30) < 3]
    cal = verifier_calibration.Calibration(s, y, names.tolist())
    assert set(cal.by_dataset) == {"x", "y"}, "z has 3 right samples, under MIN_EACH"
    assert cal.by_dataset["x"].coef_[0][0] > 5 * abs(cal.by_dataset["x"].coef_[0][1])
    assert cal.by_dataset["y"].coef_[0][1] > 5 * abs(cal.by_dataset["y"].coef_[0][0])
    from sklearn.metrics import roc_auc_score

    mine = cal.logit(s, names.tolist())
    one = verifier_calibration.Calibration(s, y).logit(s)
    assert roc_auc_score(y, mine) > roc_auc_score(y, one) + 0.1
    z = names == "z"
    assert np.allclose(mine[z], cal.pooled.decision_function(s[z]))


def test_same_source_pairs_stay_within_a_question():
    groups = verifier_pairs.by_question([row(1, 0, 5, True), row(1, 1, 6, False), row(1, 2, 7, False),
                                         row(2, 0, 1, True), row(2, 1, 1, True, completion="same --> 1"),
                                         row(3, 0, 4, False)])
    pairs = verifier_pairs.same_source_pairs(groups, per_question=4, rng=random.Random(0))
    assert len(pairs) == 2 and {p["id"].split(":")[1] for p in pairs} == {"1"}  # q2 has no wrong, q3 no right
    for p in pairs:
        good, bad = (p["a"], p["b"]) if p["label"] == "a" else (p["b"], p["a"])
        assert good.endswith("Answer: 5") and not bad.endswith("Answer: 5")


def test_arithmetic_features_by_hand():
    f = dict(zip(ARITHMETIC_FEATURES, arithmetic_features("3 + 4 = 7. Then 7 * 2 = 15.\n\nAnswer: 15",
                                                          "I have 3 apples, 4 pears, twice: 2")))
    assert f == {"equations": 2, "equations_right": 1, "equations_wrong": 1, "share_wrong": 0.5,
                 "answer_is_last_result": 1.0, "answer_in_prompt": 0.0, "answer_missing": 0.0, "prompt_numbers_used": 1.0}
    g = dict(zip(ARITHMETIC_FEATURES, arithmetic_features("1,200 / 4 = 300\n\nAnswer: (none)", "1,200 cakes, 4 boxes")))
    assert g["equations_right"] == 1 and g["answer_missing"] == 1.0 and g["answer_is_last_result"] == 0.0


def test_self_training_samples_are_right_distinct_capped_and_from_training_questions(tmp_path):
    rows = [row(1, i, 5, True, completion=f"way {i % 2}\n\n--> 5") for i in range(4)] + [row(1, 4, 6, False)]
    rows += [row(2, i, 3, True, completion=f"path {i}\n\n--> 3") for i in range(5)]
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = own_samples([str(f)], finetune_cot, per_question=3)
    assert len(got) == 2 + 3, "q1: two distinct rationales; q2: capped at 3"
    assert got[0] == finetune_cot("question 1", "way 0", "5")
    t = tmp_path / "t.jsonl"
    t.write_text(json.dumps(row(1, 0, 5, True, split="test")) + "\n")
    with pytest.raises(PrefkitError, match="t.jsonl: row 1: split 'test'"):
        own_samples([str(t)], finetune_cot, 3)


def _synthetic(n_questions: int, split: str, seed: int, start: int = 0) -> list[dict]:
    """Samples of arithmetic questions: a right one keeps its arithmetic, a wrong one slips in a step; the
    first sample is right 40% of the time, another sample about as often."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(start, start + n_questions):
        a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
        question = f"({q}) Tom has {a} marbles and finds {b} more. How many marbles does he have?"
        for k in range(4):
            right = rng.random() < 0.4
            got = a + b if right else a + b + int(rng.integers(1, 9))
            text = f"Tom starts with {a} marbles. He finds {b} more, so {a} + {b} = {got}.\n\n--> {got}"
            rows.append(row(q, k, got, right, completion=text, split=split, question=question))
    return rows


@pytest.mark.slow
def test_feature_verifier_from_cv_reranks_above_the_first_sample(run_cli, tmp_path):
    need_shared(SHARED / "reasoning")  # verifier-pairs leaves out the datasets' test questions, read from there
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _synthetic(120, "train", 0)))
    test.write_text("".join(json.dumps(r) + "\n" for r in _synthetic(60, "test", 1, start=1000)))
    r = run_cli("cot", "verifier-pairs", "--samples", test, "--out", tmp_path / "p")
    assert r.code == 2 and "test.jsonl: row 1: split 'test'" in r.err, "the test split is never trained on"
    r = run_cli("cot", "verifier-pairs", "--samples", train, "--out", tmp_path / "pairs")
    assert r.code == 0, r.err
    split = json.loads((tmp_path / "pairs" / "split.json").read_text())
    assert 0 < len(split["valid"]) < 120
    r = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'pairs' / 'train.csv'}", "cv.n_splits=3",
                "features.arithmetic=true", f"output_dir={tmp_path / 'verifier'}")
    assert r.code == 0, r.err
    r = run_cli("cot", "rerank", "--rm", tmp_path / "verifier", "--pairs", tmp_path / "pairs", "--samples", test,
                "--out", tmp_path / "rerank")
    assert r.code == 0, r.err
    res = json.loads((tmp_path / "rerank" / "rerank.json").read_text())
    pooled = res["pooled"]
    assert pooled["auc"] > 0.9 and pooled["same_source_gold"] > 0.9, "the arithmetic check tells right from wrong"
    assert pooled["verifier"] > pooled["first"] + 0.2 and pooled["weighted"] >= pooled["verifier"] - 0.05
    assert pooled["verifier"] <= pooled["pass_at_k"]
    assert (tmp_path / "rerank" / "reliability.png").stat().st_size > 0 and "| addsub |" in r.out
    # a cv verifier scores every training question out of fold: calibration and the held-out row use them all
    held = res["held_out_questions"]
    paired = {":".join(i.split(":")[:2]) for i in pd.read_csv(tmp_path / "pairs" / "train.csv")["id"]}
    assert held["out_of_fold"] == len(paired) and held["unseen"] == len(split["valid"]) + len(split["train"]) - len(paired)
    assert res["held_out"]["n"] == held["unseen"] + held["out_of_fold"]
    # two verifiers blended: the weak one (no arithmetic check) gains from the strong one, fitted on held-out scores
    r = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'pairs' / 'train.csv'}", "cv.n_splits=3",
                f"output_dir={tmp_path / 'weak'}")
    assert r.code == 0, r.err
    for name, rms in (("weak", [tmp_path / "weak"]), ("both", [tmp_path / "weak", tmp_path / "verifier"])):
        r = run_cli("cot", "rerank", "--rm", *rms, "--pairs", tmp_path / "pairs", "--samples", test,
                    "--out", tmp_path / f"rerank_{name}")
        assert r.code == 0, r.err
    weak, both = (json.loads((tmp_path / f"rerank_{n}" / "rerank.json").read_text()) for n in ("weak", "both"))
    assert len(both["calibration"]["pooled"]["coef"]) == 2 and len(weak["calibration"]["pooled"]["coef"]) == 1
    assert both["held_out"]["logloss"] < weak["held_out"]["logloss"] - 0.05
    r = run_cli("cot", "rerank", "--rm", tmp_path / "weak", "--votes", "--pairs", tmp_path / "pairs", "--samples", test,
                "--out", tmp_path / "rerank_votes")
    assert r.code == 0, r.err
    assert "and the vote share" in r.out
    votes = json.loads((tmp_path / "rerank_votes" / "rerank.json").read_text())
    assert votes["votes"] and len(votes["calibration"]["pooled"]["coef"]) == 2
    assert both["pooled"]["auc"] > weak["pooled"]["auc"]
    r = run_cli("cot", "rerank", "--rm", tmp_path / "verifier", "--pairs", tmp_path / "pairs", "--samples", train,
                "--out", tmp_path / "bad")
    assert r.code == 2 and "among the verifier's training questions" in r.err


def test_a_training_question_that_is_also_a_test_question_never_reaches_the_verifier(tmp_path):
    """MultiArith's split repeats questions across train and test (5 of its training questions). Before, their
    samples became verifier pairs, and `cot rerank` then refused the whole test file (the overlap check)."""
    from prefkit.cot.datasets import load
    from prefkit.recipes import cot_verifier_pairs

    root = need_shared(SHARED / "reasoning").parent
    test_questions = {e.question for e in load("multiarith", "test", root)}
    repeated = next(e for e in load("multiarith", "train", root) if e.question in test_questions)
    rows = [row(repeated.index, k, 5 + k % 2, k % 2 == 0, dataset="multiarith", question=repeated.question)
            for k in range(4)]
    rows += [dict(r, dataset="multiarith") for r in _synthetic(20, "train", 3, start=10_000)]
    samples = tmp_path / "train.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = cot_verifier_pairs.main([str(samples)], tmp_path / "pairs", data_root=root)
    assert summary["left_out_test_questions"] == {"multiarith": 1}
    paired = (tmp_path / "pairs" / "train.csv").read_text() + (tmp_path / "pairs" / "valid.csv").read_text()
    assert repeated.question not in paired and "Tom has" in paired
    split = json.loads((tmp_path / "pairs" / "split.json").read_text())
    seen = set(split["train"]) | set(split["valid"])
    assert f"multiarith:{repeated.index}" not in seen and len(seen) == 20, "rerank's overlap check reads these"


def test_scores_are_kept_in_the_verifier_run_and_read_back(run_cli, tmp_path, monkeypatch):
    """Reranking the same samples again (another calibration, a blend) reads the kept scores instead of running
    every fold model again; other samples, or a model trained again, are scored afresh."""
    from prefkit.recipes import cot_verifier_pairs
    from prefkit.rm import learners

    rows = _synthetic(40, "train", 0)
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cot_verifier_pairs.main([str(tmp_path / "s.jsonl")], tmp_path / "pairs")
    r = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'pairs' / 'train.csv'}", "cv.n_splits=2",
                "features.arithmetic=true", f"output_dir={tmp_path / 'v'}")
    assert r.code == 0, r.err
    test = _synthetic(10, "test", 1, start=1000)
    first = verifier_scores.averaged(tmp_path / "v", test)
    held = verifier_scores.held_out(tmp_path / "v", rows)
    assert len(list((tmp_path / "v" / "scores").glob("*.npy"))) >= 3  # the test scores, and each fold's

    def refuse(*a, **k):
        raise AssertionError("scored again")

    monkeypatch.setattr(learners, "load_learner", refuse)  # every model of a run loads through it
    assert np.array_equal(verifier_scores.averaged(tmp_path / "v", test), first)
    assert np.array_equal(verifier_scores.held_out(tmp_path / "v", rows), held, equal_nan=True)
    with pytest.raises(AssertionError, match="scored again"):
        verifier_scores.averaged(tmp_path / "v", test[:-1])
    (tmp_path / "v" / "fold0" / "trained.json").write_text('{"again": true}')
    with pytest.raises(AssertionError, match="scored again"):
        verifier_scores.averaged(tmp_path / "v", test)
