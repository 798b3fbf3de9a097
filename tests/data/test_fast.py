"""The polars fast path gives exactly the row reader's table, or leaves the file to the row reader."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefkit.config import DataConfig
from prefkit.data import fast, load_pairs
from prefkit.data.arena import write_lmsys_csv, write_parquet
from prefkit.data.fast import JSON_LIST, vouched
from prefkit.data.table import PY_WHITESPACE, TableBuilder
from prefkit.errors import DataError
from tests.conftest import LMSYS_HEADER, lmsys_row, write_lmsys
from tests.data.test_loaders import awkward_rows


def both(path, cfg: DataConfig | None = None, read_by: str | None = "polars"):
    """Load with and without the fast path; both give the same table (or the same error)."""
    cfg = cfg or DataConfig()
    got = []
    for use_fast in (True, False):
        try:
            got.append(load_pairs(path, cfg, fast=use_fast))
        except DataError as e:
            got.append(e)
    quick, rows = got
    if isinstance(rows, DataError):
        assert isinstance(quick, DataError) and str(quick) == str(rows)
        return quick
    pd.testing.assert_frame_equal(quick.frame, rows.frame)
    assert (quick.repaired_cells, quick.skipped) == (rows.repaired_cells, rows.skipped)
    if read_by:
        assert quick.read_by == read_by
    return quick


def write_rows(path, rows, header=LMSYS_HEADER, newline="\r\n", bom=False):
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator=newline)
        w.writerow(header)
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------ clean files


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_awkward_lmsys_csv(tmp_path, newline, bom):
    t = both(write_rows(tmp_path / "t.csv", awkward_rows(), newline=newline, bom=bom))
    assert t.repaired_cells == 1 and list(t.frame["line"]) == [2, 3, 4, 5, 6]


def test_cells_the_pattern_leaves_to_python(tmp_path):
    rows = [lmsys_row("1", '[\n  "a",\n  "b"\n]', '[\n"x",\n"y"\n]', '["z", "w"]'),       # pretty-printed: lines
            lmsys_row("2", '["raw\ttab and raw\x01 control"]', ["a"], ["b"]),              # strict=False
            lmsys_row("3", json.dumps(["caf\u00e9 \U0001F600 \u0645"], ensure_ascii=True), ["\\/ \b \f \x00"], ["\""]),
            lmsys_row("4", '["lone \\udc00 low", "x"]', '["\\ud83d\\ude00 pair", "\\uD83D\\uDE00"]', '[null, "\\ud800"]')]
    t = both(write_rows(tmp_path / "t.csv", [r[:6] + [1, 0, 0] for r in rows]))
    assert t.repaired_cells == 2 and list(t.frame["line"]) == [2, 9, 10, 11]


def test_no_trailing_newline_and_header_only(tmp_path):
    p = write_rows(tmp_path / "t.csv", awkward_rows()[:2], newline="\n")
    p.write_bytes(p.read_bytes().rstrip(b"\n"))
    both(p)
    assert len(both(write_rows(tmp_path / "h.csv", []))) == 0


def test_spellings_ids_and_metadata(tmp_path):
    rows = [lmsys_row(" 7 ", ["q"], ["a"], ["b"], winner=("1.0", " 0 ", "FALSE"), model_a=""),
            lmsys_row("8", ["q"], [""], [None], winner=("false", "True", "0.0"), model_b=" "),
            lmsys_row("9", [], [], [], winner=(0, 0, 1))]
    t = both(write_rows(tmp_path / "t.csv", rows))
    assert list(t.frame["label"]) == ["a", "b", "tie"] and pd.isna(t.frame.loc[0, "model_a"])


def test_test_file_gzip_and_writers(tmp_path):
    src = both(write_rows(tmp_path / "t.csv", [r[:6] for r in awkward_rows()], header=LMSYS_HEADER[:6]))
    assert not src.has_labels
    full = both(write_rows(tmp_path / "full.csv", awkward_rows()))
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress((tmp_path / "full.csv").read_bytes()))
    both(gz)
    write_lmsys_csv(full, tmp_path / "back.csv")
    write_parquet(full, tmp_path / "back.parquet")
    both(tmp_path / "back.csv")
    both(tmp_path / "back.parquet")


def test_parquet_forms(tmp_path):
    p = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": [7.0, 8.0], "prompt": ['["q"]', '["r", "s"]'], "response_a": [["a"], ["c", None]],
                             "response_b": [["b"], []], "winner_model_a": [0.0, 1.0], "winner_model_b": [1, 0],
                             "winner_tie": [False, False]}), p)
    t = both(p)
    assert list(t.frame["id"]) == ["7", "8"]
    p = tmp_path / "wsdm.parquet"
    pq.write_table(pa.table({"id": [1, 2], "prompt": ["Q1", "Q2"], "response_a": ["x", None], "response_b": ["y", ""],
                             "winner": ["model_a", "model_b"], "model_a": ["m1", ""], "model_b": ["m3", "m4"],
                             "language": ["English", None]}), p)
    both(p)
    both(p, DataConfig(limit=1))


def test_generic_files(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text('q,a1,a2,pref,lang\n"x, y",a,,B ,en\nq2,"multi\nline",b2,,\nq3,a3,b3, Model_A,\n', encoding="utf-8")
    cfg = DataConfig(format="generic", columns={"prompt": "q", "response_a": "a1", "response_b": "a2", "label": "pref",
                                                "language": "lang"})
    t = both(p, cfg)
    assert list(t.frame["id"]) == ["1", "2", "3"] and list(t.frame["label"].fillna("none")) == ["b", "none", "a"]
    p = tmp_path / "j.csv"
    p.write_text('id,prompt,response_a,response_b\n5,"[""q1"", ""q2""]","[""a1"", null]","[]"\n', encoding="utf-8")
    both(p, DataConfig(format="generic", turns="json"))
    p = tmp_path / "g.parquet"
    pq.write_table(pa.table({"prompt": ["q", "r"], "response_a": [["a"], ["b"]], "response_b": ["x", None],
                             "label": ["tie", None]}), p)
    both(p, DataConfig(format="generic"))


def write_jsonl(path, rows, newline="\n", **dumps):
    text = newline.join(r if isinstance(r, str) else json.dumps(r, **dumps) for r in rows) + newline
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


GENERIC = DataConfig(format="generic", columns={"id": "qid", "prompt": "question", "response_a": "ans 1",
                                                "response_b": "ans.2", "label": "pref"})


@pytest.mark.parametrize("name", ["g.jsonl", "g.jsonl.gz"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_jsonl_files(tmp_path, name, newline):
    rows = [{"qid": 10, "question": "caf\u00e9 \U0001F600 \"q\" \\ /", "ans 1": "a\nb\tc", "ans.2": "", "pref": " B ",
             "model_a": "m1", "other": [1, {"x": None}]},
            {"qid": 11, "question": "q2", "ans 1": "\u0645\u0631", "ans.2": "c", "pref": None, "model_b": "m2",
             "language": ""},
            {"question": "q3", "ans.2": "d", "ans 1": "e", "pref": "model_a", "qid": -3}]
    for ensure_ascii in (True, False):
        t = both(write_jsonl(tmp_path / name, rows, newline, ensure_ascii=ensure_ascii), GENERIC)
        assert list(t.frame["id"]) == ["10", "11", "-3"] and list(t.frame["line"]) == [1, 2, 3]
        assert list(t.frame["label"].fillna("none")) == ["b", "none", "a"]
    no_ids = DataConfig(format="generic", columns={k: v for k, v in GENERIC.columns.items() if k != "id"})
    assert list(both(tmp_path / name, no_ids).frame["id"]) == ["1", "2", "3"]
    string_ids = [{**r, "qid": f"r{i}"} for i, r in enumerate(rows)]
    both(write_jsonl(tmp_path / name, string_ids, newline, separators=(",", ":")), GENERIC)
    float_ids = [{**r, "qid": float(i) if i else i} for i, r in enumerate(rows)]  # 0, 1.0, 2.0: "0", "1", "2"
    assert list(both(write_jsonl(tmp_path / name, float_ids), GENERIC).frame["id"]) == ["0", "1", "2"]


def test_jsonl_lists_of_turns(tmp_path):
    rows = [{"qid": 1, "question": ["q1", "q2 \u00e9\n"], "ans 1": ["a", None], "ans.2": ["b \"x\"", "c"]},
            {"qid": 2, "question": ["q"], "ans 1": ["a"], "ans.2": []},
            {"qid": 3, "question": ["\U0001F600"], "ans 1": [None], "ans.2": ["d"]}]
    for ensure_ascii in (True, False):
        t = both(write_jsonl(tmp_path / "l.jsonl", rows, ensure_ascii=ensure_ascii), GENERIC)
        assert t.frame["response_b"][1] == [None] and t.frame["prompt"][0] == ["q1", "q2 \u00e9\n"]
    for item in ("1", "true", '["x"]', '{"y": 1}'):
        line = '{"qid": 4, "question": ["q", %s], "ans 1": ["a", "b"], "ans.2": ["c", "d"]}' % item
        t = both(write_jsonl(tmp_path / "l.jsonl", [*rows, line]), GENERIC, read_by=None)
        assert isinstance(t, DataError) or t.read_by == "rows"


_LINE = {"qid": 1, "question": "q", "ans 1": "a", "ans.2": "b", "pref": "a"}


@pytest.mark.parametrize("line", [
    '{"qid": 2, "question": ["q"], "ans 1": "a", "ans.2": "b"}',       # a list of turns (the row reader's)
    '{"qid": 2, "question": 5, "ans 1": "a", "ans.2": "b"}',           # polars would make "5" of it
    '{"qid": 2, "question": "q", "ans 1": "a", "ans.2": "b", "model_a": true}',
    '{"qid": 2, "question": null, "ans 1": "a", "ans.2": "b"}',        # a null turn
    '{"qid": 2, "question": "x", "question": "q", "ans 1": "a", "ans.2": "b"}',  # Python keeps the last
    '{"qid": 2, "question": "q", "ans 1": "a", "ans.2": "b", "x": {"question": "y"}}',
    '{"qid": 2, "quest\\u0069on": "q", "ans 1": "a", "ans.2": "b"}',   # a key written with an escape
    '{"qid": "2", "question": "q", "ans 1": "a", "ans.2": "b"}',       # text ids beside numbers
    '{"qid": 2.5, "question": "q", "ans 1": "a", "ans.2": "b"}',
    '{"qid": 2, "question": "q \\ud83d", "ans 1": "a", "ans.2": "b"}',  # a lone surrogate, repaired by Python
    '{"qid": 2, "question": "q", "ans 1": "a", "ans.2": "b", "pref": 1}',
    '{"qid": 2, "ans 1": "a", "ans.2": "b"}',                           # a missing turn
    '{"qid": 1, "question": "q", "ans 1": "a", "ans.2": "b"}',          # a repeated id
    '{"qid": 2, "question": "q", "ans 1": "a", "ans.2": "b", "pref": "c"}',
    '["a", "b"]', '{"qid": 2, "question": "q"', "   ", "", '{"qid": 2, "question": "a\rb", "ans 1": "a", "ans.2": "b"}',
])
def test_jsonl_lines_left_to_the_row_reader(tmp_path, line):
    """Each line (second of three) is one the fast path must not read itself: the file gets the row reader's
    table, or its error, word for word."""
    p = write_jsonl(tmp_path / "g.jsonl", [_LINE, line, {**_LINE, "qid": 3}])
    t = both(p, GENERIC, read_by=None)
    assert isinstance(t, DataError) or t.read_by == "rows"


def test_jsonl_with_a_byte_order_mark(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + write_jsonl(tmp_path / "x.jsonl", [_LINE]).read_bytes())
    assert both(p, GENERIC, read_by="rows").frame["id"].tolist() == ["1"]


@pytest.mark.parametrize("seed", range(4))
def test_random_jsonl_files(tmp_path, seed):
    """Random files, half of them with one value of another type, missing, repeated or written oddly: the two
    readers agree on every file, and the clean ones are read by polars."""
    rng = random.Random(seed)
    odd = [5, 2.0, True, None, ["x"], {"question": "y"}, "", "\u00e9\\\"", "\n"]
    read = set()
    for k in range(16):
        rows = []
        for i in range(12):
            text = _text(rng)
            r = {"qid": i, "question": f"q{i}", "ans 1": "" if text is None else re.sub("[\ud800-\udfff]", "", text),
                 "ans.2": "b", "pref": rng.choice(["a", "B", "tie", None, ""]), "model_a": rng.choice(["m", None, ""])}
            rows.append(r)
        if k % 2:  # one odd thing in the file
            r = rows[rng.randrange(len(rows))]
            change = rng.choice(["value", "value", "delete", "surrogate", "blank", "text id"])
            if change == "value":
                r[rng.choice(list(r))] = rng.choice(odd)
            elif change == "delete":
                del r[rng.choice(list(r))]
            elif change == "surrogate":
                r["ans 1"] += "\udc80"
            elif change == "text id":
                r["qid"] = str(r["qid"])
        lines = [_escape_lone(json.dumps(r, ensure_ascii=rng.random() < 0.5)) for r in rows]
        if k % 2 and change == "blank":
            lines.insert(rng.randrange(len(lines)), "")
        t = both(write_jsonl(tmp_path / "r.jsonl", lines), GENERIC, read_by=None)
        read.add(getattr(t, "read_by", "error"))
        if not k % 2:
            assert t.read_by == "polars"
    assert read - {"polars"}  # (some odd files are not)


# ------------------------------------------------------------------------------------------ left to the row reader


@pytest.mark.parametrize("case", ["blank line", "lone CR", "quote in a bare cell", "1e0", "repeated header", "limit"])
def test_valid_files_the_fast_path_declines(tmp_path, case):
    p = write_rows(tmp_path / "t.csv", [lmsys_row("1", ["q"], ["a"], ["b"]), lmsys_row("2", ["q"], ["a"], ["b"])],
                   newline="\n")
    text, cfg = p.read_text(encoding="utf-8"), DataConfig()
    if case == "blank line":
        text = text.replace("\n2,", "\n\n2,")
    elif case == "lone CR":
        text = text.replace('[""a""]', '[""a\rb""]', 1)
    elif case == "quote in a bare cell":
        text = text.replace(",m1,", ',m"1,', 1)
    elif case == "1e0":
        text = text.replace(",1,0,0\n", ",1e0,0,0\n", 1)
    elif case == "repeated header":
        text = text.replace("model_b", "model_a", 1)
    else:
        cfg = DataConfig(limit=1)
    p.write_bytes(text.encode())
    both(p, cfg, read_by="rows")


@pytest.mark.parametrize("case", ["short row", "long row", "not JSON", "not a list", "number turn", "duplicate id",
                                  "empty id", "not UTF-8", "two winners", "turn counts", "empty cell", "text cell"])
def test_bad_files_give_the_row_readers_message(tmp_path, case):
    rows = [lmsys_row("1", ["q"], ["a"], ["b"]), lmsys_row("2", ["q"], ["a"], ["b"])]
    bad = {"short row": rows[1][:-1], "long row": rows[1] + ["x"], "not JSON": lmsys_row("2", '["q', ["a"], ["b"]),
           "not a list": lmsys_row("2", '{"q": 1}', ["a"], ["b"]), "number turn": lmsys_row("2", "[1.5]", ["a"], ["b"]),
           "duplicate id": lmsys_row("1", ["q"], ["a"], ["b"]), "empty id": lmsys_row(" ", ["q"], ["a"], ["b"]),
           "not UTF-8": lmsys_row("2", '["caf\u00e9"]', ["a"], ["b"]),
           "two winners": lmsys_row("2", ["q"], ["a"], ["b"], winner=(1, 1, 0)),
           "turn counts": lmsys_row("2", ["q", "r"], ["a", "c"], ["b"]), "empty cell": lmsys_row("2", "", ["a"], ["b"]),
           "text cell": lmsys_row("2", '"q"', ["a"], ["b"])}[case]
    def write(name, rows):
        p = write_rows(tmp_path / name, rows)
        p.write_bytes(p.read_bytes().replace("caf\u00e9".encode(), b"caf\xe9"))  # case "not UTF-8"
        return p

    p = write("t.csv", [rows[0], bad])
    e = both(p)
    assert isinstance(e, DataError) and "row 2" in str(e)
    skipped = both(p, DataConfig(skip_bad_rows=True), read_by="rows")
    assert len(skipped) == 1 and len(skipped.skipped) == 1
    one = write("one.csv", [bad])  # alone in its file (polars reads a column of one "" as no rows)
    assert isinstance(both(one), DataError) or case in ("duplicate id",)


@pytest.mark.parametrize("case", ["short row", "blank line"])
def test_a_row_short_of_a_cell_that_may_be_empty(tmp_path, case):
    """polars reads the missing cells of a short row, and every cell of a blank line, as "": where the last
    column may be empty (a language column here) only the file's commas tell such a row from a whole one."""
    header = [*LMSYS_HEADER, "language"]
    rows = [[*lmsys_row(str(i), ["q, r"], ["a"], ["b"]), "English" if i % 2 else ""] for i in range(1, 5)]
    whole = both(write_rows(tmp_path / "whole.csv", rows, header=header))  # empty languages, every cell there
    assert whole.frame["language"].isna().tolist() == [False, True, False, True]
    if case == "short row":
        rows[2] = rows[2][:-1]
        e = both(write_rows(tmp_path / "t.csv", rows, header=header))
        assert isinstance(e, DataError) and "row 3" in str(e)
    else:
        p = write_rows(tmp_path / "t.csv", rows, header=header, newline="\n")
        p.write_text(p.read_text(encoding="utf-8").replace("\n3,", "\n\n3,"), encoding="utf-8")
        both(p, read_by="rows")


