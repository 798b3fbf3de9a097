"""A run folder belongs to the job and config that made it (issue 42, classes 1-3): a new run into a finished
one is refused, --resume refuses another config, job or set of fold rows, an input file is never written over by
the run's outputs, and a refused run leaves no config.yaml behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "configs" / "rm" / "features_baseline.yaml"
QUICK = ["features.max_iter=20", "cv.n_splits=2", "train.probe_rows=0"]


@pytest.fixture
def pairs_csv(tmp_path) -> Path:
    write_lmsys_csv(make_pairs(40, seed=3), tmp_path / "pairs.csv")
    return tmp_path / "pairs.csv"


@pytest.fixture
def cv_run(run_cli, tmp_path, pairs_csv) -> Path:
    out = tmp_path / "run"
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, f"output_dir={out}")
    assert r.code == 0, r.err
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_new_run_into_a_finished_run_is_refused_and_nothing_changes(run_cli, cv_run, pairs_csv):
    before = _files(cv_run)
    for job, extra in (("cv", ["cv.seed=7"]), ("train", [])):
        r = run_cli(job, FEATURES, f"data.train={pairs_csv}", *QUICK, *extra, f"output_dir={cv_run}")
        assert r.code == 2, r.err
        assert "holds a `prefkit cv` run (2 finished model folders: fold0, fold1)" in r.err
        assert "--resume" in r.err and "Traceback" not in r.err
    assert _files(cv_run) == before, "config.yaml, oof.csv, metrics.json and the models as they were"


def test_resume_with_another_config_is_refused_naming_the_settings(run_cli, cv_run, pairs_csv):
    before = _files(cv_run)
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, "cv.seed=7", "features.max_iter=30",
                f"output_dir={cv_run}", "--resume")
    assert r.code == 2, r.err
    assert "2 settings differ" in r.err and "cv.seed: 42 in the run, 7 now" in r.err
    assert "features.max_iter: 20 in the run, 30 now" in r.err
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, "cv.n_splits=3", f"output_dir={cv_run}", "--resume")
    assert r.code == 2 and "cv.n_splits: 2 in the run, 3 now" in r.err and "Traceback" not in r.err, r.err
    r = run_cli("train", FEATURES, f"data.train={pairs_csv}", *QUICK, f"output_dir={cv_run}", "--resume")
    assert r.code == 2 and "not `prefkit train`" in r.err, r.err
    assert _files(cv_run) == before


def test_resume_with_the_same_config_keeps_the_folds_and_may_change_which_run(run_cli, cv_run, pairs_csv):
    metrics = json.loads((cv_run / "metrics.json").read_text())
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, "cv.folds=[1]", f"output_dir={cv_run}", "--resume")
    assert r.code == 0, r.err
    assert "fold 1: finished earlier, kept" in r.err
    assert json.loads((cv_run / "metrics.json").read_text())["folds"][0] == metrics["folds"][1]


def test_resume_takes_another_spelling_of_the_same_file(run_cli, cv_run, pairs_csv):
    """A run started with one path and resumed with another spelling of it (relative against absolute, as a
    benchmark script gives it) is the same setting; another file is still a difference."""
    same = f"{pairs_csv.parent}/./{pairs_csv.name}"
    r = run_cli("cv", FEATURES, f"data.train={same}", *QUICK, "cv.folds=[1]", f"output_dir={cv_run}", "--resume")
    assert r.code == 0, r.err
    other = pairs_csv.parent / "copy.csv"
    other.write_bytes(pairs_csv.read_bytes())
    r = run_cli("cv", FEATURES, f"data.train={other}", *QUICK, f"output_dir={cv_run}", "--resume")
    assert r.code == 2 and "data.train:" in r.err, r.err


def test_resume_refuses_kept_predictions_of_other_rows(run_cli, cv_run, tmp_path):
    """Same config, another file at the same path (rows reordered): the kept folds' predictions would land on other
    rows. The folds' validation ids are recorded in trained.json and checked."""
    data = tmp_path / "pairs.csv"
    frame = pd.read_csv(data)
    frame.iloc[::-1].to_csv(data, index=False)
    r = run_cli("cv", FEATURES, f"data.train={data}", *QUICK, f"output_dir={cv_run}", "--resume")
    assert r.code == 2 and "it did not hold out, or in another order)" in r.err and "Traceback" not in r.err, r.err


def test_the_training_file_is_never_written_over_by_the_run(run_cli, tmp_path, pairs_csv):
    out = tmp_path / "run"
    out.mkdir()
    inside = out / "oof.csv"
    inside.write_bytes(pairs_csv.read_bytes())
    r = run_cli("cv", FEATURES, f"data.train={inside}", *QUICK, f"output_dir={out}")
    assert r.code == 2 and "data.train=" in r.err and "would be written over" in r.err, r.err
    assert inside.read_bytes() == pairs_csv.read_bytes()
    assert not (out / "config.yaml").exists()
    # a training file elsewhere in the folder, under a name the run does not write, is fine
    other = out / "train.csv"
    inside.rename(other)
    r = run_cli("cv", FEATURES, f"data.train={other}", *QUICK, f"output_dir={out}")
    assert r.code == 0, r.err
    assert other.read_bytes() == pairs_csv.read_bytes()


def test_a_refused_run_leaves_no_config_behind(run_cli, tmp_path):
    missing = tmp_path / "nope.csv"
    fresh = tmp_path / "new"
    r = run_cli("cv", FEATURES, f"data.train={missing}", *QUICK, f"output_dir={fresh}")
    assert r.code == 2 and "Traceback" not in r.err
    assert not fresh.exists(), "the folder it made is removed"
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    r = run_cli("cv", FEATURES, f"data.train={missing}", *QUICK, f"output_dir={existing}")
    assert r.code == 2
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


def test_older_runs_without_a_record_still_resume(run_cli, cv_run, pairs_csv):
    """A run of an older prefkit (no run.json, no recorded validation rows) resumes on what it can check."""
    (cv_run / "run.json").unlink()
    for k in (0, 1):
        (cv_run / f"fold{k}" / "probe_record.json").unlink()
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, f"output_dir={cv_run}", "--resume")
    assert r.code == 0, r.err
    assert "validation rows not recorded" in r.err
    assert np.isfinite(json.loads((cv_run / "metrics.json").read_text())["logloss"])
