"""Issue 27, classes 2 and 3: commands that wrote over their own inputs or mixed two blends in one folder, and
pseudo-labels that leaked into validation. Each test says what went wrong before the fix."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from prefkit import cli
from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.folds import assign_folds
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite
from prefkit.recipes.common import load_labelled
from prefkit.toolbox.predictions import write_logits
from prefkit.toolbox.pseudo import checked_pseudo_rows, write_pseudo_labels

LMSYS = COMPETITIONS["lmsys"]
# two quick runs that disagree: a logistic regression on the hand-made features, barely and heavily regularised
RUNS = {"loose": ["features.l2_regularization=0.01"], "tight": ["features.l2_regularization=1000"]}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two 3-fold cv runs of the feature baseline on the same 150 pairs, a predict folder of each on 30 test pairs,
    and 20 unlabelled pairs; made once. Tests that might write into them work on copies (`runs`)."""
    root = tmp_path_factory.mktemp("guards")
    data, test, unlabelled = root / "train.csv", root / "test.csv", root / "unlabelled.csv"
    write_lmsys_csv(make_pairs(150, seed=0), data)
    write_lmsys_csv(PairTable(make_pairs(30, seed=1).frame.assign(label=None), "t"), test)
    u = make_pairs(20, seed=2).frame
    write_lmsys_csv(PairTable(u.assign(label=None, id="u" + u["id"]), "u"), unlabelled)
    for name, extra in RUNS.items():
        assert cli.main(["cv", "rm/features_baseline", f"data.train={data}", "cv.n_splits=3",
                         "features.estimator=logreg", *extra, f"output_dir={root / name}"]) == 0
        assert cli.main(["predict", "--run", str(root / name), "--test", str(test), "--out", str(root / f"{name}.csv"),
                         f"output_dir={root / ('pred_' + name)}"]) == 0
    return root


@pytest.fixture
def runs(made, tmp_path):
    """Copies of the module's runs, predict folders and files in tmp_path (a predict folder still records the
    module's run, as it would after the runs were copied)."""
    for p in made.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp_path / p.name)
    return tmp_path


def _files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# class 2: overwritten runs and inputs

def test_blend_refuses_an_out_that_is_one_of_its_runs_or_inside_one(runs, run_cli):
    """Before: `blend A B --out B` replaced run B's oof.csv, oof_logits.csv and metrics.json with the blend's and
    exited 0; an --out inside a run folder wrote into the run."""
    a, b = runs / "loose", runs / "tight"
    before = _files(b)
    for out in (b, runs / "x" / ".." / "tight", b / "blend"):
        res = run_cli("blend", a, b, "--out", out)
        assert res.code == 2, res.err
        assert f"--out {out}:" in res.err and "run" in res.err and "Traceback" not in res.err
        assert _files(b) == before, "the run is untouched"
    assert "inside run" in res.err
    shutil.copytree(b, runs / "other")  # a run folder that is not blended is not a blend's folder either
    res = run_cli("blend", a, b, "--out", runs / "other")
    assert res.code == 2 and "is a run folder" in res.err


