"""`prefkit cot rerank`: every test sample scored by one verifier or a blend of several, one answer a question
chosen by each method (first, majority, verifier, weighted; `prefkit.cot.verifier`); figures per dataset and
pooled, `rerank.{json,md}`, `reliability.png`. The whole loop: recipes/cot_verifier_pairs.py.

P(right) is a logistic regression on the verifiers' scores (Platt scaling for one, their blend for several), one
a dataset where its held-out samples hold enough right and wrong ones (`verifier.Calibration`; `by_dataset=False`:
one for all); with `votes`, each sample's answer share among its question's samples is a column beside the
scores (self-consistency in the blend). Fitted on the training samples no model of a verifier saw the question of: every training question of a `cv`
verifier (out of fold), and the questions `verifier-pairs` held out. The held-out figures (`held_out`) score
that calibration on the same samples with grouped k-fold cross-fitting (fitted on the other questions), so they
are the figures to choose a verifier, or a blend, by: never the test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prefkit.cot import verifier
from prefkit.errors import PrefkitError
from prefkit.io import write_json, write_text
from prefkit.recipes.cot_verifier_pairs import samples_of


def main(rm_runs: str | Path | list, pairs_dir: str | Path, sample_files: list[str], out: str | Path,
         rounds: int = 1000, seed: int = 0, by_dataset: bool = True, votes: bool = False) -> dict:
    rms = [Path(r) for r in ([rm_runs] if isinstance(rm_runs, (str, Path)) else rm_runs)]
    pairs_dir, out = Path(pairs_dir), Path(out)
    try:
        split = json.loads((pairs_dir / "split.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefkitError(f"{pairs_dir}: no split.json (write it with `prefkit cot verifier-pairs`)") from None
    used = set(split["valid"]) | set(split.get("train", []))  # the questions the verifier saw (verifier-pairs may leave some out)
    train_rows = [r for r in samples_of(split["files"]) if verifier.question_key(r) in used]
    test_rows = samples_of(sample_files)
    overlap = {(r["dataset"], r["question"]) for r in train_rows} & {(r["dataset"], r["question"]) for r in test_rows}
    if overlap:
        raise PrefkitError(f"{len(overlap)} questions of the samples to rerank are among the verifier's training "
                           "questions: rerank test-split samples")
    trained = _paired(pairs_dir / "train.csv")  # the questions a fold could have trained on
    s_train = np.column_stack([verifier.held_out_scores(rm, train_rows) for rm in rms])
    s_test = np.column_stack([verifier.scores(rm, test_rows) for rm in rms])
    if votes:  # each sample's answer share among its question's samples: the verifier and self-consistency blended
        s_train = np.column_stack([s_train, verifier.vote_share(train_rows)])
        s_test = np.column_stack([s_test, verifier.vote_share(test_rows)])
    keep = np.flatnonzero(~np.isnan(s_train).any(axis=1))
    held_rows = [train_rows[i] for i in keep]
    y_held = np.array([bool(r["correct"]) for r in held_rows])
    by = (lambda rows: [r["dataset"] for r in rows]) if by_dataset else (lambda rows: None)
    cal = verifier.Calibration(s_train[keep], y_held, by(held_rows))
    s_test = cal.logit(s_test, by(test_rows))
    s_held = verifier.cross_fitted(s_train[keep], y_held, [verifier.question_key(r) for r in held_rows], by(held_rows),
                                   seed=seed)
    oof = {verifier.question_key(r) for r in held_rows} & trained
    result: dict = {"verifiers": [str(rm) for rm in rms], "votes": votes, "pairs": str(pairs_dir),
                    "calibration": cal.describe(),
                    "held_out_questions": {"out_of_fold": len(oof),
                                           "unseen": len({verifier.question_key(r) for r in held_rows} - oof)},
                    "held_out": verifier.rerank(held_rows, s_held, rounds, seed), "datasets": {}}
    for dataset in sorted({r["dataset"] for r in test_rows}):
        idx = np.array([i for i, r in enumerate(test_rows) if r["dataset"] == dataset])
        result["datasets"][dataset] = verifier.rerank([test_rows[i] for i in idx], s_test[idx], rounds, seed)
    result["pooled"] = verifier.rerank(test_rows, s_test, rounds, seed)
    y_test = np.array([bool(r["correct"]) for r in test_rows])
    verifier.reliability_plot(verifier.sigmoid(s_test), y_test, out / "reliability.png",
                              f"verifier on {len(test_rows)} test samples")
    write_json(out / "rerank.json", result)
    write_text(out / "rerank.md", markdown(result))
    return result


def _paired(table: Path) -> set[str]:
    import pandas as pd

    return {verifier.question_key(i) for i in pd.read_csv(table, usecols=["id"])["id"]} if table.exists() else set()


def markdown(r: dict) -> str:
    lines = [f"# Best-of-K with the verifier {' + '.join(f'`{v}`' for v in r['verifiers'])}"
             + (" and the vote share" if r.get("votes") else ""), "",
             "| dataset | questions | K | first | majority | verifier | weighted | pass@K | AUC | same-source gold | log loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, x: dict) -> str:
        def pct(m: str) -> str:
            return f"{100 * x[m]:.2f} [{100 * x[m + '_ci'][0]:.1f}, {100 * x[m + '_ci'][1]:.1f}]"
        auc = "" if x["auc"] is None else f"{x['auc']:.3f}"
        gold = "" if x["same_source_gold"] is None else f"{x['same_source_gold']:.3f} ({x['same_source_pairs']})"
        return (f"| {name} | {x['n']} | {x['k']} | {pct('first')} | {pct('majority')} | {pct('verifier')} | "
                f"{pct('weighted')} | {100 * x['pass_at_k']:.2f} | {auc} | {gold} | {x['logloss'] or ''} |")

    lines += [row(d, x) for d, x in r["datasets"].items()]
    lines += [row("**pooled**", r["pooled"]), row("held-out training questions", r["held_out"])]
    p = r["pooled"]
    lines += ["", f"Accuracy in %, 95% bootstrap intervals over questions. Calibrated P(right) on the test samples: "
              f"log loss {p['logloss']}, ECE {p['ece']} (a logistic regression on the verifiers' scores, fitted on the "
              f"training samples no model of theirs was trained on: {r['held_out_questions']['out_of_fold']} questions "
              f"out of fold, {r['held_out_questions']['unseen']} held out of every model; their row is cross-fitted)."]
    return "\n".join(lines) + "\n"
