"""The competition submission, one row per test id in the test file's order:
LMSYS `id,winner_model_a,winner_model_b,winner_tie` (probabilities), WSDM `id,winner` (model_a or model_b)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from prefkit.competition import COMPETITIONS, Competition
from prefkit.errors import DataError, PrefkitError, RowProblem
from prefkit.io import atomic_path

WSDM_WINNERS = ("model_a", "model_b")


def submission_columns(comp: Competition) -> tuple[str, ...]:
    """The submission file's header: `id` and the competition's probability columns (LMSYS), or `id,winner` (WSDM)."""
    return ("id", "winner") if comp.name == "wsdm" else ("id", *comp.columns)


def check_submission(path: str | Path, comp: Competition) -> int:
    """A submission file as Kaggle reads it, before it is uploaded: the competition's header (`submission_columns`),
    then every row: a non-empty id seen once, and values of the competition's form: LMSYS probabilities (numbers
    in [0, 1], not all 0: Kaggle rescales each row to sum to 1), WSDM `model_a` or `model_b`. Returns the rows;
    refuses (naming the file, and each bad row) anything else, e.g. the other competition's file."""
    path = Path(path)
    header = list(submission_columns(comp))
    if not path.is_file():
        raise PrefkitError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as e:
        raise PrefkitError(f"{path}: not a UTF-8 CSV file ({e})") from None
    want = ",".join(header)
    if not rows:
        raise PrefkitError(f"{path}: empty file; a {comp.name} submission has the header {want}")
    got = [c.strip() for c in rows[0]]
    if got != header:
        other = [c.name for c in COMPETITIONS.values() if c.name != comp.name and got == list(submission_columns(c))]
        hint = f": that is a {other[0]} submission, and this run is for {comp.name}" if other else ""
        raise PrefkitError(f"{path}: header {','.join(rows[0])!r} is not the {comp.name} submission's {want!r}{hint}")
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    n, line, rid = 0, 1, ""

    def bad(column: str | None, message: str) -> None:  # a problem of the row being read
        problems.append(RowProblem(str(path), n, line, rid or None, column, message))

    for line, row in enumerate(rows[1:], start=2):
        if not row:  # a blank line
            continue
        n += 1
        rid = row[0].strip()
        if len(row) != len(header):
            bad(None, f"{len(row)} cells, the header has {len(header)}")
            continue
        if not rid:
            bad("id", "empty id")
        elif rid in seen:
            bad("id", f"repeats the id of row {seen[rid]}")
        else:
            seen[rid] = n
        if comp.name == "wsdm":
            if row[1].strip() not in WSDM_WINNERS:
                bad("winner", f"{row[1]!r} is not {' or '.join(WSDM_WINNERS)}")
            continue
        values = []
        for column, cell in zip(header[1:], row[1:]):
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                bad(column, f"{cell!r} is not a probability (a number from 0 to 1)")
            values.append(v)
        if all(math.isfinite(v) for v in values) and sum(values) <= 0:
            bad(None, "every probability is 0")
    if not n:
        raise PrefkitError(f"{path}: the header and no rows; a {comp.name} submission has a row per test id")
    if problems:
        raise DataError(problems, hint=f"{path}: not a {comp.name} submission ({want}); refusing to submit it")
    return n


def write_submission(
    test_ids: Sequence[str], pred_ids: Sequence[str], probs: np.ndarray, path: str | Path, clip: float = 1e-6,
    comp: Competition = COMPETITIONS["lmsys"],
) -> pd.DataFrame:
    """Write the predictions of exactly the test ids, in the test file's order.

    Refuses (PrefkitError, exit 2) predictions with missing, extra or repeated ids, or rows that are not
    finite. LMSYS: probabilities clipped to [clip, 1 - clip], each row renormalised to sum to 1. WSDM: the
    more probable response (A on an exact tie of probabilities).
    """
    test_ids = [str(i) for i in test_ids]
    pred_ids = [str(i) for i in pred_ids]
    probs = np.asarray(probs, dtype=np.float64)
    k = len(comp.labels)
    if probs.shape != (len(pred_ids), k):
        raise PrefkitError(f"predictions have shape {probs.shape}, expected ({len(pred_ids)}, {k}) for {comp.name}")
    if len(set(pred_ids)) != len(pred_ids):
        dup = pd.Series(pred_ids)[pd.Series(pred_ids).duplicated()].iloc[0]
        raise PrefkitError(f"predictions repeat id {dup!r}; refusing to write {path}")
    missing = sorted(set(test_ids) - set(pred_ids))
    extra = sorted(set(pred_ids) - set(test_ids))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} test ids have no prediction (first: {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} predicted ids are not in the test file (first: {extra[0]!r})")
        raise PrefkitError(f"{'; '.join(parts)}; refusing to write {path}")
    if not np.isfinite(probs).all():
        raise PrefkitError(f"predictions hold NaN or infinite values; refusing to write {path}")
    if not 0.0 <= clip < 1.0 / 3:
        raise PrefkitError(f"predict.clip must be in [0, 1/3), got {clip}")
    order = pd.Series(range(len(pred_ids)), index=pred_ids)[test_ids].to_numpy()
    if comp.name == "wsdm":
        out = pd.DataFrame({"id": test_ids, "winner": np.array(WSDM_WINNERS)[probs[order].argmax(axis=1)]})
    else:
        p = np.clip(probs[order], clip, 1.0 - clip)
        p = p / p.sum(axis=1, keepdims=True)
        out = pd.DataFrame({"id": test_ids, **{c: p[:, i] for i, c in enumerate(comp.columns)}})
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, float_format="%.8f")
    return out
