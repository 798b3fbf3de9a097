"""Arena-form files: LMSYS Chatbot Arena (CSV, or parquet) and WSDM Cup (parquet), and their writers.

LMSYS: `id, [model_a, model_b,] prompt, response_a, response_b, [winner_model_a, winner_model_b, winner_tie]`;
prompt and response cells are JSON-encoded lists of turns (in parquet written by prefkit: native lists).
WSDM Cup: `id, prompt, response_a, response_b, [winner,] model_a, model_b, language`, one turn per cell as
plain text, `winner` in {model_a, model_b}.
Either may give its label as one `winner` column: model_a, model_b or (LMSYS) tie (`WINNER_LABEL`: also A, B
and "tie (bothbad)", in any case); any other value is a bad row, never a row without a label.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from prefkit.data import fast
from prefkit.data.fast import WINNER_LABEL
from prefkit.data.readers import (
    csv_records,
    parquet_columns,
    parquet_records,
    require_columns,
)
from prefkit.data.table import TURN_COLUMNS, WINNER_COLUMNS, PairTable, TableBuilder
from prefkit.io import atomic_path

_FLAGS_LABEL = {(1, 0, 0): "a", (0, 1, 0): "b", (0, 0, 1): "tie"}
_JSON = json.JSONDecoder(strict=False)  # one decoder for every cell; tolerates raw control characters in strings


def json_turns(value: Any) -> Any:
    """A JSON-encoded list (CSV) or a native list (parquet). Raises ValueError with the reason."""
    if isinstance(value, str):
        try:
            value = _JSON.decode(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at character {e.pos + 1})") from None
        if not isinstance(value, list):
            raise ValueError(f"expected a JSON list of turns, got a JSON {type(value).__name__}")
    elif hasattr(value, "tolist"):
        value = value.tolist()
    return value


def plain_turns(value: Any) -> Any:
    """One turn of plain text (WSDM, generic CSV), or a list of turns as it is."""
    return [value] if value is None or isinstance(value, str) else value


# The spellings of 0 and 1 that files really hold: pandas writes 1.0/0.0 once a column had a NaN or went through
# a merge, and True/False for a boolean column; parquet gives native ints, floats and bools.
_BOOL_TEXT = {"false": 0, "true": 1}


class LabelError(ValueError):
    """A winner cell that is not 0 or 1; `column` names the cell."""

    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


def winner_flag(value: Any, column: str) -> int:
    """A winner cell as 0 or 1. Anything else (-1, 2, 0.5, "yes", empty, NaN) is refused, never rounded:
    a label read wrong trains the wrong answer silently."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # a numpy scalar (numpy.bool_ is not a bool)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _BOOL_TEXT:
            return _BOOL_TEXT[text]
        try:
            number = float(text)
        except ValueError:
            number = None
    else:
        number = value if isinstance(value, (int, float)) else None  # bool is an int: True == 1
    if number is not None and number in (0, 1):  # 1.0 == 1; NaN equals nothing
        return int(number)
    shown = "an empty cell" if value is None or (isinstance(value, str) and not value.strip()) else repr(value)
    raise LabelError(column, f"must be 0 or 1 (or 0.0/1.0, True/False), got {shown}")


def _lmsys_label(values: dict) -> str:
    key = tuple(winner_flag(values[c], c) for c in WINNER_COLUMNS)
    label = _FLAGS_LABEL.get(key)
    if label is None:
        n = sum(key)
        raise ValueError(f"{'no winner' if n == 0 else f'{n} winners'} marked (exactly one of the three must be 1)")
    return label


def _fast_arena(path: Path, flavour: str, is_csv: bool, limit: int | None, labels: bool) -> PairTable | None:
    """The file read and checked by columns (`fast.py`), or None: the row reader is to read it."""
    try:
        if is_csv:
            if limit is not None:
                return None  # the row reader stops at the limit
            columns, _ = fast.csv_header(path)
        else:
            columns = parquet_columns(path, TableBuilder(str(path)))
        if not {"id", *TURN_COLUMNS} <= set(columns):
            return None  # the row reader names what is missing
        three = labels and flavour == "lmsys" and any(c in columns for c in WINNER_COLUMNS)
        if three and not set(WINNER_COLUMNS) <= set(columns):
            return None
        if is_csv:  # LMSYS turn cells decoded as the file is read (`fast.read_csv`), a chunk of rows at a time
            f, repaired = fast.read_csv(path, TURN_COLUMNS if flavour == "lmsys" else ())
        else:
            f, repaired = fast.read_parquet(path, limit), 0
        turns = {}
        for c in TURN_COLUMNS:
            if flavour == "wsdm":
                turns[c] = fast.plain_turns(f[c])
            elif f[c].dtype == fast.pl.String:
                turns[c], fixed = fast.json_turns(f[c])
                repaired += fixed
            else:
                turns[c] = fast.list_turns(f[c])
        label = None
        if three:
            label = fast.lmsys_labels(f)
        elif labels and "winner" in columns:
            label = fast.winner_labels(f["winner"], ties=flavour == "lmsys")
        metadata = {c: f[c] if c in f.columns else None for c in ("model_a", "model_b", "language")}
        return fast.table(str(path), fast.ids(f["id"]), turns, label, metadata,
                          f["line"] if is_csv else None, repaired)
    except fast.Fallback:
        return None


