from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prefkit.metrics import UNIFORM_LOGLOSS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "rm"


@pytest.mark.parametrize("config,rows", [("features_baseline.yaml", 1200), ("tiny_gemma2.yaml", 90)])
def test_demo_end_to_end(run_cli, tmp_path, config, rows):
    """The demo's whole path, on configs that run in seconds (the MiniLM default takes minutes: see README)."""
    r = run_cli("demo", "--config", CONFIGS / config, "--rows", rows, f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == rows and len(m["folds"]) == 3
    if config.startswith("features"):
        assert m["logloss"] < UNIFORM_LOGLOSS - 0.3
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == rows // 4 and sub["id"].is_unique
    report = (tmp_path / "report.md").read_text()
    assert f"{m['logloss']:.4f}" in report


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
    assert "WSDM-format" in (tmp_path / "report.md").read_text()
