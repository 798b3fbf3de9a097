"""`prefkit cot truthfulqa`: TruthfulQA MC1/MC2 of a student, from its log-likelihoods of the reference answers
(`prefkit.cot.truthfulqa`). A run folder is scored with its trained adapter; a config with its base weights:
before and after SFT, on the same questions.
"""

from __future__ import annotations

from pathlib import Path

from prefkit.cot.datasets import load_truthfulqa
from prefkit.cot.student import open_student
from prefkit.cot.truthfulqa import mc_summary
from prefkit.io import write_json


def main(source: str, out: str | None = None, limit: int | None = None, overrides: list[str] = ()) -> dict:
    """`source`: an SFT run folder (its trained model) or a config (its base weights)."""
    cfg, _, _ = open_student(source, overrides, load_model=False)
    items = load_truthfulqa(Path(cfg.cot.data_root) / "truthfulqa" / "TruthfulQA.csv")[:limit]  # before the model loads
    cfg, model, trained = open_student(source, overrides)
    result = {"source": str(source), "trained": trained, **mc_summary(model, cfg, items, cfg.cot.generate_batch_size)}
    if out:
        write_json(Path(out), result)
    return result
