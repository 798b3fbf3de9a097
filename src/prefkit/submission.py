"""The competition submission, one row per test id in the test file's order:
LMSYS `id,winner_model_a,winner_model_b,winner_tie` (probabilities), WSDM `id,winner` (model_a or model_b)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from prefkit.competition import COMPETITIONS, Competition
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path

WSDM_WINNERS = ("model_a", "model_b")


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
