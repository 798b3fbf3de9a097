"""Experiment trackers (`train.report_to: [tensorboard, wandb, trackio]`), through accelerate's tracker classes.

Each training run (a fold, a final model, an SFT run) is one tracker run named after its folder, logging the
same scalars as its `log.jsonl`. Each tracker is an optional extra (`pip install 'prefkit[wandb]'`); a missing
one stops the run before any data or model loads, with the command that installs it.

- tensorboard: event files in `<run>/tensorboard/` (`tensorboard --logdir runs/`).
- wandb: offline (files in `<run>/wandb/`, `wandb sync` uploads them) unless an API key is set or WANDB_MODE
  says otherwise: a Kaggle kernel without internet must not hang on a login.
- trackio: its local store (`$TRACKIO_DIR`, default `~/.cache/huggingface/trackio`; `trackio show` opens it).

accelerate's classes are used one by one rather than through `Accelerator(log_with=...)`: one accelerator
serves every fold of a cv run, while each fold is its own tracker run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from prefkit.errors import PrefkitError

# name -> the module it needs and the extra that installs it
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
            "trackio": ("trackio", "trackio")}
PROJECT = "prefkit"


def check(names: list[str]) -> None:
    """Unknown names and missing packages, before anything heavy runs."""
    for name in names:
        if name not in TRACKERS:
            raise PrefkitError(f"train.report_to: unknown tracker {name!r} (choose from {', '.join(TRACKERS)})")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise PrefkitError(f"train.report_to: {name} needs the {module} package: pip install 'prefkit[{extra}]'")


def start(names: list[str], out: Path, config: dict) -> list:
    """Started trackers for a run in `out`, the run's flattened config stored as its hyperparameters."""
    check(names)
    if not names:
        return []
    from accelerate.tracking import TensorBoardTracker, TrackioTracker, WandBTracker

    run = out.resolve().parent.name + "/" + out.name
    trackers = []
    for name in names:
        if name == "tensorboard":
            tracker = TensorBoardTracker("tensorboard", out)
        elif name == "wandb":
            offline = not os.environ.get("WANDB_API_KEY") and not os.environ.get("WANDB_MODE")
            tracker = WandBTracker(PROJECT, name=run, dir=str(out), reinit="finish_previous",
                                   **({"mode": "offline"} if offline else {}))
        else:
            tracker = TrackioTracker(PROJECT, name=run, auto_log_cpu=False, auto_log_gpu=False)
        tracker.start()
        tracker.store_init_configuration(_flat(config))
        trackers.append(tracker)
    return trackers


def _flat(config: dict, prefix: str = "") -> dict:
    """`{"train": {"epochs": 1}}` -> `{"train.epochs": 1}`, lists as text: what every tracker takes as hparams."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v if isinstance(v, (bool, int, float, str)) or v is None else str(v)
    return out
