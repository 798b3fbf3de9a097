from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefkit.config import DataConfig
from prefkit.data import load_pairs, swap_ab
from prefkit.data.arena import write_lmsys_csv, write_parquet
from prefkit.data.hh_rlhf import split_dialogue
from tests.conftest import HH, lmsys_row, need_shared, write_lmsys

LONG = "long text " * 40_000  # 400,000 characters in one cell


def awkward_rows():
    return [
        lmsys_row("1", ["What is 2+2?"], ["4"], ["Four."], winner=(1, 0, 0)),
        lmsys_row("2", ["hi", None], ["hello", None], [None, "ok"], winner=(0, 0, 1)),
        lmsys_row("3", ["emoji \ud83d\ude00 and lone \ud83d surrogate"], ["\u0645\u0631\u062d\u0628\u0627 RTL"], [LONG], winner=(0, 1, 0)),
        lmsys_row("4", ["empty responses"], [None], [""], winner=(0, 0, 1)),
        lmsys_row("5", ["empty list response"], [], ["x"], winner=(0, 1, 0)),
    ]


def test_lmsys_awkward_but_valid(tmp_path):
    p = write_lmsys(tmp_path / "train.csv", awkward_rows())
    t = load_pairs(p, DataConfig())
    f = t.frame
    assert list(f["id"]) == ["1", "2", "3", "4", "5"]
    assert list(f["label"]) == ["a", "tie", "b", "tie", "b"]
    assert f.loc[1, "prompt"] == ["hi", None] and f.loc[1, "response_b"] == [None, "ok"]
    assert f.loc[2, "prompt"] == ["emoji \U0001F600 and lone \ufffd surrogate"]  # pair joined, lone one replaced
    assert t.repaired_cells == 1
    assert f.loc[2, "response_b"] == [LONG]
    assert f.loc[3, "response_a"] == [None] and f.loc[3, "response_b"] == [""]
    assert f.loc[4, "response_a"] == [None], "[] is an empty response aligned with the prompt"
    assert list(f["model_a"]) == ["m1"] * 5 and list(f["line"]) == [2, 3, 4, 5, 6]


def test_lmsys_test_file_without_labels(tmp_path):
    rows = [r[:6] for r in awkward_rows()]
    p = write_lmsys(tmp_path / "test.csv", rows, header=["id", "model_a", "model_b", "prompt", "response_a", "response_b"])
    t = load_pairs(p, DataConfig())
    assert not t.has_labels and t.frame["label"].isna().all() and len(t) == 5


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_writers_round_trip(tmp_path, suffix):
    src = load_pairs(write_lmsys(tmp_path / "train.csv", awkward_rows()), DataConfig())
    out = tmp_path / f"out.{suffix}"
    (write_lmsys_csv if suffix == "csv" else write_parquet)(src, out)
    back = load_pairs(out, DataConfig())
    cols = ["id", "prompt", "response_a", "response_b", "label", "model_a", "model_b"]
    pd.testing.assert_frame_equal(src.frame[cols], back.frame[cols])
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_wsdm_parquet(tmp_path):
    p = tmp_path / "wsdm.parquet"
    pq.write_table(pa.table({
        "id": ["a1", "a2"], "prompt": ["Q1", "Q2"], "response_a": ["x", None], "response_b": ["y", "z"],
        "winner": ["model_a", "model_b"], "model_a": ["m1", "m2"], "model_b": ["m3", "m4"], "language": ["English", "Русский"],
    }), p)
    t = load_pairs(p, DataConfig())
    assert list(t.frame["label"]) == ["a", "b"]
    assert t.frame.loc[1, "response_a"] == [None] and t.frame.loc[1, "language"] == "Русский"


def test_wsdm_bad_winner(tmp_path, run_cli):
    p = tmp_path / "wsdm.parquet"
    pq.write_table(pa.table({"id": ["a1"], "prompt": ["Q"], "response_a": ["x"], "response_b": ["y"], "winner": ["tie"]}), p)
    r = run_cli("data", "check", p, "--no-tokens")
    assert r.code == 2 and "column 'winner'" in r.err and "row 1" in r.err


