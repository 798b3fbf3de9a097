"""`prefkit cot rerank`: every test sample scored by a verifier, one answer a question chosen by each method
(first, majority, verifier, weighted; `prefkit.cot.verifier`), calibrated on the held-out training questions of
a `prefkit cot verifier-pairs` folder; figures per dataset and pooled, `rerank.{json,md}`, `reliability.png`.
The whole loop: recipes/cot_verifier_pairs.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prefkit.cot import verifier
from prefkit.errors import PrefkitError
from prefkit.io import write_json, write_text
from prefkit.recipes.cot_verifier_pairs import samples_of


def main(rm_run: str | Path, pairs_dir: str | Path, sample_files: list[str], out: str | Path,
         rounds: int = 1000, seed: int = 0) -> dict:
    pairs_dir, out = Path(pairs_dir), Path(out)
    try:
        split = json.loads((pairs_dir / "split.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefkitError(f"{pairs_dir}: no split.json (write it with `prefkit cot verifier-pairs`)") from None
    held = set(split["valid"])
    used = held | set(split.get("train", []))  # the questions the verifier saw (verifier-pairs may leave some out)
    train_rows = [r for r in samples_of(split["files"]) if f"{r['dataset']}:{r['index']}" in used]
    valid_rows = [r for r in train_rows if f"{r['dataset']}:{r['index']}" in held]
    test_rows = samples_of(sample_files)
    overlap = {(r["dataset"], r["question"]) for r in train_rows} & {(r["dataset"], r["question"]) for r in test_rows}
    if overlap:
        raise PrefkitError(f"{len(overlap)} questions of the samples to rerank are among the verifier's training "
                           "questions: rerank test-split samples")
    scored = verifier.scores(rm_run, valid_rows + test_rows)  # one pass: each fold model loads once
    s_valid, s_test = scored[: len(valid_rows)], scored[len(valid_rows):]
    ab = verifier.fit_calibration(s_valid, np.array([bool(r["correct"]) for r in valid_rows]))
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
