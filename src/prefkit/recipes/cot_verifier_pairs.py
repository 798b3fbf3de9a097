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
picks one answer a question by each method (`prefkit.cot.best_of_k`) and reports, per dataset and pooled:
accuracies with bootstrap intervals, pass@K, AUC, log loss, ECE, the same-source gold accuracy, a
reliability plot.

`split.json` records what `rerank` checks its inputs against: the datasets of the pairs, K (every question has
as many samples: a question with another number is refused here) and the sha256 of `train.csv`, the file a
verifier must have been trained on.
"""

from __future__ import annotations

import random
from pathlib import Path

from prefkit.cot import verifier_pairs
from prefkit.cot.datasets import DEFAULT_ROOT, load
from prefkit.cot.verifier_pairs import k_of, samples_of, sha256
from prefkit.errors import PrefkitError
from prefkit.io import write_json


def without_test_questions(rows: list[dict], root: Path) -> tuple[list[dict], dict[str, int]]:
    """The training samples less those of a question whose text is also a test question of its dataset (the
    paper's splits repeat a few questions across train and test: MultiArith, SVAMP): the verifier never sees a
    test question, not even under a training index. Returns the rows kept and the questions left out a dataset."""
    kept, left_out = [], {}
    for dataset in sorted({r["dataset"] for r in rows}):
        test = {e.question for e in load(dataset, "test", root)}
        mine = [r for r in rows if r["dataset"] == dataset]
        kept += [r for r in mine if r["question"] not in test]
        left_out[dataset] = len({r["index"] for r in mine if r["question"] in test})
    return kept, left_out


def main(sample_files: list[str], out: str | Path, valid_fraction: float = 0.2, per_question: int = 4,
               seed: int = 0, data_root: str | Path = DEFAULT_ROOT) -> dict:
    if not 0 < valid_fraction < 1:
        raise PrefkitError(f"--valid-fraction must lie between 0 and 1, got {valid_fraction}")
    out, rng = Path(out), random.Random(seed)
    rows, left_out = without_test_questions(samples_of(sample_files, split="train"), Path(data_root))
    groups = verifier_pairs.by_question(rows)
    keys = sorted(groups)
    rng.shuffle(keys)
    valid = set(keys[: round(len(keys) * valid_fraction)])
    summary: dict = {"files": [str(Path(f).resolve()) for f in sample_files], "seed": seed, "k": k_of(rows),
                     "valid_fraction": valid_fraction, "per_question": per_question, "datasets": {},
                     "left_out_test_questions": left_out}
    sides = {}
    for side, chosen in (("train", [k for k in sorted(groups) if k not in valid]), ("valid", sorted(valid))):
        sides[side] = verifier_pairs.same_source_pairs({k: groups[k] for k in chosen}, per_question, rng)
        if not sides[side]:
            raise PrefkitError(f"no {side} pairs: no {side}-side question has both a right and a wrong sample")
        verifier_pairs.write_pairs(out / f"{side}.csv", sides[side])
        summary[side] = len(sides[side])
    for (dataset, _), rows in groups.items():
        d = summary["datasets"].setdefault(dataset, {"questions": 0, "mixed": 0, "all_right": 0, "all_wrong": 0,
                                                     "samples": 0, "right": 0})
        right = sum(r["correct"] for r in rows)
        d["questions"] += 1
        d["samples"] += len(rows)
        d["right"] += right
        d["mixed" if 0 < right < len(rows) else "all_right" if right else "all_wrong"] += 1
    write_json(out / "split.json", {"valid": sorted(f"{d}:{i}" for d, i in valid),
                                    "train": sorted(f"{d}:{i}" for d, i in groups if (d, i) not in valid),
                                    "files": summary["files"], "datasets": sorted(summary["datasets"]),
                                    "k": summary["k"], "train_sha256": sha256(out / "train.csv")})
    write_json(out / "summary.json", summary)
    return summary
