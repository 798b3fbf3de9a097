"""`prefkit cot eval`: answer accuracy of predictions on a dataset split.

Predictions are either prefkit's JSONL (`{"index": i, "completion": text}` a line, completions in the
Fine-tune-CoT format, answer after "-->") or the paper's teacher-completion file as it is (its
`completion` field is the Zero-shot-CoT answer step: the first candidate counts).

`accuracy` is the share of correct completions among all completions of the split's questions, a question
with none counting as one wrong completion. That is the paper's rule: its Teacher row (Ho et al. 2023,
Table 1; computed in `notebooks/results.ipynb` of itsnamgyu/reasoning-teacher) counts the 25 or 5 extra
samples that a few questions carry in the teacher files, e.g. MultiArith 624 correct of 792 completions =
78.79. With one completion a question it is plain accuracy over the questions. `accuracy_first` scores only
each question's first completion. `surviving_completions` (correct ones) is what Fine-tune-CoT keeps.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import DEFAULT_ROOT, load
from prefkit.errors import PrefkitError

TEACHER_STEP = "\nTherefore, the answer is"  # joins a teacher's rationale and answer step in full text


def read_predictions(path: Path, full_text: bool = False) -> tuple[dict[int, list[str]], str | None]:
    """index -> completions, and the marker rule to read them with (None: teacher answer steps).
    `full_text`: for teacher files, the rationale followed by the answer step (what a judge should read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PrefkitError(f"{path}: no such file") from None
    stripped = text.lstrip()
    if stripped.startswith("{") and '"data"' in stripped[:2000]:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict):  # the paper's teacher-completion file
            out = {}
            for key, comps in doc["data"].items():
                ordered = sorted(comps, key=lambda c: c.get("completion_index", 0))
                out[int(key)] = [
                    f"{(c.get('reasoning_completion') or '').strip()}{TEACHER_STEP} {(c.get('completion') or '').strip()}"
                    if full_text else c.get("completion") or "" for c in ordered
                ]
            return out, None
    out: dict[int, list[str]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.setdefault(int(row["index"]), []).append(str(row["completion"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise PrefkitError(f"{path}: line {n}: expected {{\"index\": int, \"completion\": str}}") from None
    return out, "-->"


def evaluate(dataset: str, predictions: Path, split: str = "all", root: Path = DEFAULT_ROOT,
             limit: int | None = None) -> dict:
    """Scores over the split's questions (the first `limit` of them)."""
    examples = load(dataset, split, root)[:limit]
    preds, marker = read_predictions(predictions)
    correct = missing = completions = surviving = 0
    for ex in examples:
        comps = preds.get(ex.index)
        if not comps:
            missing += 1
            continue
        correct += is_correct(dataset, extract(dataset, comps[0], marker, ex.question), ex.answer)
        completions += len(comps)
        surviving += sum(is_correct(dataset, extract(dataset, c, marker, ex.question), ex.answer) for c in comps)
    n = len(examples)
    scored = completions + missing
    return {"dataset": dataset, "split": split, "n": n,
            "accuracy": round(surviving / scored, 6) if scored else 0.0,
            "accuracy_first": round(correct / n, 6) if n else 0.0, "correct_first": correct, "missing": missing,
            "completions": completions, "surviving_completions": surviving}
