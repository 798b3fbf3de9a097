"""The column-wise fast path: a clean file read by polars and checked a column at a time.

Every function here either returns exactly what the row reader (`readers.py` + `TableBuilder`) would have
made of the file (one documented exception, in `read_csv`), or raises `Fallback`: then the row reader reads
the file again and names every bad row with its message. The path vouches only for what it can check
whole: a CSV polars parsed as the csv module would (`read_csv`: where a short row, a blank line or a stray
carriage return could be read another way, its commas and line breaks must add up; one case only the file's
bytes would show is read as polars reads it, see there), turn cells that polars' JSON reader decodes to what
Python's would (`vouched`; the few others go to Python's decoder one by one), winner cells spelt
0/1/0.0/1.0/true/false, non-empty unique ids, aligned turn lists.
`tests/data/test_fast.py` holds the two readers to the same table on awkward and random files.

The result is a polars frame with the canonical columns (`table.COLUMNS`; turns as `List(String)`), wrapped
in a `PairTable` that makes its pandas frame only when something asks for it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefkit.data.table import (
    COLUMNS,
    META_COLUMNS,
    PY_WHITESPACE,
    TURN_COLUMNS,
    WINNER_COLUMNS,
    PairTable,
    repair_surrogates,
)

TURNS = pl.List(pl.String)


class Fallback(Exception):
    """Something in this file is for the row reader to read (and, where it is wrong, to name)."""


# -------------------------------------------------------------------------------------------- CSV text

CHUNK = 1 << 20  # read into one buffer made once: small enough for the compares to find it in the cache
# (public, as are `byte_counts`, `streamed` and `vouched`, for inspection: tests set a small CHUNK, count the
# passes over a file and ask polars' decoder about single cells through these names)


def byte_counts(path: Path, commas: bool = False) -> tuple[int, int | None]:
    """(physical lines, commas or None when not asked for) of a file, gzip undone. A carriage return that is not
    part of CRLF ends a line for Python's csv module and not for polars: Fallback.

    The file is read a chunk at a time into one buffer (memory stays flat; benchmarks/data_scale.py's million
    rows, 3.7 GB in the page cache with CRLF line ends: 1.6 s against 2.3 s through a memory map, whose page
    faults cost more than the copy), each chunk counted by numpy compares. Carriage returns are looked at
    only in a chunk where a memchr search finds one (files written with LF endings have none; the same file
    counted without that look took 0.95 s). Public for inspection: tests count how often a file is counted."""
    buf = bytearray(CHUNK)
    view = np.frombuffer(buf, dtype=np.uint8)
    lines = n_commas = 0
    last = -1  # the byte before this chunk
    lone = False
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb", buffering=0)) as fh:
            while not lone and (n := fh.readinto(buf)):
                x = view[:n]
                lines += int(np.count_nonzero(x == 10))
                if commas:
                    n_commas += int(np.count_nonzero(x == 44))
                lone = last == 13 and x[0] != 10
                if buf.find(b"\r", 0, n) >= 0:
                    cr = np.flatnonzero(x == 13)
                    if cr[-1] == n - 1:
                        cr = cr[:-1]  # the chunk's last byte: the next chunk's first must be its line feed
                    lone = lone or bool(len(cr) and not (x[cr + 1] == 10).all())
                last = int(x[-1])
    except (OSError, EOFError, zlib.error) as e:
        raise Fallback(f"cannot read ({e})") from None
    if lone or last == 13:
        raise Fallback("a carriage return outside CRLF")
    return lines + (1 if last not in (-1, 10) else 0), (n_commas if commas else None)


def csv_header(path: Path) -> tuple[list[str], int]:
    """The header as Python's csv module reads it, and the physical lines it spans."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh)
            return next(reader), reader.line_num
    except (StopIteration, csv.Error, OSError, EOFError, zlib.error):
        raise Fallback("no header that can be read") from None


