"""What a verifier reads of one student's sampled rationales, and the same-source pairs it trains on.

The chain-of-thought reward model of `cot pairs` learns who wrote an answer when its pairs mix sources (the
teacher is right far more often than a student). Here every pair is a right and a wrong sample of the *same*
question from the *same* student (`prefkit cot sample` files of training questions), so the source says
nothing; the verifier is any reward model of prefkit's own (`prefkit cv` / `prefkit train` on `train.csv`:
MiniLM, a decoder with LoRA and a score head, the feature baseline), as Cobbe et al. 2021 train theirs on
their generator's own samples. Scores: cot/verifier_scores.py; P(right): cot/verifier_calibration.py;
best-of-K: cot/best_of_k.py.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

from prefkit.cot.answers import MARKER
from prefkit.cot.pairs import response_text
from prefkit.cot.sampling import read_samples
from prefkit.errors import PrefkitError


def answer_text(row: dict) -> str:
    """What the verifier reads of a sample: its rationale and "Answer: X", as `cot pairs` shows any answer."""
    rationale = row["completion"].split(MARKER)[0].removesuffix(" END")
    return response_text(rationale, row["answer"])


def question_key(row_or_id) -> str:
    """"dataset:index" of a sample row, or of a pair id ("dataset:index:right:wrong", `same_source_pairs`)."""
    if isinstance(row_or_id, dict):
        return f"{row_or_id['dataset']}:{int(row_or_id['index'])}"
    return ":".join(str(row_or_id).split(":")[:2])


def by_question(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """(dataset, index) -> the question's samples in sample order."""
    out: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        out.setdefault((r["dataset"], int(r["index"])), []).append(r)
    return {q: sorted(v, key=lambda r: r["sample"]) for q, v in out.items()}


def same_source_pairs(groups: dict[tuple[str, int], list[dict]], per_question: int, rng: random.Random) -> list[dict]:
    """At most `per_question` (right, wrong) pairs of each question, distinct answer texts, A/B order drawn."""
    pairs = []
    for (dataset, index), rows in groups.items():
        right = list({answer_text(r): r for r in rows if r["correct"]}.items())
        wrong = list({answer_text(r): r for r in rows if not r["correct"]}.items())
        combos = [(g, b) for g in right for b in wrong]
        for (good, g), (bad, b) in rng.sample(combos, min(per_question, len(combos))):
            a_first = rng.random() < 0.5
            pairs.append({"id": f"{dataset}:{index}:{g['sample']}:{b['sample']}", "question": g["question"],
                          "a": good if a_first else bad, "b": bad if a_first else good, "label": "a" if a_first else "b",
                          "model_a": f"sample {(g if a_first else b)['sample']}",
                          "model_b": f"sample {(b if a_first else g)['sample']}"})
    return pairs


def write_pairs(table_path: Path, pairs: list[dict]) -> None:
    from prefkit.data.arena import write_lmsys_csv
    from prefkit.data.table import TableBuilder

    b = TableBuilder(str(table_path))
    for n, p in enumerate(pairs, start=1):
        b.add(n, None, p["id"], [p["question"]], [p["a"]], [p["b"]], p["label"], model_a=p["model_a"],
              model_b=p["model_b"])
    write_lmsys_csv(b.build(), table_path)


def samples_of(files: list[str], split: str | None = None) -> list[dict]:
    """The rows of sample files, every question with as many samples (K): a question with fewer (a file cut short)
    or more (a question in two files) would weigh differently in every vote and pass@K."""
    rows, files_of = [], {}
    for f in files:
        got = read_samples(f)
        if split is not None:
            other = next((n for n, r in enumerate(got, start=1) if r["split"] != split), None)
            if other is not None:
                raise PrefkitError(f"{f}: row {other}: split {got[other - 1]['split']!r}; the verifier trains on "
                                   f"{split}-split samples only (the test split is never shown to it)")
        for r in got:
            files_of.setdefault(question_key(r), []).append(f)
        rows += got
    if not rows:
        raise PrefkitError("no samples in " + ", ".join(files))
    counts = {q: len(fs) for q, fs in files_of.items()}
    k = Counter(counts.values()).most_common(1)[0][0]  # the K of most questions
    odd = next((q for q, n in counts.items() if n != k), None)
    if odd is not None:
        raise PrefkitError(f"{', '.join(dict.fromkeys(files_of[odd]))}: question {odd} has {counts[odd]} samples, "
                           f"the others {k}: every question needs the same K (a file cut short, or a question in "
                           "two files?)")
    return rows


def k_of(rows: list[dict]) -> int:
    """K, the samples a question, of rows `samples_of` read (every question has as many)."""
    return len(rows) // len({question_key(r) for r in rows})


def sha256(path: Path) -> str:
    """A file's SHA-256 (hex): split.json records train.csv's, and `cot rerank` checks a verifier's data by it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
