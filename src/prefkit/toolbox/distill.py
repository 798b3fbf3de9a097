"""Knowledge distillation from a teacher's predictions (`train.distill`), and the training targets of a reward
model: hard labels, soft labels, pseudo-labels and teacher logits, one row each.

The loss is Hinton et al.'s (2015): alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) +
(1 - alpha) * CE(student, target), the T^2 keeping the soft term's gradients on the scale of the hard one's.
Student logits are the head's row logits (log-probabilities up to a constant per row, for every head); teacher
logits are log-probabilities from `prefkit.toolbox.predictions`. LMSYS 1st place distilled 70B teachers into Gemma-2-9b
with CE + KL; WSDM Cup 3rd used KL only (alpha 0.9 in their words: a soft weight) at T = 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from prefkit.competition import Competition
from prefkit.config import Config
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import hard_targets, probabilities
from prefkit.toolbox.predictions import lookup


def distill_loss(student: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor, temperature: float,
                 alpha: float) -> torch.Tensor:
    """Mean over rows of alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, targets), in fp32.
    `targets` are one-hot or soft probabilities; `teacher` and `student` logits."""
    student, teacher = student.float(), teacher.float()
    t = temperature
    log_s = F.log_softmax(student / t, dim=1)
    log_t = F.log_softmax(teacher / t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()
    ce = F.cross_entropy(student, targets.float())
    return alpha * t * t * kl + (1.0 - alpha) * ce


def row_targets(cfg: Config, table: PairTable, comp: Competition) -> np.ndarray:
    """One target distribution per training row: one-hot from its label, or the soft label file's probabilities
    (`train.soft_labels`, every row); rows without a label (pseudo-labelled pairs) take the pseudo-label file's
    where the soft label file has none."""
    tc = cfg.train
    ids = list(table.frame["id"])
    if tc.soft_labels:  # pseudo-labelled rows that the soft-label file lacks take the pseudo-label file's
        sources = [tc.soft_labels] + ([tc.pseudo_labels] if tc.pseudo_labels else [])
        return probabilities(lookup(sources, ids, comp, "train.soft_labels")).astype(np.float32)
    labelled = table.frame["label"].notna().to_numpy()
    targets = np.zeros((len(table), len(comp.labels)), dtype=np.float32)
    targets[labelled] = hard_targets(table.frame["label"][labelled], len(comp.labels))
    if (~labelled).any():
        if not tc.pseudo_labels:
            raise PrefkitError(f"{table.source}: {int((~labelled).sum())} training rows have no label")
        unlabelled = [i for i, ok in zip(ids, labelled) if not ok]
        targets[~labelled] = probabilities(lookup([tc.pseudo_labels], unlabelled, comp, "train.pseudo_labels"))
    return targets


@dataclass(frozen=True)
class Distillation:
    """What a distilled training run needs, in one object: the teacher's logits of every training row, and the
    loss's temperature and weight (from `train.distill`, whose defaults are the only ones)."""

    teacher: np.ndarray  # (rows, labels) logits, in the rows' order
    temperature: float
    alpha: float

    def loss(self, student: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return distill_loss(student, targets, teacher, self.temperature, self.alpha)

    def describe(self, sources: list[str]) -> str:
        return f"distilling from {', '.join(sources)} (T={self.temperature}, alpha={self.alpha})"


def distillation(cfg: Config, table: PairTable, comp: Competition) -> Distillation | None:
    """The run's distillation (`train.distill.teacher`, then the pseudo-label file for rows no teacher has), or
    None when it is off."""
    sources = list(cfg.train.distill.teacher)
    if not sources:
        return None
    if cfg.train.pseudo_labels:
        sources.append(cfg.train.pseudo_labels)
    logits = lookup(sources, list(table.frame["id"]), comp, "train.distill.teacher").astype(np.float32)
    return Distillation(logits, cfg.train.distill.temperature, cfg.train.distill.alpha)
