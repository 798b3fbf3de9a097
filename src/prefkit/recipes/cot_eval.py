"""`prefkit cot eval`: answer accuracy of predictions (prefkit's JSONL, or the paper's teacher file as it is) on
a dataset split. The scores, and the check that the file is of that dataset and split: `prefkit.cot.evaluate`.
"""

from __future__ import annotations

from pathlib import Path

from prefkit.cot.datasets import DEFAULT_ROOT
from prefkit.cot.evaluate import evaluate


def main(dataset: str, predictions: str | Path, split: str = "all", root: Path = DEFAULT_ROOT) -> dict:
    return evaluate(dataset, Path(predictions), split, root)
