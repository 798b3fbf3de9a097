from __future__ import annotations

import json

import pandas as pd

from prefkit.metrics import UNIFORM_LOGLOSS


def test_demo_end_to_end(run_cli, tmp_path):
    r = run_cli("demo", f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["logloss"] < UNIFORM_LOGLOSS - 0.3 and m["n"] == 2400
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == 600 and sub["id"].is_unique
    report = (tmp_path / "report.md").read_text()
    assert f"{m['logloss']:.4f}" in report
