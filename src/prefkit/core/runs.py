"""A run folder, in one place: starting one (the output folder, the resolved config.yaml, the folder's lock) and
opening one (its config, its finished model folders, the marker that says a model finished).

    <run>/config.yaml           the resolved config of the job that made it
    <run>/run.json              which job made it (cv, train, sft) and with which prefkit
    <run>/fold<k>/, <run>/model/ a finished model each, with trained.json written last
    <run>/metrics.json, oof.csv, ... what the job measured (the recipes' own files)

A run folder belongs to the job and config that made it. A training job (`start(..., resume=...)`) refuses a
folder that holds a run already unless it is resumed, and a resumed run must be the same job with the same
config (but for `RESUME_MAY_CHANGE`): otherwise a new config's folds would land beside the old one's models and
be averaged, scored and bundled with them, exit 0. A job refused before it wrote anything leaves no trace of
itself (`abandon_refused`): no config.yaml that would make the folder look like a run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml

from prefkit.config import DICT_KEYS, Config, load_config, reads, save_config, to_dict
from prefkit.core.dist import is_main, log, wait
from prefkit.errors import PrefkitError
from prefkit.io import write_json
from prefkit.lock import LOCK, acquire, release_all

CONFIG = "config.yaml"
RECORD = "run.json"
MARKER = "trained.json"  # in a model folder: written last, so a folder with it holds a finished model


# What a resumed run may set otherwise than the run it continues: where it writes, which of its folds run now,
# where progress is reported, how often it is logged and probed, and what only trades memory for time (a resumed
# run may land on a smaller machine). Anything else decides the folds, the rows, the models or their predictions.
RESUME_MAY_CHANGE = ("output_dir", "cv.folds", "train.report_to", "train.log_every", "train.probe_rows",
                     "data.token_cache", "predict.batch_tokens", "model.gradient_checkpointing", "kaggle.*")
# The names a training job writes in its folder (a fold folder, a model, what it measured): a folder holding one
# of them without a config.yaml is some other job's output, and an input file under one of these names would be
# written over.
RUN_OUTPUTS = (CONFIG, RECORD, "oof.csv", "oof_logits.csv", "metrics.json", "rules.json", "reliability.png",
               "fold*", "model")
# training jobs started here into a folder that held no run: (folder, made by this process, the names it held)
_fresh: list[tuple[Path, bool, set[str]]] = []


def output_dir(cfg: Config, job: str, name: str = "", resume: bool | None = None,
               inputs: dict[str, Any] | None = None) -> Path:
    """`output_dir` from the config, or runs/<job>[-<name>]-<time>; created, with config.yaml written in it.
    A tracker of `train.report_to` whose package is missing stops the job here, before data or models load.

    A training job passes `resume` (True or False) and its input files: the folder is then checked before
    anything is written (`_check_reuse`), and run.json names the job."""
    from prefkit.core import trackers

    trackers.check(cfg.train.report_to)
    if not cfg.output_dir:
        cfg.output_dir = str(_same_in_every_process(_new_run_folder(job, name) if is_main() else None))
    out = Path(cfg.output_dir)
    if is_main():
        made = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PrefkitError(f"output_dir {out}: cannot create it ({e.strerror or e})") from None
        acquire(out, " ".join(x for x in ("prefkit", job, name) if x), log)  # one command per folder
        if resume is not None:
            fresh = not is_run(out)
            if fresh:
                _fresh.append((out, made, {p.name for p in out.iterdir()} - {LOCK}))
            _check_reuse(cfg, out, job, resume, inputs or {})
            if fresh:
                write_json(out / RECORD, {"job": job, "prefkit": _version(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        save_config(cfg, out)
    wait()
    return out


def _version() -> str:
    from prefkit import __version__

    return __version__


def _is_output(rel: Path) -> bool:
    return any(fnmatch.fnmatch(rel.parts[0], pattern) for pattern in RUN_OUTPUTS) if rel.parts else False


def _check_reuse(cfg: Config, out: Path, job: str, resume: bool, inputs: dict[str, Any]) -> None:
    """Refuse what would mix two runs in one folder or write over an input, before anything is written."""
    for key, given in inputs.items():  # an input file the job would write over (the training file as oof.csv)
        for value in given if isinstance(given, (list, tuple)) else [given]:
            if not value:
                continue
            try:
                rel = Path(value).resolve().relative_to(out.resolve())
            except ValueError:
                continue
            if _is_output(rel):
                raise PrefkitError(f"{key}={value}: lies in output_dir {out} under a name this job writes "
                                   f"({rel.parts[0]}) and would be written over; move it out of the folder or give "
                                   "another output_dir")
    if not is_run(out):
        found = sorted(p.name for p in out.iterdir() if _is_output(p.relative_to(out)))
        if found:
            raise PrefkitError(f"output_dir {out}: holds {', '.join(found[:5])} but no {CONFIG}: another job's output "
                               f"(or a run whose config was removed); a new run would mix with it: give another "
                               f"output_dir, or delete those")
        return
    made_by = _job_of(out)
    finished = [p.name for p in trained_folders(out)]
    what = f"a `prefkit {made_by}` run" + (f" ({len(finished)} finished model folders: {', '.join(finished)})"
                                           if finished else " (no finished model yet)")
    if not resume:
        raise PrefkitError(f"output_dir {out}: holds {what}; a new run would write over its config and results and "
                           f"mix with its models. Give --resume to continue it with the same config, another "
                           f"output_dir, or delete the folder")
    if made_by != job:
        raise PrefkitError(f"output_dir {out}: holds {what}; --resume continues a run of the same job, not "
                           f"`prefkit {job}`: give another output_dir")
    diff = config_differences(saved_settings(out), yaml.safe_load(yaml.safe_dump(to_dict(cfg))))  # as saved
    if diff:
        shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in diff[:8])
        more = f" (and {len(diff) - 8} more)" if len(diff) > 8 else ""
        settings = f"{len(diff)} setting{'s differ' if len(diff) > 1 else ' differs'}"
        raise PrefkitError(f"output_dir {out}: --resume continues {what} with the config it was made with; "
                           f"{settings}: {shown}{more}. Put them back, or start another output_dir")


def _job_of(out: Path) -> str:
    """The job that made a run: its run.json, or (a run of an older prefkit) what its model folders say."""
    record = out / RECORD
    if record.is_file():
        try:
            return str(json.loads(record.read_text(encoding="utf-8"))["job"])
        except (ValueError, KeyError, TypeError, OSError):
            pass
    if saved_settings(out).get("model", {}).get("kind") == "causal_lm":
        return "sft"
    if any(out.glob("fold*")):
        return "cv"
    return "train" if (out / "model").exists() else "unknown"


def flat_settings(d: Any, prefix: str = "") -> dict[str, Any]:
    """A config as a dict, flattened to dotted keys (a mapping value such as data.columns stays whole)."""
    if not isinstance(d, dict) or (prefix and prefix[:-1] in DICT_KEYS):
        return {prefix[:-1]: d}
    flat: dict[str, Any] = {}
    for k, v in d.items():
        flat.update(flat_settings(v, f"{prefix}{k}."))
    return flat


def config_differences(saved: dict, now: dict) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) of every setting that differs, but for `RESUME_MAY_CHANGE`. A key the saved
    config lacks (written by an older prefkit) counts as the default, unset only if the new value is its default."""
    a, b = flat_settings(saved), flat_settings(now)
    defaults = flat_settings(to_dict(Config()))
    out = []
    for key in sorted(set(a) | set(b)):
        if reads(key, list(RESUME_MAY_CHANGE)):
            continue
        old = a.get(key, defaults.get(key))
        if old != b.get(key) and not _same_files(old, b.get(key)):
            out.append((key, old, b.get(key)))
    return out


