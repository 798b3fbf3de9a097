"""Paired comparison of runs' out-of-fold predictions of the same rows: is one run better than another beyond
the noise of which rows happened to be scored?

Both runs predicted every row, so the difference is taken row by row (run minus baseline: a row's log loss, and
whether its most probable label is right) and its mean given with the standard error of that mean,
std(d) / sqrt(n): the noise the rows themselves share cancels, which two separate CV scores with their own
errors would keep. The same per fold. A difference beyond 2 standard errors is a verdict ("better by",
"worse by"), one within them is "within noise". Rows are taken as independent: rows of one prompt sit in one
fold and are alike, so the error is, if anything, a little small.

`align` is the guard: runs of other rows (an id missing or extra) or other folds (an id in another fold) are
refused, as their difference would mix the runs with the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prefkit.errors import PrefkitError
from prefkit.metrics import clip_normalise, label_ids

NOISE = 2.0  # standard errors a difference must pass to be called better or worse


def row_scores(probs: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Each row's log loss (clipped and renormalised as `prefkit.metrics.score`, whose log loss is their mean)
    and whether its most probable label is the label (1.0 or 0.0)."""
    y = label_ids(labels)
    p = clip_normalise(probs)
    return -np.log(p[np.arange(len(y)), y]), (p.argmax(axis=1) == y).astype(np.float64)


def mean_se(d: np.ndarray) -> dict:
    """The mean of per-row differences and its standard error (None with fewer than two rows)."""
    n = len(d)
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else None
    return {"mean": float(d.mean()) if n else None, "se": se}


def paired(base: np.ndarray, probs: np.ndarray, labels, folds) -> dict:
    """`probs` against `base` (both of the rows of `labels`, in one order): the per-row differences of log loss
    and accuracy (run minus baseline: a negative log loss difference is better) with their standard errors, over
    all rows and per fold."""
    loss0, right0 = row_scores(base, labels)
    loss1, right1 = row_scores(probs, labels)
    dl, da = loss1 - loss0, right1 - right0
    folds = np.asarray(folds)
    per_fold = [{"fold": int(k), "rows": int((folds == k).sum()),
                 "logloss": mean_se(dl[folds == k]), "accuracy": mean_se(da[folds == k])} for k in np.unique(folds)]
    return {"rows": len(dl), "logloss": mean_se(dl), "accuracy": mean_se(da), "folds": per_fold}


def verdict(name: str, baseline: str, diff: dict) -> str:
    """A plain sentence: better or worse by the mean log loss difference when it is beyond `NOISE` standard
    errors, else within noise; the accuracy difference beside it."""
    m, se = diff["logloss"]["mean"], diff["logloss"]["se"]
    acc = diff["accuracy"]
    accuracy = f"accuracy {acc['mean']:+.4f} ± {acc['se']:.4f}" if acc["se"] is not None else ""
    if se is None:
        return f"{name} against {baseline}: no error bar on {diff['rows']} row (log loss {m:+.4f})"
    if abs(m) > NOISE * se:
        return (f"{name} is {'better' if m < 0 else 'worse'} than {baseline} by {abs(m):.4f} ± {se:.4f} log loss "
                f"({accuracy})")
    return f"{name} against {baseline}: within noise ({m:+.4f} ± {se:.4f} log loss; {accuracy})"


def _few(ids) -> str:
    shown = ", ".join(repr(str(i)) for i in list(ids)[:3])
    return shown + (", ..." if len(ids) > 3 else "")


def align(frames: list[pd.DataFrame], names: list[str]) -> list[pd.DataFrame]:
    """Out-of-fold frames (`prefkit.toolbox.predictions.read_logits`: indexed by id, with fold and label) in the
    first one's row order. Refused: another run's rows (ids missing or extra, counted and a few named), folds (an
    id in another fold) or labels."""
    base, first = frames[0], names[0]
    out = [base]
    for name, f in zip(names[1:], frames[1:]):
        missing, extra = base.index.difference(f.index), f.index.difference(base.index)
        if len(missing) or len(extra):
            raise PrefkitError(
                f"{name}: predicts other rows than {first}: {len(missing)} of {first}'s rows missing"
                f"{' (' + _few(missing) + ')' if len(missing) else ''}, {len(extra)} extra"
                f"{' (' + _few(extra) + ')' if len(extra) else ''}; compare runs of the same data")
        f = f.loc[base.index]
        for column, what in (("fold", "in another fold"), ("label", "with another label")):
            other = np.flatnonzero(f[column].astype(str).to_numpy() != base[column].astype(str).to_numpy())
            if len(other):
                i = other[0]
                raise PrefkitError(
                    f"{name}: {len(other)} row{'s' if len(other) > 1 else ''} {what} than in {first} (id "
                    f"{base.index[i]!r}: {column} "
                    f"{f[column].iloc[i]} here, {base[column].iloc[i]} there); compare runs of the same "
                    f"{'folds (data, cv.seed, cv.n_splits)' if column == 'fold' else 'data'}")
        out.append(f)
    return out
