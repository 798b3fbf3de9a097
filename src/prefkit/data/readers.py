"""Reading source files into records that keep their row and line numbers.

A record is `(row, line, values)`: `row` is the 1-based data row, `line` the physical line where the row
starts (None for parquet), `values` a dict of column -> raw value. Problems of one row go to the
`TableBuilder`; problems of the whole file raise at once.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any, Iterator

from prefkit.data.table import TableBuilder

Record = tuple[int, int | None, dict[str, Any]]

# After decoding with errors="surrogateescape", each byte that is not UTF-8 becomes one of these.
_UNDECODABLE = re.compile("[\udc80-\udcff]")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # LMSYS cells reach hundreds of thousands of characters


def read_bytes(path: Path, builder: TableBuilder) -> bytes:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise builder.fail(None, "is a folder, not a data file") from None
    except OSError as e:
        raise builder.fail(None, f"cannot read file ({e.strerror or e})") from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise builder.fail(None, f"not a valid gzip file ({e})") from None
    return data


def decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text, and whether some bytes were not UTF-8 (kept as surrogate escapes to be reported per cell)."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", errors="surrogateescape"), True


def _first_bad_byte(text: str) -> str | None:
    m = _UNDECODABLE.search(text)
    return None if m is None else f"0x{ord(m.group()) - 0xDC00:02x}"


def csv_records(path: Path, builder: TableBuilder, id_column: str | None) -> tuple[list[str], Iterator[Record]]:
    text, has_bad_bytes = decode(read_bytes(path, builder))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise builder.fail(None, "is empty (no header row)") from None
    except csv.Error as e:
        raise builder.fail(None, f"not a readable CSV header ({e})", line=1) from None
    if has_bad_bytes and _first_bad_byte(",".join(header)):
        raise builder.fail(None, "the header is not valid UTF-8", line=1)

    def records() -> Iterator[Record]:
        row = 0
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise builder.fail(None, f"not readable as CSV ({e})", row=row + 1, line=line) from None
            if not cells:
                continue  # a blank line is not a row
            row += 1
            values = dict(zip(header, cells))
            rid = values.get(id_column) if id_column else None
            if len(cells) != len(header):
                builder.problem(row, line, rid, None, f"has {len(cells)} fields, the header has {len(header)}")
                continue
            if has_bad_bytes:
                bad = next(((c, b) for c, v in values.items() if (b := _first_bad_byte(v))), None)
                if bad:
                    builder.problem(row, line, rid, bad[0], f"not valid UTF-8 (byte {bad[1]})")
                    continue
            yield row, line, values

    return header, records()


def jsonl_records(path: Path, builder: TableBuilder) -> Iterator[Record]:
    text, has_bad_bytes = decode(read_bytes(path, builder))
    row = 0
    # split on "\n" only: str.splitlines() would also split inside text on U+2028 and friends
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row += 1
        if has_bad_bytes and (b := _first_bad_byte(line)):
            builder.problem(row, line_no, None, None, f"not valid UTF-8 (byte {b})")
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as e:
            builder.problem(row, line_no, None, None, f"not valid JSON ({e.msg} at character {e.pos + 1})")
            continue
        if not isinstance(values, dict):
            builder.problem(row, line_no, None, None, f"expected a JSON object, got {type(values).__name__}")
            continue
        yield row, line_no, values


def json_records(path: Path, builder: TableBuilder) -> Iterator[Record]:
    """A .json file holding one list of objects."""
    text, has_bad_bytes = decode(read_bytes(path, builder))
    if has_bad_bytes and (b := _first_bad_byte(text)):
        raise builder.fail(None, f"not valid UTF-8 (byte {b})")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise builder.fail(None, f"not valid JSON ({e.msg})", line=e.lineno) from None
    if not isinstance(items, list):
        raise builder.fail(None, "expected a JSON list of objects")
    for row, values in enumerate(items, start=1):
        if not isinstance(values, dict):
            builder.problem(row, None, None, None, f"expected a JSON object, got {type(values).__name__}")
            continue
        yield row, None, values


def parquet_columns(path: Path, builder: TableBuilder) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError) as e:  # pyarrow raises ArrowInvalid (a ValueError) on a corrupt file
        raise builder.fail(None, f"not a readable parquet file ({e})") from None


def parquet_records(path: Path, builder: TableBuilder, limit: int | None = None) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise builder.fail(None, f"not a readable parquet file ({e})") from None
    if limit is not None:
        table = table.slice(0, limit)
    for row, values in enumerate(table.to_pylist(), start=1):
        yield row, None, values


def require_columns(columns: list[str], needed: list[str], builder: TableBuilder, line: int | None = None) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise builder.fail(missing[0], f"missing column (the file has: {', '.join(map(str, columns))})", line=line)
