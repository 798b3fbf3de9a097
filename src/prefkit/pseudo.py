"""Pseudo-labels: a trained run's (or blend's) probabilities for unlabelled pairs, kept where it is confident,
as extra training rows with soft targets (`train.pseudo_labels`).

The file is a CSV in the LMSYS form with the winner columns holding probabilities instead of 0/1:
`id, prompt, response_a, response_b, winner_model_a, winner_model_b[, winner_tie]` (turns as JSON lists, so
multi-turn pairs survive), plus `margin`. Being a probability CSV with ids, it is also a `train.soft_labels`
file and a `train.distill.teacher` source (`prefkit.predictions`).

Rows whose margin (the gap between the two most probable labels: |P(A) - P(B)| for A-or-B) is at most
`min_margin` are dropped and counted: WSDM Cup 2nd place dropped the pairs with |pA - pB| <= 0.03 from its ~95k
pseudo-labelled ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.competition import Competition
from prefkit.data.arena import load_arena
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
    return load_arena(path, "lmsys", skip_bad_rows=False, limit=None, labels=False)


def with_pseudo_rows(train: PairTable, path: str | None) -> PairTable:
    """The training rows, and after them the pseudo-labelled pairs of `path` (none when unset)."""
    if not path:
        return train
    extra = load_pseudo_rows(path)
    clash = pd.Index(extra.frame["id"]).intersection(pd.Index(train.frame["id"]))
    if len(clash):
        raise PrefkitError(f"train.pseudo_labels {path}: id {clash[0]!r} is also a labelled training row "
                           f"({len(clash)} such ids); pseudo-label pairs that are not in the training data")
    frame = pd.concat([train.frame, extra.frame], ignore_index=True)
    return PairTable(frame, train.source, train.skipped, train.repaired_cells, train.dropped_labels)