def test_a_clean_file_is_parsed_once(tmp_path, monkeypatch):
    """The commas of every cell, and the file's bytes, are counted only when the file asks for it: once over a
    clean LMSYS file (a line break between the items of a JSON list counted in its cell), twice over one with
    a carriage return in a cell."""
    passes, counted = [], []
    streamed, byte_counts = fast.streamed, fast.byte_counts
    monkeypatch.setattr(fast, "streamed", lambda *a, **k: passes.append(k["commas"]) or streamed(*a, **k))
    monkeypatch.setattr(fast, "byte_counts", lambda *a, **k: counted.append(a[0]) or byte_counts(*a, **k))
    rows = [lmsys_row(str(i), ["q, r"], ["a"], ["b"]) for i in range(3)]
    rows[1] = lmsys_row("1", '[\n"q"\n]', ["a"], ["b"])
    assert list(both(write_rows(tmp_path / "clean.csv", rows, newline="\n")).frame["line"]) == [2, 3, 6]
    assert passes == [False] and not counted
    passes.clear()
    assert list(both(write_rows(tmp_path / "crlf.csv", rows, newline="\r\n")).frame["line"]) == [2, 3, 6]
    assert passes == [False] and not counted, "CRLF line ends are no carriage return in a cell"
    rows[1] = lmsys_row("1", '[\r\n"q"\r\n]', ["a"], ["b"])
    assert list(both(write_rows(tmp_path / "cr.csv", rows)).frame["line"]) == [2, 3, 6]
    assert passes == [False, False, True] and len(counted) == 1


