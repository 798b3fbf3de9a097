"""Issue 27, class 5: inputs that ended in a traceback (or, worse, silently wrong numbers) now stop with a message
that names what to give instead, exit 2, and leave no output folder behind."""

from __future__ import annotations

import os

import pytest

from prefkit.data.arena import write_lmsys_csv, write_wsdm_parquet
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """3-fold feature-baseline runs: one LMSYS (a, b, tie) and one WSDM (a, b) on single-turn rows."""
    from prefkit import cli

    root = tmp_path_factory.mktemp("c5")
    pairs = make_pairs(120, seed=3)
    write_lmsys_csv(pairs, root / "l.csv")
    f = pairs.frame
    write_wsdm_parquet(PairTable(f[(f.label != "tie") & (f.prompt.map(len) == 1)].reset_index(drop=True), "w"),
                       root / "w.parquet")
    assert cli.main(["cv", "features_baseline", f"data.train={root / 'l.csv'}", "cv.n_splits=3",
                     f"output_dir={root / 'lm'}"]) == 0
    assert cli.main(["cv", "features_baseline", f"data.train={root / 'w.parquet'}", "competition=wsdm",
                     "cv.n_splits=3", f"output_dir={root / 'ws'}"]) == 0
    return root


def test_a_cascade_run_of_another_competition_is_refused_before_predicting(two_runs, run_cli, tmp_path):
    # before: every row predicted, then "operands could not be broadcast together with shapes (18,3) (18,2)"
    r = run_cli("predict", "--run", two_runs / "lm", "--test", two_runs / "l.csv", "--out", tmp_path / "s.csv",
                f"predict.cascade.run={two_runs / 'ws'}")
    assert r.code == 2 and "is a competition=wsdm run (a, b)" in r.err and "give a lmsys run" in r.err
    assert "Traceback" not in r.err and "predicting with" not in r.err and not (tmp_path / "s.csv").exists()
    r = run_cli("repredict", "--run", two_runs / "lm", f"predict.cascade.run={two_runs / 'ws'}",
                f"output_dir={tmp_path / 'rp'}")
    assert r.code == 2 and "competition=wsdm" in r.err and not (tmp_path / "rp").exists()


def test_repredict_from_another_folder_refuses_a_file_of_the_same_name(two_runs, run_cli, tmp_path, monkeypatch):
    # the run saved data.train as given; from another folder a relative path names another file
    from prefkit.config import load_config

    other = tmp_path / "elsewhere"
    other.mkdir()
    write_lmsys_csv(make_pairs(120, seed=11), other / "l.csv")  # the same ids, other labels
    monkeypatch.chdir(other)
    rel = os.path.relpath(two_runs / "lm", other)
    r = run_cli("repredict", "--run", rel, "data.train=l.csv", f"output_dir={tmp_path / 'rp'}")
    assert r.code == 2 and f"data.train=l.csv is not the data {rel} was trained on" in r.err
    assert "rows have other labels" in r.err and not (tmp_path / "rp").exists()
    write_lmsys_csv(make_pairs(40, seed=3), other / "short.csv")  # a prefix of the training rows: the rest missing
    r = run_cli("repredict", "--run", rel, "data.train=short.csv", f"output_dir={tmp_path / 'rp'}")
    assert r.code == 2 and "80 rows are missing" in r.err
    # the real file still repredicts
    r = run_cli("repredict", "--run", rel, f"data.train={two_runs / 'l.csv'}", f"output_dir={tmp_path / 'ok'}")
    assert r.code == 0, r.err
    assert load_config(two_runs / "lm" / "config.yaml").data.train == str(two_runs / "l.csv")


def test_a_student_run_is_refused_where_a_reward_model_is_wanted(two_runs, run_cli, tmp_path):
    # before: `cot rank --rm SFT_RUN` read every answer file, then failed inside the reward model's loader
    import shutil

    from prefkit.shipped import config_path

    student = tmp_path / "student"
    student.mkdir()
    shutil.copy(config_path("sft/tiny_gemma2"), student / "config.yaml")
    r = run_cli("cot", "rank", "--rm", student, "--dataset", "multiarith", "--system", "a=x.jsonl",
                "--system", "b=y.jsonl", "--out", tmp_path / "rank")
    assert r.code == 2 and "a model.kind=causal_lm run; this needs features or seq_cls" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "rank").exists()
    r = run_cli("predict", "--run", student, "--test", two_runs / "l.csv", "--out", tmp_path / "s.csv")
    assert r.code == 2 and "model.kind=causal_lm" in r.err and not (tmp_path / "s.csv").exists()


def test_a_full_disk_is_a_message_not_a_traceback(two_runs, run_cli, tmp_path, monkeypatch):
    # a write that fails for space raises OSError(ENOSPC) with no file name: it was re-raised as a bug
    import errno

    import pandas as pd

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    r = run_cli("predict", "--run", two_runs / "lm", "--test", two_runs / "l.csv", "--out", tmp_path / "s.csv")
    assert r.code == 2 and "no space left on the device" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "s.csv").exists()


def test_a_symlink_loop_in_a_fold_folder_is_left_out_by_bundle(two_runs, run_cli, tmp_path):
    # before: shutil.copytree followed fold0/loop -> fold0 until the path was too long, then a traceback;
    # now no link is followed (issue 42): it is left out and named
    import shutil

    run = tmp_path / "lm"
    shutil.copytree(two_runs / "lm", run)
    (run / "fold0" / "loop").symlink_to(run / "fold0", target_is_directory=True)
    r = run_cli("kaggle", "bundle", "--run", run, "--out", tmp_path / "b", "kaggle.dataset=me/my-folds", "kaggle.wheels=[]")
    assert r.code == 0 and f"fold0/loop -> {run / 'fold0'}" in r.err, r.err
    assert not (tmp_path / "b" / "run" / "fold0" / "loop").exists()
