"""The canonical table of preference pairs, and the one place where rows are validated.

Every loader turns its source rows into calls of `TableBuilder.add` (or `TableBuilder.problem` for what only
the loader can see, such as a cell that is not JSON). The builder checks each row, reports each bad row
once with its file, row, line, id and column, and either rejects the file or, with `skip_bad_rows`, skips
and counts the bad rows.

Columns of `PairTable.frame`:
    id          str
    prompt      list[str | None]   one element per turn
    response_a  list[str | None]   aligned with prompt's turns
    response_b  list[str | None]
    label       "a" | "b" | "tie" | None (None for test data)
    model_a, model_b, language    str | None (optional metadata)
    row, line   where the row came from (1-based data row, physical line or None)
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import TYPE_CHECKING, Any

from prefkit.errors import DataError, RowProblem

if TYPE_CHECKING:
    # imported where a frame is made: pandas (with pyarrow) weighs about 70 MB, which `prefkit data check` of a
    # table read by polars never needs
    import pandas as pd

LABELS = ("a", "b", "tie")
# the probability (and LMSYS label) columns, in LABELS order: training files, OOF, soft labels, submissions
WINNER_COLUMNS = ("winner_model_a", "winner_model_b", "winner_tie")
SWAP_INDEX = [1, 0, 2]  # LABELS of the A/B-swapped row: A and B exchange, tie stays
TURN_COLUMNS = ("prompt", "response_a", "response_b")
META_COLUMNS = ("model_a", "model_b", "language")
COLUMNS = ("id", *TURN_COLUMNS, "label", *META_COLUMNS, "row", "line")
SWAPPED_LABEL = {label: LABELS[i] for label, i in zip(LABELS, SWAP_INDEX)}  # a -> b, b -> a, tie -> tie


# What Python's str.isspace() calls whitespace (str.strip() and str.split() use it): Unicode White_Space and
# the four information separators \x1c-\x1f. Given to polars explicitly, whose own idea of whitespace lacks those four.
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


class PairTable:
    """The canonical table. `frame` is a pandas DataFrame (the columns above; turn cells are Python lists).

    A table read by the polars fast path holds its rows as a polars DataFrame (`columnar`, text in Arrow memory)
    and builds `frame` on first use: `prefkit data check` (counts by columns, tokens a chunk of rows at a time via
    `turns`) never makes a Python string of every turn. Once built, `frame` is the table (callers may change it)
    and the polars copy is let go.
    """

    def __init__(self, frame: pd.DataFrame | None = None, source: str = "", skipped: list[RowProblem] | None = None,
                 repaired_cells: int = 0, dropped_labels: int = 0, *, polars: Any = None, read_by: str = "rows"):
        if (frame is None) == (polars is None):
            raise ValueError("a PairTable needs a pandas frame or a polars frame (one of them)")
        self._frame = frame
        self._polars = polars
        self.source = source
        self.skipped: list[RowProblem] = list(skipped or [])
        self.repaired_cells = repaired_cells  # cells whose lone UTF-16 surrogates were replaced by U+FFFD
        self.dropped_labels = dropped_labels  # rows dropped because the competition has not their label (data.ties=drop)
        self.read_by = read_by  # "polars" (the column-wise fast path) or "rows" (the row reader)

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = polars_to_pandas(self._polars)
            self._polars = None
        return self._frame

    @frame.setter
    def frame(self, value: pd.DataFrame) -> None:
        self._frame, self._polars = value, None

    @property
    def columnar(self):
        """The polars DataFrame that holds the rows (turn columns `List(String)`), or None once pandas holds them."""
        return self._polars

    def polars(self):
        """The rows as a polars DataFrame: the fast path's own, or a copy made from `frame`."""
        return self._polars if self._polars is not None else pandas_to_polars(self._frame)

    def turns(self, column: str, start: int, stop: int) -> list:
        """The cells of `column` in rows [start, stop) as Python lists, from whichever frame holds the rows: a
        reader of every row (token counts) makes Python strings a chunk at a time."""
        if self._polars is not None:
            return self._polars[column].slice(start, stop - start).to_list()
        return list(self._frame[column].iloc[start:stop])

    def __len__(self) -> int:
        return self._polars.height if self._polars is not None else len(self._frame)

    def __repr__(self) -> str:
        return f"PairTable({self.source!r}, {len(self)} rows, read by {self.read_by})"

    def subset(self, rows: Any) -> PairTable:
        """The rows that `rows` picks (a boolean mask, or positions in the order given) as a table numbered from 0.

        The one way to take part of a table: what reading the file found (its source, the bad rows skipped, the
        cells repaired, the labels dropped) describes the file, so every part keeps it."""
        import numpy as np

        rows = np.asarray(rows)
        frame = self.frame[rows] if rows.dtype == bool else self.frame.iloc[rows.astype(np.intp)]  # ([] is float)
        return PairTable(frame.reset_index(drop=True), self.source, self.skipped, self.repaired_cells,
                         self.dropped_labels)

    @property
    def has_labels(self) -> bool:
        if self._polars is not None:
            return self._polars.height > 0 and self._polars["label"].null_count() == 0
        return len(self.frame) > 0 and bool(self.frame["label"].notna().all())

    def skipped_report(self) -> str:
        if not self.skipped:
            return ""
        ids = [p.id if p.id is not None else f"row {p.row}" for p in self.skipped]
        shown = ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")
        return f"{self.source}: skipped {len(self.skipped)} bad rows: {shown}"


