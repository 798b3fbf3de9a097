"""`prefkit cot sft CONFIG`: LoRA (optionally 4-bit) fine-tuning of a causal LM on teacher rationales, through
the same model loader and training loop as the reward model; the loss falls on completion tokens only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefkit.config import USES, Config
from prefkit.core.dist import log
from prefkit.core.modeling import build_model
from prefkit.core.runs import mark_trained
from prefkit.core.tokenizer import Vocab
from prefkit.core.train import fit, make_accelerator, save_and_clear
from prefkit.cot.completions import CompletionData, own_samples
from prefkit.cot.datasets import names
from prefkit.cot.formats import StudentFormat, teacher_samples
from prefkit.errors import PrefkitError
from prefkit.recipes.common import finished_earlier, start

SECTIONS = USES["causal_lm"]  # the config keys it reads


def main(cfg: Config, name: str = "", resume: bool = False) -> Path:
    out = start(cfg, "cot sft", ("causal_lm",), "a reward model trains with `prefkit cv` or `prefkit train`; for a "
                "student set model.kind=causal_lm", SECTIONS, name, resume)
    folder = out / "model"
    if finished_earlier(folder, resume):
        return out
    vocab = Vocab.from_config(cfg)
    fmt = StudentFormat.of(cfg, vocab)
    raw, counts = [], {"rationales": 0, "surviving": 0, "per_dataset": {}}
    for dataset in names(cfg.cot.dataset):  # several datasets: one student on all their training rationales
        got, c = teacher_samples(dataset, "train", Path(cfg.cot.data_root), cfg.cot.diverse, fmt.build)
        log(f"{dataset}: {c['surviving']} of {c['rationales']} teacher rationales have the right answer")
        raw += got
        counts["rationales"] += c["rationales"]
        counts["surviving"] += c["surviving"]
        counts["per_dataset"][dataset] = c["surviving"]
    if cfg.cot.samples:
        own = own_samples(cfg.cot.samples, fmt.build, cfg.cot.samples_per_question)
        log(f"self-training: {len(own)} of the student's own right samples of training questions join them")
        raw += own
        counts["own_samples"] = len(own)
    if not raw:
        raise PrefkitError(f"{cfg.cot.dataset}: no teacher rationale survived; nothing to train on")
    if 0 < cfg.cot.train_limit < len(raw):
        keep = np.sort(np.random.default_rng(cfg.train.seed).choice(len(raw), cfg.cot.train_limit, replace=False))
        log(f"cot.train_limit={cfg.cot.train_limit}: training on {len(keep)} of the {len(raw)} surviving rationales")
        raw = [raw[i] for i in keep]
        counts["trained_on"] = len(raw)
    samples = [fmt.completion_ids(s["prompt"], s["completion"], cfg.template.max_length) for s in raw]
    acc = make_accelerator()
    model = build_model(cfg, vocab, "causal_lm")
    data = CompletionData(samples, cfg.train.batch_size, cfg.train.seed, vocab.pad_id)
    history = fit(model, data, cfg, folder, None, resume, acc)
    save_and_clear(acc, model, folder)
    mark_trained(folder, {"kind": "causal_lm", "dataset": cfg.cot.dataset, **counts, "history_tail": history[-1:]})
    log(f"trained on {len(samples)} rationales -> {folder}")
    return out
