"""`prefkit cot verifier-pairs` and `prefkit cot rerank`: a verifier of one student's samples, and best-of-K.

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

import numpy as np

from prefkit.cot import verifier
from prefkit.cot.sampling import read_samples
from prefkit.errors import PrefkitError
from prefkit.io import write_json, write_text


def _rows(files: list[str], split: str | None = None) -> list[dict]:
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


def pairs_main(sample_files: list[str], out: str | Path, valid_fraction: float = 0.2, per_question: int = 4,
               seed: int = 0) -> dict:
    if not 0 < valid_fraction < 1:
        raise PrefkitError(f"--valid-fraction must lie between 0 and 1, got {valid_fraction}")
    out, rng = Path(out), random.Random(seed)
    groups = verifier.by_question(_rows(sample_files, split="train"))
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


def rerank_main(rm_run: str | Path, pairs_dir: str | Path, sample_files: list[str], out: str | Path,
                rounds: int = 1000, seed: int = 0) -> dict:
    import json

    pairs_dir, out = Path(pairs_dir), Path(out)
    try:
        split = json.loads((pairs_dir / "split.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefkitError(f"{pairs_dir}: no split.json (write it with `prefkit cot verifier-pairs`)") from None
    held = set(split["valid"])
    train_rows = _rows(split["files"])
    valid_rows = [r for r in train_rows if f"{r['dataset']}:{r['index']}" in held]
    test_rows = _rows(sample_files)
    overlap = {(r["dataset"], r["question"]) for r in train_rows} & {(r["dataset"], r["question"]) for r in test_rows}
    if overlap:
        raise PrefkitError(f"{len(overlap)} questions of the samples to rerank are among the verifier's training "
                           "questions: rerank test-split samples")
    s_valid = verifier.scores(rm_run, valid_rows)
    y_valid = np.array([bool(r["correct"]) for r in valid_rows])
    ab = verifier.fit_calibration(s_valid, y_valid)
    s_test = verifier.scores(rm_run, test_rows)
    result: dict = {"verifier": str(rm_run), "pairs": str(pairs_dir), "calibration": {"a": round(ab[0], 6), "b": round(ab[1], 6)},
                    "valid": verifier.rerank(valid_rows, s_valid, ab, rounds, seed), "datasets": {}}
    for dataset in sorted({r["dataset"] for r in test_rows}):
        idx = np.array([i for i, r in enumerate(test_rows) if r["dataset"] == dataset])
        result["datasets"][dataset] = verifier.rerank([test_rows[i] for i in idx], s_test[idx], ab, rounds, seed)
    result["pooled"] = verifier.rerank(test_rows, s_test, ab, rounds, seed)
    y_test = np.array([bool(r["correct"]) for r in test_rows])
    verifier.reliability_plot(verifier.calibrated(s_test, ab), y_test, out / "reliability.png",
                              f"verifier on {len(test_rows)} test samples")
    write_json(out / "rerank.json", result)
    write_text(out / "rerank.md", markdown(result))
    return result


def markdown(r: dict) -> str:
    lines = [f"# Best-of-K with the verifier `{r['verifier']}`", "",
             "| dataset | questions | K | first | majority | verifier | weighted | pass@K | AUC | same-source gold |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, x: dict) -> str:
        def pct(m: str) -> str:
            return f"{100 * x[m]:.2f} [{100 * x[m + '_ci'][0]:.1f}, {100 * x[m + '_ci'][1]:.1f}]"
        auc = "" if x["auc"] is None else f"{x['auc']:.3f}"
        gold = "" if x["same_source_gold"] is None else f"{x['same_source_gold']:.3f} ({x['same_source_pairs']})"
        return (f"| {name} | {x['n']} | {x['k']} | {pct('first')} | {pct('majority')} | {pct('verifier')} | "
                f"{pct('weighted')} | {100 * x['pass_at_k']:.2f} | {auc} | {gold} |")

    lines += [row(d, x) for d, x in r["datasets"].items()]
    lines += [row("**pooled**", r["pooled"]), row("held-out training questions", r["valid"])]
    p = r["pooled"]
    lines += ["", f"Accuracy in %, 95% bootstrap intervals over questions. Calibrated P(right) on the test samples: "
              f"log loss {p['logloss']}, ECE {p['ece']} (Platt scaling fitted on the held-out training questions)."]
    return "\n".join(lines) + "\n"
