"""Best-of-K: the sample each method picks among a question's K sampled rationales, and the figures of every
method over many questions (accuracy with bootstrap intervals, pass@K, the verifier's AUC, log loss and ECE).

Methods: `first` (sample 0), `majority` (the most frequent extracted answer, self-consistency; ties go to the
answer seen first), `verifier` (the best-scored sample), `weighted` (the answer with the largest sum of
calibrated P(right) over its samples, `verifier_calibration`). `pass_at_k`: some sample is right.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from prefkit import metrics
from prefkit.cot.verifier_calibration import sigmoid
from prefkit.cot.verifier_pairs import by_question, question_key

METHODS = ("first", "majority", "verifier", "weighted")


def vote_share(rows: list[dict]) -> np.ndarray:
    """Each sample's share of its question's samples that state the same answer (0 where it states none): the
    self-consistency signal, as a column the calibration may weigh beside the verifiers' scores."""
    out = np.zeros(len(rows))
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(question_key(r), []).append(i)
    for idx in groups.values():
        counted = Counter(rows[i]["answer"] for i in idx if rows[i]["answer"] is not None)
        for i in idx:
            out[i] = counted[rows[i]["answer"]] / len(idx) if rows[i]["answer"] is not None else 0.0
    return out


def choose(rows: list[dict], s: np.ndarray, p_right: np.ndarray) -> dict[str, dict]:
    """The sample each method picks among one question's samples (rows in sample order)."""
    answers = [r["answer"] for r in rows]
    picks = {"first": rows[0], "verifier": rows[int(np.argmax(s))]}
    counted = Counter(a for a in answers if a is not None)
    if counted:
        top = max(counted.values())
        best = next(a for a in answers if a is not None and counted[a] == top)  # ties: the answer seen first
        picks["majority"] = next(r for r in rows if r["answer"] == best)
        weight: dict[str, float] = {}
        for a, w in zip(answers, p_right):
            if a is not None:
                weight[a] = weight.get(a, 0.0) + float(w)
        heaviest = max(weight.values())
        best = next(a for a in answers if a is not None and weight[a] == heaviest)
        picks["weighted"] = next(r for r in rows if r["answer"] == best)
    else:  # no sample states an answer: every method is wrong; keep the first
        picks["majority"] = picks["weighted"] = rows[0]
    return picks


def rerank(rows: list[dict], s: np.ndarray, rounds: int = 1000, seed: int = 0) -> dict:
    """Accuracy of every method over the questions of `rows`, with bootstrap intervals; pass@K; the verifier's
    quality on the right/wrong labels (AUC pooled and within question, log loss and ECE of the calibrated
    probabilities). `s`: each sample's calibrated logit of P(right) (`Calibration.logit`)."""
    from sklearn.metrics import log_loss, roc_auc_score

    by_key = {(r["dataset"], int(r["index"]), int(r["sample"])): i for i, r in enumerate(rows)}
    groups = list(by_question(rows).values())
    ks = {len(g) for g in groups}
    p = sigmoid(s)
    hits = {m: [] for m in METHODS}
    passed, s_groups = [], []
    for g in groups:
        idx = np.array([by_key[(r["dataset"], int(r["index"]), int(r["sample"]))] for r in g])
        s_groups.append(s[idx])
        for m, r in choose(g, s[idx], p[idx]).items():
            hits[m].append(bool(r["correct"]))
        passed.append(any(r["correct"] for r in g))
    labels = np.array([bool(r["correct"]) for r in rows])
    out: dict = {"n": len(groups), "k": max(ks), "k_min": min(ks), "samples": len(rows),
                 "sample_accuracy": round(float(labels.mean()), 4), "pass_at_k": round(float(np.mean(passed)), 4)}
    for m in METHODS:
        h = np.array(hits[m], dtype=float)
        lo, hi = metrics.bootstrap(lambda questions: h[questions].mean(), len(h), rounds, seed)
        out[m] = round(float(h.mean()), 4)
        out[f"{m}_ci"] = [round(float(lo), 4), round(float(hi), 4)]
    gold, pairs = within_question_gold(groups, s_groups)
    out["same_source_gold"] = None if gold is None else round(gold, 4)
    out["same_source_pairs"] = pairs
    both = 0 < labels.sum() < len(labels)
    out["auc"] = round(float(roc_auc_score(labels, s)), 4) if both else None
    out["logloss"] = round(float(log_loss(labels, np.clip(p, 1e-7, 1 - 1e-7), labels=[False, True])), 4) if both else None
    out["ece"] = round(metrics.calibration_error(p, labels), 4)
    return out


def within_question_gold(groups: list[list[dict]], s_by_group: list[np.ndarray]) -> tuple[float | None, int]:
    """Share of (right, wrong) sample pairs of one question in which the right one scores higher (ties half):
    the gold accuracy on same-source pairs, every pair of every question."""
    wins, n = 0.0, 0
    for rows, s in zip(groups, s_by_group):
        ok = np.array([r["correct"] for r in rows], dtype=bool)
        if ok.any() and (~ok).any():
            diff = s[ok][:, None] - s[~ok][None, :]
            wins += float((diff > 0).sum() + 0.5 * (diff == 0).sum())
            n += diff.size
    return (wins / n if n else None), n