def test_the_one_carriage_return_only_the_bytes_would_show(tmp_path):
    """A carriage return right after a closing quote and before a comma: polars skips it, the csv module ends
    the row there (and the row reader names a short row). The fast path does not count the bytes of a file
    whose cells hold no carriage return, so it reads such a file as polars does; any other stray carriage
    return shows in a cell, or breaks the parse (`test_valid_files_the_fast_path_declines`)."""
    p = write_rows(tmp_path / "t.csv", [lmsys_row("1", ["q"], ["a"], ["b"]), lmsys_row("2", ["q"], ["a"], ["b"])],
                   newline="\n")
    raw = p.read_bytes()
    p.write_bytes(raw.replace(b'"]",1,0,0\n2', b'"]"\r,1,0,0\n2', 1))
    assert load_pairs(p, DataConfig()).frame.equals(load_pairs(write_rows(tmp_path / "u.csv", [
        lmsys_row("1", ["q"], ["a"], ["b"]), lmsys_row("2", ["q"], ["a"], ["b"])], newline="\n"), DataConfig()).frame)
    with pytest.raises(DataError, match="row 2"):
        load_pairs(p, DataConfig(), fast=False)


# ------------------------------------------------------------------------------------------ random files


_PIECES = ["a", "b c", ",", '"', '""', "\n", "\r\n", "\t", "\\", "\\n", "/", "\u00e9", "\U0001F600", "\u0645\u0631",
           "\u2028", "\x1c", "\x00", "  ", "null", "[", "]", "\ud83d", "\udc00", "\u4e2d\u6587"]


