"""Training data of the reward model: the seeded evaluation sample, and `PairTrainData`, the `train.TrainData`
of rendered rows (one or more sequences each, as the head wants) with A/B swap augmentation and, where a
teacher is given, distillation (`prefkit.toolbox.distill`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prefkit.core.batching import collate, train_batches
from prefkit.data.table import PairTable
from prefkit.metrics import swap_probs
from prefkit.rm.heads import Head
from prefkit.toolbox.distill import Distillation


def eval_sample(table: PairTable, rows: int, seed: int) -> PairTable:
    """The rows evaluated during training: all of them, or a seeded sample of `rows` (0: all). Evaluating a
    whole validation fold every `eval_every` steps, with swap TTA, costs hours on a T4 (a fifth of LMSYS is
    11,500 rows); the fold's full prediction (the OOF) comes once, after training."""
    if not rows or len(table) <= rows:
        return table
    keep = np.sort(np.random.default_rng([seed, 7]).choice(len(table), rows, replace=False))
    return table.subset(keep)


class PairTrainData:
    """`train.TrainData` for the reward model. Example i of an epoch is row i % n, swapped when i >= n
    ("both") or when that epoch's seeded coin says so ("random"). Row r's sequences are
    `ids[r * per_row : (r + 1) * per_row]` (`ids_swapped` likewise, in the swapped A/B order). With a
    `Distillation` (the teacher's logits, one row each) the loss is its distillation loss."""

    def __init__(self, head: Head, ids: list[np.ndarray], ids_swapped: list[np.ndarray] | None, targets: np.ndarray,
                 swap: str, batch_size: int, seed: int, pad_id: int, names: list[str] | None = None,
                 distill: Distillation | None = None):
        self.head, self.per_row = head, head.per_row
        self.ids, self.ids_swapped, self.targets = ids, ids_swapped, targets
        self.swap, self.batch_size, self.seed, self.pad_id = swap, batch_size, seed, pad_id
        self.names = names
        self.distill = distill
        self.teacher = None if distill is None else distill.teacher
        self.n = len(targets)
        if len(ids) != self.n * self.per_row:
            raise ValueError(f"{len(ids)} sequences for {self.n} rows of {self.per_row}")
        self.len = self._row_lengths(ids)
        self.len_swapped = None if ids_swapped is None else self._row_lengths(ids_swapped)

    def _row_lengths(self, ids: list[np.ndarray]) -> np.ndarray:
        return np.array([len(x) for x in ids]).reshape(-1, self.per_row).sum(axis=1)

    def _flips(self, epoch: int) -> np.ndarray:
        if self.swap == "random":
            return np.random.default_rng([self.seed, epoch, 1]).random(self.n) < 0.5
        if self.swap == "both":
            return np.r_[np.zeros(self.n, bool), np.ones(self.n, bool)]
        return np.zeros(self.n, bool)

    def batches(self, epoch: int, world: int = 1) -> list[np.ndarray]:
        flips = self._flips(epoch)
        rows = np.arange(len(flips)) % self.n
        lengths = np.where(flips, self.len_swapped[rows] if self.len_swapped is not None else 0, self.len[rows])
        return train_batches(lengths, self.batch_size, self.seed, epoch, world)

    def describe(self, batch: np.ndarray, epoch: int) -> str:
        flips = self._flips(epoch)[batch]
        rows = batch % self.n
        names = [self.names[r] if self.names is not None else f"#{r}" for r in rows]
        return ", ".join(f"id {n!r}" + (" (A/B swapped)" if f else "") for n, f in zip(names, flips))

    def collate(self, batch: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        flips = self._flips(epoch)[batch]
        rows = batch % self.n
        p = self.per_row
        seqs = [s for r, f in zip(rows, flips) for s in (self.ids_swapped if f else self.ids)[r * p : (r + 1) * p]]
        targets = np.where(flips[:, None], swap_probs(self.targets[rows]), self.targets[rows])
        batch = {**collate(seqs, self.pad_id, left=self.head.left_pad), "targets": torch.from_numpy(targets)}
        if self.teacher is not None:  # swap_probs exchanges columns: it maps logits as it maps probabilities
            batch["teacher"] = torch.from_numpy(np.where(flips[:, None], swap_probs(self.teacher[rows]), self.teacher[rows]))
        return batch

    def loss(self, model: Any, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = self.head.forward(model, tensors)
        if "teacher" in tensors:
            loss = self.distill.loss(self.head.row_logits(out.float()), tensors["targets"], tensors["teacher"])
        else:
            loss = self.head.loss(out, tensors["targets"])
        return loss, len(tensors["targets"])
