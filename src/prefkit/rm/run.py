"""A reward-model run opened to predict with, in one place: its config (with the overrides prediction may apply),
its finished model folders, the temperature its CV fitted, and its predictions of a table, averaged over its
models or one fold model at a time. A blend of runs (`prefkit blend`) opens and predicts the same way.

    run = Run.open("runs/cv-...", ["predict.swap_tta=false"])   # refuses a folder that is no reward-model run
    p, stats = run.predict(table)                               # every finished model, averaged, temperature applied
    p, stats = run.predict_fold(2, rows)                        # fold 2's model alone (out of fold on its rows)

Every model is loaded, checked against its golden scores (`prefkit.rm.golden`), asked and released here, one at a
time (two 9B models do not fit a T4). `predict`, `repredict`, `merge`, `export`, `pseudo-label`, `blend`,
`compare`, `cot rank` and `cot rerank` open their runs through this; a student (model.kind=causal_lm) is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prefkit.config import Config, explicit_keys, load_config, parse_override, reads, to_dict
from prefkit.core import runs
from prefkit.core.dist import log
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import apply_temperature
from prefkit.rm import golden, learners

# What an override may change: the run's saved config is otherwise what it was trained with. The tokenizer and
# the backbone may be found elsewhere (a Kaggle input folder), as long as they are the ones it was trained with.
SECTIONS = ["output_dir", "data.*", "predict.*", "template.tokenizer", "model.path", "model.dtype",
            "model.attn_implementation", "quantization.*"]
# What only training reads: an override of these is ignored, and said so.
TRAINING_ONLY = ["train.*", "cv.*", "kaggle.*"]
MADE_BY = "`prefkit cv` or `prefkit train`"
BLEND_FILE = "blend.json"  # a blend's record, written last: its runs, method, weights and files


@dataclass
class Run:
    path: Path
    config: Config

    @classmethod
    def open(cls, path: str | Path, overrides: list[str] = (), made_by: str = MADE_BY) -> Run:
        """A reward-model run folder with `overrides` applied. Only the SECTIONS keys may change: an override of a
        key only training reads is ignored (with a note), and one of a setting the trained model fixes (its
        template, head, features, LoRA shape, competition) is refused where it differs from the run's, since
        applying it would score with a model other than the one trained, and ignoring it would be a lie. A folder
        that is not a run, or a run of another kind of model (a student), is refused naming `made_by`."""
        path = Path(path)
        was = runs.open_config(path, made_by=made_by, kinds=runs.REWARD_MODEL_KINDS)
        if not overrides:
            return cls(path, was)
        keys = explicit_keys(load_config(None, overrides))  # each override's key, checked
        saved = runs.flat_settings(to_dict(was))
        given = runs.flat_settings(to_dict(runs.open_config(path, overrides)))
        fixed_keys = [k for k in keys if not reads(k, SECTIONS + TRAINING_ONLY)]
        fixed = sorted(f for f in set(saved) | set(given)
                       if saved.get(f) != given.get(f) and any(_under(f, k) for k in fixed_keys))
        if fixed:
            shown = "; ".join(f"{f}={given.get(f)!r} (trained with {saved.get(f)!r})" for f in fixed)
            raise PrefkitError(f"{path}: {shown}: the trained model fixes {'these' if len(fixed) > 1 else 'this'}, "
                               f"so predict keeps the run's; drop the override, or train a run with it. Predict may "
                               f"change {', '.join(SECTIONS)}")
        ignored = [k for k in keys if reads(k, TRAINING_ONLY)]
        if ignored:
            log(f"note: `predict` does not read {', '.join(ignored)} (training settings): "
                f"{'they are' if len(ignored) > 1 else 'it is'} ignored")
        keep = [o for o in overrides if not reads(parse_override(o)[0], TRAINING_ONLY)]
        return cls(path, runs.open_config(path, keep, made_by=made_by, kinds=runs.REWARD_MODEL_KINDS))

    @property
    def models(self) -> list[Path]:
        """The finished model folders: fold0, fold1, ... of a cv run, `model` of a train run."""
        return runs.trained_folders(self.path)

    @property
    def temperature(self) -> float | None:
        """The temperature the run's CV fitted on its out-of-fold predictions (metrics.json), None without one."""
        metrics = self.path / "metrics.json"
        return json.loads(metrics.read_text()).get("temperature") if metrics.exists() else None

    def predict(self, table: PairTable, say=None, calibrated: bool = True) -> tuple[np.ndarray, dict]:
        """Every finished model's probabilities of the rows, averaged (fold ensembling), and with `calibrated` the
        run's temperature applied where CV fitted one. `say` (a log function) hears which model predicts, and
        which of the run's models are missing from the average (a killed or partial run)."""
        models = self.models
        unfinished = runs.unfinished_models(self.path, self.config, {m.name for m in models})
        if say and unfinished:  # say what the average lacks, not only what it holds
            say(f"note: {self.path}: {len(unfinished)} model folder(s) not finished, left out of the average: "
                f"{', '.join(unfinished)} (finish the run with --resume for all)")
        if not models:
            raise PrefkitError(f"{self.path}: no finished model folder (fold*/ or model/ with trained.json)")
        probs, per_model = [], []
        for folder in models:
            p, s = self._predict_with(folder, table, say)
            probs.append(p)
            per_model.append({"model": folder.name, **s})
        p = np.mean(probs, axis=0)
        temperature = self.temperature if calibrated else None
        if temperature:
            p = apply_temperature(p, temperature)
        return p, {"models": [s["model"] for s in per_model], "temperature": temperature, "rows": len(table),
                   "per_model": per_model}

    def predict_fold(self, k: int, table: PairTable, say=None) -> tuple[np.ndarray, dict]:
        """Fold `k`'s model alone on the rows (its validation rows: out of fold), no temperature."""
        folder = self.path / f"fold{k}"
        if not runs.is_trained(folder):
            raise PrefkitError(f"{folder}: not a finished fold model")
        return self._predict_with(folder, table, say)

    def _predict_with(self, folder: Path, table: PairTable, say=None) -> tuple[np.ndarray, dict]:
        """One model: loaded, its golden rows scored first (scores that moved since training stop here), asked,
        released before anything else loads."""
        if say:
            say(f"predicting with {folder.name}")
        learner = learners.load_learner(self.config, folder)
        try:
            golden.check(self.config, folder, learner, say)
            return learner.predict(table)
        finally:
            learner.release()