def _text(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.12:
        return ""
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12)))


def _escape_lone(cell: str) -> str:
    """A lone surrogate cannot be written as UTF-8: escape what json.dumps(ensure_ascii=False) left raw."""
    return re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", cell)


@pytest.mark.parametrize("seed", range(6))
def test_random_awkward_files(tmp_path, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(120):
        n = rng.choice([1, 1, 1, 2, 3])
        cells = [[_text(rng) for _ in range(n)] for _ in range(3)]
        if rng.random() < 0.05:
            cells[1] = []
        enc = [_escape_lone(json.dumps(c, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, None, 1])))
               for c in cells]
        winner = [(1, 0, 0), (0, 1, 0), (0, 0, 1)][rng.randrange(3)]
        rows.append([f"r{i}", rng.choice(["m1", "", "m,2", 'm"3']), "m4", *enc, *winner])
    p = write_rows(tmp_path / "t.csv", rows, newline=rng.choice(["\n", "\r\n"]))
    t = both(p)  # json.dumps escapes every control character: nothing here is for the row reader
    assert len(t) == 120 and t.repaired_cells > 0


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_byte_counts_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    """The file's bytes are counted a chunk at a time: a CRLF split between two chunks is one line break, and a
    lone carriage return is found wherever it falls (at a chunk's end or the file's) and sent to the row reader."""
    monkeypatch.setattr(fast, "CHUNK", chunk)
    rows = [lmsys_row(str(i), ["q, r"], '[\r\n"a"\r\n]', [f"c{i}"]) for i in range(5)]  # CRLF in cells too
    for suffix in (".csv", ".csv.gz"):
        p = tmp_path / f"t{suffix}"
        raw = write_rows(tmp_path / "plain.csv", rows, newline="\r\n").read_bytes()
        p.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
        assert list(both(p).frame["line"]) == [2, 5, 8, 11, 14]
        for lone in (raw.replace(b"c3", b"c\r3"), raw + b"\r", raw.replace(b"\r\n", b"\r", 1)):
            p.write_bytes(gzip.compress(lone) if suffix.endswith(".gz") else lone)
            with pytest.raises(fast.Fallback, match="carriage return"):
                fast.byte_counts(p)


