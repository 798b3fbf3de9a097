"""Prediction files: the one place that writes and reads a run's predictions as something another run can use
(a teacher for distillation, a member of a blend, the source of pseudo-labels, soft labels).

Written by every job that predicts (`Predictions.write`), beside the rounded probabilities (`oof.csv`: id, fold,
label and the competition's columns; `probabilities.csv`: id and the columns; both to 6 decimals, for people):
    oof_logits.csv   cv and blend: id, fold, label, logit_a, logit_b[, logit_tie] of the out-of-fold rows
    logits.csv       predict and blend: id, logit_a, logit_b[, logit_tie] of the test rows
    predict_stats.json  predict: its statistics and, under "run", the run that predicted (`run_record`)
The logits are the natural log of the (fold- and TTA-averaged) probabilities, at full precision: a teacher's
softmax(logits / T) is then exact for any temperature, where rounded probabilities lose the small ones.

A source (`train.distill.teacher`, `train.soft_labels`, `prefkit blend`) is a run or predict folder (its
oof_logits.csv, else logits.csv) or a CSV file holding `id` and either the logit columns or the competition's
probability columns (winner_model_a, ...; each row summing to 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from prefkit.competition import Competition
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path
from prefkit.metrics import probabilities

OOF_FILE = "oof_logits.csv"
TEST_FILE = "logits.csv"
RECORD_FILE = "predict_stats.json"  # a predict folder's statistics, and the run that predicted (`run_record`)
EPS = 1e-12  # log(0) guard: a probability of exactly 0 becomes log(1e-12) = -27.6


def logit_columns(comp: Competition) -> list[str]:
    return [f"logit_{label}" for label in comp.labels]


def to_logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))


def write_logits(path: Path, ids: Sequence[str], probs: np.ndarray, comp: Competition, **extra) -> None:
    """id, any `extra` columns (fold, label), then the logit columns."""
    logits = to_logits(probs)
    frame = pd.DataFrame({"id": list(ids), **extra, **{c: logits[:, i] for i, c in enumerate(logit_columns(comp))}})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


@dataclass(frozen=True)
class Predictions:
    """A job's predictions of some rows: their ids and probabilities over the competition's labels, and, for
    out-of-fold predictions (cv, repredict, blend), each row's fold and label."""

    comp: Competition
    ids: Sequence[str]
    probs: np.ndarray
    fold: np.ndarray | None = None
    label: np.ndarray | None = None

    def write(self, folder: Path) -> None:
        """Out-of-fold predictions as oof.csv and OOF_FILE, others as probabilities.csv and TEST_FILE (each file
        whole or not at all)."""
        p, columns = self.probs, self.comp.columns
        extra = {} if self.fold is None else {"fold": self.fold, "label": self.label}
        rounded, logits = ("oof.csv", OOF_FILE) if extra else ("probabilities.csv", TEST_FILE)
        with atomic_path(folder / rounded) as tmp:
            pd.DataFrame({"id": list(self.ids), **extra, **{c: p[:, i] for i, c in enumerate(columns)}}).to_csv(
                tmp, index=False, float_format="%.6f")
        write_logits(folder / logits, self.ids, p, self.comp, **extra)

    @classmethod
    def read(cls, source: str | Path, comp: Competition) -> Predictions:
        """The predictions of a source (`read_logits`), with their folds and labels where it has them."""
        frame = read_logits(source, comp)
        return cls(comp, list(frame.index), probabilities_of(frame, comp),
                   *(frame[c].to_numpy() if c in frame.columns else None for c in ("fold", "label")))


def source_file(source: str | Path) -> Path:
    """The prediction file of a source: a file as it is, or a folder's oof_logits.csv, else its logits.csv (else
    the rounded oof.csv or probabilities.csv of a run written before logits were kept)."""
    path = Path(source)
    if path.is_dir():
        for name in (OOF_FILE, TEST_FILE, "oof.csv", "probabilities.csv"):
            if (path / name).is_file():
                return path / name
        raise PrefkitError(f"{path}: no {OOF_FILE} or {TEST_FILE} here (a folder written by cv, predict or blend "
                           "of this prefkit)")
    if not path.is_file():
        raise PrefkitError(f"{path}: no such file or folder")
    return path


