"""Batches of rendered rows: length-grouped for training, token-budgeted and sorted for prediction.

Rows are right-padded to the longest row of their batch: decoder classifiers (Gemma-2, Llama) read the last
token that is not padding, so right padding is correct for both them and BERT-likes. A causal LM judge
(`heads.LmTokens`) reads the next-token logits at the last position and is left-padded (`left=True`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

IGNORE = -100  # label of positions that carry no loss (torch's cross-entropy ignore_index): prompts and padding


def collate(seqs: Sequence[Sequence[int]], pad_id: int, left: bool = False,
            labels: Sequence[Sequence[int]] | None = None) -> dict[str, torch.Tensor]:
    """The one padding of prefkit: token id lists -> `input_ids` and `attention_mask` padded to the longest,
    on the right (training, scoring) or on the left (`left=True`: generation, and heads that read the last
    position); with `labels` (one list a sequence, as long as it), a `labels` tensor padded with IGNORE."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    targets = np.full((len(seqs), width), IGNORE, dtype=np.int64) if labels is not None else None
    for i, s in enumerate(seqs):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, cols] = s
        mask[i, cols] = 1
        if targets is not None:
            if len(labels[i]) != len(s):
                raise ValueError(f"sequence {i}: {len(labels[i])} labels for {len(s)} tokens")
            targets[i, cols] = labels[i]
    out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if targets is not None:
        out["labels"] = torch.from_numpy(targets)
    return out


def train_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, world: int = 1,
                  group: int = 50) -> list[np.ndarray]:
    """A seeded shuffle of all rows, cut into batches of rows of similar length (sorted inside windows of
    `group` batches, as transformers' group_by_length does), in a shuffled order.

    With `world` processes, the batch list is dealt out round-robin (`shard`), so batches k*world ...
    k*world + world - 1 run at the same step on different processes. They are kept together: neighbours in
    length order, shuffled as one unit. Otherwise a process with a short batch waits at every gradient
    all-reduce for one with a long batch (DDP stragglers). Depends on (seed, epoch, world) alone, so a
    resumed run sees the same batches."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    window = batch_size * group
    batches = []
    for start in range(0, len(perm), window):
        chunk = perm[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    world = max(1, world)
    units = [batches[i : i + world] for i in range(0, len(batches), world)]
    tail = units.pop() if units and len(units[-1]) < world else []  # a short last unit stays last
    order = rng.permutation(len(units))
    return [b for i in order for b in units[i]] + tail


def predict_batches(lengths: np.ndarray, batch_tokens: int, sort: bool) -> list[np.ndarray]:
    """Batches holding at most `batch_tokens` tokens, padding included (a longer row goes alone).

    sort: longest rows first (so an out-of-memory shows at once), each batch as full as the budget allows.
    Otherwise rows in input order, a fixed number per batch, sized for the longest row: the plain pipeline.
    """
    n = len(lengths)
    if n == 0:
        return []
    if not sort:
        per = max(1, batch_tokens // int(lengths.max()))
        return [np.arange(i, min(i + per, n)) for i in range(0, n, per)]
    order = np.argsort(-lengths, kind="stable")
    batches, current, width = [], [], 0
    for i in order:
        w = max(width, int(lengths[i]))
        if current and w * (len(current) + 1) > batch_tokens:
            batches.append(np.array(current))
            current, w = [], int(lengths[i])
        current.append(i)
        width = w
    batches.append(np.array(current))
    return batches


def padding_ratio(batches: Sequence[np.ndarray], lengths: np.ndarray) -> float:
    """Padded tokens per real token over all batches (0.0: no padding at all)."""
    real = int(lengths.sum())
    padded = sum(len(b) * int(lengths[b].max()) for b in batches) - real
    return padded / real if real else 0.0


def shard(items: list, rank: int, world: int) -> list:
    """This process's share: every world-th item from `rank` (the others take the rest, none twice)."""
    return items[rank::world]