# ------------------------------------------------------------------------------------------ pieces


CELLS = ['["a", null]', "[]", " [ ] ", '[\n"a" ,\t"b"\r\n]', '["\\ud83d\\ude00"]', '["\\ud83d"]', '["\\ude00"]',
         '["\\ud83dx"]', '["\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"]', '["\\x"]', '["\\u12"]', '["a"] x', '"a"', "[1]",
         "[true]", "[[\"a\"]]", '{"a": 1}', '["a",]', "[,]", '["a" "b"]', "", "null", '["raw\ttab"]', '["\u00e9\U0001F600"]',
         '\u00a0["a"]', '["a"]\n', "[null,null]", "[nul]", '["\\u0000"]', '["\\uD83D\\uDE00"]']


def test_the_json_list_pattern_vouches_only_for_what_python_reads_alike():
    s = pl.Series(CELLS)
    plain = s.str.contains(JSON_LIST).to_list()
    assert [c for c, ok in zip(CELLS, plain) if ok] == [
        '["a", null]', "[]", " [ ] ", '[\n"a" ,\t"b"\r\n]', '["\\ud83d\\ude00"]', '["\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"]',
        '["\u00e9\U0001F600"]', '["a"]\n', "[null,null]", '["\\u0000"]', '["\\uD83D\\uDE00"]']
    decoder = json.JSONDecoder(strict=False)
    for cell, ok in zip(CELLS, plain):
        if not ok:
            continue
        value = decoder.decode(cell)
        assert isinstance(value, list) and all(t is None or isinstance(t, str) for t in value), cell
        assert not any(t and any(0xD800 <= ord(ch) <= 0xDFFF for ch in t) for t in value), cell
        assert pl.Series([cell]).str.json_decode(pl.List(pl.String)).to_list() == [value], cell


