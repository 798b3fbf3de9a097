"""Reasoning data with the paper's splits, answer extraction by hand, and accuracy of the teacher files."""

from __future__ import annotations

import json

import pytest

from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import (
    DATASETS,
    load,
    load_truthfulqa,
    teacher_file,
)
from prefkit.cot.evaluate import evaluate
from tests.conftest import SHARED, need_shared

SIZES = {"singleeq": (508, 356, 152), "addsub": (395, 276, 119), "multiarith": (600, 420, 180),
         "svamp": (1000, 700, 300), "date_understanding": (369, 258, 111), "tracking_shuffled_objects": (750, 525, 225)}


@pytest.mark.parametrize("name", list(DATASETS))
def test_sizes_and_paper_splits(name):
    need_shared(SHARED / "reasoning")
    every, train, test = (load(name, s, SHARED) for s in ("all", "train", "test"))
    assert (len(every), len(train), len(test)) == SIZES[name]
    tr, te = {e.index for e in train}, {e.index for e in test}
    assert not tr & te and tr | te == {e.index for e in every}


@pytest.mark.parametrize("dataset,text,marker,expected", [
    ("svamp", " Total 1,234.5 apples.\n\n--> 17 END", "-->", "17"),        # first number after the marker
    ("svamp", " 3 bags of 4 make 12 apples", "-->", "12"),                 # no marker: the last number
    ("addsub", " 19. (that is, 19 shells)", None, "19"),                    # teacher answer step: the first
    ("multiarith", " -3 degrees, not 4", None, "-3"),
    ("date_understanding", " (C).", None, "C"),
    ("tracking_shuffled_objects", "Bob has the ball -->\\n\\n(B) END", "-->", "B"),
    ("tracking_shuffled_objects", " the blue one", None, None),             # no option letter at all
])
def test_extract_by_hand(dataset, text, marker, expected):
    assert extract(dataset, text, marker) == expected


DATE_Q = ("Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?\nWhich choice is true? Answer choices: "
          "(A) 06/12/2021, (B) 03/11/2021, (C) 02/23/2021, (D) 05/09/2021, (E) 04/29/2021, (F) 05/01/2021.")


@pytest.mark.parametrize("text,expected", [
    ("Based on this, Friday comes. The answer is (F) 05/01/2021.", "F"),  # "B" of "Based", "F" of "Friday" do not count
    ("Counting on, today is 05/01/2021.", "F"),                          # the option's text without its letter
    ("It was 04/29/2021 or maybe 05/01/2021, so E.", "E"),                 # a letter standing alone wins over texts
    ("Based on the calendar, I cannot tell.", None),
])
def test_student_letters_are_read_strictly(text, expected):
    assert extract("date_understanding", text, "-->", DATE_Q) == expected
    # the teacher's answer steps keep the paper's rule: any capital A-F, the first
    assert extract("date_understanding", "Based on (F)", None) == "B"


def test_number_and_letter_comparison():
    assert is_correct("svamp", "17", "17.0") and is_correct("addsub", "1234", "1,234")
    assert not is_correct("svamp", "17.5", "17.0") and not is_correct("svamp", None, "1")
    assert is_correct("date_understanding", "C", "C") and not is_correct("date_understanding", "B", "C")


def test_own_predictions_jsonl(tmp_path):
    need_shared(SHARED / "reasoning")
    test = load("addsub", "test", SHARED)
    p = tmp_path / "pred.jsonl"
    lines = [{"index": test[0].index, "completion": f"so --> {test[0].answer} END"},
             {"index": test[1].index, "completion": "so --> 99999 END"}]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = evaluate("addsub", p, "test", SHARED)
    assert r["n"] == 119 and r["correct_first"] == 1 and r["missing"] == 117 and r["accuracy"] == pytest.approx(1 / 119, abs=1e-6)


# The Teacher row of the paper's main table (Ho et al. 2023, "Large Language Models Are Reasoning Teachers",
# Table 1: text-davinci-002 Zero-shot-CoT, 175B), as printed by notebooks/results.ipynb of
# itsnamgyu/reasoning-teacher, and the correct completions Fine-tune-CoT keeps of all completions in the file.
PAPER_TEACHER = {"singleeq": 81.50, "addsub": 76.71, "multiarith": 78.79, "svamp": 64.20,
                 "date_understanding": 67.58, "tracking_shuffled_objects": 53.20}
SURVIVING = {"singleeq": (414, 508), "addsub": (303, 395), "multiarith": (624, 792), "svamp": (642, 1000),
             "date_understanding": (271, 401), "tracking_shuffled_objects": (416, 782)}


@pytest.mark.parametrize("name", list(DATASETS))
def test_teacher_files_match_the_papers_teacher_row(run_cli, name):
    path = need_shared(teacher_file(name, SHARED))
    r = run_cli("cot", "eval", "--dataset", name, "--predictions", path, "--split", "all", "--data-root", SHARED)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert abs(100 * out["accuracy"] - PAPER_TEACHER[name]) <= 1.0  # the tolerance: about one point
    assert round(100 * out["accuracy"], 2) == PAPER_TEACHER[name]  # in fact every digit agrees
    assert (out["surviving_completions"], out["completions"]) == SURVIVING[name] and out["missing"] == 0


def test_truthfulqa():
    rows = load_truthfulqa(need_shared(SHARED / "truthfulqa" / "TruthfulQA.csv"))
    assert len(rows) == 817 and all(r.question and r.best and r.correct for r in rows)


def test_unknown_dataset_is_exit_2(run_cli, tmp_path):
    r = run_cli("cot", "eval", "--dataset", "gsm9k", "--predictions", tmp_path / "x.jsonl")
    assert r.code == 2 and "unknown dataset 'gsm9k'" in r.err
