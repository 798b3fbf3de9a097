"""Issue 27, class 8 (CoT): `prefkit cot eval` scores a predictions file only on the dataset and split it is of,
and refuses an empty one. Reads the shared reasoning data; nothing is generated or trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefkit.cot.datasets import load, teacher_file
from tests.conftest import SHARED, need_shared


@pytest.fixture(autouse=True)
def shared_data():
    need_shared(SHARED / "reasoning")


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cot_eval(run_cli, dataset: str, path: Path, split: str = "test"):
    return run_cli("cot", "eval", "--dataset", dataset, "--predictions", path, "--split", split, "--data-root", SHARED)


def test_questions_of_another_dataset_are_refused(run_cli, tmp_path):
    """Before: SVAMP predictions (`cot generate` rows carry the question) scored as AddSub by their indices:
    exit 0, an accuracy of answers to other questions."""
    svamp = load("svamp", "test", SHARED)[:6]
    rows = [{"index": e.index, "completion": f"so --> {e.answer} END", "question": e.question} for e in svamp]
    path = write_rows(tmp_path / "svamp_student.jsonl", [r for r in rows if r["index"] < 395])
    r = cot_eval(run_cli, "addsub", path, "all")
    assert r.code == 2 and "svamp_student.jsonl: the question of index" in r.err and "another dataset" in r.err, r.err
    assert cot_eval(run_cli, "svamp", path, "all").code == 0, "the right dataset still scores"


def test_a_file_naming_another_dataset_is_refused(run_cli, tmp_path):
    """Before: `cot sample` rows say their dataset; scored as another dataset they were taken all the same."""
    e = load("singleeq", "test", SHARED)[0]
    path = write_rows(tmp_path / "samples.jsonl", [{"dataset": "singleeq", "split": "test", "index": e.index,
                                                    "sample": 0, "completion": "--> 3 END"}])
    r = cot_eval(run_cli, "multiarith", path, "all")
    assert r.code == 2 and "predictions of 'singleeq', not of 'multiarith'" in r.err, r.err


def test_a_teacher_file_of_another_dataset_is_refused(run_cli, tmp_path):
    """Before: the paper's MultiArith teacher file scored as SingleEq (indices 0..507 of 600 matched): exit 0."""
    r = cot_eval(run_cli, "singleeq", need_shared(teacher_file("multiarith", SHARED)), "all")
    assert r.code == 2 and "'multiarith', not of 'singleeq'" in r.err, r.err


def test_indices_outside_the_dataset_are_refused(run_cli, tmp_path):
    """Before: rows without questions were matched by index alone; indices past the dataset's end were
    silently left out of the score."""
    path = write_rows(tmp_path / "bare.jsonl", [{"index": i, "completion": "--> 1 END"} for i in (12, 640, 655)])
    r = cot_eval(run_cli, "multiarith", path, "all")
    assert r.code == 2 and "index 640 is not a question of multiarith" in r.err, r.err
    assert "2 of the file's 3 indices lie outside" in r.err


def test_predictions_of_another_split_are_refused(run_cli, tmp_path):
    """Before: test-split predictions scored on the train split: every question 'missing', accuracy 0.0, exit 0."""
    test = load("addsub", "test", SHARED)[:4]
    path = write_rows(tmp_path / "addsub_test.jsonl", [{"index": e.index, "completion": "--> 2 END"} for e in test])
    r = cot_eval(run_cli, "addsub", path, "train")
    assert r.code == 2 and "none of its 4 indices is a question of addsub's train split" in r.err, r.err
    assert cot_eval(run_cli, "addsub", path, "test").code == 0


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_predictions_file_is_refused(run_cli, tmp_path, text):
    """Before: an empty file scored 0.0 with exit 0, as if every answer had been wrong."""
    path = tmp_path / "nothing.jsonl"
    path.write_text(text)
    r = cot_eval(run_cli, "svamp", path)
    assert r.code == 2 and "nothing.jsonl: no predictions in it" in r.err and r.out == "", r.err
