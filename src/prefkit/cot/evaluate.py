"""Answer accuracy of predictions on a dataset split (`prefkit cot eval`: recipes/cot_eval.py).

Predictions are either prefkit's JSONL (`{"index": i, "completion": text}` a line, completions in the
Fine-tune-CoT format, answer after "-->") or the paper's teacher-completion file as it is (its
`completion` field is the Zero-shot-CoT answer step: the first candidate counts).

`accuracy` is the share of correct completions among all completions of the split's questions, a question
with none counting as one wrong completion. That is the paper's rule: its Teacher row (Ho et al. 2023,
Table 1; computed in `notebooks/results.ipynb` of itsnamgyu/reasoning-teacher) counts the 25 or 5 extra
samples that a few questions carry in the teacher files, e.g. MultiArith 624 correct of 792 completions =
78.79. With one completion a question it is plain accuracy over the questions. `accuracy_first` scores only
each question's first completion. `surviving_completions` (correct ones) is what Fine-tune-CoT keeps.

A predictions file must be of the dataset and split it is scored on (`check_origin`): its question texts (teacher
files and `prefkit cot generate`/`sample` files carry them), else its indices; an empty file is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import DEFAULT_ROOT, load, spec
from prefkit.errors import PrefkitError

TEACHER_STEP = "\nTherefore, the answer is"  # joins a teacher's rationale and answer step in full text


def read_predictions(path: Path, full_text: bool = False) -> tuple[dict[int, list[str]], str | None]:
    """index -> completions, and the marker rule to read them with (None: teacher answer steps).
    `full_text`: for teacher files, the rationale followed by the answer step (what a judge should read)."""
    preds, marker, _ = _read(path, full_text)
    return preds, marker


def _read(path: Path, full_text: bool = False) -> tuple[dict[int, list[str]], str | None, dict]:
    """`read_predictions`, and what the file says of where its rows come from: {"questions": index -> question
    text (rows that carry one), "datasets": dataset names or keys the file names}."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PrefkitError(f"{path}: no such file") from None
    origin: dict = {"questions": {}, "datasets": set()}
    stripped = text.lstrip()
    if stripped.startswith("{") and '"data"' in stripped[:2000]:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict):  # the paper's teacher-completion file
            meta = doc.get("metadata")
            if isinstance(meta, dict) and isinstance(meta.get("dataset_key"), str):
                origin["datasets"].add(meta["dataset_key"])
            out = {}
            for key, comps in doc["data"].items():
                ordered = sorted(comps, key=lambda c: c.get("completion_index", 0))
                out[int(key)] = [
                    f"{(c.get('reasoning_completion') or '').strip()}{TEACHER_STEP} {(c.get('completion') or '').strip()}"
                    if full_text else c.get("completion") or "" for c in ordered
                ]
                for c in ordered:
                    if isinstance(c.get("question"), str):
                        origin["questions"].setdefault(int(key), c["question"])
            return out, None, origin
    out: dict[int, list[str]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.setdefault(int(row["index"]), []).append(str(row["completion"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise PrefkitError(f"{path}: line {n}: expected {{\"index\": int, \"completion\": str}}") from None
        if isinstance(row.get("question"), str):
            origin["questions"].setdefault(int(row["index"]), row["question"])
        if isinstance(row.get("dataset"), str):
            origin["datasets"].add(row["dataset"])
    return out, "-->", origin


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def check_origin(path: Path, dataset: str, split: str, root: Path, preds: dict[int, list[str]], origin: dict) -> None:
    """Refuse predictions that are not of `dataset`'s `split`: an empty file; a file that names another dataset;
    a row whose question text is not the dataset's question at its index (where rows carry one), or whose index
    the dataset does not have; or indices of which none is in the split (all would count as missing)."""
    if not preds:
        raise PrefkitError(f"{path}: no predictions in it (an empty file): nothing to score")
    key = spec(dataset).key
    named = sorted(origin["datasets"] - {dataset, key})
    if named:
        raise PrefkitError(f"{path}: predictions of {named[0]!r}, not of {dataset!r} (--dataset)")
    every = {e.index: e.question for e in load(dataset, "all", root)}
    outside = sorted(i for i in preds if i not in every)
    if outside:
        raise PrefkitError(f"{path}: index {outside[0]} is not a question of {dataset} (its indices are 0 to "
                           f"{len(every) - 1}; {len(outside)} of the file's {len(preds)} indices lie outside): are these "
                           "predictions of another dataset?")
    for i, question in sorted(origin["questions"].items()):
        if not _same_text(question, every[i]):
            short = lambda t: repr(t if len(t) <= 60 else t[:57] + "...")  # noqa: E731
            raise PrefkitError(f"{path}: the question of index {i} is {short(question)}, but {dataset}'s question {i} "
                               f"is {short(every[i])}: are these predictions of another dataset?")
    if split != "all":
        wanted = {e.index for e in load(dataset, split, root)}
        if not wanted & preds.keys():
            raise PrefkitError(f"{path}: none of its {len(preds)} indices is a question of {dataset}'s {split} split: "
                               f"predictions of another split (--split)?")


def evaluate(dataset: str, predictions: Path, split: str = "all", root: Path = DEFAULT_ROOT,
             limit: int | None = None) -> dict:
    """Scores over the split's questions (the first `limit` of them)."""
    examples = load(dataset, split, root)[:limit]
    preds, marker, origin = _read(predictions)
    check_origin(Path(predictions), dataset, split, root, preds, origin)
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