def test_polars_decodes_only_cells_it_reads_as_python_does():
    """polars' own JSON reader, with `vouched`, on each cell alone: what it keeps, Python reads alike."""
    decoder = json.JSONDecoder(strict=False)
    kept = []
    for cell in CELLS + ['["a", 1]', '["\\u0022"]', "[false]", "[-0.5e3]", '["a", ["b"]]', '["\\\\ud83d"]']:
        s = pl.Series([cell])
        try:
            decoded = s.str.json_decode(pl.List(pl.String))
        except pl.exceptions.PolarsError:
            continue
        if len(decoded) != 1 or not vouched(s, decoded).item():
            continue
        kept.append(cell)
        value = decoder.decode(cell)
        assert isinstance(value, list) and all(t is None or isinstance(t, str) for t in value), cell
        assert decoded.to_list() == [value], cell
    # (surrogate pairs decode alike; a NUL, which a lone surrogate escape becomes in polars, sends "\\u0000" to
    # Python too)
    assert kept == ['["a", null]', "[]", '[\n"a" ,\t"b"\r\n]', '["\\ud83d\\ude00"]',
                    '["\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"]', '["\u00e9\U0001F600"]', '["a"]\n', "[null,null]",
                    '["\\uD83D\\uDE00"]', '["\\\\ud83d"]']


