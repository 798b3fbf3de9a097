from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prefkit.core.runs import MARKER
from prefkit.cot import bradley_terry
from prefkit.cot.datasets import load, teacher_file
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from tests.conftest import SHARED, need_shared

TINY_RM = Path(__file__).resolve().parents[2] / "configs" / "rm" / "tiny_gemma2.yaml"


def train_tiny_rm(tmp_path: Path, rows: int, seed: int) -> Path:
    """A tiny Gemma-2 reward model trained on synthetic arena pairs, through the CLI."""
    write_lmsys_csv(make_pairs(rows, seed=seed), tmp_path / "arena.csv")
    rm = tmp_path / "rm"
    r = subprocess.run([sys.executable, "-m", "prefkit.cli", "train", str(TINY_RM), f"data.train={tmp_path / 'arena.csv'}",
                        "template.max_length=128", f"output_dir={rm}"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return rm


def test_bradley_terry_by_hand():
    # two systems, 3 wins to 1: s1/s2 = 3, so log-strengths +-ln(3)/2
    assert bradley_terry.log_strengths(np.array([[0.0, 3.0], [1.0, 0.0]])) == pytest.approx([math.log(3) / 2, -math.log(3) / 2], abs=1e-6)
    # a cycle of equal wins: all equal
    cycle = np.array([[0, 2, 1], [1, 0, 2], [2, 1, 0]], dtype=float)
    assert np.allclose(bradley_terry.log_strengths(cycle), 0, atol=1e-6)
    per_item = np.array([[[0, 1], [0, 0]]] * 8 + [[[0, 0], [1, 0]]] * 2, dtype=float)
    lo, hi = bradley_terry.bootstrap(per_item, rounds=100)
    est = bradley_terry.log_strengths(per_item.sum(axis=0))
    assert (lo <= est + 1e-9).all() and (est <= hi + 1e-9).all() and lo[0] > 0


@pytest.mark.slow
def test_rank_students_with_a_reward_model(run_cli, tmp_path):
    need_shared(SHARED / "reasoning")
    rm = train_tiny_rm(tmp_path, rows=40, seed=3)
    test = load("multiarith", "test", SHARED)[:6]
    student = tmp_path / "student.jsonl"  # right on the first 2 questions, wrong on the other 4
    student.write_text("".join(json.dumps({"index": e.index, "completion": f"so -->\n\n{e.answer if k < 2 else 0} END"}) + "\n"
                               for k, e in enumerate(test)))
    r = run_cli("cot", "rank", "--rm", rm, "--dataset", "multiarith", "--system", f"teacher={teacher_file('multiarith', SHARED)}",
                "--system", f"student={student}", "--reference", "--limit", "6", "--out", tmp_path / "rank",
                "--data-root", SHARED)
    assert r.code == 0, r.err
    out = json.loads((tmp_path / "rank" / "rank.json").read_text())
    acc = {s["name"]: s["accuracy"] for s in out["systems"]}
    assert acc["student"] == pytest.approx(2 / 6, abs=1e-3) and acc["reference"] == 1.0
    teacher = json.loads(teacher_file("multiarith", SHARED).read_text())["data"]
    from prefkit.cot.answers import extract, is_correct

    t_ok = [is_correct("multiarith", extract("multiarith", teacher[str(e.index)][0]["completion"], None), e.answer) for e in test]
    s_ok = [k < 2 for k in range(6)]
    gold = sum(a != b for a, b in zip(t_ok, s_ok)) + sum(not a for a in t_ok) + sum(not b for b in s_ok)
    assert out["pairs"] == 18 and out["gold"]["pairs"] == gold
    assert sum(p["gold_pairs"] for p in out["pairwise"]) == gold
    for p in out["pairwise"]:
        assert (p["gold_accuracy"] is None) == (p["gold_pairs"] == 0)
    for s in out["systems"]:
        assert s["bt_low"] <= s["bt_strength"] <= s["bt_high"]
    # --questions: only the held-out questions of a `cot pairs` split are ranked
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"questions": {"multiarith": {"train": [e.index for e in test[2:]],
                                                              "test": [e.index for e in test[:2]]}}}))
    r = run_cli("cot", "rank", "--rm", rm, "--dataset", "multiarith", "--system", f"student={student}", "--reference",
                "--questions", split, "--out", tmp_path / "rank2", "--data-root", SHARED)
    assert r.code == 0, r.err
    held = json.loads((tmp_path / "rank2" / "rank.json").read_text())
    assert held["questions"] == 2 and held["pairs"] == 2 and "gold" not in held  # the student is right on both
    assert (tmp_path / "rank" / "rank.png").read_bytes()[:4] == b"\x89PNG" and "Bradley-Terry" in (tmp_path / "rank" / "rank.md").read_text()


@pytest.mark.slow
def test_cot_demo_with_a_given_reward_model(run_cli, tmp_path):
    need_shared(SHARED / "reasoning")
    rm = train_tiny_rm(tmp_path, rows=30, seed=4)
    r = run_cli("cot", "demo", "--student", "sft/tiny_gemma2", "--rm", rm, "--limit", "8", "--k", "2",
                "--sample-questions", "4", f"output_dir={tmp_path / 'demo'}",
                f"cot.data_root={SHARED}", "template.max_length=160", "cot.max_new_tokens=8", "cot.train_limit=12")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert m["dataset"] == "addsub" and m["teacher_accuracy_all"] == pytest.approx(303 / 395, abs=1e-6)
    assert m["zero_shot"]["completions"] == 8 and m["finetuned"]["completions"] == 8 and m["zero_shot"]["n"] == 8
    trained = json.loads((tmp_path / "demo" / "student" / "model" / MARKER).read_text())
    assert trained["trained_on"] == 12 and set(trained["per_dataset"]) == {"singleeq", "addsub", "multiarith", "svamp"}
    assert m["pairs"]["train"] + m["pairs"]["test"] > 0 and len(m["ranking"]["systems"]) == 4
    held = json.loads((tmp_path / "demo" / "pairs" / "split.json").read_text())["questions"]["addsub"]["test"]
    assert m["ranking"]["questions"] == len(held)  # ranked on the held-out questions only
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "Bradley-Terry" in report and "after Fine-tune-CoT" in report
    samples = [json.loads(x) for x in (tmp_path / "demo" / "samples" / "train.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 4 and {r["sample"] for r in samples} == {0, 1}, "K=2 samples of 4 training questions"
    b = m["best_of_k"]
    if b["rerank"] is None:  # a random tiny student is never right: no right-against-wrong pair, said in the report
        assert not any(r["correct"] for r in samples) and b["skipped"] and "no verifier was trained" in report
    else:
        assert b["rerank"]["pooled"]["n"] == 4 and "Best-of-2" in report


def test_gold_among_leaves_the_reference_out():
    from prefkit.cot.rank import gold_among

    result = {"pairwise": [{"a": "student", "b": "teacher", "gold_pairs": 4, "gold_accuracy": 0.75},
                           {"a": "student", "b": "reference", "gold_pairs": 6, "gold_accuracy": 0.0},
                           {"a": "teacher", "b": "other", "gold_pairs": 0, "gold_accuracy": None},
                           {"a": "other", "b": "student", "gold_pairs": 1, "gold_accuracy": 1.0}]}
    assert gold_among(result) == {"pairs": 5, "accuracy": 0.8}  # (3 + 1) / 5
    assert gold_among(result, ()) == {"pairs": 11, "accuracy": round(4 / 11, 4)}
    assert gold_among({"pairwise": []}) is None
