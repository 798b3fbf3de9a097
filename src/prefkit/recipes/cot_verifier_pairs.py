"""`prefkit cot verifier-pairs` (here) and `prefkit cot rerank` (recipes/cot_rerank.py): a verifier of one
student's samples, and best-of-K.

    prefkit cot sample --run STUDENT --split train --k 8 --out train_samples/{dataset}.jsonl cot.dataset=...
    prefkit cot verifier-pairs --samples train_samples/*.jsonl --out PAIRS
    prefkit cv rm/minilm_cpu data.train=PAIRS/train.csv output_dir=VERIFIER     (or train; any reward model)
    prefkit cot sample --run STUDENT --split test --k 8 --out test_samples/{dataset}.jsonl cot.dataset=...
    prefkit cot rerank --rm VERIFIER --pairs PAIRS --samples test_samples/*.jsonl --out RERANK

`verifier-pairs` reads training-split samples only (a test-split file is refused: the verifier never sees a
test question) and holds out a share of the training questions (`valid.csv`, seeded, by question): the
verifier's calibration (Platt) and its held-out quality come from those. `rerank` scores every test sample,
picks one answer a question by each method (`prefkit.cot.verifier`) and reports, per dataset and pooled:
accuracies with bootstrap intervals, pass@K, AUC, log loss, ECE, the same-source gold accuracy, a
reliability plot.
"""

from __future__ import annotations

import random
from pathlib import Path

from prefkit.cot import verifier
from prefkit.cot.sampling import read_samples
from prefkit.errors import PrefkitError
from prefkit.io import write_json


def samples_of(files: list[str], split: str | None = None) -> list[dict]:
    rows = []
    for f in files:
        got = read_samples(f)
        if split is not None:
            other = next((n for n, r in enumerate(got, start=1) if r["split"] != split), None)
            if other is not None:
                raise PrefkitError(f"{f}: row {other}: split {got[other - 1]['split']!r}; the verifier trains on "
                                   f"{split}-split samples only (the test split is never shown to it)")
        rows += got
    if not rows:
        raise PrefkitError("no samples in " + ", ".join(files))
    return rows


def main(sample_files: list[str], out: str | Path, valid_fraction: float = 0.2, per_question: int = 4,
               seed: int = 0) -> dict:
    if not 0 < valid_fraction < 1:
        raise PrefkitError(f"--valid-fraction must lie between 0 and 1, got {valid_fraction}")
    out, rng = Path(out), random.Random(seed)
    groups = verifier.by_question(samples_of(sample_files, split="train"))
    keys = sorted(groups)
    rng.shuffle(keys)
    valid = set(keys[: round(len(keys) * valid_fraction)])
    summary: dict = {"files": [str(Path(f).resolve()) for f in sample_files], "seed": seed,
                     "valid_fraction": valid_fraction, "per_question": per_question, "datasets": {}}
    sides = {}
    for side, chosen in (("train", [k for k in sorted(groups) if k not in valid]), ("valid", sorted(valid))):
        sides[side] = verifier.same_source_pairs({k: groups[k] for k in chosen}, per_question, rng)
        if not sides[side]:
            raise PrefkitError(f"no {side} pairs: no {side}-side question has both a right and a wrong sample")
        verifier.write_pairs(out / f"{side}.csv", sides[side])
        summary[side] = len(sides[side])
    for (dataset, _), rows in groups.items():
        d = summary["datasets"].setdefault(dataset, {"questions": 0, "mixed": 0, "all_right": 0, "all_wrong": 0,
                                                     "samples": 0, "right": 0})
        right = sum(r["correct"] for r in rows)
        d["questions"] += 1
        d["samples"] += len(rows)
        d["right"] += right
        d["mixed" if 0 < right < len(rows) else "all_right" if right else "all_wrong"] += 1
    write_json(out / "split.json", {"valid": sorted(f"{d}:{i}" for d, i in valid), "files": summary["files"]})
    write_json(out / "summary.json", summary)
    return summary
