"""Reading source files into records that keep their row and line numbers.

A record is `(row, line, values)`: `row` is the 1-based data row, `line` the physical line where the row
starts (None for parquet), `values` a dict of column -> raw value. Problems of one row go to the
`TableBuilder`; problems of the whole file raise at once.
"""

from __future__ import annotations

import csv
import gzip
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


def cannot_read(builder: TableBuilder, path: Path, e: BaseException) -> Exception:
    if isinstance(e, IsADirectoryError):
        return builder.fail(None, "is a folder, not a data file")
    if path.suffix == ".gz" and isinstance(e, (gzip.BadGzipFile, EOFError, zlib.error)):
        return builder.fail(None, f"not a valid gzip file ({e})")
    return builder.fail(None, f"cannot read file ({getattr(e, 'strerror', None) or e})")


READ_ERRORS = (OSError, EOFError, zlib.error)


def read_bytes(path: Path, builder: TableBuilder) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except READ_ERRORS as e:
        raise cannot_read(builder, path, e) from None


def decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text, and whether some bytes were not UTF-8 (kept as surrogate escapes to be reported per cell)."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", errors="surrogateescape"), True


def _open_text(path: Path, builder: TableBuilder, newline: str):
    """A streaming text handle. Bytes that are not UTF-8 come through as surrogate escapes, found per cell;
    reading the whole file into one str instead would cost 4 bytes a character as soon as one emoji appears."""
    kw = dict(encoding="utf-8-sig", errors="surrogateescape", newline=newline)
    try:
        return gzip.open(path, "rt", **kw) if path.suffix == ".gz" else open(path, "r", **kw)
    except READ_ERRORS as e:
        raise cannot_read(builder, path, e) from None


def _first_bad_byte(text: str) -> str | None:
    if text.isascii():  # O(1) in CPython: most cells end here
        return None
    m = _UNDECODABLE.search(text)
    return None if m is None else f"0x{ord(m.group()) - 0xDC00:02x}"


def csv_records(path: Path, builder: TableBuilder, id_column: str | None) -> tuple[list[str], Iterator[Record]]:
    fh = _open_text(path, builder, newline="")
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise builder.fail(None, "is empty (no header row)") from None
    except csv.Error as e:
        fh.close()
        raise builder.fail(None, f"not a readable CSV header ({e})", line=1) from None
    except READ_ERRORS as e:
        fh.close()
        raise cannot_read(builder, path, e) from None
    if _first_bad_byte(",".join(header)):
        fh.close()
        raise builder.fail(None, "the header is not valid UTF-8", line=1)

    def records() -> Iterator[Record]:
        row = 0
        with fh:
            while True:
                line = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    raise builder.fail(None, f"not readable as CSV ({e})", row=row + 1, line=line) from None
                except READ_ERRORS as e:
                    raise cannot_read(builder, path, e) from None
                if not cells:
                    continue  # a blank line is not a row
                row += 1
                values = dict(zip(header, cells))
                rid = values.get(id_column) if id_column else None
                if len(cells) != len(header):
                    builder.problem(row, line, rid, None, f"has {len(cells)} fields, the header has {len(header)}")
                    continue
                bad = next(((c, b) for c, v in values.items() if (b := _first_bad_byte(v))), None)
                if bad:
                    builder.problem(row, line, rid, bad[0], f"not valid UTF-8 (byte {bad[1]})")
                    continue
                yield row, line, values

    return header, records()


def jsonl_records(path: Path, builder: TableBuilder) -> Iterator[Record]:
    # newline="\n": split on "\n" only, never inside text on "\r" or U+2028
    fh = _open_text(path, builder, newline="\n")
    row = 0
    with fh:
        lines = enumerate(fh, start=1)
        while True:
            try:
                line_no, line = next(lines)
            except StopIteration:
                return
            except READ_ERRORS as e:
                raise cannot_read(builder, path, e) from None
            if not line.strip():
                continue
            row += 1
            if b := _first_bad_byte(line):
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


# Files whose bytes are another kind than their name says: each of these starts with its own mark
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"PAR1", "parquet"), (b"PK\x03\x04", "zip"), (b"\xff\xfe", "utf16"),
          (b"\xfe\xff", "utf16"))


def _kind(head: bytes) -> str | None:
    return next((kind for mark, kind in _MAGIC if head.startswith(mark)), None)


def content_problem(path: Path) -> str | None:
    """What a file is, where its first bytes say it is not what its name says (a gzip, parquet, zip or UTF-16 file
    named .csv is otherwise read as text and refused for its header), and what to do about it; None if they agree.
    A `.gz` file is looked into: its name says what the bytes inside are."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if path.suffix == ".gz" and head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as fh:
                head = fh.read(4)
    except READ_ERRORS:
        return None  # the reader says what is wrong
    kind = _kind(head)
    gz = path.suffix == ".gz"
    name = path.name.removesuffix(".gz")
    inside = "holds" if gz else "is"
    if kind == "gzip":
        if gz or name.endswith(".parquet"):
            return f"{inside} gzip-compressed data: decompress it (gunzip) and give the file it holds"
        return f"is a gzip file: name it {path.name}.gz (prefkit reads .csv.gz, .jsonl.gz and .json.gz)"
    if kind == "parquet" and not name.endswith(".parquet"):
        return f"{inside} a parquet file: {'decompress it and ' if gz else ''}name it {Path(name).stem}.parquet"
    if kind == "zip":
        return (f"{inside} a zip archive (a Kaggle download, or an Excel workbook): unzip it and give the file inside "
                "(an Excel workbook: save it as CSV, UTF-8)")
    if kind == "utf16":
        return (f"{inside} UTF-16 text (its first bytes are a UTF-16 byte-order mark): save it as UTF-8 (pandas: "
                "to_csv(path, encoding='utf-8'); Excel: CSV UTF-8)")
    return None


OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def delimiter_problem(header: list[str]) -> str | None:
    """What is wrong with a CSV header read as one column: the file uses another delimiter."""
    if len(header) != 1:
        return None
    for d, name in OTHER_DELIMITERS.items():
        if header[0].count(d) >= 2:
            return (f"the header was read as one column ({header[0][:120]!r}): the file is separated by {name}, "
                    f"prefkit reads comma-separated CSV; save it with commas (pandas: to_csv(sep=','))")
    return None


def require_columns(columns: list[str], needed: list[str], builder: TableBuilder, line: int | None = None) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        problem = delimiter_problem(columns)
        if problem:
            raise builder.fail(None, problem, line=line)
        raise builder.fail(missing[0], f"missing column (the file has: {', '.join(map(str, columns))})", line=line)