_READ = dict(infer_schema=False, empty_string_is_null=False, encoding="utf8", quote_char='"', raise_if_empty=False)
# Per-row counts the read adds beside the file's columns; no CSV header of a preference file starts with NUL.
_NL, _COMMAS, _NULLS, _SHORT, _CR = "\x00nl", "\x00commas", "\x00nulls", "\x00short", "\x00cr"


def _in_cells(header: list[str], commas: bool) -> list[pl.Expr]:
    """Per row: the line breaks inside its cells, the commas inside them (`commas`, else 0), the cells polars
    found no field for, whether its last cell is empty (as a short row's is), whether a cell holds a carriage
    return."""
    cells = [pl.col(c) for c in header]
    return [pl.sum_horizontal(c.str.count_matches("\n", literal=True) for c in cells).cast(pl.Int64).alias(_NL),
            (pl.sum_horizontal(c.str.count_matches(",", literal=True) for c in cells).cast(pl.Int64) if commas
             else pl.lit(0, dtype=pl.Int64)).alias(_COMMAS),
            pl.sum_horizontal(c.is_null() for c in cells).cast(pl.Int64).alias(_NULLS),
            (pl.col(header[-1]).str.len_bytes() == 0).alias(_SHORT),
            pl.any_horizontal(c.str.contains("\r", literal=True) for c in cells).alias(_CR)]


def read_csv(path: Path, json_columns: tuple[str, ...] = ()) -> tuple[pl.DataFrame, int]:
    """Every column as text, those in `json_columns` decoded from JSON lists to `List(String)` as `json_turns`
    decodes them, and `line`: the physical line where each row starts, as the csv module counts it (one more
    than the line breaks in the cells before it); with how many turns had lone surrogates replaced.

    Where polars and the csv module can read a file differently, the fast path declines or checks the file's
    bytes. polars refuses a row with too many fields, but reads a short row's missing cells as "" and a blank
    line as a row of "" cells, the last cell always among them; and a carriage return that is not part of
    CRLF ends a row for the csv module and not for polars. So a file with a row whose last cell is empty, or
    with a carriage return in a cell, is read again, counting the commas of every cell, and its bytes counted
    (`byte_counts`, which also refuses a lone carriage return): the commas outside the cells must be exactly
    (columns - 1) a row and header, the line breaks outside them one a row. An LMSYS file (its last cell a
    winner flag or a JSON list; json.dumps escapes carriage returns) is read once and its bytes not counted:
    that count, in a thread beside the parse, cost 1.2-1.5 s of the 7.3 s a million rows took (3.7 GB read
    a second time while polars parsed it).

    What only the bytes would show, and so is read differently without them: a carriage return right after a
    closing quote and before a comma, which polars skips and the csv module takes for the end of the row
    (`tests/data/test_fast.py` pins it; a carriage return anywhere else shows in a cell, or breaks the parse).

    One streaming pass (`streamed`); a file polars refuses somewhere in it is read again eagerly, a column at
    a time (`_eager`), which finds the cells polars' JSON reader refuses, or gives up on the CSV error."""
    header, header_lines = csv_header(path)
    if len(header) < 2 or len(set(header)) != len(header) or any(h.startswith("\x00") for h in header):
        raise Fallback("a header of one column, of repeated names, or of a name like the read's own")
    try:
        f, repaired = streamed(path, header, json_columns, commas=False)
        careful = bool(f[_SHORT].any() or f[_CR].any())
        if careful:
            f, repaired = streamed(path, header, json_columns, commas=True)
    except pl.exceptions.PolarsError:
        f, repaired = _eager(path, header, json_columns)
        careful = True
    if f.columns[:len(header)] != header or f[_NULLS].sum():
        raise Fallback("polars read the header or a cell otherwise")
    n, nl = f.height, f[_NL]
    if careful:
        lines, commas = byte_counts(path, commas=True)
        want_commas = (len(header) - 1) * (n + 1) + int(f[_COMMAS].sum()) + sum(h.count(",") for h in header)
        if commas != want_commas or lines != header_lines + n + int(nl.sum()):
            raise Fallback("the separators or line breaks do not add up (a blank line, a short row, ...)")
    starts = header_lines + 1 + pl.int_range(n, dtype=pl.Int64, eager=True) + nl.cum_sum() - nl
    return f.drop(_NL, _COMMAS, _NULLS, _SHORT, _CR).with_columns(starts.alias("line")), repaired


