"""`prefkit cot pairs`: right-against-wrong pairs for one question, split by question."""

from __future__ import annotations

import csv
import json

from prefkit.cot.datasets import load, teacher_file
from prefkit.cot.pairs import response_text
from tests.conftest import SHARED, need_shared


def test_pairs_are_right_against_wrong_and_split_by_question(run_cli, tmp_path):
    need_shared(SHARED / "reasoning")
    test = load("multiarith", "test", SHARED)
    student = tmp_path / "student.jsonl"  # right on even positions, wrong on odd ones
    student.write_text("".join(json.dumps({"index": e.index, "completion": f"I add them up.\n\n--> {e.answer if k % 2 == 0 else -1}"})
                               + "\n" for k, e in enumerate(test)))
    r = run_cli("cot", "pairs", "--dataset", "multiarith", "--teacher",
                "--system", f"student={student}", "--reference", "--out", tmp_path / "pairs", "--per-question", "1",
                "--data-root", SHARED)
    assert r.code == 0, r.err
    split = json.loads((tmp_path / "pairs" / "split.json").read_text())["questions"]["multiarith"]
    assert not set(split["train"]) & set(split["test"]) and len(split["test"]) == round(0.3 * len(test))
    teacher = json.loads(teacher_file("multiarith", SHARED).read_text())["data"]
    from prefkit.cot.answers import extract, is_correct

    t_ok = {e.index: is_correct("multiarith", extract("multiarith", teacher[str(e.index)][0]["completion"], None), e.answer)
            for e in test}
    s_ok = {e.index: k % 2 == 0 for k, e in enumerate(test)}
    seen = {}
    for side in ("train", "test"):
        with open(tmp_path / "pairs" / f"{side}.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                _, index, a, b = row["id"].split(":")
                index = int(index)
                assert index in split[side] and index not in seen  # one pair a question, on its question's side
                seen[index] = row
                ok = {"teacher": t_ok[index], "student": s_ok[index], "reference": True}
                assert ok[a] != ok[b] and row["winner_model_a"] == str(int(ok[a])) and row["model_a"] == a
                assert row["winner_tie"] == "0"
                shown = json.loads(row["response_a"])[0]
                assert "-->" not in shown and "Therefore, the answer is" not in shown
                assert "\n\nAnswer: " in shown or shown.startswith("Answer: ")
    # a pair exists exactly where some system is wrong (the reference is always right)
    assert set(seen) == {i for i in t_ok if not (t_ok[i] and s_ok[i])}
    summary = json.loads((tmp_path / "pairs" / "summary.json").read_text())
    assert summary["train"] + summary["test"] == len(seen)
    winners = [r["winner_model_a"] for r in seen.values()]
    assert 0.3 < winners.count("1") / len(winners) < 0.7  # A/B order drawn at random


def test_response_text():
    assert response_text(" Two and three.\n", "5") == "Two and three.\n\nAnswer: 5"
    assert response_text("", "7") == "Answer: 7" and response_text("Hmm", None) == "Hmm\n\nAnswer: (none)"


def test_pairs_need_two_systems(run_cli, tmp_path):
    r = run_cli("cot", "pairs", "--dataset", "multiarith", "--reference", "--out", tmp_path / "p")
    assert r.code == 2 and "at least two systems" in r.err