def _under(flat_key: str, key: str) -> bool:
    """`flat_key` (a leaf of the saved config) is `key`, lies under it, or holds it (a mapping such as data.columns)."""
    return flat_key == key or flat_key.startswith(key + ".") or key.startswith(flat_key + ".")


def is_blend(path: str | Path) -> bool:
    return (Path(path) / BLEND_FILE).is_file()


@dataclass
class Blend:
    """A blend folder (`prefkit blend`) opened: its record, and its member runs opened as runs are."""

    path: Path
    info: dict
    members: list[Run]

    @classmethod
    def open(cls, path: str | Path, overrides: list[str] = ()) -> Blend:
        path = Path(path)
        if not is_blend(path):
            raise PrefkitError(f"{path}: not a blend (no {BLEND_FILE}); give a folder written by `prefkit blend`")
        info = json.loads((path / BLEND_FILE).read_text())
        return cls(path, info, [Run.open(run, overrides) for run in info["runs"]])

    @property
    def config(self) -> Config:
        """The config of the blend's first member: its data and competition settings."""
        return self.members[0].config

    def predict(self, table: PairTable, say=log) -> tuple[np.ndarray, dict]:
        """The blend's probabilities of new rows: every member run predicts them (as `predict` does, temperature
        applied), the saved blender combines them."""
        from prefkit.toolbox.blend import Blender

        members, stats = [], []
        for run in self.members:
            say(f"blend member {run.path}")
            p, s = run.predict(table, say)
            members.append(p)
            stats.append({"run": str(run.path), **s})
        return Blender.load(self.path / "blender.joblib").predict(members), {"members": stats, **self.info}


def open_run_or_blend(path: str | Path, overrides: list[str] = ()) -> Run | Blend:
    """A blend folder as a Blend, anything else as a Run (or its refusal)."""
    return Blend.open(path, overrides) if is_blend(path) else Run.open(path, overrides)