def streamed(path: Path, header: list[str], json_columns: tuple[str, ...], commas: bool) -> tuple[pl.DataFrame, int]:
    """The file parsed, counted, decoded and vouched for (`_vouch`) a chunk of rows at a time, while the chunk's
    text is in the cache; a turn cell's text is kept only where the chunk could not vouch for its decoding, so
    the file's text is never all in memory beside the decoded turns. (At 30,000 LMSYS rows: a peak 90 MB lower
    than reading all the text and then decoding it, `_eager`, and 5-10% faster.) Raises PolarsError where
    polars refuses a cell, as CSV or as JSON. Public for inspection: tests count the passes over a file."""
    ours = {c: {k: f"\x00{c}:{k}" for k in ("turns", "plain", "text")} for c in json_columns}
    lf = pl.scan_csv(path, **_READ).with_columns(
        *_in_cells(header, commas),
        *(pl.col(c).str.json_decode(TURNS).alias(ours[c]["turns"]) for c in json_columns))
    lf = lf.with_columns(*(_vouch(pl.col(c), pl.col(ours[c]["turns"])).alias(ours[c]["plain"]) for c in json_columns))
    lf = lf.select(
        *(pl.col(ours[c]["turns"]).alias(c) if c in ours else pl.col(c) for c in header),
        _NL, _COMMAS, _NULLS, _SHORT, _CR,
        *(pl.col(ours[c]["plain"]) for c in json_columns),
        *(pl.when(~pl.col(ours[c]["plain"])).then(pl.col(c)).alias(ours[c]["text"]) for c in json_columns))
    f = lf.collect(engine="streaming")
    repaired = 0
    for c, name in ours.items():
        cells, fixed = _python_where_needed(f[c], f[name["plain"]], f[name["text"]])
        f = f.with_columns(cells).drop(name["plain"], name["text"])
        repaired += fixed
    return f, repaired