def test_python_whitespace():
    assert PY_WHITESPACE == "".join(chr(i) for i in range(0x110000) if chr(i).isspace())


def test_normalising_keeps_every_counted_character():
    """The summary tells prompts apart by these counts before normalising (`check.distinct_prompts`)."""
    from prefkit.data.check import KEPT_BY_NORMALISING as kept

    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF and chr(i) not in kept]
    assert not any(k.isspace() for k in kept)
    assert [c for c in chars if any(k in c.lower() for k in kept)] == []
    assert [c for c, low in zip(chars, pl.Series(chars).str.to_lowercase()) if any(k in low for k in kept)] == []


def test_a_fast_table_makes_its_pandas_frame_only_when_asked(tmp_path):
    from prefkit.data.check import summarise

    t = load_pairs(write_lmsys(tmp_path / "t.csv", awkward_rows()), DataConfig())
    assert t.read_by == "polars" and len(t) == 5 and t.has_labels
    summarise(t)
    assert t.columnar is not None, "summarise works on the polars rows (no pandas frame made)"
    assert t.frame.loc[1, "prompt"] == ["hi", None] and t.columnar is None, "once made, the pandas frame holds the rows"


def test_summary_of_either_reader_is_the_same(tmp_path):
    """The polars summary against the Python one, on whitespace and case that differ between them."""
    from prefkit.data.check import summarise
    from prefkit.data.table import PairTable

    b = TableBuilder("t")
    b.add(1, None, "1", ["  Hello\u3000 there\x1c ", "", None, " "], [None, "x", "\x1c", " "], ["", None, "\x1f", "y"], "a")
    b.add(2, None, "2", ["HELLO THERE"], [], [], "tie")
    b.add(3, None, "3", ["\u0130stanbul \u039f\u03a3"], ["\x1c\x1d"], ["\u00a0"], None)
    b.add(4, None, "4", [], [], [], None)
    b.add(5, None, "5", ["hello there", "?"], ["same", None], ["same", None], "b")
    by_rows = b.build()
    by_columns = PairTable(source="t", polars=by_rows.polars())
    assert by_rows.columnar is None and by_columns.columnar is not None
    s = summarise(by_columns)
    assert s == summarise(by_rows)
    # (rows 1 and 2 are one prompt: a turn of whitespace only is dropped, as an empty one)
    assert (s["distinct_prompts"], s["empty_response_a"], s["empty_response_b"], s["identical_a_b"]) == (4, 3, 3, 3)
    big = load_pairs(write_rows(tmp_path / "t.csv", awkward_rows()), DataConfig())
    assert summarise(big) == summarise(PairTable(big.frame, big.source, repaired_cells=big.repaired_cells))
