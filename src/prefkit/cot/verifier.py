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

from prefkit import metrics
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


def question_key(row_or_id) -> str:
    """"dataset:index" of a sample row, or of a pair id ("dataset:index:right:wrong", `same_source_pairs`)."""
    if isinstance(row_or_id, dict):
        return f"{row_or_id['dataset']}:{int(row_or_id['index'])}"
    return ":".join(str(row_or_id).split(":")[:2])


def _against_anchor(rows: list[dict], source: str):
    from prefkit.data.table import TableBuilder

    b = TableBuilder(source)
    for n, r in enumerate(rows, start=1):
        b.add(n, None, f"{r['dataset']}:{r['index']}:{r['sample']}", [r["question"]], [answer_text(r)], [ANCHOR], None)
    return b.build()


def _log_odds_over_anchor(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return np.log(p[:, 0]) - np.log(p[:, 1])


def scores(rm_run: str | Path, rows: list[dict], say=None) -> np.ndarray:
    """Each sample's verifier score: log P(sample wins) - log P(anchor wins), fold models averaged."""
    from prefkit.rm.learners import ensemble_predict

    rm_run = Path(rm_run)
    cfg = runs.open_config(rm_run, made_by="`prefkit cv` or `prefkit train` (the verifier)")
    folders = runs.trained_folders(rm_run)

    def compute() -> np.ndarray:
        probs, _ = ensemble_predict(cfg, rm_run, _against_anchor(rows, f"<samples of {rm_run.name}>"), say)
        return _log_odds_over_anchor(probs)

    return _kept(rm_run, folders, rows, compute)


def _kept(rm_run: Path, folders: list[Path], rows: list[dict], compute) -> np.ndarray:
    """Scores kept in the verifier's run folder (`scores/<key>.npy`), keyed by the models that scored (each
    folder's trained.json) and the texts scored: reranking the same samples again (another calibration, a blend
    with another verifier) reads them instead of running every fold model over every sample again."""
    import hashlib

    from prefkit.io import atomic_path

    h = hashlib.sha256()
    for f in folders:
        h.update(f.name.encode() + b"\0" + (f / runs.MARKER).read_bytes())
    for r in rows:
        h.update(f"{r['question']}\0{answer_text(r)}\0".encode("utf-8", "surrogatepass"))
    path = rm_run / "scores" / f"{h.hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            got = np.load(path)
            if got.shape == (len(rows),):
                return got
        except (OSError, ValueError):
            pass  # a damaged file: scored again and rewritten
    out = compute()
    try:
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, out)
    except OSError:
        pass  # a read-only run folder: nothing kept, nothing lost
    return out


def held_out_scores(rm_run: str | Path, rows: list[dict]) -> np.ndarray:
    """Each training sample's score from models that never saw its question, NaN where every model did.

    A question absent from the verifier's data (`verifier-pairs` held it out, or it has no right-and-wrong pair)
    is scored by every model of the run, averaged; a question the run cross-validated on (a `cv` run's oof.csv
    names its fold) by the one fold model that held it out; a question a `train` run trained on gets NaN. So a
    `cv` verifier scores every training sample, a `train` one the samples of questions outside its data: those
    are what calibration, the blend of verifiers and the choice between them may be fitted on."""
    import pandas as pd

    from prefkit.rm.learners import load_learner

    rm_run = Path(rm_run)
    cfg = runs.open_config(rm_run, made_by="`prefkit cv` or `prefkit train` (the verifier)")
    oof = rm_run / "oof.csv"
    data = oof if oof.exists() else Path(cfg.data.train)
    try:
        seen = pd.read_csv(data, usecols=["id", "fold"] if oof.exists() else ["id"])
    except (OSError, ValueError) as e:
        raise PrefkitError(f"{data}: cannot read the ids of the verifier's training pairs ({e})") from None
    fold_of = {question_key(i): (int(f) if oof.exists() else None)
               for i, f in zip(seen["id"], seen["fold"] if oof.exists() else [None] * len(seen))}
    out = np.full(len(rows), np.nan)
    keys = [question_key(r) for r in rows]
    idx = [i for i, k in enumerate(keys) if k not in fold_of]
    if idx:
        out[idx] = scores(rm_run, [rows[i] for i in idx])
    for fold in sorted({f for f in fold_of.values() if f is not None}):
        idx = [i for i, k in enumerate(keys) if fold_of.get(k, -1) == fold]
        folder = rm_run / f"fold{fold}"
        if not idx or not runs.is_trained(folder):
            continue
        mine = [rows[i] for i in idx]

        def compute(folder=folder, mine=mine) -> np.ndarray:
            learner = load_learner(cfg, folder)
            probs, _ = learner.predict(_against_anchor(mine, f"<samples of {rm_run.name}/{folder.name}>"))
            learner.release()
            return _log_odds_over_anchor(probs)

        out[idx] = _kept(rm_run, [folder], mine, compute)
    return out