def _eager(path: Path, header: list[str], json_columns: tuple[str, ...]) -> tuple[pl.DataFrame, int]:
    """The whole file's text first, then each JSON column decoded on its own (`json_turns`)."""
    try:
        f = pl.read_csv(path, **_READ)
    except (pl.exceptions.PolarsError, OSError) as e:  # not UTF-8, a stray quote, too many fields, ...
        raise Fallback(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if f.columns != header:
        raise Fallback("polars read the header otherwise")
    f = f.with_columns(_in_cells(header, commas=True))
    repaired = 0
    for c in json_columns:
        cells, fixed = json_turns(f[c])
        f = f.with_columns(cells)
        repaired += fixed
    return f, repaired


# -------------------------------------------------------------------------------------------- cells

# A JSON list of strings and nulls, exactly (for a column polars' JSON reader refuses as a whole, to find the
# cells it can read): JSON whitespace only, no raw control character in a string
# (Python decodes those with strict=False; polars does not), escapes as JSON has them, UTF-16 surrogate
# escapes only in well-formed pairs (polars turns a lone one into U+0000; Python keeps it, to be repaired).
_WS = r"[ \t\n\r]*"
_ESC = (r"\\(?:[\"\\/bfnrt]|u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}"
        r"|[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}))")
_ITEM = rf"(?:\"(?:[^\"\\\x00-\x1f]|{_ESC})*\"|null)"
JSON_LIST = rf"^{_WS}\[{_WS}(?:{_ITEM}{_WS}(?:,{_WS}{_ITEM}{_WS})*)?\]{_WS}$"
_JSON = json.JSONDecoder(strict=False)  # as arena.json_turns


def _python_turns(text: str) -> tuple[list, int]:
    """One cell polars is not trusted with, decoded as the row reader does: (turns, repaired turns)."""
    try:
        value = _JSON.decode(text)
    except json.JSONDecodeError:
        raise Fallback("a cell that is not JSON") from None
    if not isinstance(value, list) or not all(t is None or isinstance(t, str) for t in value):
        raise Fallback("a cell that is not a list of strings")
    out, repaired = [], 0
    for t in value:
        if t is not None:
            t, fixed = repair_surrogates(t)
            repaired += fixed
        out.append(t)
    return out, repaired


_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"  # polars turns a lone one into U+0000; Python keeps it, to be repaired
_SURROGATE_PAIR = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # one character, read alike


def _vouch(text: pl.Expr, decoded: pl.Expr) -> pl.Expr:
    """Whether polars decoded a cell as the row reader would. polars' JSON reader refuses all the malformed text
    Python's does and a list in a list, but reads a lone string or a number as a turn ('"a"' -> ["a"],
    '[1]' -> ["1"]) and a lone surrogate escape as U+0000 (where Python keeps it, to be repaired). So a cell is
    vouched for when "[" is its first character and its quotes are exactly two a string plus the quotes and
    NULs of its decoded turns. Each thing polars reads otherwise leaves the text short of that count: a
    number or true read as a string has no quotes of its own, a \\u0022 escape decodes to a quote the text
    does not have, a lone surrogate to a NUL; those cells (and the rare good ones with a \\u0000 escape) go to
    Python's decoder. A cell with whitespace before its "[" goes to Python too: a pattern that allowed it read
    every cell whole (0.04 s at 100k rows against 0.002 s for the first character). (The NULs are counted in
    the same pass as the quotes: a search of the text for "\\u", to look for surrogate escapes, cost a pass of
    its own.)"""
    e = pl.element()
    strings = decoded.list.eval(e.is_not_null()).list.sum().cast(pl.Int64)
    inner = decoded.list.eval(e.str.count_matches('["\x00]')).list.sum().cast(pl.Int64)
    quotes = text.str.count_matches('"', literal=True).cast(pl.Int64)
    return ((quotes == 2 * strings + inner) & text.str.starts_with("[")).fill_null(False)


def vouched(s: pl.Series, decoded: pl.Series) -> pl.Series:
    """Cells polars decoded as the row reader would (`_vouch`). Public for inspection: tests hold polars' JSON
    reader, a cell at a time, to Python's through it."""
    return pl.DataFrame([s.alias("text"), decoded.alias("decoded")]).select(
        _vouch(pl.col("text"), pl.col("decoded"))).to_series()


def _python_where_needed(decoded: pl.Series, plain: pl.Series, text: pl.Series) -> tuple[pl.Series, int]:
    """The decoded cells, those not `plain` decoded again by Python's decoder (from `text`, which holds at least
    those), and how many of their turns had lone surrogates replaced."""
    odd = (~plain).arg_true()
    if not len(odd):
        return decoded, 0
    cells: list[Any] = [None] * len(decoded)
    repaired = 0
    for i, cell in zip(odd.to_list(), text.gather(odd).to_list()):
        cells[i], fixed = _python_turns(cell)
        repaired += fixed
    merged = pl.select(pl.when(plain).then(decoded).otherwise(pl.Series(cells, dtype=TURNS))).to_series()
    return merged.alias(decoded.name), repaired


def json_turns(s: pl.Series) -> tuple[pl.Series, int]:
    """JSON-list cells as `List(String)`, and how many turns had lone surrogates replaced. polars decodes the
    column; cells it cannot be trusted with (rare: lone surrogates, raw control characters, or not a list of
    strings at all) are decoded by Python's decoder one by one, and a cell that is bad there too sends the
    file to the row reader."""
    if s.dtype != pl.String or s.null_count():
        raise Fallback("a turn column that is not text")
    try:
        decoded = s.str.json_decode(TURNS)
    except pl.exceptions.PolarsError:
        decoded = None
    if decoded is not None and len(decoded) == len(s):  # (a column of one empty cell decodes to no rows at all)
        plain = vouched(s, decoded)
    else:  # a cell polars cannot read at all: sort the cells by the exact pattern
        plain = s.str.contains(JSON_LIST)
        decoded = pl.select(pl.when(plain).then(s).otherwise(pl.lit("[]")).str.json_decode(TURNS)).to_series()
    return _python_where_needed(decoded.alias(s.name), plain, s)


def plain_turns(s: pl.Series) -> pl.Series:
    """One turn of text a cell (null: a null turn), or lists of turns as they are (parquet)."""
    if s.dtype == pl.String:
        return s.to_frame().select(pl.concat_list(pl.col(s.name))).to_series().alias(s.name)
    if isinstance(s.dtype, pl.List) and s.dtype.inner in (pl.String, pl.Null):
        return s.cast(TURNS)
    raise Fallback(f"a turn column of type {s.dtype}")


def list_turns(s: pl.Series) -> pl.Series:
    """A parquet column of turn lists (LMSYS written by prefkit)."""
    if isinstance(s.dtype, pl.List) and s.dtype.inner in (pl.String, pl.Null):
        return s.cast(TURNS)
    raise Fallback(f"a turn column of type {s.dtype}")


_FLAG = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def winner_flags(s: pl.Series) -> pl.Series:
    """A winner column as 0/1 (Int8); any other spelling or value is for the row reader to name."""
    if s.dtype == pl.String:
        flags = s.replace_strict(_FLAG, default=None, return_dtype=pl.Int8)  # as files spell them, mostly
        if flags.null_count():
            flags = s.str.strip_chars().str.to_lowercase().replace_strict(_FLAG, default=None, return_dtype=pl.Int8)
    elif s.dtype == pl.Boolean or s.dtype.is_integer() or s.dtype.is_float():
        flags = pl.select(pl.when(s.cast(pl.Float64).is_in([0.0, 1.0])).then(s.cast(pl.Float64))).to_series()
        flags = flags.cast(pl.Int8)
    else:
        raise Fallback(f"a winner column of type {s.dtype}")
    if flags.null_count():
        raise Fallback("a winner cell that is not 0 or 1")
    return flags


def lmsys_labels(f: pl.DataFrame) -> pl.Series:
    a, b, tie = (winner_flags(f[c]) for c in WINNER_COLUMNS)
    key = a.cast(pl.Int16) * 4 + b.cast(pl.Int16) * 2 + tie.cast(pl.Int16)
    label = key.replace_strict({4: "a", 2: "b", 1: "tie"}, default=None, return_dtype=pl.String)
    if label.null_count():
        raise Fallback("a row with no winner or two")
    return label


# A one-column `winner` (WSDM Cup; LMSYS-form files that carry one column for the three), in any case, with
# spaces around: LMSYS's battle logs write "tie (bothbad)", other exports A and B
WINNER_LABEL = {"model_a": "a", "a": "a", "model_b": "b", "b": "b", "tie": "tie", "tie (bothbad)": "tie"}


def winner_labels(s: pl.Series, ties: bool) -> pl.Series:
    """A one-column winner as labels; `ties=False` (WSDM Cup) refuses a tie."""
    if s.dtype != pl.String:
        raise Fallback(f"a winner column of type {s.dtype}")
    label = s.replace_strict(WINNER_LABEL, default=None, return_dtype=pl.String)  # as files spell them, mostly
    if label.null_count():
        label = s.str.strip_chars(PY_WHITESPACE).str.to_lowercase().replace_strict(WINNER_LABEL, default=None,
                                                                                   return_dtype=pl.String)
    if label.null_count() or (not ties and (label == "tie").any()):
        raise Fallback("a winner that is not model_a, model_b or tie (or a tie where there are none)")
    return label


_GENERIC_LABEL = {"a": "a", "model_a": "a", "b": "b", "model_b": "b", "tie": "tie"}


def generic_labels(s: pl.Series) -> pl.Series:
    """a/b/tie/model_a/model_b in any case; an empty cell is no label."""
    if s.dtype == pl.Null:
        return pl.Series(s.name, [None] * len(s), dtype=pl.String)
    if s.dtype != pl.String:
        raise Fallback(f"a label column of type {s.dtype}")
    text = s.str.strip_chars(PY_WHITESPACE)
    label = text.str.to_lowercase().replace_strict(_GENERIC_LABEL, default=None, return_dtype=pl.String)
    if (label.is_null() & text.is_not_null() & (text != "")).any():
        raise Fallback("a label that is not a, b or tie")
    return label


def ids(s: pl.Series) -> pl.Series:
    """Ids as text, as `table.id_text` writes them; empty or repeated ones are for the row reader."""
    if s.dtype == pl.String:
        out = s
        if (out.is_null() | (out.str.strip_chars(PY_WHITESPACE) == "")).any():
            raise Fallback("an empty id")
    elif s.dtype.is_integer():
        out = s.cast(pl.String)
    elif s.dtype.is_float() and not s.is_nan().any() and (s == s.floor()).all() and (s.abs() < 2**53).all():
        out = s.cast(pl.Int64).cast(pl.String)  # pandas' float ids of whole numbers: "7", not "7.0"
    else:
        raise Fallback(f"an id column of type {s.dtype}")
    if out.null_count() or out.n_unique() != len(out):  # (n_unique: 0.08 s at a million ids, is_duplicated 0.42 s)
        raise Fallback("an empty or repeated id")
    return out.alias("id")


def meta(s: pl.Series | None, n: int) -> pl.Series:
    """model_a/model_b/language: text, an empty cell is None (the loaders' `value or None`)."""
    if s is None or s.dtype == pl.Null:
        return pl.Series([None] * n, dtype=pl.String)
    if s.dtype != pl.String:
        raise Fallback(f"a metadata column of type {s.dtype}")
    return pl.select(pl.when(s != "").then(s)).to_series()


def table(source: str, id: pl.Series, turns: dict[str, pl.Series], label: pl.Series | None,
          metadata: dict[str, pl.Series | None], line: pl.Series | None, repaired: int = 0) -> PairTable:
    """The canonical table of checked columns, with `TableBuilder.add`'s row checks made on whole columns:
    turn lists present, an empty response list as nulls aligned with the prompt, the same number of turns."""
    n = len(id)
    for c in TURN_COLUMNS:
        if turns[c].null_count():
            raise Fallback("a cell that is not a list of turns")
    f = pl.DataFrame({"id": id, **{c: turns[c] for c in TURN_COLUMNS}})
    size = pl.col("prompt").list.len()
    for c in ("response_a", "response_b"):  # an empty response written as []: null turns aligned with the prompt
        if f.select((pl.col(c).list.len() == 0).any()).item():
            f = f.with_columns(pl.when(pl.col(c).list.len() == 0).then(pl.lit(None, dtype=pl.String).repeat_by(size))
                               .otherwise(pl.col(c)).alias(c))
    if f.select(((pl.col("response_a").list.len() != size) | (pl.col("response_b").list.len() != size)).any()).item():
        raise Fallback("turn lists of different lengths")
    f = f.with_columns(
        (label if label is not None else pl.Series([None] * n, dtype=pl.String)).alias("label"),
        *(meta(metadata.get(c), n).alias(c) for c in META_COLUMNS),
        pl.int_range(1, n + 1, dtype=pl.Int64, eager=True).alias("row"),
        (line if line is not None else pl.Series([None] * n, dtype=pl.Int64)).alias("line"),
    )
    return PairTable(source=source, polars=f.select(COLUMNS), repaired_cells=repaired, read_by="polars")


def read_parquet(path: Path, limit: int | None) -> pl.DataFrame:
    try:
        return pl.read_parquet(path, n_rows=limit)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise Fallback(str(e)) from None



# -------------------------------------------------------------------------------------------- JSON lines

_JSON_WS = "[ \\t\\r]*"  # JSON's whitespace inside one line
_JSON_STRING = '("(?:[^"\\\\]|\\\\.)*")'  # the first string of a text, quotes and all


def read_jsonl(path: Path, turns: list[str], others: list[str]) -> pl.DataFrame:
    """A JSON-lines file of one object a line, read by polars' NDJSON reader, as the row reader
    (`readers.jsonl_records` + `json.loads`) would read it for the keys that matter: `turns`, each in every line
    as a string or a list of strings and nulls (one type a file), and `others`, of any value.

    polars reads more than Python's decoder would give: it makes text of a number, a boolean or a list found
    in a text column ({"p": 5} -> "5"; in a list, [1] -> ["1"]), keeps the first of two equal keys (Python the
    last), and gives null for a missing key and for a null alike. So each line's own text is looked at too: a
    key counts where `{` or `,` (and whitespace) stands before its opening quote, which only a key can have in
    valid JSON (a quote inside a string is escaped). Each key must be there at most once a line, wherever
    polars found a value for it (a key written with escapes is not seen, so its file goes to the row reader);
    in a column polars reads as text every value must open as text (or null) does, and a list of turns must
    be one of strings and nulls, exactly (`JSON_LIST`'s items). Anything else (a blank line, a carriage return
    outside CRLF, a byte-order mark, a lone surrogate escape, which polars turns into U+0000) is for the row
    reader."""
    lines, _ = byte_counts(path)  # (a lone carriage return: Fallback)
    try:
        source: Any = io.BytesIO(gzip.decompress(path.read_bytes())) if path.suffix == ".gz" else path
    except (OSError, EOFError, zlib.error) as e:
        raise Fallback(f"cannot read ({e})") from None
    try:
        f = pl.read_ndjson(source, infer_schema_length=None)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        # the same file as text, a line a row: the separator is a control character, which valid JSON holds
        # only escaped, and quotes are left alone
        text = pl.read_csv(source, has_header=False, separator="\x01", quote_char=None, new_columns=["text"],
                           infer_schema=False, encoding="utf8", raise_if_empty=False)["text"]
    except (pl.exceptions.PolarsError, OSError) as e:
        raise Fallback(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if not (f.height == len(text) == lines):
        raise Fallback("blank lines, or lines polars read otherwise")
    escaped = text.filter(text.str.contains("\\u", literal=True))
    if escaped.str.replace_all(_SURROGATE_PAIR, "").str.contains(_SURROGATE_ESCAPE).any():
        raise Fallback("a lone surrogate escape")  # (json.dumps writes a character past U+FFFF as a pair)
    names = {json.dumps(k, ensure_ascii=False): k for k in (*turns, *others)}
    before = f"[{{,]{_JSON_WS}"  # where a key starts
    hits = (text.str.extract_all(f"{before}(?:{'|'.join(map(re.escape, names))}){_JSON_WS}:{_JSON_WS}.")
            .alias("found").to_frame().with_row_index("i").explode("found").drop_nulls("found")
            .select("i", pl.col("found").str.extract(_JSON_STRING, 1).replace_strict(names).alias("key"),
                    pl.col("found").str.slice(-1).alias("opens")))
    for name, key in names.items():
        mine = hits.filter(pl.col("key") == key)
        dtype = f.schema.get(key)
        if mine["i"].n_unique() != mine.height:
            raise Fallback(f"a key given twice in a line ({key!r})")
        if dtype is not None and (f[key].is_not_null() & ~pl.int_range(f.height, eager=True).is_in(mine["i"])).any():
            raise Fallback(f"a value of {key!r} where no key was seen (written with escapes?)")
        opens = set(mine["opens"].unique())
        if dtype == pl.String and not opens <= {'"', "n"}:
            raise Fallback(f"a value of {key!r} that polars made text of")
        if key not in turns:
            continue
        if mine.height != f.height:  # (polars' null for a missing key would be Python's null turn)
            raise Fallback(f"a line without {key!r}")
        if dtype == pl.String and opens == {'"'}:
            continue
        if not (isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null) and opens == {"["}):
            raise Fallback(f"{key!r} not all strings, or not all lists")
        listed = f"{before}{re.escape(name)}{_JSON_WS}:{_JSON_WS}\\[{_WS}(?:{_ITEM}{_WS}(?:,{_WS}{_ITEM}{_WS})*)?\\]"
        if not text.str.contains(listed).all():
            raise Fallback(f"a list in {key!r} with something other than strings and nulls")
    return f
