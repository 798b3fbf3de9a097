"""`prefkit cot sample`: K seeded samples a question, scored; greedy as K=1; resumable to the same samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefkit.cot.sampling import FIELDS
from tests.conftest import SHARED, need_shared

TINY = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"


def _args(tmp_path):
    need_shared(SHARED / "reasoning")
    return ["--run", TINY, "--limit", "5", f"cot.data_root={SHARED}", "quantization.mode=none",
            "cot.max_new_tokens=6", "cot.generate_batch_size=6"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_k_samples_a_question_seeded_and_resumable(run_cli, tmp_path):
    args = _args(tmp_path)
    whole = tmp_path / "whole.jsonl"
    r = run_cli("cot", "sample", *args, "--out", whole, "--k", "3", "--temperature", "1.0", "--seed", "7")
    assert r.code == 0, r.err
    rows = _rows(whole)
    assert len(rows) == 15 and all(set(FIELDS) <= set(x) for x in rows)
    by_q: dict[int, list[dict]] = {}
    for x in rows:
        by_q.setdefault(x["index"], []).append(x)
    assert len(by_q) == 5 and all(sorted(x["sample"] for x in v) == [0, 1, 2] for v in by_q.values())
    assert any(len({x["completion"] for x in v}) > 1 for v in by_q.values()), "samples of a question differ"
    assert not (tmp_path / "whole.jsonl.partial").exists()

    # an interrupted run: two questions written, the third torn mid-line; the same command finishes it
    resumed = tmp_path / "resumed.jsonl"
    first = list(by_q)[:2]
    kept = [json.dumps(x) for q in first for x in by_q[q]]
    (tmp_path / "resumed.jsonl.partial").write_text("\n".join(kept) + "\n" + json.dumps(by_q[list(by_q)[2]][0])[:30])
    r = run_cli("cot", "sample", *args, "--out", resumed, "--k", "3", "--temperature", "1.0", "--seed", "7")
    assert r.code == 0, r.err
    assert "resuming, 2 of 5 questions" in r.out + r.err
    assert _rows(resumed) == rows, "the same samples as the run that was never stopped"

    other = tmp_path / "other.jsonl"
    assert run_cli("cot", "sample", *args, "--out", other, "--k", "3", "--temperature", "1.0", "--seed", "8").code == 0
    assert [x["completion"] for x in _rows(other)] != [x["completion"] for x in rows], "another seed, other samples"


def test_greedy_is_k_1_and_matches_generate(run_cli, tmp_path):
    args = _args(tmp_path)
    r = run_cli("cot", "sample", *args, "--out", tmp_path / "g.jsonl", "--k", "1", "--temperature", "0")
    assert r.code == 0, r.err
    r = run_cli("cot", "generate", *args, "--out", tmp_path / "gen.jsonl")
    assert r.code == 0, r.err
    assert [x["completion"] for x in _rows(tmp_path / "g.jsonl")] == [x["completion"] for x in _rows(tmp_path / "gen.jsonl")]


def test_several_greedy_samples_are_refused(run_cli, tmp_path):
    r = run_cli("cot", "sample", *_args(tmp_path), "--out", tmp_path / "x.jsonl", "--k", "4", "--temperature", "0")
    assert r.code == 2 and "--temperature above 0" in r.err and not (tmp_path / "x.jsonl").exists()


def test_another_k_or_setting_into_an_existing_file_is_refused(run_cli, tmp_path):
    """Before: `cot sample` into an existing file with another --k printed "kept" and left the old K=2 file (exit 0);
    an interrupted run's partial file was resumed with other settings into a mix. Each row now records them."""
    args = [*_args(tmp_path), "--limit", "2", "--temperature", "1.0"]
    out = tmp_path / "s.jsonl"
    assert run_cli("cot", "sample", *args, "--out", out, "--k", "2").code == 0
    made = out.read_bytes()
    r = run_cli("cot", "sample", *args, "--out", out, "--k", "3")
    assert r.code == 2, r.err
    assert f"{out}: sampled with --k 2, not --k 3: give --k 2 to keep it, or another --out" in r.err
    assert all(x["sampling"]["k"] == 2 and x["sampling"]["temperature"] == 1.0 for x in _rows(out))
    r = run_cli("cot", "sample", *args, "--out", out, "--k", "2", "--seed", "5", "cot.max_new_tokens=7")
    assert r.code == 2 and "sampled with --seed 0 cot.max_new_tokens=6, not --seed 5 cot.max_new_tokens=7" in r.err
    r = run_cli("cot", "sample", *args, "--out", out, "--k", "2")
    assert r.code == 0 and json.loads(r.out)["kept"], "the same settings keep the file"
    assert out.read_bytes() == made

    # an interrupted run (its first question written) is resumed only with its own settings
    partial = tmp_path / "p.jsonl.partial"
    partial.write_text("".join(json.dumps(x) + "\n" for x in _rows(out)[:2]))
    r = run_cli("cot", "sample", *args, "--out", tmp_path / "p.jsonl", "--k", "2", "--top-p", "0.5")
    assert r.code == 2 and f"{partial}: an interrupted run with --top-p 0.95, not --top-p 0.5" in r.err, r.err
    assert partial.read_text().count("\n") == 2 and not (tmp_path / "p.jsonl").exists()

    # a file of an older prefkit records no settings: its K is read off its rows
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "sampling"}) + "\n" for x in _rows(out)))
    r = run_cli("cot", "sample", *args, "--out", old, "--k", "4")
    assert r.code == 2 and "sampled with --k 2, not --k 4" in r.err, r.err
    r = run_cli("cot", "sample", *args, "cot.dataset=svamp", "--out", old, "--k", "2")
    assert r.code == 2 and "sampled with cot.dataset=multiarith, not cot.dataset=svamp" in r.err, r.err
