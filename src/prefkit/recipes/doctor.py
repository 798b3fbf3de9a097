"""`prefkit doctor --run RUN [--rows N] [key=value ...]`: the probes of `prefkit.rm.probes` on a run's model, the
checks for a model that runs and scores wrong without a word (batch and padding, compute dtype, A/B swap, the
position the head reads, Gemma-2's attention, shuffled labels). Each prints its figure and tolerance; exit 1
when one is out of tolerance, naming the rows.

The run's first finished model folder is probed on a seeded sample of the run's data (`data.train`, which an
override can point elsewhere); the labels probe reads a cv run's out-of-fold predictions, or the sample's own
for a train run. Nothing is written: the run folder may be read-only (a Kaggle input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefkit.competition import of
from prefkit.core import runs
from prefkit.errors import PrefkitError
from prefkit.recipes.common import load_labelled
from prefkit.rm import probes
from prefkit.toolbox.predictions import (
    OOF_FILE,
    logit_columns,
    probabilities,
    read_logits,
)


def main(run_dir: str | Path, rows: int = 16, overrides: list[str] = ()) -> int:
    """Probe the run's model; print a line a probe; 0 when all are within tolerance, 1 otherwise."""
    if rows < 1:
        raise PrefkitError(f"--rows {rows}: give at least 1 row to probe")
    run_dir = Path(run_dir)
    cfg = runs.open_config(run_dir, overrides, "`prefkit cv` or `prefkit train` (a reward model)",
                           kinds=runs.REWARD_MODEL_KINDS)
    folders = runs.trained_folders(run_dir)
    if not folders:
        raise PrefkitError(f"{run_dir}: no finished model folder (fold*/ or model/ with trained.json) to probe")
    table = load_labelled(cfg.data.train, cfg)
    found = probes.probe_folder(cfg, folders[0], table, rows, _validation(run_dir, cfg))
    print(f"probes of {run_dir / folders[0].name} on {min(rows, len(table))} rows of {cfg.data.train}:")
    for p in found:
        print(f"  {p.line()}")
    failed = [p.name for p in found if p.failed]
    print(f"{len(failed)} of {len(found)} probes out of tolerance" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _validation(run_dir: Path, cfg) -> tuple[np.ndarray, np.ndarray] | None:
    """A cv run's out-of-fold probabilities and labels (the labels probe's validation score); None elsewhere."""
    if not (run_dir / OOF_FILE).is_file():
        return None
    comp = of(cfg)
    frame = read_logits(run_dir / OOF_FILE, comp)
    if "label" not in frame.columns:
        return None
    return probabilities(frame[logit_columns(comp)].to_numpy()), frame["label"].to_numpy()
