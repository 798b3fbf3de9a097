"""Which student answers best, by answer accuracy and by a trained reward model (`rank_systems`; `prefkit cot rank`,
recipes/cot_rank.py, writes its result).

Every pair of systems (students, the teacher, the reference answers) is put to the reward model on every
question, in both A/B orders (swap TTA, inside the model's predict). From the probabilities: mean win and
tie rates per pair, and Bradley-Terry strengths (a tie counts half to each side) with bootstrap intervals
over questions. Where one answer is correct and the other is not, the correct one is the gold preference:
the reward model's accuracy and log loss on those pairs say how far to trust it here, in all and for each
pair of systems (a reward model that only tells one system's style from another's shows it there). The
answers are shown to it as `prefkit.cot.pairs.response_text` writes them, as in the pairs it was trained on.
"""

from __future__ import annotations

import itertools
import numpy as np

from prefkit.competition import competition_of
from prefkit.cot import bradley_terry
from prefkit.cot.datasets import Example
from prefkit.cot.pairs import REFERENCE, read_answers
from prefkit.data.table import TableBuilder
from prefkit.errors import PrefkitError
from prefkit.metrics import score
from prefkit.rm.run import Run


def rank_systems(rm: Run, dataset: str, split: str, examples: list[Example], systems: dict[str, str | None],
          rounds: int = 200) -> dict:
    """Every pair of `systems` (name -> predictions or teacher file; None: the reference answers) on each of
    `examples` put to the reward-model run `rm`: the result `prefkit cot rank` writes."""
    answers = {n: read_answers(dataset, p, examples, n) for n, p in systems.items()}
    names = list(systems)
    b = TableBuilder(f"<{dataset} {split} pairs>")
    rows = []  # (question position, i, j)
    for q, e in enumerate(examples):
        for i, j in itertools.combinations(range(len(names)), 2):
            a, bb = names[i], names[j]
            if e.index not in answers[a] or e.index not in answers[bb]:
                continue
            ca, cb = answers[a][e.index].correct, answers[bb][e.index].correct
            label = None if ca == cb else ("a" if ca else "b")
            b.add(len(rows) + 1, None, f"{e.index}:{a}:{bb}", [e.question], [answers[a][e.index].text],
                  [answers[bb][e.index].text], label)
            rows.append((q, i, j))
    table = b.build()
    if not rows:
        raise PrefkitError("no question has answers from two systems: check the prediction files and --split")
    probs, _ = rm.predict(table, calibrated=False)  # the models' own probabilities, as they were trained
    k = len(names)
    per_item = np.zeros((len(examples), k, k))
    pair_sums: dict[tuple[int, int], np.ndarray] = {}
    if probs.shape[1] == 2:  # an A-or-B reward model (WSDM): no tie column
        probs = np.c_[probs, np.zeros(len(probs))]
    for (q, i, j), p in zip(rows, probs):
        per_item[q, i, j] += p[0] + p[2] / 2
        per_item[q, j, i] += p[1] + p[2] / 2
        pair_sums.setdefault((i, j), []).append(p)
    strength = bradley_terry.log_strengths(per_item.sum(axis=0))
    lo, hi = bradley_terry.bootstrap(per_item, rounds=rounds)
    accuracy = {n: float(np.mean([a.correct for a in answers[n].values()])) if answers[n] else 0.0 for n in names}
    labels = table.frame["label"].to_numpy()
    gold_by_pair: dict[tuple[int, int], list[bool]] = {}
    for (q, i, j), p, label in zip(rows, probs, labels):
        if label in ("a", "b"):  # the reward model prefers the right answer of the two
            gold_by_pair.setdefault((i, j), []).append(bool(p[0] > p[1]) == (label == "a"))
    result = {
        "dataset": dataset, "split": split, "questions": len(examples), "pairs": len(rows), "reward_model": str(rm.path),
        "systems": [{"name": n, "accuracy": round(accuracy[n], 4), "bt_strength": round(float(strength[i]), 4),
                     "bt_low": round(float(lo[i]), 4), "bt_high": round(float(hi[i]), 4)} for i, n in enumerate(names)],
        "pairwise": [{"a": names[i], "b": names[j], "n": len(ps), "p_a_wins": round(float(np.mean(ps, axis=0)[0]), 4),
                      "p_b_wins": round(float(np.mean(ps, axis=0)[1]), 4), "p_tie": round(float(np.mean(ps, axis=0)[2]), 4),
                      "gold_pairs": len(gold_by_pair.get((i, j), [])),
                      "gold_accuracy": round(float(np.mean(gold_by_pair[(i, j)])), 4) if gold_by_pair.get((i, j)) else None}
                     for (i, j), ps in pair_sums.items()],
    }
    gold = table.frame["label"].notna().to_numpy()
    if gold.any():
        s = score(probs[gold][:, : len(competition_of(rm.config).labels)], table.frame["label"][gold])
        result["gold"] = {"pairs": int(gold.sum()), "rm_accuracy": round(s["accuracy"], 4), "rm_logloss": round(s["logloss"], 4)}
    return result


def gold_among(result: dict, leave_out: tuple[str, ...] = (REFERENCE,)) -> dict | None:
    """Gold-pair accuracy over the pairs whose systems are not in `leave_out`: a reward model trained on
    students' and teachers' answers is measured on those; the reference's bare "Answer: X" is not one of them."""
    kept = [p for p in result["pairwise"] if p["gold_pairs"] and p["a"] not in leave_out and p["b"] not in leave_out]
    n = sum(p["gold_pairs"] for p in kept)
    return {"pairs": n, "accuracy": round(sum(p["gold_accuracy"] * p["gold_pairs"] for p in kept) / n, 4)} if n else None
