"""CPU smoke run of the benchmark harnesses: they must keep running; their figures are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_data_prep_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "data_prep.py"), "--rows", "200", "--repeats", "1",
                        "--max-length", "256", "--out", str(tmp_path), "--cache", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "data_prep.json").read_text())
    assert res["rows"] == 200 and set(res["seconds"]) == {"tokenizer", "render", "prepare"}
    assert res["ratio_prepare_vs_tokenizer"] > 0 and (tmp_path / "data_prep.md").exists()
