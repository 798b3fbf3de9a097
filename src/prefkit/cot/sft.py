"""`prefkit cot sft CONFIG`: LoRA (optionally 4-bit) fine-tuning of a causal LM on teacher rationales, through
the same model loader and training loop as the reward model; the loss falls on completion tokens only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefkit.batching import train_batches
from prefkit.config import USES, Config
from prefkit.cot.datasets import names
from prefkit.cot.formats import IGNORE, completion_only, sample_format, teacher_samples
from prefkit.dist import log
from prefkit.errors import PrefkitError
from prefkit.learners import is_trained, mark_trained
from prefkit.modeling import build_model
from prefkit.recipes.common import output_dir, report_unused, require_kind
from prefkit.templates import config_tokenizer, pad_token_id
from prefkit.train import fit, make_accelerator, save_and_clear

EOS_TOKENS = ("<eos>", "</s>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "[SEP]")

SECTIONS = USES["causal_lm"]  # the config keys it reads


def special_ids(tokenizer: Any, form: Any = None) -> tuple[int | None, int | None]:
    """(BOS to put first, or None; the end-of-sequence id to append to completions, or None). A chat template
    (`form.renders_bos`) writes BOS and closes the assistant turn itself: nothing is added then."""
    if getattr(form, "stop_tokens", None) is not None:
        bos = None if form.renders_bos else special_ids(tokenizer)[0]
        return bos, None
    probe = tokenizer.encode("x", add_special_tokens=True).ids
    plain = tokenizer.encode("x", add_special_tokens=False).ids
    bos = probe[0] if len(probe) > len(plain) and probe[: len(plain)] != plain else None
    eos = next((tokenizer.token_to_id(t) for t in EOS_TOKENS if tokenizer.token_to_id(t) is not None), None)
    return bos, eos


class CompletionData:
    """`train.TrainData` for causal LMs: length-grouped batches, right padding, labels IGNORE on prompt and padding."""

    def __init__(self, samples: list[dict[str, list[int]]], batch_size: int, seed: int, pad_id: int):
        self.samples, self.batch_size, self.seed, self.pad_id = samples, batch_size, seed, pad_id
        self.lengths = np.array([len(s["input_ids"]) for s in samples])

    def batches(self, epoch: int, world: int = 1) -> list[np.ndarray]:
        return train_batches(self.lengths, self.batch_size, self.seed, epoch, world)

    def describe(self, batch: np.ndarray, epoch: int) -> str:
        return ", ".join(f"sample #{int(i)}" for i in batch)

    def collate(self, batch: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        width = int(self.lengths[batch].max())
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        labels = np.full((len(batch), width), IGNORE, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, i in enumerate(batch):
            s = self.samples[i]
            ids[r, : len(s["input_ids"])] = s["input_ids"]
            labels[r, : len(s["labels"])] = s["labels"]
            mask[r, : len(s["input_ids"])] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask), "labels": torch.from_numpy(labels)}

    def loss(self, model: Any, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return completion_loss(model, tensors["input_ids"], tensors["attention_mask"], tensors["labels"]), len(tensors["input_ids"])


def completion_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over completion tokens, with the LM head applied at those positions only.

    A full forward materialises (rows x positions x vocabulary) logits, and more in fp32 for the loss: for
    Gemma-2 2B at 4 x 512 tokens and 256k words, 2 GB of fp32 logits, as much again for their gradient, and the
    soft-capping's temporaries; the prompt positions among them are computed only to be ignored. transformers'
    `logits_to_keep` takes a boolean (rows x positions) mask and hands the LM head those hidden states alone
    (flattened to N x hidden); what the model does after its head (Gemma-2's final-logit soft-capping) runs on
    those N rows unchanged."""
    if not _masked_logits_supported():
        raise PrefkitError("completion-only SFT needs a transformers release whose `logits_to_keep` takes a boolean "
                           "mask (transformers.modeling_utils.slice_logits_to_keep): upgrade transformers")
    targets = labels[:, 1:]
    keep = torch.nn.functional.pad(targets != IGNORE, (0, 1), value=False)  # position t predicts token t + 1
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=keep).logits
    return torch.nn.functional.cross_entropy(logits.float(), targets[targets != IGNORE])


def _masked_logits_supported() -> bool:
    from transformers import modeling_utils

    return hasattr(modeling_utils, "slice_logits_to_keep")


def own_samples(files: list[str], form: Any, per_question: int) -> list[dict[str, str]]:
    """Training samples from a student's own right samples (`prefkit cot sample` files of the train split):
    rationale and extracted answer in the student's format, distinct rationales, at most `per_question` a
    question, in file order. A test-split file is refused: self-training never sees a test question."""
    from prefkit.cot.answers import MARKER
    from prefkit.cot.sampling import read_samples

    out, kept = [], {}
    for f in files:
        for n, r in enumerate(read_samples(f), start=1):
            if r["split"] != "train":
                raise PrefkitError(f"cot.samples: {f}: row {n}: split {r['split']!r}; self-training uses training "
                                   "questions only")
            if not r["correct"]:
                continue
            rationale = r["completion"].split(MARKER)[0].removesuffix(" END").strip()
            seen = kept.setdefault((r["dataset"], r["index"]), set())
            if rationale and rationale not in seen and len(seen) < per_question:
                seen.add(rationale)
                out.append(form(r["question"], rationale, str(r["answer"])))
    return out


def main(cfg: Config, name: str = "", resume: bool = False) -> Path:
    require_kind(cfg, "prefkit cot sft", ("causal_lm",), "a reward model trains with `prefkit cv` or `prefkit train`; "
                 "for a student set model.kind=causal_lm")
    report_unused(cfg, "cot sft", SECTIONS)
    out = output_dir(cfg, "sft", name)
    folder = out / "model"
    if resume and is_trained(folder):
        log(f"{folder}: finished earlier, kept")
        return out
    tok = config_tokenizer(cfg)
    form = sample_format(cfg)
    bos, eos = special_ids(tok, form)
    raw, counts = [], {"rationales": 0, "surviving": 0, "per_dataset": {}}
    for dataset in names(cfg.cot.dataset):  # several datasets: one student on all their training rationales
        got, c = teacher_samples(dataset, "train", Path(cfg.cot.data_root), cfg.cot.diverse, form)
        log(f"{dataset}: {c['surviving']} of {c['rationales']} teacher rationales have the right answer")
        raw += got
        counts["rationales"] += c["rationales"]
        counts["surviving"] += c["surviving"]
        counts["per_dataset"][dataset] = c["surviving"]
    if cfg.cot.samples:
        own = own_samples(cfg.cot.samples, form, cfg.cot.samples_per_question)
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
    samples = [completion_only(tok, s["prompt"], s["completion"], cfg.template.max_length, bos, eos) for s in raw]
    acc = make_accelerator(cfg)
    model = build_model(cfg, "causal_lm", pad_token_id(tok), tok.get_vocab_size())
    data = CompletionData(samples, cfg.train.batch_size, cfg.train.seed, pad_token_id(tok))
    history = fit(model, data, cfg, folder, None, resume, acc)
    save_and_clear(acc, model, folder)
    mark_trained(folder, {"kind": "causal_lm", "dataset": cfg.cot.dataset, **counts, "history_tail": history[-1:]})
    log(f"trained on {len(samples)} rationales -> {folder}")
    return out
