"""The column-wise fast path: a clean file read by polars and checked a column at a time.

Every function here either returns exactly what the row reader (`readers.py` + `TableBuilder`) would have
made of the file, or raises `Fallback`: then the row reader reads the file again and names every bad row
with its message. The path vouches only for what it can check whole: a CSV whose commas and line breaks add
up to what polars parsed (so no blank line, short row or stray quote was read another way), turn cells that
polars' JSON reader decodes to what Python's would (`_vouched`; the few others go to Python's decoder one by
one), winner cells spelt 0/1/0.0/1.0/true/false, non-empty unique ids, aligned turn lists.
`tests/data/test_fast.py` holds the two readers to the same table on awkward and random files.

The result is a polars frame with the canonical columns (`table.COLUMNS`; turns as `List(String)`), wrapped
in a `PairTable` that makes its pandas frame only when something asks for it.
"""

from __future__ import annotations

import csv
import gzip
import json
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

_CHUNK = 1 << 22


def _byte_counts(path: Path) -> tuple[int, int]:
    """(physical lines, commas) of a file, read in chunks (memory stays flat), gzip undone. A carriage return
    that is not part of CRLF ends a line for Python's csv module and not for polars: Fallback."""
    lines = commas = cr = crlf = size = 0
    last = -1
    buf = bytearray(_CHUNK)
    view = np.frombuffer(buf, dtype=np.uint8)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            while n := fh.readinto(buf):
                x = view[:n]
                lines += int(np.count_nonzero(x == 10))
                commas += int(np.count_nonzero(x == 44))
                is_cr = x == 13
                if is_cr.any():
                    cr += int(np.count_nonzero(is_cr))
                    crlf += int(np.count_nonzero(is_cr[:-1] & (x[1:] == 10)))
                crlf += int(last == 13 and x[0] == 10)
                last = int(x[-1])
                size += n
    except (OSError, EOFError, zlib.error) as e:
        raise Fallback(f"cannot read ({e})") from None
    if cr != crlf:
        raise Fallback("a carriage return outside CRLF")
    return lines + (1 if size and last != 10 else 0), commas


def csv_header(path: Path) -> tuple[list[str], int]:
    """The header as Python's csv module reads it, and the physical lines it spans."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh)
            return next(reader), reader.line_num
    except (StopIteration, csv.Error, OSError, EOFError, zlib.error):
        raise Fallback("no header that can be read") from None


def read_csv(path: Path) -> pl.DataFrame:
    """Every column as text, and `line`: the physical line where each row starts, as the csv module counts it.

    Checked whole against the file's bytes: the commas outside cells must be exactly (columns - 1) per row
    and header (so no row is short, long or blank), and the line breaks outside cells exactly one per row."""
    header, header_lines = csv_header(path)
    if len(header) < 2 or len(set(header)) != len(header):
        raise Fallback("a header of one column, or of repeated names")
    lines, commas = _byte_counts(path)
    try:
        f = pl.read_csv(path, infer_schema=False, empty_string_is_null=False, encoding="utf8", quote_char='"',
                        raise_if_empty=False)
    except (pl.exceptions.PolarsError, OSError) as e:  # not UTF-8, a stray quote, too many fields, ...
        raise Fallback(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if f.columns != header or f.null_count().sum_horizontal().item():
        raise Fallback("polars read the header or a cell otherwise")
    in_cells = f.select(
        nl=pl.sum_horizontal(pl.col(c).str.count_matches("\n", literal=True) for c in header).cast(pl.Int64),
        commas=pl.sum_horizontal(pl.col(c).str.count_matches(",", literal=True) for c in header).cast(pl.Int64),
    )
    n = f.height
    cell_nl = int(in_cells["nl"].sum())
    want_commas = (len(header) - 1) * (n + 1) + int(in_cells["commas"].sum()) + sum(h.count(",") for h in header)
    if commas != want_commas or lines != header_lines + n + cell_nl:
        raise Fallback("the separators or line breaks do not add up (a blank line, a short row, ...)")
    starts = header_lines + 1 + pl.int_range(n, dtype=pl.Int64, eager=True) + in_cells["nl"].cum_sum() - in_cells["nl"]
    return f.with_columns(starts.alias("line"))


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


def _vouched(s: pl.Series, decoded: pl.Series) -> pl.Series:
    """Cells polars decoded as the row reader would. polars' JSON reader refuses all the malformed text Python's
    does, but reads a lone string or a number as a turn ('"a"' -> ["a"], '[1]' -> ["1"]): a cell is vouched for
    when it opens with "[" and its quotes are exactly two a string plus the quotes inside them (a number or true
    read as text has no quotes of its own; a \\u0022 escape only sends a good cell to Python)."""
    e = pl.element()
    strings = decoded.list.eval(e.is_not_null()).list.sum().cast(pl.Int64)
    inner = decoded.list.eval(e.str.count_matches('"', literal=True)).list.sum().cast(pl.Int64)
    quotes = s.str.count_matches('"', literal=True).cast(pl.Int64)
    ok = s.str.contains(r"^[ \t\n\r]*\[") & (quotes == 2 * strings + inner)  # (a pattern copies no text)
    return (ok & ~s.str.contains(_SURROGATE_ESCAPE)).fill_null(False)


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
        plain = _vouched(s, decoded)
    else:  # a cell polars cannot read at all: sort the cells by the exact pattern
        plain = s.str.contains(JSON_LIST)
        decoded = pl.select(pl.when(plain).then(s).otherwise(pl.lit("[]")).str.json_decode(TURNS)).to_series()
    odd = (~plain).arg_true()
    if not len(odd):
        return decoded.alias(s.name), 0
    cells: list[Any] = [None] * len(s)
    repaired = 0
    for i, text in zip(odd.to_list(), s.gather(odd).to_list()):
        cells[i], fixed = _python_turns(text)
        repaired += fixed
    merged = pl.select(pl.when(plain).then(decoded).otherwise(pl.Series(cells, dtype=TURNS))).to_series()
    return merged.alias(s.name), repaired


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


def wsdm_labels(s: pl.Series) -> pl.Series:
    if s.dtype != pl.String:
        raise Fallback(f"a winner column of type {s.dtype}")
    label = s.replace_strict({"model_a": "a", "model_b": "b"}, default=None, return_dtype=pl.String)
    if label.null_count():
        raise Fallback("a winner that is not model_a or model_b")
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
    if out.null_count() or out.is_duplicated().any():
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

