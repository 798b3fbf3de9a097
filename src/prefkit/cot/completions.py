"""Completion data for a student's supervised fine-tuning: length-grouped batches with the loss on completion
tokens only (`CompletionData`, a `train.TrainData`), the completion-only loss, and the student's own right samples
for self-training (rejection sampling, as STaR does)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prefkit.core.batching import IGNORE, collate, train_batches
from prefkit.errors import PrefkitError


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
        rows = [self.samples[i] for i in batch]
        return collate([r["input_ids"] for r in rows], self.pad_id, labels=[r["labels"] for r in rows])

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
