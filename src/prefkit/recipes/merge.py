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
from prefkit.core.runs import MARKER, mark_trained, trained_folders
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite
from prefkit.recipes.predict import run_config
from prefkit.rm import golden
from prefkit.rm.learners import record_golden

# not copied from the first fold: its marker, its validation predictions and its golden scores (not the average's)
SKIP = {MARKER, golden.FILE, "valid_predictions.npy", "checkpoint", "train_log.jsonl"}


def average_files(folders: list[Path], out: Path) -> list[str]:
    """Average every .safetensors file of `folders` tensor by tensor into `out` (other files from the first)."""
    from safetensors.torch import load_file, save_file

    first = folders[0]
    weights = sorted(p.name for p in first.glob("*.safetensors"))
    if not weights:
        raise PrefkitError(f"{first}: no .safetensors weights to average")
    for name in weights:
        states = []
        for folder in folders:
            if not (folder / name).is_file():
                raise PrefkitError(f"{folder}: has no {name}, unlike {first}; merge folds of one run")
            states.append(load_file(str(folder / name)))
        keys = set(states[0])
        for folder, state in zip(folders[1:], states[1:]):
            if set(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
                raise PrefkitError(f"{folder / name}: other tensors than {first / name}; merge folds of one run")
        avg = {}
        for k, t in states[0].items():
            if t.is_floating_point():
                avg[k] = (sum(s[k].float() for s in states) / len(states)).to(t.dtype).contiguous()
            else:  # integer buffers (position ids): the same in every fold
                avg[k] = t
        save_file(avg, str(out / name), metadata={"format": "pt"})
    for p in first.iterdir():
        if p.name not in SKIP and not p.name.endswith(".safetensors"):
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, out / p.name)
    return weights


def merge_into_base(cfg, folders: list[Path], out: Path) -> None:
    """base + mean_k(B_k A_k): each fold's adapter merged into unquantised base weights, the models averaged."""
    from prefkit.core.modeling import load_merged, release
    from prefkit.core.tokenizer import Vocab
    from prefkit.rm.heads import make_head

    vocab = Vocab.from_config(cfg)
    head = make_head(cfg, vocab.tokenizer)
    total, model = None, None
    for folder in folders:
        log(f"merging {folder.name} into the base weights")
        model = load_merged(cfg, vocab, folder, head.task, outputs=head.outputs)
        state = model.state_dict()
        if total is None:
            total = {k: v.float().clone() if v.is_floating_point() else v for k, v in state.items()}
        else:
            for k, v in state.items():
                if v.is_floating_point():
                    total[k] += v.float()
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            v.copy_((total[k] / len(folders)).to(v.dtype))
    model.save_pretrained(str(out), safe_serialization=True)
    del model
    release()


def main(run_dir: str | Path, out: str | Path, into_base: bool = False) -> Path:
    run_dir, out = Path(run_dir), Path(out)
    cfg = run_config(run_dir)
    if cfg.model.kind != "seq_cls":
        raise PrefkitError(f"{run_dir}: model.kind={cfg.model.kind}; merge averages transformer fold models "
                           "(a scikit-learn model has no weights to average)")
    folds = [f for f in trained_folders(run_dir) if f.name.startswith("fold")]
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
