"""Issue 42, class 9 (CoT): `prefkit cot rerank` refuses samples of a dataset its pairs hold none of, a verifier
trained on other pairs than `--pairs`, and samples of unequal K or of another K than the pairs' (before: exit 0,
figures of a verifier that never saw the dataset, calibrated on other questions, or of mixed K). One feature
verifier (`prefkit cv`, 2 folds) on 40 synthetic questions serves every test; each refusal comes before scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from prefkit import cli
from prefkit.errors import PrefkitError
from prefkit.recipes import cot_verifier_pairs
from tests.conftest import SHARED, need_shared
from tests.cot.test_verifier import _synthetic


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """train.jsonl (K=4), its pairs, a cv verifier on them, test.jsonl (K=4, 10 other questions)."""
    need_shared(SHARED / "reasoning")  # verifier-pairs leaves out the datasets' test questions, read from there
    d = tmp_path_factory.mktemp("rerank_inputs")
    write_rows(d / "train.jsonl", _synthetic(40, "train", 0))
    write_rows(d / "test.jsonl", _synthetic(10, "test", 1, start=1000))
    cot_verifier_pairs.main([str(d / "train.jsonl")], d / "pairs")
    assert cli.main(["cv", "rm/features_baseline", f"data.train={d / 'pairs' / 'train.csv'}", "cv.n_splits=2",
                     "features.arithmetic=true", f"output_dir={d / 'verifier'}"]) == 0
    return d


def rerank(run_cli, d: Path, samples: list[Path], out: Path, pairs: Path | None = None, rm: Path | None = None,
           *extra: str):
    return run_cli("cot", "rerank", "--rm", rm or d / "verifier", "--pairs", pairs or d / "pairs",
                   "--samples", *samples, "--out", out, *extra)


def test_split_json_records_datasets_k_and_the_pairs_hash(made):
    split = json.loads((made / "pairs" / "split.json").read_text())
    assert split["datasets"] == ["addsub"] and split["k"] == 4
    assert split["train_sha256"] == cot_verifier_pairs.sha256(made / "pairs" / "train.csv")


def test_samples_of_a_dataset_the_pairs_hold_none_of_are_refused(run_cli, made, tmp_path):
    svamp = write_rows(tmp_path / "svamp.jsonl", [dict(r, dataset="svamp") for r in _synthetic(6, "test", 2, 2000)])
    r = rerank(run_cli, made, [made / "test.jsonl", svamp], tmp_path / "out")
    assert r.code == 2 and "the samples to rerank are of svamp" in r.err and "are of addsub only" in r.err, r.err
    assert not (tmp_path / "out").exists()


def test_a_verifier_trained_on_other_pairs_is_refused(run_cli, made, tmp_path):
    cot_verifier_pairs.main([str(made / "train.jsonl")], tmp_path / "other", seed=1)  # other questions held out
    r = rerank(run_cli, made, [made / "test.jsonl"], tmp_path / "out", tmp_path / "other")
    want = cot_verifier_pairs.sha256(tmp_path / "other" / "train.csv")[:12]
    got = cot_verifier_pairs.sha256(made / "pairs" / "train.csv")[:12]
    assert r.code == 2 and f"trained on {made / 'pairs' / 'train.csv'} (sha256 {got})" in r.err, r.err
    assert f"not on {tmp_path / 'other' / 'train.csv'} (sha256 {want}" in r.err
    assert not (tmp_path / "out").exists()


def test_pairs_written_again_after_the_verifier_trained_are_refused(run_cli, made, tmp_path):
    """The verifier's data.train is the pairs file by path and, once written again, by bytes: its oof.csv tells."""
    shutil.copytree(made / "pairs", tmp_path / "pairs")
    shutil.copytree(made / "verifier", tmp_path / "verifier")
    settings = yaml.safe_load((tmp_path / "verifier" / "config.yaml").read_text())
    settings["data"]["train"] = str(tmp_path / "pairs" / "train.csv")
    (tmp_path / "verifier" / "config.yaml").write_text(yaml.safe_dump(settings))
    cot_verifier_pairs.main([str(made / "train.jsonl")], tmp_path / "pairs", seed=1)  # in place
    r = rerank(run_cli, made, [made / "test.jsonl"], tmp_path / "out", tmp_path / "pairs", tmp_path / "verifier")
    assert r.code == 2 and f"{tmp_path / 'verifier' / 'oof.csv'}: " in r.err, r.err
    assert "of the pairs the verifier trained on" in r.err and "written again after it trained" in r.err