def read_logits(source: str | Path, comp: Competition) -> pd.DataFrame:
    """Logits of a source, indexed by id (str), one column per label (`logit_columns`), plus `fold` and `label`
    where the file has them."""
    path = source_file(source)
    try:
        # only an empty cell is missing: an id "NA" stays an id
        frame = pd.read_csv(path, dtype={"id": str, "label": str}, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as e:
        raise PrefkitError(f"{path}: cannot read ({e})") from None
    if "id" not in frame.columns:
        raise PrefkitError(f"{path}: column 'id': missing column")
    logits, probs = logit_columns(comp), list(comp.columns)
    if all(c in frame.columns for c in logits):
        values = frame[logits].to_numpy(dtype=np.float64)
    elif all(c in frame.columns for c in probs):
        p = frame[probs].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > 1e-3))
        if len(bad):
            raise PrefkitError(f"{path}: row {bad[0] + 1} (id {frame['id'].iloc[bad[0]]!r}), columns {', '.join(probs)}: "
                               "probabilities must be finite, non-negative and sum to 1")
        values = to_logits(p)
    else:
        raise PrefkitError(f"{path}: needs the columns {', '.join(logits)} or {', '.join(probs)} "
                           f"(competition={comp.name})")
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise PrefkitError(f"{path}: row {bad[0] + 1} (id {frame['id'].iloc[bad[0]]!r}): logits are not finite")
    dup = frame["id"].duplicated()
    if dup.any():
        raise PrefkitError(f"{path}: id {frame['id'][dup].iloc[0]!r} appears twice")
    out = pd.DataFrame(values, columns=logits, index=pd.Index(frame["id"], name="id"))
    for c in ("fold", "label"):
        if c in frame.columns:
            out[c] = frame[c].to_numpy()
    return out


def lookup(sources: Sequence[str | Path], ids: Sequence[str], comp: Competition, what: str) -> np.ndarray:
    """Logits of `ids`, each from the first source that has it; an id no source has is an error naming it."""
    frames = [read_logits(s, comp) for s in sources]
    cols = logit_columns(comp)
    out = np.full((len(ids), len(cols)), np.nan)
    todo = np.ones(len(ids), bool)
    for frame in frames:
        have = todo & pd.Index(ids).isin(frame.index)
        if have.any():
            out[have] = frame.loc[np.asarray(ids)[have], cols].to_numpy()
            todo &= ~have
    if todo.any():
        first = str(np.asarray(ids)[todo][0])
        raise PrefkitError(f"{what} ({', '.join(map(str, sources))}): {int(todo.sum())} training ids have no "
                           f"prediction (first: {first!r})")
    return out


def run_record(run_dir: str | Path) -> dict:
    """Which run predicted: its resolved folder and the hash of its config.yaml (as the submission ledger
    records it). `prefkit predict` keeps it in its folder (RECORD_FILE, key "run"); `prefkit blend` matches its
    --test-preds to its runs by it."""
    from prefkit.config import config_hash

    run_dir = Path(run_dir)
    return {"path": str(run_dir.resolve()), "config_hash": config_hash(run_dir)}


def recorded_run(source: str | Path) -> dict | None:
    """The run a predict folder records (`run_record`), or None for a file or a folder without a record (written
    by an older prefkit, or not by predict)."""
    path = Path(source) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        return None
    return run if isinstance(run, dict) and run.get("path") else None


def probabilities_of(frame: pd.DataFrame, comp: Competition) -> np.ndarray:
    """The probabilities of a frame `read_logits` gave, in its row order."""
    return probabilities(frame[logit_columns(comp)].to_numpy())