def _same_files(a: Any, b: Any) -> bool:
    """Two spellings of the same files (relative and absolute, a link): the same setting. A path is saved as it
    was given, so a run started with a relative path and resumed from a script with an absolute one differs only
    in how it is written."""
    a, b = ([a], [b]) if isinstance(a, str) and isinstance(b, str) else (a, b)
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a):
        return False
    try:
        return all(isinstance(x, str) and isinstance(y, str) and os.path.samefile(x, y) for x, y in zip(a, b))
    except OSError:  # a path that does not exist (now) is compared as written
        return False


def abandon_refused() -> None:
    """A training job refused (a user error) before it wrote anything but its config: remove the config.yaml and
    run.json it wrote (and the folder, if it made it and it is empty), so the folder is not taken for a run."""
    while _fresh:
        out, made, before = _fresh.pop()
        try:
            left = {p.name for p in out.iterdir()} - {CONFIG, RECORD, LOCK} - before
            if left:
                continue  # it wrote something (a checkpoint, a model): --resume may continue it
            for name in (CONFIG, RECORD):
                (out / name).unlink(missing_ok=True)
            if made:
                release_all()
                out.rmdir()
        except OSError:
            pass  # gone or unreadable: nothing of ours to clean


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


MODEL_FOLDER = re.compile(r"fold\d+|model")  # the model folders a run's jobs write


def unfinished_models(run_dir: Path, cfg: Config, finished: set[str] | None = None) -> list[str]:
    """The model folders a run started and did not finish (no trained.json: a job killed or failed), and the
    folds a cv run was to train and never began (`cv.folds`, or all `cv.n_splits`), each with why."""
    run_dir = Path(run_dir)
    if finished is None:
        finished = {p.name for p in trained_folders(run_dir)}
    started = {p.name for p in run_dir.iterdir()
               if MODEL_FOLDER.fullmatch(p.name) and p.is_dir() and not p.is_symlink()} - finished
    left = [f"{name} (no {MARKER})" for name in sorted(started)]
    if any(name.startswith("fold") for name in finished | started):
        planned = cfg.cv.folds if cfg.cv.folds is not None else range(cfg.cv.n_splits)
        left += [f"fold{k} (never begun)" for k in planned if f"fold{k}" not in finished | started]
    return left


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