MIN_EACH = 20  # right and wrong held-out samples a dataset needs for a calibration of its own


def _logistic(s: np.ndarray, labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1e4).fit(_columns(s), labels.astype(int))


class Calibration:
    """P(right) from one verifier's score (Platt scaling) or from several (their logistic-regression blend),
    fitted on scores of samples whose questions the verifiers did not train on. `s`: (samples,) or (samples,
    verifiers). With `datasets` (one name a sample), each dataset with at least `MIN_EACH` right and wrong
    samples gets a regression of its own: datasets differ in how often the student is right and in which
    verifier reads them (an arithmetic check says nothing of a date), and the dataset of a test question is
    known; the others share one fitted on every sample."""

    def __init__(self, s: np.ndarray, labels: np.ndarray, datasets: list[str] | None = None):
        labels = np.asarray(labels, dtype=bool)
        if len(set(labels.tolist())) < 2:
            raise PrefkitError("calibration needs right and wrong samples among the held-out training questions")
        self.pooled = _logistic(s, labels)
        self.by_dataset = {}
        if datasets is not None:
            names = np.asarray(datasets)
            for d in sorted(set(datasets)):
                m = names == d
                if min(labels[m].sum(), (~labels[m]).sum()) >= MIN_EACH:
                    self.by_dataset[d] = _logistic(s[m], labels[m])

    def logit(self, s: np.ndarray, datasets: list[str] | None = None) -> np.ndarray:
        """The calibrated logit of P(right) of each sample."""
        out = self.pooled.decision_function(_columns(s))
        if datasets is not None:
            names = np.asarray(datasets)
            for d, model in self.by_dataset.items():
                m = names == d
                if m.any():
                    out[m] = model.decision_function(_columns(s[m]))
        return out

    def describe(self) -> dict:
        def one(model) -> dict:
            return {"coef": [round(float(c), 6) for c in model.coef_[0]], "intercept": round(float(model.intercept_[0]), 6)}

        return {"pooled": one(self.pooled), "by_dataset": {d: one(m) for d, m in self.by_dataset.items()}}


def _columns(s: np.ndarray) -> np.ndarray:
    return s.reshape(len(s), -1)


def cross_fitted(s: np.ndarray, labels: np.ndarray, groups: list[str], datasets: list[str] | None = None,
                 n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """The calibrated logit of each sample from a calibration fitted on other questions only (grouped k-fold):
    the held-out figures of a calibration, or of a blend, are then not scored on the samples it was fitted on."""
    from sklearn.model_selection import GroupKFold

    out = np.zeros(len(s))
    names = None if datasets is None else np.asarray(datasets)
    splits = min(n_splits, len(set(groups)))
    for fit, held in GroupKFold(n_splits=splits, shuffle=True, random_state=seed).split(_columns(s), labels, groups):
        if len(set(labels[fit].tolist())) < 2:  # every right sample is in the held part: the other questions' rate
            rate = (labels[fit].sum() + 0.5) / (len(fit) + 1)  # (Laplace), the one estimate they allow
            out[held] = np.log(rate / (1 - rate))
            continue
        cal = Calibration(s[fit], labels[fit], None if names is None else names[fit].tolist())
        out[held] = cal.logit(s[held], None if names is None else names[held].tolist())
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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
