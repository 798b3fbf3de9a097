"""Reasoning datasets as the Fine-tune-CoT paper ("Large Language Models Are Reasoning Teachers", Ho et al.,
ACL 2023) ships them, read as they are from `../shared/data/reasoning/<name>/`:

    reasoning-teacher/<key>.json            [{"question", "answer"}, ...]
    reasoning-teacher/<key>__default.json   {"train": [indices], "test": [indices]}  (the paper's split)
    teacher-completions/B_text-davinci-002__C_zs_cot/D_<key>.json   the teacher's Zero-shot-CoT completions

plus TruthfulQA (CSV).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from prefkit.errors import PrefkitError

DEFAULT_ROOT = Path("..") / "shared" / "data"


@dataclass(frozen=True)
class Spec:
    folder: str  # under reasoning/
    key: str  # the paper's file key
    answer: str  # "number" | "letter"
    letters: str = ""  # the options a letter answer can take


DATASETS = {
    "singleeq": Spec("singleeq", "single_eq", "number"),
    "addsub": Spec("addsub", "addsub", "number"),
    "multiarith": Spec("multiarith", "multiarith", "number"),
    "svamp": Spec("svamp", "svamp", "number"),
    "date_understanding": Spec("date_understanding", "date_understanding", "letter", "ABCDEF"),
    "tracking_shuffled_objects": Spec("tracking_shuffled_objects", "tracking_shuffled_objects", "letter", "ABC"),
}
SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class Example:
    index: int  # the sample's index in the paper's files
    question: str
    answer: str


def spec(name: str) -> Spec:
    if name not in DATASETS:
        raise PrefkitError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    return DATASETS[name]


def names(value: str) -> list[str]:
    """The datasets a `cot.dataset` value names: one name, a comma-separated list, or "all" (SFT on several
    at once; generation and evaluation take one)."""
    picked = list(DATASETS) if value.strip() == "all" else [v.strip() for v in value.split(",") if v.strip()]
    for name in picked:
        spec(name)
    if not picked:
        raise PrefkitError("cot.dataset is empty: name a dataset, several separated by commas, or all")
    return picked


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefkitError(f"{path}: no such file (is the shared data folder at --data-root?)") from None
    except json.JSONDecodeError as e:
        raise PrefkitError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def load(name: str, split: str = "all", root: Path = DEFAULT_ROOT) -> list[Example]:
    """The dataset's examples in the paper's split (train, test, or all), in index order."""
    if split not in SPLITS:
        raise PrefkitError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    s = spec(name)
    base = Path(root) / "reasoning" / s.folder / "reasoning-teacher"
    items = _read_json(base / f"{s.key}.json")
    indices = range(len(items))
    if split != "all":
        indices = sorted(_read_json(base / f"{s.key}__default.json")[split])
    return [Example(i, items[i]["question"], str(items[i]["answer"])) for i in indices]


def teacher_file(name: str, root: Path = DEFAULT_ROOT) -> Path:
    s = spec(name)
    return Path(root) / "reasoning" / s.folder / "teacher-completions" / "B_text-davinci-002__C_zs_cot" / f"D_{s.key}.json"


@dataclass(frozen=True)
class TruthfulQA:
    question: str
    best: str
    correct: tuple[str, ...]
    incorrect: tuple[str, ...]
    category: str


def load_truthfulqa(path: Path = DEFAULT_ROOT / "truthfulqa" / "TruthfulQA.csv") -> list[TruthfulQA]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise PrefkitError(f"{path}: no such file") from None
    split = lambda cell: tuple(a.strip() for a in cell.split(";") if a.strip())  # noqa: E731
    need = ["Question", "Best Answer", "Correct Answers", "Incorrect Answers", "Category"]
    if rows and (missing := [c for c in need if c not in rows[0]]):
        raise PrefkitError(f"{path}: column {missing[0]!r}: missing column")
    return [TruthfulQA(r["Question"], r["Best Answer"], split(r["Correct Answers"]), split(r["Incorrect Answers"]),
                       r["Category"]) for r in rows]
