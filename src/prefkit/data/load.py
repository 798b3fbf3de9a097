"""One entry point for every source format: `load_pairs(path, data_config)`.

`data.format: auto` looks at the file name and the columns: `chosen`/`rejected` JSON(L) is HH-RLHF; a CSV
with `prompt, response_a, response_b` is LMSYS, or WSDM Cup where it has one `winner` column and its first
prompt is plain text; a parquet with a `winner` column or plain-string turns is WSDM Cup, one with list turns
is LMSYS; anything else needs `data.format: generic` and a column mapping.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

from prefkit.config import DataConfig
from prefkit.data.arena import load_arena
from prefkit.data.generic import load_generic
from prefkit.data.hh_rlhf import load_hh_rlhf
from prefkit.data.readers import READ_ERRORS, cannot_read, content_problem, delimiter_problem
from prefkit.data.table import WINNER_COLUMNS, PairTable, TableBuilder
from prefkit.errors import PrefkitError


def _head(path: Path, n: int = 1 << 16) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(n).decode("utf-8", errors="replace")
    except READ_ERRORS as e:
        raise cannot_read(TableBuilder(str(path)), path, e) from None


def _json_list(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def detect_format(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    generic_hint = "set data.format=generic and map its columns with data.columns.<name>=<column>"
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except (OSError, ValueError) as e:
            raise TableBuilder(str(path)).fail(None, f"not a readable parquet file ({e})") from None
        if "winner" in schema.names:
            return "wsdm"
        if any(c in schema.names for c in WINNER_COLUMNS):
            return "lmsys"
        if "prompt" in schema.names:
            import pyarrow as pa

            return "lmsys" if pa.types.is_list(schema.field("prompt").type) else "wsdm"
        raise PrefkitError(f"{path}: cannot tell the format of this parquet file; {generic_hint}")
    head = _head(path)
    if not head.strip():  # (a file of 0 bytes is refused before detection)
        raise TableBuilder(str(path)).fail(None, "is empty (only blank lines)")
    if name.endswith((".jsonl", ".json")):
        first = head.lstrip().split("\n", 1)[0]
        try:
            obj = json.loads(first)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and {"chosen", "rejected"} <= obj.keys():
            return "hh_rlhf"
        raise PrefkitError(f"{path}: not HH-RLHF (no chosen/rejected keys on line 1); {generic_hint}")
    if name.endswith(".csv"):
        rows = csv.reader(io.StringIO(head, newline=""))
        try:
            header = next(rows)
        except (StopIteration, csv.Error):
            header = []
        try:
            first = next(rows, [])
        except csv.Error:  # (the row reader names it)
            first = []
        if {"prompt", "response_a", "response_b"} <= set(header):
            # one `winner` column: WSDM Cup's form (a turn of plain text a cell) unless the first prompt is a JSON list
            if "winner" in header and not set(WINNER_COLUMNS) & set(header) and len(first) == len(header) \
                    and not _json_list(first[header.index("prompt")]):
                return "wsdm"
            return "lmsys"
        problem = delimiter_problem(header)
        if problem:
            raise TableBuilder(str(path)).fail(None, problem, line=1)
        raise PrefkitError(f"{path}: not an LMSYS CSV (no prompt/response_a/response_b header); {generic_hint}")
    raise PrefkitError(f"{path}: unknown file type (expected .csv, .parquet, .jsonl, .json, optionally .gz)")


def load_pairs(path: str | Path, data: DataConfig, *, fast: bool = True) -> PairTable:
    """Load, validate and return a canonical table. Bad rows raise `DataError` unless skipped (and reported).

    CSV and parquet files are read by polars and checked by columns; a file with anything the fast path does
    not vouch for (and HH-RLHF and JSON(L) files, and a CSV read with `data.limit`) is read row by row, which
    names every bad row. `fast=False` reads every file row by row (benchmarks and tests compare the two)."""
    path = Path(path)
    if not path.exists():
        raise TableBuilder(str(path)).fail(None, "no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise TableBuilder(str(path)).fail(None, "is empty (0 bytes)")
    if path.is_file() and (problem := content_problem(path)):
        raise TableBuilder(str(path)).fail(None, problem)
    fmt = data.format if data.format != "auto" else detect_format(path)
    if fmt in ("lmsys", "wsdm"):
        return load_arena(path, fmt, data.skip_bad_rows, data.limit, fast=fast)
    if fmt == "hh_rlhf":
        return load_hh_rlhf(path, data.skip_bad_rows, data.limit, data.seed)
    return load_generic(path, data.columns, data.turns, data.skip_bad_rows, data.limit, fast=fast)