def load_arena(path: Path, flavour: str, skip_bad_rows: bool, limit: int | None, labels: bool = True,
               fast: bool = True) -> PairTable:
    """Load an LMSYS (`flavour="lmsys"`) or WSDM Cup (`flavour="wsdm"`) file; `labels=False` reads the pairs
    only (a pseudo-label file, whose winner columns hold probabilities). A clean file is read by columns
    (`fast.py`); anything the fast path does not vouch for, and every file when `fast=False`, by rows."""
    is_csv = path.suffix == ".csv" or path.name.endswith(".csv.gz")
    if fast and (table := _fast_arena(path, flavour, is_csv, limit, labels)) is not None:
        return table
    b = TableBuilder(str(path), skip_bad_rows)
    if is_csv:
        columns, records = csv_records(path, b, id_column="id")
    else:
        columns, records = parquet_columns(path, b), parquet_records(path, b, limit)
    header_line = 1 if is_csv else None
    require_columns(columns, ["id", *TURN_COLUMNS], b, header_line)
    three = labels and flavour == "lmsys" and any(c in columns for c in WINNER_COLUMNS)
    if three:
        require_columns(columns, list(WINNER_COLUMNS), b, header_line)
    labelled = labels and (three or "winner" in columns)
    decode_turns = json_turns if flavour == "lmsys" else plain_turns
    for row, line, v in records:
        if limit is not None and row > limit:
            break
        rid = v["id"]
        turns = {}
        for column in TURN_COLUMNS:
            try:
                turns[column] = decode_turns(v[column])
            except ValueError as e:
                b.problem(row, line, rid, column, str(e))
                break
        if len(turns) < len(TURN_COLUMNS):
            continue
        label = None
        if labelled:
            if three:
                try:
                    label = _lmsys_label(v)
                except LabelError as e:  # one cell is not 0/1: name that cell
                    b.problem(row, line, rid, e.column, str(e))
                    continue
                except ValueError as e:  # every cell 0/1, but not exactly one 1: the three columns together
                    b.problem(row, line, rid, "/".join(WINNER_COLUMNS), str(e))
                    continue
            else:
                label = WINNER_LABEL.get(str(v["winner"]).strip().lower())
                if flavour == "wsdm" and label not in ("a", "b"):
                    b.problem(row, line, rid, "winner", f"must be model_a or model_b (or A, B: WSDM Cup has no ties), "
                                                        f"got {v['winner']!r}")
                    continue
                if label is None:
                    b.problem(row, line, rid, "winner", f"must be model_a, model_b or tie (or A, B), got {v['winner']!r}")
                    continue
        b.add(row, line, rid, **turns, label=label, model_a=v.get("model_a") or None,
              model_b=v.get("model_b") or None, language=v.get("language") or None)
    return b.build()


# ---------------------------------------------------------------------------------------------- writers


def _arena_rows(table: PairTable, encode_turns) -> tuple[list[str], list[list[Any]]]:
    f = table.frame
    meta = [c for c in ("model_a", "model_b") if f[c].notna().any()]
    header = ["id", *meta, *TURN_COLUMNS]
    labelled = table.has_labels
    if labelled:
        header += list(WINNER_COLUMNS)
    rows = []
    for r in f.itertuples(index=False):
        out = [r.id, *(getattr(r, c) or "" for c in meta), *(encode_turns(getattr(r, c)) for c in TURN_COLUMNS)]
        if labelled:
            out += [int(r.label == "a"), int(r.label == "b"), int(r.label == "tie")]
        rows.append(out)
    return header, rows


def write_lmsys_csv(table: PairTable, path: str | Path) -> None:
    """Write the LMSYS competition CSV: turns as JSON-encoded lists, labels as three 0/1 columns."""
    header, rows = _arena_rows(table, lambda turns: json.dumps(turns, ensure_ascii=False))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_parquet(table: PairTable, path: str | Path) -> None:
    """Write the same columns as the LMSYS CSV to parquet, turns as native lists (lossless, multi-turn)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    header, rows = _arena_rows(table, list)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(columns), tmp)


def write_wsdm_parquet(table: PairTable, path: str | Path) -> None:
    """Write the WSDM Cup parquet: one turn of plain text per cell, `winner` model_a/model_b where labelled.
    WSDM has no ties and no multi-turn rows: a table holding either is refused (filter it first)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefkit.errors import PrefkitError

    f = table.frame
    multi = f[[len(t) != 1 for t in f["prompt"]]]
    ties = f[f["label"] == "tie"]
    for rows, what in ((multi, "have several turns"), (ties, "are ties")):
        if len(rows):
            raise PrefkitError(f"{path}: {len(rows)} rows {what} (first: id {rows['id'].iloc[0]!r}); WSDM rows have one "
                               "turn and a winner")
    columns = {"id": list(f["id"]), **{c: [t[0] or "" for t in f[c]] for c in TURN_COLUMNS}}
    if table.has_labels:
        columns["winner"] = ["model_a" if x == "a" else "model_b" for x in f["label"]]
    columns.update({c: [x or "" for x in f[c]] for c in ("model_a", "model_b", "language")})
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(columns), tmp)

