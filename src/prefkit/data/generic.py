"""Generic CSV / parquet / JSON(L) files with a column mapping from the config.

`data.columns` maps canonical names (`id, prompt, response_a, response_b, label, model_a, model_b,
language`) to the file's columns; a canonical name that is not mapped is looked up under its own name.
Without an `id` column, ids are the row numbers. Labels may read `a`, `b`, `tie`, `model_a`, `model_b`
(any case). In CSV, a turn cell is plain text (`data.turns: text`) or a JSON list (`data.turns: json`); in
parquet and JSON(L) a cell may hold a string or a list of strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefkit.data import fast
from prefkit.data.arena import json_turns, plain_turns
from prefkit.data.readers import (
    csv_records,
    json_records,
    jsonl_records,
    parquet_columns,
    parquet_records,
    require_columns,
)
from prefkit.data.table import META_COLUMNS, TURN_COLUMNS, PairTable, TableBuilder
from prefkit.errors import PrefkitError

CANONICAL = ("id", *TURN_COLUMNS, "label", *META_COLUMNS)
_LABELS = {"a": "a", "model_a": "a", "b": "b", "model_b": "b", "tie": "tie"}


def _fast_generic(path: Path, name: str, source: dict[str, str], mapped: dict[str, str], turns: str,
                  limit: int | None) -> PairTable | None:
    """A CSV, JSON-lines or parquet file read and checked by columns (`fast.py`), or None: the row reader is to
    read it."""
    is_csv, is_jsonl = name.endswith(".csv"), name.endswith(".jsonl")
    if not (is_csv or is_jsonl or name.endswith(".parquet")) or (limit is not None and not name.endswith(".parquet")):
        return None  # .json files, and a CSV or JSONL file read up to a limit (the row reader stops there)
    try:
        if is_jsonl:
            f = fast.read_jsonl(path, [source[c] for c in TURN_COLUMNS],
                                [source[c] for c in CANONICAL if c not in TURN_COLUMNS])
            header = f.columns
        else:
            header = fast.csv_header(path)[0] if is_csv else parquet_columns(path, TableBuilder(str(path)))
        needed = [source[c] for c in TURN_COLUMNS] + [source[c] for c in ("id", "label") if c in mapped]
        if not is_jsonl and not set(needed) <= set(header):  # (JSON lines: a missing key is a row's own problem)
            return None  # the row reader names what is missing
        if not is_jsonl:
            f = fast.read_csv(path)[0] if is_csv else fast.read_parquet(path, limit)
        repaired, cells = 0, {}
        for c in TURN_COLUMNS:
            if is_csv and turns == "json":
                cells[c], fixed = fast.json_turns(f[source[c]])
                repaired += fixed
            else:
                cells[c] = fast.plain_turns(f[source[c]])
        if source["id"] in header:
            ids = fast.ids(f[source["id"]])
        else:  # no id column: the row numbers
            ids = fast.pl.int_range(1, f.height + 1, eager=True).cast(fast.pl.String).alias("id")
        label = fast.generic_labels(f[source["label"]]) if source["label"] in header else None
        metadata = {c: f[source[c]] if source[c] in header else None for c in META_COLUMNS}
        if is_csv:
            line = f["line"]
        elif is_jsonl:  # (read_jsonl vouches that every line is a row)
            line = fast.pl.int_range(1, f.height + 1, dtype=fast.pl.Int64, eager=True)
        else:
            line = None
        return fast.table(str(path), ids, cells, label, metadata, line, repaired)
    except fast.Fallback:
        return None


def load_generic(
    path: Path, columns: dict[str, str], turns: str, skip_bad_rows: bool, limit: int | None, fast: bool = True
) -> PairTable:
    unknown = [k for k in columns if k not in CANONICAL]
    if unknown:
        raise PrefkitError(f"data.columns: unknown canonical name {unknown[0]!r} (known: {', '.join(CANONICAL)})")
    source = {name: columns.get(name, name) for name in CANONICAL}
    name = path.name.removesuffix(".gz")
    if fast and (table := _fast_generic(path, name, source, columns, turns, limit)) is not None:
        return table
    b = TableBuilder(str(path), skip_bad_rows)
    if name.endswith(".csv"):
        header, records = csv_records(path, b, id_column=source["id"])
        header_line = 1
    elif name.endswith(".parquet"):
        header, records, header_line = parquet_columns(path, b), parquet_records(path, b, limit), None
    elif name.endswith(".jsonl"):
        records, header, header_line = jsonl_records(path, b), None, None
    elif name.endswith(".json"):
        records, header, header_line = json_records(path, b), None, None
    else:
        raise b.fail(None, "unknown file type (expected .csv, .parquet, .jsonl or .json, optionally .gz)")
    if header is not None:
        require_columns(header, [source[c] for c in TURN_COLUMNS], b, header_line)
        if "id" in columns:
            require_columns(header, [source["id"]], b, header_line)
        if "label" in columns:
            require_columns(header, [source["label"]], b, header_line)
    json_cells = name.endswith(".csv") and turns == "json"
    for row, line, v in records:
        if limit is not None and row > limit:
            break
        rid: Any = v.get(source["id"], row) if (header is None or source["id"] in header) else row
        missing = next((source[c] for c in TURN_COLUMNS if source[c] not in v), None)
        if missing:
            b.problem(row, line, rid, missing, "missing")
            continue
        cells = {}
        for column in TURN_COLUMNS:
            try:
                value = v[source[column]]
                cells[column] = json_turns(value) if json_cells else plain_turns(
                    value.tolist() if hasattr(value, "tolist") else value
                )
            except ValueError as e:
                b.problem(row, line, rid, source[column], str(e))
                break
        if len(cells) < len(TURN_COLUMNS):
            continue
        label = None
        raw = v.get(source["label"])
        if raw is not None and str(raw).strip() != "":
            label = _LABELS.get(str(raw).strip().lower())
            if label is None:
                b.problem(row, line, rid, source["label"], f"label must be a, b or tie (or model_a, model_b), got {raw!r}")
                continue
        b.add(row, line, rid, **cells, label=label, **{c: v.get(source[c]) or None for c in META_COLUMNS})
    return b.build()
