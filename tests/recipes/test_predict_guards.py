"""`predict` on a trained run (issue 42, classes 5 and 8): an override is applied only where predict may change
it, ignored (and said so) where only training reads it, and refused where the trained model fixes it; an empty test
file and an output that cannot be written are refused before any model loads."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from prefkit import cli

    root = tmp_path_factory.mktemp("pg")
    write_lmsys_csv(make_pairs(60, seed=5), root / "t.csv")
    assert cli.main(["train", "features_baseline", f"data.train={root / 't.csv'}", "features.max_iter=20",
                     "train.probe_rows=0", f"output_dir={root / 'run'}"]) == 0
    return root


def _predict(run_cli, run: Path, tmp_path: Path, *overrides: str, test: Path | None = None, out: Path | None = None):
    return run_cli("predict", "--run", run / "run", "--test", test or run / "t.csv", "--out", out or tmp_path / "s.csv",
                   f"output_dir={tmp_path / 'p'}", *overrides)


@pytest.mark.parametrize("override,shown", [
    ("template.max_length=300", "template.max_length=300 (trained with 512)"),
    ("template.prompt_share=0.5", "template.prompt_share=0.5 (trained with 0.2)"),
    ("model.head=cls3", "model.head='cls3' (trained with"),
    ("features.arithmetic=true", "features.arithmetic=True (trained with False)"),
])
def test_a_setting_the_trained_model_fixes_is_refused(run, run_cli, tmp_path, override, shown):
    r = _predict(run_cli, run, tmp_path, override)
    assert r.code == 2, r.err
    assert shown in r.err and "the trained model fixes this" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "p").exists()


def test_the_same_value_as_the_run_and_training_only_keys_pass_truthfully(run, run_cli, tmp_path):
    plain = _predict(run_cli, run, tmp_path)
    assert plain.code == 0, plain.err
    expected = pd.read_csv(tmp_path / "s.csv")
    out = tmp_path / "s2.csv"
    r = run_cli("predict", "--run", run / "run", "--test", run / "t.csv", "--out", out, f"output_dir={tmp_path / 'p2'}",
                "features.arithmetic=false", "train.epochs=3", "cv.seed=1")
    assert r.code == 0, r.err
    assert "does not read train.epochs, cv.seed (training settings): they are ignored" in r.err
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)
    # an override predict reads is applied, not only accepted
    r = run_cli("predict", "--run", run / "run", "--test", run / "t.csv", "--out", tmp_path / "s3.csv",
                f"output_dir={tmp_path / 'p3'}", "predict.clip=0.2")
    assert r.code == 0, r.err
    cols = [c for c in expected.columns if c != "id"]
    clipped = pd.read_csv(tmp_path / "s3.csv")[cols].to_numpy()
    assert clipped.min() > expected[cols].to_numpy().min() + 0.05


def test_a_test_file_with_a_header_and_no_rows_is_refused(run, run_cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text((run / "t.csv").read_text().splitlines()[0] + "\n")
    r = _predict(run_cli, run, tmp_path, test=empty)
    assert r.code == 2 and f"{empty}: no rows to predict (a header and no rows)" in r.err and "Traceback" not in r.err
    r = run_cli("pseudo-label", "--run", run / "run", "--data", empty, "--out", tmp_path / "pl.csv")
    assert r.code == 2 and "no rows to pseudo-label" in r.err and "Traceback" not in r.err, r.err


def test_a_read_only_out_is_refused_before_predicting(run, run_cli, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes into read-only folders: the folder is read-only by os.access here
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real(path, mode))
    try:
        r = _predict(run_cli, run, tmp_path, out=locked / "s.csv")
        assert r.code == 2 and "cannot write there" in r.err and "predicting with" not in r.err, r.err
    finally:
        locked.chmod(0o755)


def test_check_writable_refuses_a_read_only_file_before_work(tmp_path, monkeypatch):
    """The same check where the tests run as root (which os.access answers for the real permission bits of a file
    only through the access mode): a read-only path by os.access is refused."""
    from prefkit.errors import PrefkitError
    from prefkit.io import check_writable

    target = tmp_path / "sub" / "s.csv"
    check_writable(target)  # a folder to be made under a writable one: fine
    assert not (tmp_path / "sub").exists(), "nothing is made by the check"
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PrefkitError, match="cannot write there"):
        check_writable(target)
    with pytest.raises(PrefkitError, match="is a folder"):
        check_writable(tmp_path)


def test_predictions_of_a_killed_run_say_what_the_average_lacks(run_cli, tmp_path):
    write_lmsys_csv(make_pairs(40, seed=4), tmp_path / "t.csv")
    out = tmp_path / "cv"
    r = run_cli("cv", "features_baseline", f"data.train={tmp_path / 't.csv'}", "cv.n_splits=3", "features.max_iter=20",
                "train.probe_rows=0", f"output_dir={out}")
    assert r.code == 0, r.err
    (out / "fold1" / "trained.json").unlink()  # as a kill during fold 1 leaves it
    import shutil

    shutil.rmtree(out / "fold2")  # never begun
    r = run_cli("predict", "--run", out, "--test", tmp_path / "t.csv", "--out", tmp_path / "s.csv",
                f"output_dir={tmp_path / 'p'}")
    assert r.code == 0, r.err
    assert ("2 model folder(s) not finished, left out of the average: fold1 (no trained.json), fold2 (never begun)"
            in r.err)
    assert "(1 models averaged)" in r.err
