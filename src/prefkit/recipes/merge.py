"""`prefkit merge --run RUN [--run RUN ...] --out DIR [--into-base]`: models averaged into one ("model soup"), so
that prediction runs one model instead of several. A cv run gives its finished fold models (LMSYS 1st place
averaged its 5 fold LoRAs into one before quantising), a `prefkit train` (or merge) run its one model; several
--run average them all: seeds of a full-data model, or runs of one config trained apart. DIR is a run folder like
`prefkit train` writes (config.yaml, model/): `prefkit predict --run DIR`, `kaggle bundle` and the rest use it as
any run.

    default      every weight file of the model folders (the LoRA adapter and the head, or the whole fine-tuned
                 model) averaged tensor by tensor. For LoRA this averages A and B separately, which is not the
                 average of the models' updates B_k A_k; models that start from the same seeded A (the folds of a
                 run, runs of one train.seed) stay close, and the adapter stays small. Runs of other seeds start
                 from other A's: --into-base is exact for them.
    --into-base  each model's adapter merged into the unquantised base weights, the merged models averaged:
                 exactly base + mean_k(B_k A_k), saved as a whole model (loaded, and quantised if the config
                 says so, like any fine-tuned folder).

Runs whose models cannot be averaged are refused, naming the two runs and the setting: another base model, LoRA
shape, competition, head or template (`SAME`). The merged run keeps the first run's config: once those agree, what
still differs between the runs is how each was trained (train.*, cv.*, data.train), which predicting does not read
(but train.seed where model.random_init draws the base weights from it: checked too), and settings that predict
reads but may change anyway (data.*, predict.*, model.dtype, quantization.*).

The averaged model has seen every row its sources trained on, so its own OOF cannot be measured: compare it with
the fold ensemble on held-out rows (`prefkit predict` of each on a labelled file the runs did not use).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from prefkit.config import save_config, to_dict
from prefkit.core.dist import log
from prefkit.core.runs import flat_settings, mark_trained
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite
from prefkit.rm.fold_average import average_files, merge_into_base
from prefkit.rm.heads import head_name
from prefkit.rm.learners import record_golden
from prefkit.rm.run import Run


# What two runs must share for their models to be averaged, and be predicted with one config: each setting (a
# dotted key, or the section it heads) that shapes the weights, or how a row becomes the model's input.
SAME = {
    "base model": ["model.kind", "model.path", "model.random_init", "model.softcapping"],
    "LoRA settings": ["lora.enabled", "lora.r", "lora.alpha", "lora.target_modules", "lora.skip_first_layers"],
    "competition": ["competition"],
    "head": ["model.head"],  # resolved: auto is cls3 for LMSYS
    "template": ["template"],
}


def main(runs: str | Path | list[str | Path], out: str | Path, into_base: bool = False) -> Path:
    run_dirs = [Path(r) for r in ([runs] if isinstance(runs, (str, Path)) else runs)]
    out = Path(out)
    twice = [r for i, r in enumerate(run_dirs) if any(r.resolve() == q.resolve() for q in run_dirs[:i])]
    if twice:
        raise PrefkitError(f"--run {twice[0]}: given twice; each run's models enter the average once")
    opened = [_open(r) for r in run_dirs]
    for run in opened[1:]:
        _check_same(opened[0], run)
    cfg = opened[0].config
    models = []
    for run in opened:
        found = _models(run)
        if not found and len(opened) > 1:
            raise PrefkitError(f"{run.path}: no finished model (fold*/ or model/ with trained.json) to average")
        models += found
    if len(models) < 2:
        what = "fold models" if all(m.name.startswith("fold") for m in models) else "models"
        raise PrefkitError(f"{', '.join(map(str, run_dirs))}: {len(models)} finished {what}; merge needs at least "
                           "two (a cv run, or several runs: --run A --run B)")
    if into_base and not cfg.lora.enabled:
        raise PrefkitError("--into-base merges LoRA adapters into the base weights; this run fine-tuned whole "
                           "models (lora.enabled=false), so the default average is already a whole model")
    if not into_base and cfg.lora.enabled and len({r.config.train.seed for r in opened}) > 1:
        log("note: the runs' train.seed differ, so their LoRA A matrices started apart: averaging A and B apart is "
            "further from the average of their updates than for one run's folds; --into-base is exact")
    refuse_overwrite(out, {"--run": run_dirs})
    if out.exists() and any(out.iterdir()):
        raise PrefkitError(f"{out}: exists and is not empty; give a new folder")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "model").mkdir(parents=True)
    if into_base:
        merge_into_base(cfg, models, tmp / "model")  # the first run's config loads every adapter: checked the same
        cfg = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, enabled=False))
        how = "adapters merged into the base weights, then averaged"
    else:
        names = average_files(models, tmp / "model")
        how = f"averaged tensor by tensor ({', '.join(names)})"
    cfg.output_dir = str(out)
    save_config(cfg, tmp)
    record_golden(cfg, tmp / "model")  # the averaged model's own golden scores
    mark_trained(tmp / "model", {"kind": cfg.model.kind, "merged_from": [str(m) for m in models], "how": how,
                                 "config_from": str(run_dirs[0])})
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    source = run_dirs[0] if len(run_dirs) == 1 else f"{len(run_dirs)} runs"
    log(f"{len(models)} models of {source}: {how} -> {out}/model")
    return out


def _open(run_dir: Path) -> Run:
    run = Run.open(run_dir)
    if run.config.model.kind != "seq_cls":
        raise PrefkitError(f"{run_dir}: model.kind={run.config.model.kind}; merge averages transformer models "
                           "(a scikit-learn model has no weights to average)")
    return run


def _models(run: Run) -> list[Path]:
    """A cv run's finished fold models; a train (or merge) run's one model."""
    folds = [f for f in run.models if f.name.startswith("fold")]
    return folds or [f for f in run.models if f.name == "model"]


def _check_same(first: Run, other: Run) -> None:
    """Refuse `other` where a `SAME` setting differs from `first`'s, naming both runs and the setting."""
    both = f"--run {first.path} and --run {other.path}"
    a, b = ({**flat_settings(to_dict(r.config)), "model.head": head_name(r.config)} for r in (first, other))
    for what, keys in SAME.items():
        for key in sorted(k for k in set(a) | set(b) if any(k == s or k.startswith(s + ".") for s in keys)):
            if a.get(key) != b.get(key):
                raise PrefkitError(f"{both}: {key} differs ({a.get(key)!r} and {b.get(key)!r}): their models differ "
                                   f"in the {what} and cannot be averaged; merge runs trained with the same base "
                                   "model, LoRA settings, competition, head and template")
    m, seeds = first.config.model, (first.config.train.seed, other.config.train.seed)
    if m.path is None and m.random_init and seeds[0] != seeds[1]:  # random weights: build_model seeds them
        raise PrefkitError(f"{both}: train.seed differs ({seeds[0]} and {seeds[1]}), and with model.random_init it "
                           "draws the base weights: their models differ in the base model and cannot be averaged")