def test_commands_refuse_an_output_that_is_one_of_their_inputs(runs, run_cli):
    """Before: `predict --out` equal to `--test` (or a hard link to it), `pseudo-label --out` equal to `--data`,
    and `data convert PATH --out PATH` replaced the user's input file, exiting 0; `predict output_dir=RUN` wrote
    its config.yaml and predictions into the training run."""
    run, test, unlabelled = runs / "loose", runs / "test.csv", runs / "unlabelled.csv"
    os.link(test, runs / "linked.csv")
    saved = {p: p.read_bytes() for p in (test, unlabelled)}
    run_files = _files(run)
    for out in (test, runs / "linked.csv", runs / "." / "test.csv"):
        res = run_cli("predict", "--run", run, "--test", test, "--out", out, f"output_dir={runs / 'p'}")
        assert res.code == 2, res.err
        assert f"--out {out}: is --test {test}" in res.err
    res = run_cli("predict", "--run", run, "--test", test, "--out", runs / "s.csv", f"output_dir={run}")
    assert res.code == 2 and f"output_dir {run}: is --run {run}" in res.err
    res = run_cli("predict", "--run", run, "--test", test, "--out", run / "submission.csv")
    assert res.code == 2 and "inside --run" in res.err
    res = run_cli("pseudo-label", "--run", run, "--data", unlabelled, "--out", unlabelled)
    assert res.code == 2 and f"--out {unlabelled}: is --data {unlabelled}" in res.err
    res = run_cli("pseudo-label", "--run", run, "--data", runs / "u.json", "--out", runs / "u.csv")
    assert res.code == 2 and "--out's summary" in res.err, "the summary beside --out is an output too"
    res = run_cli("data", "convert", test, "--out", test)
    assert res.code == 2 and "is the file to convert" in res.err
    res = run_cli("repredict", "--run", run, f"output_dir={run}")
    assert res.code == 2 and f"output_dir {run}: is --run {run}" in res.err
    assert {p: p.read_bytes() for p in (test, unlabelled)} == saved and _files(run) == run_files
    assert not (runs / "p").exists()


def test_refuse_overwrite_sees_through_links_and_spellings(tmp_path):
    """One file under another name (symbolic link, hard link, `..`) is the same file; a missing output is compared
    by its resolved path. Before: no such check existed."""
    src = tmp_path / "in.csv"
    src.write_text("x")
    os.symlink(src, tmp_path / "sym.csv")
    os.link(src, tmp_path / "hard.csv")
    for out in ("sym.csv", "hard.csv", "d/../in.csv"):
        with pytest.raises(PrefkitError, match="an input of this command"):
            refuse_overwrite(tmp_path / out, {"--data": src})
    refuse_overwrite(tmp_path / "new.csv", {"--data": src, "--other": None, "--list": [tmp_path / "nope"]})
    (tmp_path / "f").mkdir()
    with pytest.raises(PrefkitError, match="--submission .*inside --list"):
        refuse_overwrite(tmp_path / "f" / "sub.csv", {"--list": [src, tmp_path / "f"]}, "--submission")


def test_a_blend_folder_holds_one_blend_and_a_failed_blend_leaves_the_old_one(runs, run_cli, monkeypatch):
    """Before: re-blending without --test-preds kept the old submission.csv, logits.csv and probabilities.csv
    beside the new blend.json; a blend that failed on its test predictions had already replaced blender.joblib,
    oof.csv and oof_logits.csv, leaving them with the old blend.json (and so did one that failed while writing)."""
    a, b, d = runs / "loose", runs / "tight", runs / "blend"
    res = run_cli("blend", a, b, "--out", d, "--test-preds", runs / "pred_loose", runs / "pred_tight")
    assert res.code == 0, res.err
    assert (d / "submission.csv").is_file() and (d / "logits.csv").is_file()
    (d / "notes.txt").write_text("mine")
    res = run_cli("blend", a, b, "--out", d)
    assert res.code == 0, res.err
    info = json.loads((d / "blend.json").read_text())
    assert "test_preds" not in info
    for gone in ("submission.csv", "logits.csv", "probabilities.csv"):
        assert not (d / gone).exists(), f"{gone} of the previous blend is left"
    assert sorted(info["files"]) == sorted(p.name for p in d.iterdir() if p.name != "notes.txt")
    assert (d / "notes.txt").read_text() == "mine", "a file no blend writes is kept"

    before = _files(d)
    bad = runs / "bad.csv"  # test predictions of other rows than the other run's
    write_logits(bad, [f"z{i}" for i in range(30)], np.full((30, 3), 1 / 3), LMSYS)
    res = run_cli("blend", a, b, "--out", d, "--method", "stack", "--test-preds", runs / "pred_loose", bad)
    assert res.code == 2 and "cover other rows" in res.err
    assert _files(d) == before, "the previous blend is whole"

    from prefkit.recipes import blend

    def broken(path, text):  # the disk fills while the blend's files are written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blend, "write_text", broken)
    with pytest.raises(OSError):
        blend.main([str(a), str(b)], str(d), "stack", [str(runs / "pred_loose"), str(runs / "pred_tight")])
    assert _files(d) == before, "the previous blend is whole"
    assert not list(runs.glob(".blend.*.stage")), "no staged folder is left"


