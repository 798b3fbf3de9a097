"""Cross-validation folds: seeded StratifiedGroupKFold, grouped by the normalised prompt.

Rows that share a prompt (the same question put to several model pairs, frequent in arena data) always
land in the same fold, so a fold's score is never helped by having seen its prompt in training.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from prefkit.data.table import PairTable, normalise_prompt
from prefkit.errors import PrefkitError


def assign_folds(table: PairTable, n_splits: int, seed: int) -> np.ndarray:
    """Fold number (0..n_splits-1) of each row."""
    f = table.frame
    if not table.has_labels:
        raise PrefkitError(f"{table.source}: cross-validation needs a label on every row")
    if n_splits < 2 or n_splits > len(f):
        raise PrefkitError(f"cv.n_splits={n_splits} must be between 2 and the number of rows ({len(f)})")
    groups = f["prompt"].map(normalise_prompt).to_numpy()
    if len(set(groups)) < n_splits:
        raise PrefkitError(f"{table.source}: {len(set(groups))} distinct prompts cannot fill cv.n_splits={n_splits} folds")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.full(len(f), -1, dtype=np.int64)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(f)), f["label"].to_numpy(), groups)):
        folds[val] = k
    return folds
