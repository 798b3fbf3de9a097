from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prefkit.config import load_config
from prefkit.metrics import uniform_logloss

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "rm"


def test_demo_with_the_baseline_alone(run_cli, tmp_path):
    """A --config of the feature baseline runs that model alone (no blend), in seconds; --full reaches the demo
    (a features model trains alike at either size)."""
    r = run_cli("demo", "--config", CONFIGS / "features_baseline.yaml", "--full", f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert list(m["models"]) == ["features"] and m["best"] == "features"
    assert m["size"] == "full" and "train.epochs=1" not in m["size_overrides"]
    assert m["logloss"] < uniform_logloss(3) - 0.3
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == 300 and sub["id"].is_unique
    assert f"{m['logloss']:.4f}" in (tmp_path / "report.md").read_text()


def test_demo_tells_the_whole_story_quietly(run_cli, tmp_path):
    """Baseline, transformer and blend on the same folds; the best by CV submitted; one table, the plots, the
    next steps with the dry-run push; library messages in log.txt, not on the terminal."""
    r = run_cli("demo", "--config", CONFIGS / "tiny_gemma2.yaml", "--rows", 90, f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert list(m["models"]) == ["features", "tiny", "blend"]
    trained = load_config(tmp_path / "cv_tiny" / "config.yaml")
    assert m["size"] == "quick" and (trained.template.max_length, trained.train.epochs) == (128, 1), "a pair head: 128"
    folds = [pd.read_csv(tmp_path / f"cv_{n}" / "oof.csv")[["id", "fold"]].sort_values("id") for n in ("features", "tiny")]
    assert folds[0]["fold"].tolist() == folds[1]["fold"].tolist(), "the same folds for every model"
    best = min(m["models"], key=lambda n: m["models"][n]["logloss"])
    assert m["best"] == best
    src = tmp_path / ("submission_blend.csv" if best == "blend" else f"submission_{best}.csv")
    assert (tmp_path / "submission.csv").read_text() == src.read_text()
    report = (tmp_path / "report.md").read_text()
    assert "quick size" in report and "prefkit demo --full" in report
    for name, s in m["models"].items():
        assert f"| {s['logloss']:.4f} | {s['accuracy']:.4f} | {s['ece']:.4f} |" in report, name
        assert (tmp_path / f"reliability_{name}.png").is_file()
    assert (tmp_path / "folds.png").is_file()
    assert "prefkit kaggle push --bundle" in report and "--dry-run" in report
    assert "bundle " in report and "kernel folder" in report, "the bundle and kernel commands ran"
    assert "torchrun --nproc_per_node 2" in report
    terminal = r.err + r.out
    assert terminal.count("\n") <= 40, terminal
    assert "Loading weights" not in terminal and "MISSING" not in terminal and "warn" not in terminal.lower()
    assert "tiny fold 2: logloss" in terminal and "<- submitted" in terminal
    log_txt = (tmp_path / "log.txt").read_text()
    assert "predicting with fold0" in log_txt, "the detail goes to log.txt"


def test_demo_runs_the_wsdm_cup(run_cli, tmp_path):
    """competition=wsdm: a WSDM-form sample set (parquet, one turn, no ties) and an `id,winner` submission."""
    from prefkit.config import DataConfig
    from prefkit.data import load_pairs

    r = run_cli("demo", "--config", CONFIGS / "features_baseline.yaml", "--rows", 600, "competition=wsdm",
                f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    train = load_pairs(tmp_path / "data" / "train.parquet", DataConfig())
    assert len(train) == 600 and set(train.frame["label"]) == {"a", "b"}
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["competition"] == "wsdm" and m["metric"] == "accuracy" and m["accuracy"] > 0.7
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert list(sub.columns) == ["id", "winner"] and len(sub) == 150 and set(sub["winner"]) == {"model_a", "model_b"}
    assert "WSDM-format" in (tmp_path / "report.md").read_text() and "accuracy: **features**" in (tmp_path / "report.md").read_text()
