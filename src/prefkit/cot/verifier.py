"""A verifier for one student's sampled rationales: same-source training pairs, scores, best-of-K reranking.

The chain-of-thought reward model of `cot pairs` learns who wrote an answer when its pairs mix sources (the
teacher is right far more often than a student). Here every pair is a right and a wrong sample of the *same*
question from the *same* student (`prefkit cot sample` files of training questions), so the source says
nothing; the verifier is any reward model of prefkit's own (`prefkit cv` / `prefkit train` on `train.csv`:
MiniLM, a decoder with LoRA and a score head, the feature baseline), as Cobbe et al. 2021 train theirs on
their generator's own samples.

Scoring a lone answer with a pairwise model: each sample is put against one fixed opponent, the empty answer
`ANCHOR`, and its score is log P(A wins) - log P(B wins). For a Bradley-Terry head that is exactly the
sample's own score minus the anchor's, a constant for the question, so the order of a question's samples is
the head's own; for the other heads it is the judged margin over a fixed reference.

Reranking a question's K samples: `first` (sample 0), `majority` (the most frequent extracted answer,
self-consistency; ties go to the answer seen first), `verifier` (the best-scored sample), `weighted` (the
answer with the largest sum of calibrated P(right) over its samples). `pass_at_k`: some sample is right.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np

from prefkit.core import runs
from prefkit.cot.answers import MARKER
from prefkit.cot.pairs import response_text
from prefkit.errors import PrefkitError

ANCHOR = response_text("", None)  # "Answer: (none)": the fixed opponent of every sample when it is scored
METHODS = ("first", "majority", "verifier", "weighted")


def answer_text(row: dict) -> str:
    """What the verifier reads of a sample: its rationale and "Answer: X", as `cot pairs` shows any answer."""
    rationale = row["completion"].split(MARKER)[0].removesuffix(" END")
    return response_text(rationale, row["answer"])


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


def scores(rm_run: str | Path, rows: list[dict], say=None) -> np.ndarray:
    """Each sample's verifier score: log P(sample wins) - log P(anchor wins), fold models averaged."""
    from prefkit.data.table import TableBuilder
    from prefkit.rm.learners import ensemble_predict

    rm_run = Path(rm_run)
    cfg = runs.open_config(rm_run, made_by="`prefkit cv` or `prefkit train` (the verifier)")
    b = TableBuilder(f"<samples of {rm_run.name}>")
    for n, r in enumerate(rows, start=1):
        b.add(n, None, f"{r['dataset']}:{r['index']}:{r['sample']}", [r["question"]], [answer_text(r)], [ANCHOR], None)
    probs, _ = ensemble_predict(cfg, rm_run, b.build(), say)
    p = np.clip(probs, 1e-12, 1.0)
    return np.log(p[:, 0]) - np.log(p[:, 1])


def fit_calibration(s: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling, P(right) = sigmoid(a * s + b), fitted on samples of questions the verifier did not train on."""
    from sklearn.linear_model import LogisticRegression

    if len(set(labels.tolist())) < 2:
        raise PrefkitError("calibration needs right and wrong samples among the held-out training questions")
    m = LogisticRegression(C=1e4).fit(s.reshape(-1, 1), labels.astype(int))
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def calibrated(s: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(ab[0] * s + ab[1])))


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


def bootstrap(hits: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-question 0/1 outcomes, questions resampled."""
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), (rounds, len(hits)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


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


def rerank(rows: list[dict], s: np.ndarray, ab: tuple[float, float], rounds: int = 1000, seed: int = 0) -> dict:
    """Accuracy of every method over the questions of `rows`, with bootstrap intervals; pass@K; the verifier's
    quality on the right/wrong labels (AUC pooled and within question, log loss and ECE of the calibrated
    probabilities)."""
    from sklearn.metrics import log_loss, roc_auc_score

    by_key = {(r["dataset"], int(r["index"]), int(r["sample"])): i for i, r in enumerate(rows)}
    groups = list(by_question(rows).values())
    ks = {len(g) for g in groups}
    p = calibrated(s, ab)
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
        lo, hi = bootstrap(h, rounds, seed)
        out[m] = round(float(h.mean()), 4)
        out[f"{m}_ci"] = [round(lo, 4), round(hi, 4)]
    gold, pairs = within_question_gold(groups, s_groups)
    out["same_source_gold"] = None if gold is None else round(gold, 4)
    out["same_source_pairs"] = pairs
    both = 0 < labels.sum() < len(labels)
    out["auc"] = round(float(roc_auc_score(labels, s)), 4) if both else None
    out["logloss"] = round(float(log_loss(labels, np.clip(p, 1e-7, 1 - 1e-7), labels=[False, True])), 4) if both else None
    out["ece"] = round(_ece(p, labels), 4)
    return out


def _ece(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    return float(sum((bins == b).mean() * abs(y[bins == b].mean() - p[bins == b].mean())
                     for b in range(n_bins) if (bins == b).any()))


def reliability_plot(p: np.ndarray, y: np.ndarray, path: Path, title: str, n_bins: int = 10) -> None:
    """Calibrated P(right) against the observed share of right samples, in equal-width bins (5 samples or more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prefkit.io import save_figure

    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    xs = [p[bins == b].mean() for b in range(n_bins) if (bins == b).sum() >= 5]
    ys = [y[bins == b].mean() for b in range(n_bins) if (bins == b).sum() >= 5]
    ns = [int((bins == b).sum()) for b in range(n_bins) if (bins == b).sum() >= 5]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    ax.plot(xs, ys, marker="o", label="verifier")
    for x, yy, n in zip(xs, ys, ns):
        ax.annotate(str(n), (x, yy), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("calibrated P(right)")
    ax.set_ylabel("share of right samples")
    ax.set_title(title)
    ax.legend(loc="upper left")
    save_figure(fig, path)
