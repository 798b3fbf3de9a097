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
