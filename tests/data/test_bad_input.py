"""Every bad input is reported once, naming file, row (id and line) and column; exit 2, no traceback."""

from __future__ import annotations

import gzip

import pytest

from tests.conftest import LMSYS_HEADER, lmsys_row, write_lmsys

GOOD = lmsys_row("1", ["hi"], ["hello"], ["hey"])


def check_rejected(run_cli, path, row_id, line, column, *words):
    r = run_cli("data", "check", path, "--no-tokens")
    assert r.code == 2, r.err
    assert "Traceback" not in r.err
    assert str(path) in r.err
    assert f"id {row_id!r}" in r.err and f"line {line}" in r.err and f"column {column!r}" in r.err
    assert r.err.count(f"id {row_id!r}") == 1, "each bad row is reported once"
    for w in words:
        assert w in r.err
    return r


def test_missing_file(run_cli, tmp_path):
    r = run_cli("data", "check", tmp_path / "nope.csv", "--no-tokens")
    assert r.code == 2 and "nope.csv" in r.err and "no such file" in r.err and "Traceback" not in r.err


def test_folder_is_not_a_file(run_cli, tmp_path):
    (tmp_path / "d.csv").mkdir()
    r = run_cli("data", "check", tmp_path / "d.csv", "--format", "lmsys", "--no-tokens")
    assert r.code == 2 and "is a folder" in r.err


def test_corrupt_gzip(run_cli, tmp_path):
    p = tmp_path / "x.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"chosen": "a", "rejected": "b"}\n')[:-6])
    r = run_cli("data", "check", p, "--format", "hh_rlhf", "--no-tokens")
    assert r.code == 2 and "gzip" in r.err and str(p) in r.err


def test_missing_column(run_cli, tmp_path):
    header = [h for h in LMSYS_HEADER if h != "response_b"]
    p = write_lmsys(tmp_path / "t.csv", [["1", "m1", "m2", '["q"]', '["a"]', 1, 0, 0]], header)
    r = run_cli("data", "check", p, "--format", "lmsys", "--no-tokens")
    assert r.code == 2 and "column 'response_b'" in r.err and "missing column" in r.err and "line 1" in r.err


def test_cell_not_json(run_cli, tmp_path):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("7", '["unclosed', ["a"], ["b"])])
    check_rejected(run_cli, p, "7", 3, "prompt", "row 2", "not valid JSON")


def test_cell_json_but_not_a_list(run_cli, tmp_path):
    p = write_lmsys(tmp_path / "t.csv", [lmsys_row("7", '"just text"', ["a"], ["b"])])
    check_rejected(run_cli, p, "7", 2, "prompt", "list")


@pytest.mark.parametrize("winner,words", [((0, 0, 0), "no winner"), ((1, 1, 0), "2 winners")])
def test_zero_or_two_winners(run_cli, tmp_path, winner, words):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("9", ["q"], ["a"], ["b"], winner=winner)])
    check_rejected(run_cli, p, "9", 3, "winner_model_a/winner_model_b/winner_tie", words)


def test_winners_as_floats_or_booleans_are_the_0_1_they_mean(tmp_path):
    # pandas writes 1.0/0.0 after a NaN or a merge, True/False for a boolean column
    from prefkit.config import DataConfig
    from prefkit.data import load_pairs

    rows = [lmsys_row("f", ["q"], ["a"], ["b"], winner=("0.0", "1.0", "0.0")),
            lmsys_row("t", ["q"], ["a"], ["b"], winner=("False", "False", "True")),
            lmsys_row("l", ["q"], ["a"], ["b"], winner=("true", "false", "false"))]
    t = load_pairs(write_lmsys(tmp_path / "t.csv", rows), DataConfig())
    assert list(t.frame["label"]) == ["b", "tie", "a"]


def test_winners_as_parquet_floats_and_bools(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefkit.config import DataConfig
    from prefkit.data import load_pairs

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["x", "y"], "prompt": [["q"], ["r"]], "response_a": [["a"], ["c"]],
                             "response_b": [["b"], ["d"]], "winner_model_a": [0.0, True], "winner_model_b": [0.0, False],
                             "winner_tie": [1.0, False]}), p)
    assert list(load_pairs(p, DataConfig()).frame["label"]) == ["tie", "a"]


