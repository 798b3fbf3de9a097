"""Best-of-K: the sample each method picks among a question's K sampled rationales, and the figures of every
method over many questions (accuracy with bootstrap intervals, pass@K, the verifier's AUC, log loss and ECE).

Methods: `first` (sample 0), `majority` (the most frequent extracted answer, self-consistency; ties go to the
answer seen first), `verifier` (the best-scored sample), `weighted` (the answer with the largest sum of
calibrated P(right) over its samples, `verifier_calibration`). `pass_at_k`: some sample is right.

Two methods are compared by their paired difference (`paired_difference`): both are right or wrong on the same
questions, so one bootstrap resample of questions serves both, and a question they agree on moves neither: where
they agree on most questions its interval is much narrower than the two accuracies' intervals suggest. `first_k` cuts a K=2k sample file to each
question's first k samples, so that a method at k and one at 2k compare on the same draws.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from prefkit import metrics
from prefkit.cot.verifier_calibration import sigmoid
from prefkit.cot.verifier_pairs import by_question, question_key
from prefkit.errors import PrefkitError

METHODS = ("first", "majority", "verifier", "weighted")
DIFFERENCES = (("weighted", "majority"), ("weighted", "first"), ("verifier", "majority"))  # `rerank`'s "diff"


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
    keys = [question_key(g[0]) for g in groups]
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
    out["diff"] = {f"{a}-{b}": paired_difference(hits[a], hits[b], rounds, seed) for a, b in DIFFERENCES}
    # which methods chose a right answer, a question: one character a method of METHODS ("1": right), so that a
    # later comparison (another K, another file of the same questions) can pair its questions with these
    out["right"] = {q: "".join("1" if hits[m][i] else "0" for m in METHODS) for i, q in enumerate(keys)}
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


def right_by_question(result: dict, method: str) -> dict[str, bool]:
    """"dataset:index" -> whether `method` chose a right answer, from a `rerank` result's "right"."""
    at = METHODS.index(method)
    return {q: flags[at] == "1" for q, flags in result["right"].items()}


def paired_difference(a, b, rounds: int = 1000, seed: int = 0) -> dict:
    """Accuracy of method a minus that of method b on the same questions (a[i], b[i]: right on question i), with
    the 95% bootstrap interval of the difference: each resample of questions is applied to both methods."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_difference needs one right/wrong a question for each method, got {a.shape} and {b.shape}")
    d = a - b
    lo, hi = metrics.bootstrap(lambda questions: d[questions].mean(), len(d), rounds, seed)
    return {"diff": round(float(d.mean()), 4), "ci": [round(float(lo), 4), round(float(hi), 4)]}


def paired_by_question(a: dict[str, bool], b: dict[str, bool], rounds: int = 1000, seed: int = 0) -> dict:
    """`paired_difference` of two methods given by question (`right_by_question`, one of them perhaps from another
    file of the same questions): refused unless both answered the same questions."""
    if a.keys() != b.keys():
        only = sorted(a.keys() - b.keys()) or sorted(b.keys() - a.keys())
        raise PrefkitError(f"a paired difference needs the same questions on both sides: {len(a)} against {len(b)} "
                           f"questions, {only[0]} on one side only")
    return paired_difference([a[q] for q in a], [b[q] for q in a], rounds, seed)


def first_k(rows: list[dict], k: int) -> list[dict]:
    """Each question's samples 0..k-1 (rows in their order): a file of 2k samples a question cut to k, so that
    majority@2k and any method at k compare on the same draws. They are k draws of the same sampler, not the
    draws a K=k run makes: `cot sample` seeds each batch by its number, and a batch holds
    generate_batch_size // K questions whose K samples each come from one random stream, so at another K the
    batches and their streams differ. A question without all of samples 0..k-1 is refused, named."""
    for (dataset, index), g in by_question(rows).items():
        missing = sorted(set(range(k)) - {int(r["sample"]) for r in g})
        if missing:
            raise PrefkitError(f"{dataset}:{index}: {len(g)} samples, none numbered {missing[0]}: "
                               f"its first {k} samples (0-{k - 1}) are not all there")
    return [r for r in rows if int(r["sample"]) < k]
