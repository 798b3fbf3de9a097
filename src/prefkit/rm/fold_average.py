"""A cv run's fold models averaged into one model (`prefkit merge`, and `prefkit export --average`): every weight
file tensor by tensor (`average_files`: for LoRA, A and B averaged apart), or each fold's adapter merged into the
unquantised base weights and the merged models averaged (`merge_into_base`: exactly base + mean_k(B_k A_k))."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefkit.core.dist import log
from prefkit.core.runs import MARKER
from prefkit.errors import PrefkitError
from prefkit.rm import golden

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
