"""`prefkit cot rerank`: every test sample scored by one verifier or a blend of several, one answer a question
chosen by each method (first, majority, verifier, weighted; `prefkit.cot.best_of_k`); figures per dataset and
pooled, `rerank.{json,md}`, `reliability.png`. The whole loop: recipes/cot_verifier_pairs.py.

A verifier is a run folder (`prefkit cv` / `prefkit train`, scored by `verifier_scores`) or a scorer of samples that
no run holds: an object with `held_out(rows)` and `averaged(rows)`, each row's score (e.g.
`cot.mean_logprob.MeanLogProb`, the student's own confidence, trained on nothing). Either is one score column.

P(right) is a logistic regression on the verifiers' scores (Platt scaling for one, their blend for several), one
a dataset where its held-out samples hold enough right and wrong ones (`verifier_calibration.Calibration`; `by_dataset=False`:
one for all); with `votes`, each sample's answer share among its question's samples is a column beside the
scores (self-consistency in the blend). Fitted on the training samples no model of a verifier saw the question of: every training question of a `cv`
verifier (out of fold), and the questions `verifier-pairs` held out. The held-out figures (`held_out`) score
that calibration on the same samples with grouped k-fold cross-fitting (fitted on the other questions), so they
are the figures to choose a verifier, or a blend, by: never the test split.

Refused before anything is scored: samples of a dataset the pairs hold none of (no verifier of theirs has seen
it), a question with another number of samples than the others, samples of another K than the pairs' (the
held-out figures, the calibration of `votes` are at the pairs' K; `other_k` allows it), and a verifier whose
training data is not the pairs' `train.csv` as `verifier-pairs` wrote it (its sha256 in split.json; a `cv`
verifier's oof.csv must hold no pair that the file does not: a folder written again after it trained).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prefkit.cot import best_of_k, verifier_calibration, verifier_scores
from prefkit.cot.verifier_pairs import k_of, question_key, samples_of, sha256
from prefkit.errors import PrefkitError
from prefkit.io import write_json, write_text
from prefkit.metrics import reliability_plot
from prefkit.rm.run import Run


def main(rm_runs: str | Path | list, pairs_dir: str | Path, sample_files: list[str], out: str | Path,
         rounds: int = 1000, seed: int = 0, by_dataset: bool = True, votes: bool = False,
         other_k: bool = False) -> dict:
    rms = [r if _is_scorer(r) else Path(r) for r in (rm_runs if isinstance(rm_runs, (list, tuple)) else [rm_runs])]
    pairs_dir, out = Path(pairs_dir), Path(out)
    try:
        split = json.loads((pairs_dir / "split.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PrefkitError(f"{pairs_dir}: no split.json (write it with `prefkit cot verifier-pairs`)") from None
    used = set(split["valid"]) | set(split.get("train", []))  # the questions the verifier saw (verifier-pairs may leave some out)
    train_rows = [r for r in samples_of(split["files"]) if question_key(r) in used]
    test_rows = samples_of(sample_files)
    for rm in rms:
        if isinstance(rm, Path):  # a scorer trains on no pairs: nothing to check
            trained_on(rm, pairs_dir, split)
    datasets = split.get("datasets") or sorted({q.split(":")[0] for q in used})  # an older split.json: its questions'
    unseen = sorted({r["dataset"] for r in test_rows} - set(datasets))
    if unseen:
        raise PrefkitError(f"the samples to rerank are of {', '.join(unseen)}; the pairs in {pairs_dir} are of "
                           f"{', '.join(datasets)} only: no verifier trained on them has seen {unseen[0]}")
    k, k_pairs = k_of(test_rows), split.get("k") or k_of(train_rows)
    if k != k_pairs and not other_k:
        raise PrefkitError(f"{', '.join(map(str, sample_files))}: K={k} samples a question; the pairs in {pairs_dir} "
                           f"were built from K={k_pairs}: give samples of K={k_pairs} (or --other-k: reranked at "
                           f"K={k}, held-out figures at K={k_pairs})")
    overlap = {(r["dataset"], r["question"]) for r in train_rows} & {(r["dataset"], r["question"]) for r in test_rows}
    if overlap:
        raise PrefkitError(f"{len(overlap)} questions of the samples to rerank are among the verifier's training "
                           "questions: rerank test-split samples")
    trained = _paired(pairs_dir / "train.csv")  # the questions a fold could have trained on
    s_train = np.column_stack([scores(rm, train_rows, held_out=True) for rm in rms])
    s_test = np.column_stack([scores(rm, test_rows, held_out=False) for rm in rms])
    if votes:  # each sample's answer share among its question's samples: the verifier and self-consistency blended
        s_train = np.column_stack([s_train, best_of_k.vote_share(train_rows)])
        s_test = np.column_stack([s_test, best_of_k.vote_share(test_rows)])
    keep = np.flatnonzero(~np.isnan(s_train).any(axis=1))
    held_rows = [train_rows[i] for i in keep]
    y_held = np.array([bool(r["correct"]) for r in held_rows])
    by = (lambda rows: [r["dataset"] for r in rows]) if by_dataset else (lambda rows: None)
    cal = verifier_calibration.Calibration(s_train[keep], y_held, by(held_rows))
    s_test = cal.logit(s_test, by(test_rows))
    s_held = verifier_calibration.cross_fitted(s_train[keep], y_held, [question_key(r) for r in held_rows],
                                               by(held_rows), seed=seed)
    oof = {question_key(r) for r in held_rows} & trained
    result: dict = {"verifiers": [str(rm) for rm in rms], "votes": votes, "pairs": str(pairs_dir),
                    "calibration": cal.describe(),
                    "held_out_questions": {"out_of_fold": len(oof),
                                           "unseen": len({question_key(r) for r in held_rows} - oof)},
                    "held_out": best_of_k.rerank(held_rows, s_held, rounds, seed), "datasets": {}}
    for dataset in sorted({r["dataset"] for r in test_rows}):
        idx = np.array([i for i, r in enumerate(test_rows) if r["dataset"] == dataset])
        result["datasets"][dataset] = best_of_k.rerank([test_rows[i] for i in idx], s_test[idx], rounds, seed)
    result["pooled"] = best_of_k.rerank(test_rows, s_test, rounds, seed)
    y_test = np.array([bool(r["correct"]) for r in test_rows])
    reliability_plot({"verifier": (verifier_calibration.sigmoid(s_test), y_test)}, out / "reliability.png",
                     f"verifier on {len(test_rows)} test samples", xlabel="calibrated P(right)",
                     ylabel="share of right samples", counts=True)
    write_json(out / "rerank.json", result)
    write_text(out / "rerank.md", markdown(result))
    return result


def _is_scorer(verifier) -> bool:
    return hasattr(verifier, "held_out") and hasattr(verifier, "averaged")


def scores(verifier, rows: list[dict], held_out: bool) -> np.ndarray:
    """A verifier's score of each row; `held_out`: from models that never saw the row's question (a scorer's own
    `held_out`, which for one trained on nothing is every score)."""
    if isinstance(verifier, Path):
        return (verifier_scores.held_out if held_out else verifier_scores.averaged)(verifier, rows)
    s = np.asarray(verifier.held_out(rows) if held_out else verifier.averaged(rows), dtype=float)
    if s.shape != (len(rows),):
        raise PrefkitError(f"{verifier}: {s.shape} scores for {len(rows)} samples; one score a sample")
    return s


def trained_on(rm: Path, pairs_dir: Path, split: dict) -> None:
    """Refuse a verifier not trained on `pairs_dir/train.csv`: its `data.train` must hold the bytes verifier-pairs
    wrote (their sha256 in split.json; the file's own for an older one), and a `cv` verifier's oof.csv no pair id
    the file lacks (the pairs written again in place after it trained: the path and bytes agree, the run does not)."""
    import pandas as pd

    pairs = pairs_dir / "train.csv"
    if not pairs.is_file():
        raise PrefkitError(f"{pairs}: no such file (write {pairs_dir} with `prefkit cot verifier-pairs`)")
    want = split.get("train_sha256") or sha256(pairs)
    data = Path(Run.open(rm, made_by=verifier_scores.MADE_BY).config.data.train)  # a student is refused here
    oof = rm / "oof.csv"
    got = sha256(data) if data.is_file() else None
    if got != want and (got is not None or not oof.is_file()):  # a moved data file: a cv run's oof.csv still tells
        raise PrefkitError(f"{rm}: trained on {data} ({f'sha256 {got[:12]}' if got else 'no such file now'}), not on "
                           f"{pairs} (sha256 {want[:12]}): give the --pairs folder "
                           "the verifier was trained on, or train one on these pairs")
    if oof.is_file():
        ids = [set(pd.read_csv(f, usecols=["id"])["id"].astype(str)) for f in (oof, pairs)]
        extra = ids[0] - ids[1]
        if extra:
            raise PrefkitError(f"{oof}: {len(extra)} of the pairs the verifier trained on (e.g. {sorted(extra)[0]}) "
                               f"are not in {pairs}: the pairs were written again after it trained; train it again")


def _paired(table: Path) -> set[str]:
    import pandas as pd

    return {question_key(i) for i in pd.read_csv(table, usecols=["id"])["id"]} if table.exists() else set()


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