@pytest.mark.parametrize("winner,column,shown", [((3, 0, -2), "winner_model_a", "'3'"),
                                                 ((0, "1", "0.5"), "winner_tie", "'0.5'"),
                                                 (("yes", 0, 0), "winner_model_a", "'yes'"),
                                                 ((0, "", 1), "winner_model_b", "an empty cell")])
def test_winners_not_0_or_1_named_by_cell(run_cli, tmp_path, winner, column, shown):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("8", ["q"], ["a"], ["b"], winner=winner)])
    r = check_rejected(run_cli, p, "8", 3, column, "row 2", "must be 0 or 1", shown)
    assert "winners marked" not in r.err, "a value that is not 0/1 is not counted as a winner"


def test_duplicate_ids(run_cli, tmp_path):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("2", ["q"], ["a"], ["b"]), lmsys_row("1", ["q2"], ["a"], ["b"])])
    check_rejected(run_cli, p, "1", 4, "id", "duplicate id, first seen at row 1")


def test_non_utf8_bytes(run_cli, tmp_path):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("5", ["q"], '["caf\u00e9"]', ["b"])])
    data = p.read_bytes().replace("caf\u00e9".encode(), b"caf\xe9")  # Latin-1 byte in a UTF-8 file
    assert b"\xe9" in data
    p.write_bytes(data)
    check_rejected(run_cli, p, "5", 3, "response_a", "not valid UTF-8", "0xe9")


def test_non_string_turn(run_cli, tmp_path):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("3", ["q"], [42], ["b"])])
    check_rejected(run_cli, p, "3", 3, "response_a", "turn 1 is a int")


def test_turn_lists_of_different_lengths(run_cli, tmp_path):
    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("4", ["q1", "q2"], ["a1", "a2"], ["b1"])])
    check_rejected(run_cli, p, "4", 3, "response_b", "has 1 turns but prompt has 2")


def test_line_numbers_count_multiline_cells(run_cli, tmp_path):
    # JSON cells may be pretty-printed over several lines; the CSV quotes them
    rows = [lmsys_row("1", '[\n"a",\n"b"\n]', '[\n"x",\n"y"\n]', '["z", "w"]'), lmsys_row("2", ["q"], [7], ["b"])]
    p = write_lmsys(tmp_path / "t.csv", rows)
    check_rejected(run_cli, p, "2", 9, "response_a")  # header: line 1; row 1: lines 2-8 (6 newlines in cells)


def test_every_bad_row_listed_and_skip_reports(run_cli, tmp_path):
    rows = [GOOD, lmsys_row("2", ["q"], [1], ["b"]), lmsys_row("3", '["x', ["a"], ["b"]),
            lmsys_row("4", ["q"], ["a"], ["b"], winner=(0, 0, 0))]
    p = write_lmsys(tmp_path / "t.csv", rows)
    r = run_cli("data", "check", p, "--no-tokens")
    assert r.code == 2 and all(f"id '{i}'" in r.err for i in "234") and "3 bad rows" in r.err
    r = run_cli("data", "check", p, "--no-tokens", "data.skip_bad_rows=true")
    assert r.code == 1, "rows were skipped: exit 1, not success"
    assert "1 rows" in r.out
    assert "skipped 3 bad rows: 2, 3, 4" in r.err


def test_hh_rlhf_bad_line(run_cli, tmp_path):
    p = tmp_path / "hh.jsonl"
    p.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: yo", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: no"}\n'
                 '{"chosen": 5, "rejected": "x"}\n', encoding="utf-8")
    r = run_cli("data", "check", p, "--format", "hh_rlhf", "--no-tokens")
    assert r.code == 2 and "row 2" in r.err and "line 2" in r.err and "column 'chosen'" in r.err


def test_console_script_exit_code_without_traceback(tmp_path):
    import subprocess
    import sys

    p = write_lmsys(tmp_path / "t.csv", [GOOD, lmsys_row("3", ["q"], [42], ["b"])])
    r = subprocess.run([sys.executable, "-m", "prefkit.cli", "data", "check", str(p), "--no-tokens"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "row 2 (id '3', line 3)" in r.stderr