def test_blend_matches_test_preds_to_the_runs_they_record(made, runs, run_cli):
    """Before: predict folders did not record their run, and `--test-preds` in another order than the runs gave
    another submission (each run's weight applied to the other run's predictions), exiting 0; a folder of a run
    that is not blended, or two of one run, were taken as they came."""
    a, b, pa, pb = runs / "loose", runs / "tight", runs / "pred_loose", runs / "pred_tight"
    rec = json.loads((pa / "predict_stats.json").read_text())["run"]
    assert rec["path"] == str((made / "loose").resolve()) and len(rec["config_hash"]) == 12
    # the copies in tmp_path are matched by their config hash: predicted where the runs were made, then moved
    assert run_cli("blend", a, b, "--out", runs / "in_order", "--test-preds", pa, pb).code == 0
    res = run_cli("blend", a, b, "--out", runs / "swapped", "--test-preds", pb, pa, "--submission", runs / "sub.csv")
    assert res.code == 0, res.err
    assert (runs / "sub.csv").is_file() and not (runs / "swapped" / "submission.csv").exists()
    w = json.loads((runs / "in_order" / "metrics.json").read_text())["blender"]["weights"]
    p = [pd.read_csv(d / "probabilities.csv").iloc[:, 1:].to_numpy() for d in (pa, pb)]
    assert np.abs((w[0] - w[1]) * (p[0] - p[1])).max() > 1e-3, "the order would matter"
    first, second = (pd.read_csv(runs / d / "probabilities.csv") for d in ("in_order", "swapped"))
    pd.testing.assert_frame_equal(first, second)
    recorded = json.loads((runs / "swapped" / "blend.json").read_text())["test_preds"]
    assert recorded == [str(pa.resolve()), str(pb.resolve())], "kept in the runs' order"

    shutil.copytree(pa, runs / "pred_loose_2")
    res = run_cli("blend", a, b, "--out", runs / "twice", "--test-preds", pa, runs / "pred_loose_2")
    assert res.code == 2 and f"--test-preds {pa} and {runs / 'pred_loose_2'}: both are predictions of run" in res.err
    shutil.copytree(b, runs / "third")  # another run: its config differs
    with open(runs / "third" / "config.yaml", "a") as fh:
        fh.write("# another run\n")
    res = run_cli("predict", "--run", runs / "third", "--test", runs / "test.csv", "--out", runs / "third.csv",
                  f"output_dir={runs / 'pred_third'}")
    assert res.code == 0, res.err
    res = run_cli("blend", a, b, "--out", runs / "foreign", "--test-preds", pa, runs / "pred_third")
    assert res.code == 2, res.err
    assert (f"--test-preds {runs / 'pred_third'}: predicted by run {(runs / 'third').resolve()}, which is none of the "
            "runs blended") in res.err
    assert not (runs / "twice").exists() and not (runs / "foreign").exists()


# class 3: pseudo-labels leak into validation

def _pseudo_file(path, frame: pd.DataFrame) -> None:
    rows = PairTable(frame.assign(label=None).reset_index(drop=True), "pl")
    write_pseudo_labels(path, rows, np.tile([0.7, 0.2, 0.1], (len(rows.frame), 1)), LMSYS)