def polars_to_pandas(f) -> pd.DataFrame:
    """The pandas frame the row reader builds, from the fast path's polars frame: Python lists in the turn
    cells, None for missing values, and the same column types (the constructor infers them alike)."""
    import pandas as pd

    if f.height == 0:
        return pd.DataFrame([], columns=list(COLUMNS))
    return pd.DataFrame({c: f[c].to_list() for c in COLUMNS}, columns=list(COLUMNS))


def pandas_to_polars(frame: pd.DataFrame):
    """A polars copy of a pandas table (turn cells: lists of str or None; metadata: str or None)."""
    import polars as pl

    def text(values) -> list:
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]

    turns = pl.List(pl.String)
    columns = {"id": pl.Series("id", text(frame["id"]), dtype=pl.String)}
    columns.update({c: pl.Series(c, [list(t) for t in frame[c]], dtype=turns) for c in TURN_COLUMNS})
    columns.update({c: pl.Series(c, text(frame[c]) if c in frame else [None] * len(frame), dtype=pl.String)
                    for c in ("label", *META_COLUMNS)})
    return pl.DataFrame(columns)


_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_surrogates(text: str) -> tuple[str, bool]:
    """Replace lone UTF-16 surrogates (valid JSON escapes, invalid Unicode) with U+FFFD.

    JSON decoding already joins well-formed surrogate pairs, so every surrogate left in a str is lone;
    tokenizers (Rust) refuse such strings outright."""
    if text.isascii():
        return text, False
    fixed, n = _SURROGATE.subn("\ufffd", text)
    return fixed, n > 0


