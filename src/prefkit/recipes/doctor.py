"""`prefkit doctor --run RUN [--rows N] [key=value ...]`: the probes of `prefkit.rm.probes` on a run's model, the
checks for a model that runs and scores wrong without a word: batch and padding, compute dtype and fp16 overflow,
A/B swap, the position the head reads, EOS and the tokenizer as at training, the head as saved and trained,
Gemma-2's attention, labels shuffled and exchanged, the golden scores (`prefkit.rm.golden`), and a cv run's folds
against its data. Each prints its figure and tolerance; exit 1 when one is out of tolerance, naming the rows.
docs/doctor.md lists every probe with the bug it catches and the public report it comes from.

The run's first finished model folder is probed on a seeded sample of the run's data (`data.train`, which an
override can point elsewhere); the labels probe reads a cv run's out-of-fold predictions, or the sample's own
for a train run; the folds probe reads the out-of-fold predictions' folds against every row of the data.
Nothing is written: the run folder may be read-only (a Kaggle input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefkit.competition import competition_of
from prefkit.core import runs
from prefkit.errors import PrefkitError
from prefkit.recipes.common import load_labelled
from prefkit.rm import probes
from prefkit.toolbox.predictions import OOF_FILE, probabilities_of, read_logits


def main(run_dir: str | Path, rows: int = 16, overrides: list[str] = ()) -> int:
    """Probe the run's model; print a line a probe; 0 when all are within tolerance, 1 otherwise."""
    folder, data, n, found = run_probes(run_dir, rows, overrides)
    print(f"probes of {folder} on {n} rows of {data}:")
    for p in found:
        print(f"  {p.line()}")
    failed = [p.name for p in found if p.failed]
    print(f"{len(failed)} of {len(found)} probes out of tolerance" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_probes(run_dir: str | Path, rows: int = 16, overrides: list[str] = (),
               folder: str | None = None) -> tuple[Path, str, int, list[probes.Probe]]:
    """The probes of a run's model folder (`folder`, by name; default its first finished one) on `rows` rows of
    its data, the golden scores and the folds: (the folder, the data, the rows probed, the probes)."""
    if rows < 1:
        raise PrefkitError(f"--rows {rows}: give at least 1 row to probe")
    run_dir = Path(run_dir)
    cfg = runs.open_config(run_dir, overrides, "`prefkit cv` or `prefkit train` (a reward model)",
                           kinds=runs.REWARD_MODEL_KINDS)
    folders = runs.trained_folders(run_dir)
    if not folders:
        raise PrefkitError(f"{run_dir}: no finished model folder (fold*/ or model/ with trained.json) to probe")
    chosen = next((f for f in folders if f.name == folder), None) if folder else folders[0]
    if chosen is None:
        raise PrefkitError(f"{run_dir}: no finished model folder {folder!r} (finished: {', '.join(f.name for f in folders)})")
    table = load_labelled(cfg.data.train, cfg)
    oof = _oof(run_dir, cfg)
    found = probes.probe_folder(cfg, chosen, table, rows, _validation(oof, cfg), golden=True)
    found.append(probes.folds_probe(run_dir, table, None if oof is None or "fold" not in oof.columns else
                                    {str(i): int(k) for i, k in zip(oof.index, oof["fold"])}))
    return chosen, str(cfg.data.train), min(rows, len(table)), found


def _oof(run_dir: Path, cfg):
    """A cv run's out-of-fold logits (id index; fold and label columns), None elsewhere."""
    return read_logits(run_dir / OOF_FILE, competition_of(cfg)) if (run_dir / OOF_FILE).is_file() else None


def _validation(oof, cfg) -> tuple[np.ndarray, np.ndarray] | None:
    """The out-of-fold probabilities and labels (the labels probe's validation score); None without them."""
    if oof is None or "label" not in oof.columns:
        return None
    return probabilities_of(oof, competition_of(cfg)), oof["label"].to_numpy()
