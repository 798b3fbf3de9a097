"""A run folder, in one place: starting one (the output folder, the resolved config.yaml, the folder's lock) and
opening one (its config, its finished model folders, the marker that says a model finished).

    <run>/config.yaml           the resolved config of the job that made it
    <run>/fold<k>/, <run>/model/ a finished model each, with trained.json written last
    <run>/metrics.json, oof.csv, ... what the job measured (the recipes' own files)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefkit.config import Config, load_config, save_config
from prefkit.core.dist import is_main, log, wait
from prefkit.errors import PrefkitError
from prefkit.io import write_json
from prefkit.lock import acquire

CONFIG = "config.yaml"
MARKER = "trained.json"  # in a model folder: written last, so a folder with it holds a finished model


def output_dir(cfg: Config, job: str, name: str = "") -> Path:
    """`output_dir` from the config, or runs/<job>[-<name>]-<time>; created, with config.yaml written in it.
    A tracker of `train.report_to` whose package is missing stops the job here, before data or models load."""
    from prefkit.core import trackers

    trackers.check(cfg.train.report_to)
    if not cfg.output_dir:
        cfg.output_dir = str(_same_in_every_process(_new_run_folder(job, name) if is_main() else None))
    out = Path(cfg.output_dir)
    if is_main():
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PrefkitError(f"output_dir {out}: cannot create it ({e.strerror or e})") from None
        acquire(out, " ".join(x for x in ("prefkit", job, name) if x), log)  # one command per folder
        save_config(cfg, out)
    wait()
    return out


def _new_run_folder(job: str, name: str) -> Path:
    """runs/<job>[-<name>]-<time>, made here, exclusively: a second command started in the same second gets
    -2 (then -3, ...) instead of sharing the folder, where the same second would have it refused as in use (or,
    in one process, write over the first)."""
    base = Path("runs") / "-".join(x for x in (job, name, time.strftime("%Y%m%d-%H%M%S")) if x)
    out, n = base, 1
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                out.mkdir(exist_ok=False)  # exclusive: of two commands, one gets each name
                return out
            except FileExistsError:
                n += 1
                out = base.with_name(f"{base.name}-{n}")
    except OSError as e:
        raise PrefkitError(f"output_dir {out}: cannot create it ({e.strerror or e})") from None


def _same_in_every_process(value: Any) -> Any:
    """The main process's value in every process of a multi-GPU launch (the others made no folder)."""
    from prefkit.core.dist import state

    if state().num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def mark_trained(folder: Path, info: dict) -> None:
    """Written last, by the main process (the others wait): the folder holds a finished model."""
    if is_main():
        write_json(folder / MARKER, info)
    wait()


def is_trained(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def trained_folders(run_dir: Path) -> list[Path]:
    """The finished model folders of a run: fold0, fold1, ... from `cv`, and `model` from `train`."""
    return sorted(p for p in Path(run_dir).iterdir() if p.is_dir() and is_trained(p))


def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG).is_file()


REWARD_MODEL_KINDS = ("features", "seq_cls")  # model.kind of the runs `cv` and `train` write (a student is causal_lm)


def open_config(run_dir: str | Path, overrides: list[str] = (), made_by: str = "`prefkit cv` or `prefkit train`",
                kinds: tuple[str, ...] | None = None) -> Config:
    """A run folder's saved config (with `overrides`), or a clear refusal of a folder that is not a run, or (with
    `kinds`) of a run of another kind of model: an SFT student where a reward model is wanted, or the reverse."""
    run_dir = Path(run_dir)
    if not is_run(run_dir):
        raise PrefkitError(f"{run_dir}: not a run folder (no {CONFIG}); give a folder written by {made_by}")
    cfg = load_config(run_dir / CONFIG, list(overrides))
    if kinds is not None and cfg.model.kind not in kinds:
        raise PrefkitError(f"{run_dir}: a model.kind={cfg.model.kind} run; this needs {' or '.join(kinds)}: give a "
                           f"folder written by {made_by}")
    return cfg


def saved_settings(run_dir: str | Path) -> dict:
    """A run's config.yaml as written (no defaults filled in, nothing validated): for a quick look at a key."""
    import yaml

    return yaml.safe_load((Path(run_dir) / CONFIG).read_text(encoding="utf-8")) or {}