def id_text(value: Any) -> str:
    """An id as text, as it was given: CSV cells are text already; a number keeps its digits, and a float
    column of whole numbers (pandas stores an integer column that had a missing value as float) gives "7",
    not "7.0", so the ids of a submission match the competition's."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class TableBuilder:
    def __init__(self, file: str, skip_bad_rows: bool = False):
        self.file = file
        self.skip_bad_rows = skip_bad_rows
        self.problems: list[RowProblem] = []
        self._bad_rows: set[int] = set()
        self._rows: list[dict[str, Any]] = []
        self._repaired = 0

    # -- problems -------------------------------------------------------------------------------------
    def problem(self, row: int | None, line: int | None, id: Any, column: str | None, message: str) -> None:
        """Record a bad row. Only the first problem of a row is kept, so each bad row is reported once."""
        if row is not None:
            if row in self._bad_rows:
                return
            self._bad_rows.add(row)
        self.problems.append(RowProblem(self.file, row, line, None if id is None else id_text(id), column, message))

    def fail(self, column: str | None, message: str, row: int | None = None, line: int | None = None) -> DataError:
        """A problem with the whole file (unreadable, a missing column): always fatal."""
        return DataError([RowProblem(self.file, row, line, None, column, message)])

    # -- rows -----------------------------------------------------------------------------------------
    def _turns(self, value: Any, column: str, row: int, line: int | None, id: Any) -> list | None:
        if not isinstance(value, list):
            self.problem(row, line, id, column, f"expected a list of turns, got {type(value).__name__}")
            return None
        out = []
        for i, turn in enumerate(value):
            if turn is None:
                out.append(None)
            elif isinstance(turn, str):
                turn, fixed = repair_surrogates(turn)
                self._repaired += fixed
                out.append(turn)
            else:
                self.problem(row, line, id, column, f"turn {i + 1} is a {type(turn).__name__}, not a string or null")
                return None
        return out

    def add(
        self,
        row: int,
        line: int | None,
        id: Any,
        prompt: Any,
        response_a: Any,
        response_b: Any,
        label: str | None,
        model_a: Any = None,
        model_b: Any = None,
        language: Any = None,
    ) -> None:
        if row in self._bad_rows:
            return
        if id is None or (isinstance(id, str) and not id.strip()):
            self.problem(row, line, None, "id", "empty id")
            return
        turns = {}
        for column, value in zip(TURN_COLUMNS, (prompt, response_a, response_b)):
            turns[column] = self._turns(value, column, row, line, id)
            if turns[column] is None:
                return
        n = len(turns["prompt"])
        for column in ("response_a", "response_b"):
            if not turns[column]:  # an empty response written as []: null turns aligned with the prompt
                turns[column] = [None] * n
            if len(turns[column]) != n:
                self.problem(row, line, id, column, f"has {len(turns[column])} turns but prompt has {n}")
                return
        if label is not None and label not in LABELS:
            raise ValueError(f"loader produced label {label!r}")  # loaders map labels; a bug if not
        self._rows.append(
            {
                "id": id_text(id),
                **turns,
                "label": label,
                "model_a": None if model_a is None else str(model_a),
                "model_b": None if model_b is None else str(model_b),
                "language": None if language is None else str(language),
                "row": row,
                "line": line,
            }
        )

    def build(self) -> PairTable:
        seen: dict[str, dict] = {}
        rows = []
        for r in self._rows:
            first = seen.get(r["id"])
            if first is not None:
                where = f"row {first['row']}" + (f", line {first['line']}" if first["line"] else "")
                self.problem(r["row"], r["line"], r["id"], "id", f"duplicate id, first seen at {where}")
                continue
            seen[r["id"]] = r
            rows.append(r)
        self.problems.sort(key=lambda p: (p.row is None, p.row or 0))
        if self.problems and not self.skip_bad_rows:
            raise DataError(
                self.problems,
                hint=f"{len(self.problems)} bad rows; set data.skip_bad_rows=true to skip them (they are reported)",
            )
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        return PairTable(frame=frame, source=self.file, skipped=list(self.problems), repaired_cells=self._repaired)


def swap_ab(table: PairTable) -> PairTable:
    """The same pairs with A and B exchanged (and labels swapped): augmentation and test-time use."""
    f = table.frame.copy()
    f["response_a"], f["response_b"] = table.frame["response_b"], table.frame["response_a"]
    f["model_a"], f["model_b"] = table.frame["model_b"], table.frame["model_a"]
    f["label"] = [SWAPPED_LABEL.get(x) for x in table.frame["label"]]
    return PairTable(frame=f, source=table.source, skipped=table.skipped, repaired_cells=table.repaired_cells)


# Unicode's format characters (category Cf of Python's unicodedata): zero-width spaces and joiners (U+200B-U+200D,
# U+2060), the byte-order mark (U+FEFF), the soft hyphen, bidirectional marks, tags. Invisible, so a prompt pasted
# with one looks the same as without. A regex class that Python and polars both read (tests check it).
FORMAT_CHARS = ("[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
                "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
                "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")
_FORMAT = re.compile(FORMAT_CHARS)


def _normal_turn(text: str) -> str:
    if not text.isascii():  # (ASCII text holds no format character, and NFKC changes none of it)
        text = unicodedata.normalize("NFKC", _FORMAT.sub("", text))
    return " ".join(text.lower().split())


def normalise_prompt(turns: list) -> str:
    """The grouping key of a prompt (folds, `data check`'s distinct prompts): each turn without its format
    characters, in NFKC form (full-width letters and digits as ASCII ones, ligatures as letters), lower-cased,
    its whitespace runs made one space; the turns that are not then empty joined by a space. Copies of a prompt
    that differ only there are one prompt: in two folds, the same prompt would train and validate.

    Lower-cased, not case-folded: polars, which counts the distinct prompts of `data check`, has no case folding
    (the two differ on a few letters: German sharp s, Greek final sigma, Cherokee)."""
    return " ".join(n for t in turns if t and (n := _normal_turn(t)))