def _swap(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(response_a=frame["response_b"], response_b=frame["response_a"])


def test_pseudo_rows_that_are_labelled_rows_are_refused_by_id_and_by_content(tmp_path):
    """Before: only ids were compared, so a labelled pair under a new id, with A and B swapped, or re-exported
    with other whitespace, joined training as a pseudo-label."""
    labelled = make_pairs(40, seed=0)
    fresh = make_pairs(6, seed=9).frame.assign(id=lambda f: "u" + f["id"])
    same = labelled.frame.iloc[[3]].assign(id="new-3")
    swapped = _swap(labelled.frame.iloc[[5]]).assign(id="new-5")
    spaced = labelled.frame.iloc[[8]].assign(id="new-8", prompt=lambda f: [[" " + t.replace(" ", "  ") + "\n"
                                                                             for t in p] for p in f["prompt"]])
    by_id = labelled.frame.iloc[[11]]
    _pseudo_file(tmp_path / "ok.csv", fresh)
    assert len(checked_pseudo_rows(tmp_path / "ok.csv", labelled)) == 6
    _pseudo_file(tmp_path / "pl.csv", pd.concat([fresh.iloc[:2], same, swapped, fresh.iloc[2:], spaced, by_id]))
    with pytest.raises(PrefkitError) as e:
        checked_pseudo_rows(tmp_path / "pl.csv", labelled)
    msg = str(e.value)
    assert f"train.pseudo_labels {tmp_path / 'pl.csv'}: 4 of its 10 rows" in msg
    assert f"row 3 (id 'new-3'), row 4 (id 'new-5'), row 9 (id 'new-8'), row 10 (id {by_id['id'].iloc[0]!r})" in msg


@pytest.mark.parametrize("case", ["own_id_with_cv_folds", "new_id_swapped"])
def test_cv_refuses_pseudo_labels_of_a_validation_row_before_any_fold_trains(tmp_path, run_cli, case):
    """Before: pseudo-label ids were compared with each fold's training rows only. With cv.folds=[1], a pseudo-label
    row that is a validation row of fold 1 trained fold 1 silently; without cv.folds, the same pair under a new id
    with A and B swapped was never caught (by id, at fold 1 only, after fold 0 had trained leaked)."""
    from tests.conftest import FAST, TINY

    data = tmp_path / "train.csv"
    write_lmsys_csv(make_pairs(24, seed=0), data)
    cfg = load_config(TINY, ["cv.n_splits=3"])
    table = load_labelled(str(data), cfg)
    valid = table.frame[assign_folds(table, 3, cfg.cv.seed) == 1].iloc[[0]]
    extra = ["cv.folds=[1]"] if case == "own_id_with_cv_folds" else []
    _pseudo_file(tmp_path / "pl.csv", valid if extra else _swap(valid).assign(id="pl-1"))
    res = run_cli("cv", TINY, f"data.train={data}", "cv.n_splits=3", *FAST, "quantization.mode=none",
                  f"train.pseudo_labels={tmp_path / 'pl.csv'}", f"output_dir={tmp_path / 'cv'}", *extra)
    assert res.code == 2, res.err
    assert f"train.pseudo_labels {tmp_path / 'pl.csv'}: 1 of its 1 rows" in res.err
    assert f"row 1 (id {valid['id'].iloc[0] if extra else 'pl-1'!r})" in res.err and "Traceback" not in res.err
    assert not list((tmp_path / "cv").glob("fold*")), "no fold trained"


def test_a_pseudo_label_file_of_another_kind_says_what_it_is(tmp_path):
    """A gzip file under a .csv name as train.pseudo_labels: named as gzip, as `load_pairs` names it (issue 42)."""
    import gzip

    from prefkit.errors import PrefkitError
    from prefkit.toolbox.pseudo import load_pseudo_rows

    path = tmp_path / "pseudo.csv"
    path.write_bytes(gzip.compress(b"id,prompt,response_a,response_b\n"))
    with pytest.raises(PrefkitError, match=r"train.pseudo_labels .*pseudo.csv: is a gzip file"):
        load_pseudo_rows(path)