def test_generic_jsonl_with_mapping(tmp_path):
    p = tmp_path / "g.jsonl"
    rows = [{"qid": 10, "question": "q", "ans1": "a", "ans2": ["b"], "pref": "B"},
            {"qid": 11, "question": "q2", "ans1": "a", "ans2": "c", "pref": "tie"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    cfg = DataConfig(format="generic", columns={"id": "qid", "prompt": "question", "response_a": "ans1",
                                                 "response_b": "ans2", "label": "pref"})
    t = load_pairs(p, cfg)
    assert list(t.frame["id"]) == ["10", "11"] and list(t.frame["label"]) == ["b", "tie"]
    assert t.frame.loc[0, "response_b"] == ["b"]


def test_generic_csv_without_ids_uses_row_numbers(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("prompt,response_a,response_b,label\nq,a,b,a\nq2,a2,b2,model_b\n", encoding="utf-8")
    t = load_pairs(p, DataConfig(format="generic"))
    assert list(t.frame["id"]) == ["1", "2"] and list(t.frame["label"]) == ["a", "b"]


def test_split_dialogue_multi_turn():
    base = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant:"
    prompt, c, r = split_dialogue(base + " Apple.", base + " A car. Human: really?")
    assert prompt == ["Hi", "Name a fruit."]
    assert c == ["Hello!", "Apple."] and r == ["Hello!", "A car. Human: really?"]


def test_split_dialogue_response_containing_markers():
    # the chosen response itself contains "\n\nAssistant:": the split must come from the common prefix
    base = "\n\nHuman: Q\n\nAssistant:"
    prompt, c, r = split_dialogue(base + " One.\n\nAssistant: Two.", base + " Other.")
    assert prompt == ["Q"] and c == ["One.\n\nAssistant: Two."] and r == ["Other."]


def test_hh_rlhf_real_file_and_seeded_order():
    path = need_shared(HH / "helpful-base.test.jsonl.gz")
    t = load_pairs(path, DataConfig())
    assert len(t) == 2354 and not t.skipped
    assert set(t.frame["label"]) == {"a", "b"}
    assert abs((t.frame["label"] == "a").mean() - 0.5) < 0.05
    again = load_pairs(path, DataConfig(limit=100))
    assert list(again.frame["label"]) == list(t.frame["label"][:100]), "order depends on (seed, row) only"
    other = load_pairs(path, DataConfig(seed=1, limit=100))
    assert list(other.frame["label"]) != list(again.frame["label"])
    lens = t.frame.apply(lambda r: (len(r.prompt), len(r.response_a), len(r.response_b)), axis=1)
    assert all(p == a == b for p, a, b in lens)


def test_swap_ab_swaps_labels_and_responses(tmp_path):
    t = load_pairs(write_lmsys(tmp_path / "t.csv", awkward_rows()), DataConfig())
    s = swap_ab(t)
    assert list(s.frame["label"]) == ["b", "tie", "a", "tie", "a"]
    assert s.frame.loc[0, "response_a"] == t.frame.loc[0, "response_b"]
    assert list(swap_ab(s).frame["label"]) == list(t.frame["label"])


def test_generic_csv_json_turns(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text('prompt,response_a,response_b\n"[""q1"", ""q2""]","[""a1"", null]","[""b1"", ""b2""]"\n', encoding="utf-8")
    t = load_pairs(p, DataConfig(format="generic", turns="json"))
    assert t.frame.loc[0, "prompt"] == ["q1", "q2"] and t.frame.loc[0, "response_a"] == ["a1", None]
    assert not t.has_labels


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_convert_hh_rlhf_to_competition_form(run_cli, tmp_path, suffix):
    src = need_shared(HH / "harmless-base.test.jsonl.gz")
    out = tmp_path / f"hh.{suffix}"
    r = run_cli("data", "convert", src, "--out", out, "data.limit=300")
    assert r.code == 0, r.err
    a, b = load_pairs(src, DataConfig(limit=300)), load_pairs(out, DataConfig())
    cols = ["id", "prompt", "response_a", "response_b", "label"]
    pd.testing.assert_frame_equal(a.frame[cols], b.frame[cols])
