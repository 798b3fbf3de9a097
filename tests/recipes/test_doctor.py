"""`prefkit doctor --run RUN` and the probes that end `cv` and `train`: a sound tiny run passes every probe (its
figures in metrics.json), a planted fault exits 1 naming the rows, a probe that fails at the end of `cv` is a
warning and the run stands, and a folder that is not a finished run is refused with exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prefkit import cli
from prefkit.config import load_config, save_config
from prefkit.rm import probes
from tests.conftest import FAST, TINY, lmsys_row, write_lmsys

FEATURES = Path(__file__).resolve().parents[2] / "configs" / "rm" / "features_baseline.yaml"
PROBED = ["batch (right padding)", "batch (left padding)", "dtype", "swap", "position", "attention", "labels"]


def pairs(path: Path, n: int = 30) -> Path:
    """A good and a bad answer (or two equal ones for a tie), of lengths that differ from row to row."""
    rows = []
    for i in range(n):
        good, bad = "Yes! Here is a clear and correct answer." + " More." * (i % 5), "no" + " no" * (i % 4)
        a, b, winner = [(good, bad, (1, 0, 0)), (bad, good, (0, 1, 0)), ("maybe", "maybe", (0, 0, 1))][i % 3]
        rows.append(lmsys_row(f"r{i}", [f"question {i % 7}?"], [a], [b], winner))
    return write_lmsys(path, rows)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One fold of the tiny Gemma-2 through the real path (nf4 + LoRA), made once for the module."""
    root = tmp_path_factory.mktemp("doctor")
    run = root / "cv"
    code = cli.main(["cv", str(TINY), f"data.train={pairs(root / 'train.csv')}", "cv.n_splits=2", "cv.folds=[0]",
                     *FAST, f"output_dir={run}"])
    assert code == 0
    return run


def test_a_tiny_cv_run_passes_every_probe_and_records_them(tiny_run, run_cli):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    recorded = metrics["probes"]
    assert recorded["model"] == "fold0" and recorded["failed"] == [] and recorded["rows"] == 16
    assert recorded["position"]["status"] == "ok" and recorded["position"]["pooling"] == "last"
    assert recorded["labels"]["rows"] == metrics["n"] != 16, "the labels probe reads the out-of-fold predictions"
    r = run_cli("doctor", "--run", tiny_run, "--rows", "8")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith(f"probes of {tiny_run / 'fold0'} on 8 rows of")
    for name in PROBED:  # a line each: its status, figure and (held to one) tolerance
        line = next(x for x in lines if f" {name} " in x)
        assert line.split()[0] in ("ok", "info", "n/a"), line
    assert "tolerance: 1e-04" in r.out and "0 of 7 probes out of tolerance" in lines[-1]


def test_doctor_exits_1_naming_the_rows_of_a_planted_fault(tiny_run, run_cli, monkeypatch):
    """A model that takes another id for padding than its batches are padded with (prefkit builds every sequence
    classifier with its own padding id; here one is changed after loading): it reads a padding position."""
    from prefkit.rm import reward_model

    loaded = reward_model.load_trained

    def planted(*args, **kwargs):
        model = loaded(*args, **kwargs)
        model.config.pad_token_id = 7
        return model

    monkeypatch.setattr(reward_model, "load_trained", planted)
    r = run_cli("doctor", "--run", tiny_run, "--rows", "6")
    assert r.code == 1, r.err
    position = next(x for x in r.out.splitlines() if " position " in x)
    assert position.split()[0] == "FAIL" and "the model takes 7 for padding" in position
    assert "; rows 'r" in position and r.out.splitlines()[-1].startswith("2 of 7 probes out of tolerance: batch (right")


def test_features_run_gets_the_probes_that_apply(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    recorded = json.loads((tmp_path / "cv" / "metrics.json").read_text())["probes"]
    assert recorded["failed"] == [] and recorded["swap"]["status"] == "ok" and recorded["labels"]["status"] == "ok"
    assert all(recorded[n]["status"] == "n/a" for n in ("batch", "dtype", "position"))
    r = run_cli("doctor", "--run", tmp_path / "cv")
    assert r.code == 0 and "n/a   batch                 features model" in r.out, r.out


def test_train_writes_its_probes_and_doctor_reads_the_sample(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("train", FEATURES, f"data.train={data}", "features.max_iter=20", "train.probe_rows=12",
                f"output_dir={tmp_path / 'train'}")
    assert r.code == 0, r.err
    recorded = json.loads((tmp_path / "train" / "metrics.json").read_text())["probes"]
    assert recorded["model"] == "model" and recorded["rows"] == 12 and recorded["labels"]["rows"] == 12
    r = run_cli("doctor", "--run", tmp_path / "train", "--rows", "20")
    assert r.code == 0 and "20 rows" in r.out.splitlines()[-2], r.out


def test_a_failed_probe_at_the_end_of_cv_is_a_warning(tmp_path, run_cli, monkeypatch):
    """An A/B swap that swaps nothing (the fault planted): the run finishes, says so, and records it."""
    monkeypatch.setattr(probes, "swap_ab", lambda table: table)
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    assert "warning: fold0 fails the model probes swap" in r.err and "prefkit doctor --run" in r.err
    recorded = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert recorded["probes"]["failed"] == ["swap"] and recorded["probes"]["swap"]["rows"] and "logloss" in recorded


def test_probes_off_with_probe_rows_0(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", "train.probe_rows=0",
                f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0 and not re.search(r"probe (ok|n/a|info|FAIL) ", r.err)
    assert "probes" not in json.loads((tmp_path / "cv" / "metrics.json").read_text())


def test_user_mistakes_exit_2_without_a_traceback(tmp_path, run_cli):
    unfinished, student = tmp_path / "unfinished", tmp_path / "student"
    save_config(load_config(FEATURES, [f"data.train={tmp_path / 'train.csv'}"]), unfinished)
    save_config(load_config(None, ["model.kind=causal_lm"]), student)
    for args, message in [((tmp_path,), "not a run folder (no config.yaml)"),
                          ((unfinished,), "no finished model folder"),
                          ((unfinished, "--rows", "0"), "--rows 0: give at least 1 row"),
                          ((student,), "a model.kind=causal_lm run; this needs features or seq_cls")]:
        r = run_cli("doctor", "--run", *args)
        assert r.code == 2 and message in r.err and "Traceback" not in r.err, (args, r.err)
