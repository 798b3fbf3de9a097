"""Sample files: K rationales a question from one student, scored, one JSONL row a sample (written by
`prefkit cot sample`, recipes/cot_sample.py).

A row: `{"dataset", "split", "index", "sample", "question", "completion", "answer", "correct"}` (`answer` as `cot.answers.extract`
reads it, None where there is none), and `sampling`, the settings that drew it (what `cot sample` checks before it
resumes or keeps a file; absent from the files of an older prefkit).
"""

from __future__ import annotations

import json
from pathlib import Path

from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import Example
from prefkit.errors import PrefkitError

FIELDS = ("dataset", "split", "index", "sample", "question", "completion", "answer", "correct")


def read_samples(path: str | Path) -> list[dict]:
    """The rows of a samples file; a bad line is named (file and line)."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PrefkitError(f"{path}: no such file") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            missing = [f for f in FIELDS if f not in row]
        except json.JSONDecodeError:
            raise PrefkitError(f"{path}: line {n}: not JSON") from None
        if missing:
            raise PrefkitError(f"{path}: line {n}: missing {', '.join(missing)} (a `prefkit cot sample` file has {', '.join(FIELDS)})")
        rows.append(row)
    return rows


def score_row(dataset: str, split: str, e: Example, sample: int, completion: str) -> dict:
    answer = extract(dataset, completion, question=e.question)
    return {"dataset": dataset, "split": split, "index": e.index, "sample": sample, "question": e.question, "completion": completion, "answer": answer,
            "correct": is_correct(dataset, answer, e.answer)}
