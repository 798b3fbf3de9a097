"""Pseudo-labels: a trained run's (or blend's) probabilities for unlabelled pairs, kept where it is confident,
as extra training rows with soft targets (`train.pseudo_labels`).

The file is a CSV in the LMSYS form with the winner columns holding probabilities instead of 0/1:
`id, prompt, response_a, response_b, winner_model_a, winner_model_b[, winner_tie]` (turns as JSON lists, so
multi-turn pairs survive), plus `margin`. Being a probability CSV with ids, it is also a `train.soft_labels`
file and a `train.distill.teacher` source (`prefkit.toolbox.predictions`).

Rows whose margin (the gap between the two most probable labels: |P(A) - P(B)| for A-or-B) is at most
`min_margin` are dropped and counted: WSDM Cup 2nd place dropped the pairs with |pA - pB| <= 0.03 from its ~95k
pseudo-labelled ones.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.competition import Competition
from prefkit.data.arena import load_arena
from prefkit.data.readers import content_problem
from prefkit.data.table import TURN_COLUMNS, PairTable
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path
from prefkit.metrics import margins


def write_pseudo_labels(path: str | Path, table: PairTable, probs: np.ndarray, comp: Competition,
                        min_margin: float = 0.0) -> dict:
    """Write the rows with margin > `min_margin`; returns how many were kept and dropped."""
    m = margins(probs)
    keep = m > min_margin if min_margin > 0 else np.ones(len(m), bool)
    f = table.frame[keep]
    frame = pd.DataFrame({"id": f["id"].to_numpy(),
                          **{c: [json.dumps(t, ensure_ascii=False) for t in f[c]] for c in TURN_COLUMNS},
                          **{c: probs[keep, i] for i, c in enumerate(comp.columns)}, "margin": m[keep]})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
    return {"rows": len(table), "kept": int(keep.sum()), "dropped": int((~keep).sum()), "min_margin": min_margin}


def load_pseudo_rows(path: str | Path) -> PairTable:
    """The pairs of a pseudo-label file, unlabelled (their targets are read by `distill.row_targets`)."""
    path = Path(path)
    if not path.is_file():
        raise PrefkitError(f"train.pseudo_labels {path}: no such file")
    problem = content_problem(path)  # a gzip, parquet, zip or UTF-16 file under a .csv name: say what it is
    if problem:
        raise PrefkitError(f"train.pseudo_labels {path}: {problem}")
    return load_arena(path, "lmsys", skip_bad_rows=False, limit=None, labels=False)


def pair_keys(table: PairTable, swapped: bool = False) -> list[str]:
    """One key per row: a hash of its prompt and responses (every turn, Unicode NFKC, whitespace collapsed), of
    the A/B-swapped pair with `swapped`. The same pair under another id, or re-exported, has the same key."""
    def text(turns) -> str:
        turns = [turns] if turns is None or isinstance(turns, str) else turns
        return "\x1f".join(" ".join(unicodedata.normalize("NFKC", t or "").split()) for t in turns)

    a, b = ("response_b", "response_a") if swapped else ("response_a", "response_b")
    f = table.frame
    return [hashlib.sha256("\x1e".join((text(p), text(x), text(y))).encode("utf-8", "surrogatepass")).hexdigest()
            for p, x, y in zip(f["prompt"], f[a], f[b])]


def checked_pseudo_rows(path: str | Path, labelled: PairTable, by_content: bool = True, shown: int = 5) -> PairTable:
    """The pairs of a pseudo-label file, refused where any is a row of `labelled`, by id and (`by_content`) by
    content: `pair_keys`, A and B in either order, so the same pair under another id is caught too. cv checks
    against every labelled row, of every fold, before any fold trains: a pseudo-labelled copy of a fold's
    validation row would train that fold."""
    extra = load_pseudo_rows(path)
    clash = extra.frame["id"].isin(set(labelled.frame["id"])).to_numpy()
    if by_content:
        known = set(pair_keys(labelled)) | set(pair_keys(labelled, swapped=True))
        clash = clash | np.array([k in known for k in pair_keys(extra)], dtype=bool)
    if clash.any():
        rows = extra.frame[clash]
        where = ", ".join(f"row {r} (id {i!r})" for r, i in zip(rows["row"].head(shown), rows["id"].head(shown)))
        how = ("the same id, or the same prompt and responses with A and B in either order" if by_content
               else "the same id")
        raise PrefkitError(
            f"train.pseudo_labels {path}: {int(clash.sum())} of its {len(extra)} rows are each also a labelled "
            f"training row of {labelled.source} ({how}): {where}{' ...' if clash.sum() > shown else ''}; "
            "pseudo-label pairs that are not in the training data (in cv, a pseudo-labelled copy of a validation "
            "row trains its own fold)")
    return extra


def join_pseudo_rows(train: PairTable, extra: PairTable | None) -> PairTable:
    """The training rows, and after them the (checked) pseudo-labelled pairs (none when None)."""
    if extra is None:
        return train
    frame = pd.concat([train.frame, extra.frame], ignore_index=True)
    return PairTable(frame, train.source, train.skipped, train.repaired_cells, train.dropped_labels)


def with_pseudo_rows(train: PairTable, path: str | None) -> PairTable:
    """`prefkit train`: all labelled rows `train`, and after them the pseudo-labelled pairs of `path` (none when
    unset), refused where one has the id of a labelled row. (No row is held out there, so a pair under a new id
    leaks into nothing; cv checks content too, with `checked_pseudo_rows`, against every fold's rows.)"""
    if not path:
        return train
    return join_pseudo_rows(train, checked_pseudo_rows(path, train, by_content=False))
