"""CPU smoke run of the benchmark harnesses: they must keep running; their figures are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_data_prep_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "data_prep.py"), "--rows", "200", "--repeats", "1",
                        "--max-length", "256", "--out", str(tmp_path), "--cache", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "data_prep.json").read_text())
    assert res["rows"] == 200 and set(res["seconds"]) == {"tokenizer", "render", "prepare"}
    assert res["ratio_prepare_vs_tokenizer"] > 0 and (tmp_path / "data_prep.md").exists()


@pytest.mark.slow
def test_data_scale_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH / "data_scale.py"), "--sizes", "300", "--out", str(tmp_path),
                        "--cache", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "data_scale.json").read_text())
    variants = {x["variant"]: x for x in res["results"]}
    assert set(variants) == {"prefkit", "rows", "polars", "pandas", "jsonl", "jsonl_rows", "tokens"}
    assert all(x["rows"] == 300 for x in variants.values())
    assert variants["jsonl"]["read_by"] == "polars" and variants["jsonl_rows"]["read_by"] == "rows"
    assert variants["jsonl"]["vs_row_reader"] > 0
    assert variants["tokens"]["cached_seconds"] > 0 and variants["tokens"]["cache_mb"] > 0
    assert variants["prefkit"]["read_by"] == "polars" and variants["rows"]["read_by"] == "rows"
    assert variants["prefkit"]["chars"] == variants["rows"]["chars"] > 0
    assert all(x["seconds"] > 0 and x["peak_rss_mb"] > 0 for x in variants.values())
    assert variants["prefkit"]["load_vs_polars"] > 0 and (tmp_path / "data_scale.png").read_bytes()[:4] == b"\x89PNG"
    # a variant past the memory cap is stopped and reported, and the run goes on
    r = subprocess.run([sys.executable, str(BENCH / "data_scale.py"), "--sizes", "300", "--out", str(tmp_path / "cap"),
                        "--cache", str(tmp_path), "--variants", "pandas,polars", "--memory-cap-gb", "0.02"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "cap" / "data_scale.json").read_text())["results"]
    assert {x["variant"] for x in rows} == {"pandas", "polars"} and all("stopped at" in x["stopped"] for x in rows)


@pytest.mark.slow
def test_data_scale_hh_whole_commands(tmp_path):
    """`--hh`: the HH rows repeated (every prompt back once a pass), prefkit's whole command against polars."""
    from tests.conftest import HH, need_shared

    need_shared(HH / "helpful-base.test.jsonl.gz")
    r = subprocess.run([sys.executable, str(BENCH / "data_scale.py"), "--hh", "--rows", "6000", "--out", str(tmp_path),
                        "--cache", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    [row] = json.loads((tmp_path / "data_scale_hh.json").read_text())["results"]
    assert row["rows"] == 6000 and row["distinct_prompts"] == 4663  # 4,666 HH rows, 4,663 prompts normalised
    assert row["prefkit_seconds"] > 0 and row["polars_seconds"] > 0 and row["ratio"] > 0
    assert "| 6000 |" in (tmp_path / "data_scale_hh.md").read_text()


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_predict_speed_tiny_preset(tmp_path):
    r = _run("predict_speed.py", "--preset", "tiny", "--rows", "12", "--max-length", "384", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "predict_speed_tiny.json").read_text())
    variants = {x["variant"]: x for x in res["results"]}
    assert set(variants) == {"plain", "sorted", "budget"} and res["device"]
    # plain pads every row to max_length (384, far above most rows); the sorted variants pad far less
    assert variants["plain"]["padding_ratio"] > variants["budget"]["padding_ratio"] >= 0
    assert all(x["rows_per_s"] > 0 and x["peak_mem_gib"] > 0 and x["speed_vs_plain"] > 0 for x in variants.values())


@pytest.mark.slow
def test_train_speed_tiny_preset(tmp_path):
    r = _run("train_speed.py", "--preset", "tiny", "--rows", "24", "--max-length", "96", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "train_speed_tiny.json").read_text())
    variants = {x["variant"]: x for x in res["results"]}
    assert set(variants) == {"plain", "prefkit"}
    assert all(x["steps"] > 0 and x["samples_per_s"] > 0 and x["mfu"] > 0 for x in variants.values())
    table = [line for line in (tmp_path / "train_speed_tiny.md").read_text().splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(variants), "a header, its rule, and one row a variant"
    assert all(any(f"| {v} |" in line for line in table[2:]) for v in variants)


@pytest.mark.slow
def test_gpu_check_tiny_suite(tmp_path):
    """The GPU check runs end to end on CPU with the tiny preset: train, infer (swap TTA), SFT, in fp16."""
    r = _run("gpu_check.py", "--suite", "tiny", "--dtype", "float16", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check_tiny_float16.json").read_text())
    phases = {x["phase"]: x for x in res["results"]}
    assert set(phases) == {"train-tiny", "infer-tiny", "sft-tiny"} and res["device"]
    assert all(x["finite"] and x["dtype"] == "float16" and x["peak_mem_gib"] > 0 and x["tokens_per_s"] > 0
               for x in phases.values())
    assert phases["train-tiny"]["steps"] == 4 and phases["infer-tiny"]["passes"] == 2
