"""Golden scores travel with a run: `train` and `cv` record each model's scores on fixed synthetic rows (with the
versions, device and dtype they ran with) in golden.json; `predict` and `repredict` re-score them first and stop
with exit 2, naming what changed, when they moved beyond the dtype's tolerance; a change within it is a note, a
model without golden.json predicts with a note. The features baseline and the tiny Gemma-2 (nf4 + LoRA)."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import pytest

from prefkit import cli
from prefkit.config import load_config
from prefkit.rm import golden
from tests.conftest import FAST, TINY, lmsys_row, write_lmsys

FEATURES = Path(__file__).resolve().parents[2] / "configs" / "rm" / "features_baseline.yaml"


def pairs(path: Path, n: int) -> Path:
    """A good and a bad answer (or two equal ones for a tie): rows whose texts the golden rows never hold."""
    rows = []
    for i in range(n):
        good, bad = f"Yes! Here is a clear and correct answer {i}." + " More." * (i % 5), "no" + " no" * (i % 4)
        a, b, winner = [(good, bad, (1, 0, 0)), (bad, good, (0, 1, 0)), ("maybe", "maybe", (0, 0, 1))][i % 3]
        rows.append(lmsys_row(f"r{i}", [f"training question {i % 7}?"], [a], [b], winner))
    return write_lmsys(path, rows)


def _train(root: Path, config: Path, *overrides: str) -> Path:
    run = root / "train"
    assert cli.main(["train", str(config), f"data.train={pairs(root / 'train.csv', 60)}", *overrides,
                     f"output_dir={run}"]) == 0
    return run


@pytest.fixture(scope="module")
def features_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("golden_features"), FEATURES, "features.max_iter=20", "train.probe_rows=0")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("golden_tiny"), TINY, *FAST, "train.probe_rows=0")


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _edit(run: Path, change) -> None:
    path = run / "model" / golden.FILE
    saved = json.loads(path.read_text())
    change(saved)
    path.write_text(json.dumps(saved))


def _predict(run_cli, run: Path, tmp_path: Path, *overrides: str):
    test = pairs(tmp_path / "test.csv", 6)
    return run_cli("predict", "--run", run, "--test", test, "--out", tmp_path / "sub.csv",
                   f"output_dir={tmp_path / 'pred'}", *overrides)


def test_the_golden_rows_are_made_by_prefkit_with_a_multi_turn_and_a_long_row():
    rows = golden.golden_rows(96)
    assert [r["id"] for r in rows] == [f"golden-{i}" for i in range(1, 8)]
    assert any(len(r["prompt"]) > 1 for r in rows), "a multi-turn row"
    assert len(rows[-1]["response_a"][0]) >= 8 * 96 and rows[-1]["response_b"] == [None]
    assert rows == golden.golden_rows(96), "the same rows every time"


def test_a_features_run_records_its_golden_scores_and_predict_checks_them(features_run, run_cli, tmp_path):
    saved = json.loads((features_run / "model" / golden.FILE).read_text())
    assert len(saved["probabilities"]) == len(saved["rows"]) == 7 and len(saved["probabilities"][0]) == 3
    env = saved["environment"]
    assert env["scikit-learn"] == importlib.metadata.version("scikit-learn") and env["prefkit"] and env["python"]
    assert env["dtype"] == "float64" and env["device"] == "cpu"
    assert "training question" not in json.dumps(saved), "no training row travels in the golden file"
    r = _predict(run_cli, features_run, tmp_path)
    assert r.code == 0 and "note:" not in r.err, r.err


def test_scores_that_moved_stop_predict_naming_the_version_that_differs(features_run, run_cli, tmp_path):
    run = _copy(features_run, tmp_path)

    def drift(saved):  # scikit-learn "upgraded" since training, and the third row scored otherwise then
        saved["environment"]["scikit-learn"] = "1.0.2"
        saved["probabilities"][2][0] += 0.01

    _edit(run, drift)
    r = _predict(run_cli, run, tmp_path)
    assert r.code == 2 and "Traceback" not in r.err, r.err
    now = importlib.metadata.version("scikit-learn")
    assert "max |dP| 1.00e-02, tolerance 1e-06 (float64); rows golden-3" in r.err
    assert f"scikit-learn 1.0.2 -> {now}" in r.err and "pip install scikit-learn==1.0.2" in r.err
    assert not (tmp_path / "sub.csv").exists()
    r = _predict(run_cli, run, tmp_path, "predict.golden_check=false")  # a change known and wanted
    assert r.code == 0 and "golden" not in r.err, r.err


def test_another_version_within_tolerance_is_a_note(features_run, run_cli, tmp_path):
    run = _copy(features_run, tmp_path)
    _edit(run, lambda saved: saved["environment"].update(numpy="1.26.0"))
    r = _predict(run_cli, run, tmp_path)
    assert r.code == 0, r.err
    assert "note: model scores its golden rows as at training" in r.err and "numpy 1.26.0 -> " in r.err


def test_a_model_without_golden_scores_predicts_with_a_note(features_run, run_cli, tmp_path):
    run = _copy(features_run, tmp_path)
    (run / "model" / golden.FILE).unlink()  # a model trained before golden scores were recorded
    r = _predict(run_cli, run, tmp_path)
    assert r.code == 0 and "note: model: no golden.json" in r.err, r.err


def test_a_golden_file_that_is_not_one_is_refused(features_run, run_cli, tmp_path):
    run = _copy(features_run, tmp_path)
    (run / "model" / golden.FILE).write_text('{"rows": []')
    r = _predict(run_cli, run, tmp_path)
    assert r.code == 2 and f"{run / 'model' / golden.FILE}: not the golden scores prefkit writes" in r.err, r.err


def test_golden_scores_that_cannot_be_recorded_are_a_warning_and_the_model_stands(tmp_path, run_cli, monkeypatch):
    def broken(learner, table):
        raise RuntimeError("planted")

    monkeypatch.setattr(golden, "plain_probabilities", broken)
    r = run_cli("train", FEATURES, f"data.train={pairs(tmp_path / 'train.csv', 60)}", "features.max_iter=20",
                "train.probe_rows=0", f"output_dir={tmp_path / 'train'}")
    assert r.code == 0 and "warning: model: golden scores not recorded (RuntimeError: planted)" in r.err, r.err
    assert (tmp_path / "train" / "model" / "trained.json").is_file()
    assert not (tmp_path / "train" / "model" / golden.FILE).exists()


def test_a_cv_run_records_golden_scores_in_every_fold_and_repredict_checks_them(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", "train.probe_rows=0",
                f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    assert all((tmp_path / "cv" / f"fold{k}" / golden.FILE).is_file() for k in (0, 1))
    path = tmp_path / "cv" / "fold1" / golden.FILE
    saved = json.loads(path.read_text())
    saved["probabilities"][0][1] -= 0.05
    path.write_text(json.dumps(saved))
    r = run_cli("repredict", "--run", tmp_path / "cv", f"output_dir={tmp_path / 're'}")
    assert r.code == 2 and "fold1: the model scores its golden rows otherwise" in r.err, r.err


# ------------------------------------------------------------------------------ the tiny Gemma-2 (nf4 + LoRA)

def test_a_tiny_gemma_run_records_the_versions_and_scores_as_loaded(tiny_run, run_cli, tmp_path):
    from prefkit.rm.learners import load_learner
    from prefkit.rm.probes import Probe

    saved = json.loads((tiny_run / "model" / golden.FILE).read_text())
    env = saved["environment"]
    for package in ("torch", "transformers", "peft", "bitsandbytes", "tokenizers"):
        assert env[package] == importlib.metadata.version(package)
    assert env["dtype"] == "float32" and env["device"] == "cpu" and env["quantization"] == "nf4"
    cfg = load_config(tiny_run / "config.yaml")
    learner = load_learner(cfg, tiny_run / "model")
    try:
        found = Probe(**golden.compare(cfg, tiny_run / "model", learner))  # as `prefkit doctor` lists it
        rows = golden.rows_table(saved["rows"], "golden")
        long_row = learner.head.sequences(learner.renderer, rows)[-1]
    finally:
        learner.release()
    assert found.name == "golden" and found.status == "ok" and found.values["max_abs_diff"] < 1e-5, found.line()
    assert len(long_row) == cfg.template.max_length, "the long row is truncated to the template's budget"
    r = _predict(run_cli, tiny_run, tmp_path)
    assert r.code == 0 and "note:" not in r.err, r.err


def test_a_tiny_gemma_model_that_scores_otherwise_under_another_transformers_stops(tiny_run, run_cli, tmp_path,
                                                                                   monkeypatch):
    """The bug class of ms-swift#6704: the same files score otherwise after an upgrade. Planted: transformers
    reported at another version, and the score head's weights changed as an upgrade's new computation would."""
    from safetensors.torch import load_file, save_file

    run = _copy(tiny_run, tmp_path)
    weights = run / "model" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    tensors["base_model.model.score.weight"] *= 1.5
    save_file(tensors, str(weights))
    real = golden.package_version
    monkeypatch.setattr(golden, "package_version", lambda p: "9.9.9" if p == "transformers" else real(p))
    r = _predict(run_cli, run, tmp_path)
    assert r.code == 2 and "Traceback" not in r.err, r.err
    assert f"transformers {importlib.metadata.version('transformers')} -> 9.9.9" in r.err
    assert "tolerance 1e-03 (float32)" in r.err and "pip install transformers==" in r.err