def test_a_student_given_as_the_verifier_is_refused(run_cli, made, tmp_path):
    """Before: `cot rerank` opened the --rm run without checking its kind, and `learners` sent a causal_lm run's
    folders to the reward-model learner; now the run is refused as `cot rank` refuses it, before any scoring."""
    shutil.copytree(made / "verifier", tmp_path / "student")
    settings = yaml.safe_load((tmp_path / "student" / "config.yaml").read_text())
    settings["model"]["kind"] = "causal_lm"
    (tmp_path / "student" / "config.yaml").write_text(yaml.safe_dump(settings))
    r = rerank(run_cli, made, [made / "test.jsonl"], tmp_path / "out", None, tmp_path / "student")
    assert r.code == 2 and f"{tmp_path / 'student'}: a model.kind=causal_lm run; this needs features or seq_cls" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "student" / "scores").exists()


@pytest.mark.parametrize("case", ["cut short", "in two files"])
def test_questions_of_unequal_k_are_refused(run_cli, made, tmp_path, case):
    rows = _synthetic(10, "test", 1, start=1000)
    if case == "cut short":
        files = [write_rows(tmp_path / "test.jsonl", [r for r in rows if (r["index"], r["sample"]) != (1003, 2)])]
        said = f"{files[0]}: question addsub:1003 has 3 samples, the others 4"
    else:
        files = [write_rows(tmp_path / "a.jsonl", rows[:8]), write_rows(tmp_path / "b.jsonl", rows[4:])]
        said = f"{files[0]}, {files[1]}: question addsub:1001 has 8 samples, the others 4"
    r = rerank(run_cli, made, files, tmp_path / "out")
    assert r.code == 2 and said in r.err, r.err


def test_samples_of_another_k_than_the_pairs_are_refused_unless_asked(run_cli, made, tmp_path):
    k3 = write_rows(tmp_path / "k3.jsonl", [r for r in _synthetic(10, "test", 1, start=1000) if r["sample"] < 3])
    r = rerank(run_cli, made, [k3], tmp_path / "out")
    assert r.code == 2 and f"{k3}: K=3 samples a question; the pairs in {made / 'pairs'} were built from K=4" in r.err
    r = rerank(run_cli, made, [k3], tmp_path / "out", None, None, "--other-k")
    assert r.code == 0, r.err
    got = json.loads((tmp_path / "out" / "rerank.json").read_text())
    assert got["pooled"]["k"] == 3 and got["held_out"]["k"] == 4


def test_the_verifier_on_its_own_pairs_and_samples_still_reranks(run_cli, made, tmp_path):
    r = rerank(run_cli, made, [made / "test.jsonl"], tmp_path / "out")
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "out" / "rerank.json").read_text())["pooled"]["k"] == 4


def test_verifier_pairs_refuses_training_samples_of_unequal_k(tmp_path):
    rows = _synthetic(20, "train", 0)
    path = write_rows(tmp_path / "train.jsonl", [r for r in rows if (r["index"], r["sample"]) != (7, 0)])
    with pytest.raises(PrefkitError, match=r"train.jsonl: question addsub:7 has 3 samples, the others 4"):
        cot_verifier_pairs.main([str(path)], tmp_path / "pairs")
    assert not (tmp_path / "pairs").exists()
