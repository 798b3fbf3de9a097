"""`prefkit merge --run CV_RUN --out DIR [--into-base]`: the fold models of a cv run averaged into one model
(LMSYS 1st place averaged its 5 fold LoRAs into one before quantising), so that prediction runs one model
instead of k. DIR is a run folder like `prefkit train` writes (config.yaml, model/): `prefkit predict --run DIR`,
`kaggle bundle` and the rest use it as any run.

    default      every weight file of the fold folders (the LoRA adapter and the head, or the whole fine-tuned
                 model) averaged tensor by tensor. For LoRA this averages A and B separately, which is not the
                 average of the folds' updates B_k A_k; the folds start from the same seeded A, so the two stay
                 close, and the adapter stays small.
    --into-base  each fold's adapter merged into the unquantised base weights, the merged models averaged:
                 exactly base + mean_k(B_k A_k), saved as a whole model (loaded, and quantised if the config
                 says so, like any fine-tuned folder).

The averaged model has seen every row in training, so its own OOF cannot be measured: compare it with the fold
ensemble on held-out rows (`prefkit predict` of each on a labelled file the cv did not use).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from prefkit.config import save_config
from prefkit.core.dist import log
from prefkit.core.runs import mark_trained
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite
from prefkit.rm.fold_average import average_files, merge_into_base
from prefkit.rm.learners import record_golden
from prefkit.rm.run import Run


def main(run_dir: str | Path, out: str | Path, into_base: bool = False) -> Path:
    run_dir, out = Path(run_dir), Path(out)
    run = Run.open(run_dir)
    cfg = run.config
    if cfg.model.kind != "seq_cls":
        raise PrefkitError(f"{run_dir}: model.kind={cfg.model.kind}; merge averages transformer fold models "
                           "(a scikit-learn model has no weights to average)")
    folds = [f for f in run.models if f.name.startswith("fold")]
    if len(folds) < 2:
        raise PrefkitError(f"{run_dir}: {len(folds)} finished fold models; merge needs at least two (a cv run)")
    if into_base and not cfg.lora.enabled:
        raise PrefkitError("--into-base merges LoRA adapters into the base weights; this run fine-tuned whole "
                           "models (lora.enabled=false), so the default average is already a whole model")
    refuse_overwrite(out, {"--run": run_dir})
    if out.exists() and any(out.iterdir()):
        raise PrefkitError(f"{out}: exists and is not empty; give a new folder")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "model").mkdir(parents=True)
    if into_base:
        merge_into_base(cfg, folds, tmp / "model")
        cfg = dataclasses.replace(cfg, lora=dataclasses.replace(cfg.lora, enabled=False))
        how = "adapters merged into the base weights, then averaged"
    else:
        names = average_files(folds, tmp / "model")
        how = f"averaged tensor by tensor ({', '.join(names)})"
    cfg.output_dir = str(out)
    save_config(cfg, tmp)
    record_golden(cfg, tmp / "model")  # the averaged model's own golden scores
    mark_trained(tmp / "model", {"kind": cfg.model.kind, "merged_from": [str(f) for f in folds], "how": how})
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log(f"{len(folds)} fold models of {run_dir}: {how} -> {out}/model")
    return out
