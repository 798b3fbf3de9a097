"""User-facing errors.

Anything raised as a `PrefkitError` is a user mistake (a bad file, a bad config key): the CLI prints its
message and exits with code 2, without a traceback. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class PrefkitError(Exception):
    """A user mistake, reported as one clear message and exit code 2."""


@dataclass(frozen=True)
class RowProblem:
    """One bad row of a data file: where it is and what is wrong with it."""

    file: str
    row: int | None  # 1-based data row (header excluded); None for file-level problems
    line: int | None  # 1-based physical line where the row starts, where the format has lines
    id: str | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            loc = f"row {self.row}"
            extra = []
            if self.id is not None:
                extra.append(f"id {self.id!r}")
            if self.line is not None:
                extra.append(f"line {self.line}")
            if extra:
                loc += f" ({', '.join(extra)})"
            where.append(loc)
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{': '.join(where)}: {self.message}"


class DataError(PrefkitError):
    """One or more bad rows (or a bad file). Each problem is listed once."""

    MAX_SHOWN = 20

    def __init__(self, problems: list[RowProblem], hint: str | None = None):
        self.problems = problems
        shown = [str(p) for p in problems[: self.MAX_SHOWN]]
        if len(problems) > self.MAX_SHOWN:
            shown.append(f"... and {len(problems) - self.MAX_SHOWN} more bad rows")
        if hint:
            shown.append(hint)
        super().__init__("\n".join(shown))
