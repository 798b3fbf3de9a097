"""`prefkit cot rank`: which student answers best, by answer accuracy and by a trained reward model.

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
from pathlib import Path

import numpy as np

from prefkit.competition import of
from prefkit.core import runs
from prefkit.cot import bradley_terry
from prefkit.cot.datasets import DEFAULT_ROOT, load
from prefkit.cot.pairs import REFERENCE, held_out, read_answers
from prefkit.data.table import TableBuilder
from prefkit.errors import PrefkitError
from prefkit.io import save_figure, write_json, write_text
from prefkit.metrics import score
from prefkit.rm.learners import ensemble_predict


def main(rm_run: str | Path, dataset: str, systems: dict[str, str | None], out: str | Path, split: str = "test",
         root: Path = DEFAULT_ROOT, limit: int | None = None, rounds: int = 200, questions: str | Path | None = None) -> dict:
    """`questions`: a split.json from `prefkit cot pairs`: only its held-out (test-side) questions are ranked,
    the ones the reward model was not trained on."""
    if len(systems) < 2:
        raise PrefkitError("ranking needs at least two systems (--system NAME=FILE, and/or --reference)")
    rm_run, out = Path(rm_run), Path(out)
    cfg = runs.open_config(rm_run, made_by="`prefkit cv` or `prefkit train` (a reward model)",
                           kinds=runs.REWARD_MODEL_KINDS)
    examples = load(dataset, split, root)
    if questions is not None:
        keep = held_out(questions, dataset)
        examples = [e for e in examples if e.index in keep]
    examples = examples[:limit]
    if not examples:
        raise PrefkitError(f"{dataset} ({split}): no questions to rank")
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
    probs, _ = ensemble_predict(cfg, rm_run, table)
    k = len(names)
    per_item = np.zeros((len(examples), k, k))
    pair_sums: dict[tuple[int, int], np.ndarray] = {}
    if probs.shape[1] == 2:  # an A-or-B reward model (WSDM): no tie column
        probs = np.c_[probs, np.zeros(len(probs))]
    for (q, i, j), p in zip(rows, probs):
        per_item[q, i, j] += p[0] + p[2] / 2
        per_item[q, j, i] += p[1] + p[2] / 2
        pair_sums.setdefault((i, j), []).append(p)
    strength = bradley_terry.fit(per_item.sum(axis=0))
    lo, hi = bradley_terry.bootstrap(per_item, rounds=rounds)
    accuracy = {n: float(np.mean([a.correct for a in answers[n].values()])) if answers[n] else 0.0 for n in names}
    labels = table.frame["label"].to_numpy()
    gold_by_pair: dict[tuple[int, int], list[bool]] = {}
    for (q, i, j), p, label in zip(rows, probs, labels):
        if label in ("a", "b"):  # the reward model prefers the right answer of the two
            gold_by_pair.setdefault((i, j), []).append(bool(p[0] > p[1]) == (label == "a"))
    result = {
        "dataset": dataset, "split": split, "questions": len(examples), "pairs": len(rows), "reward_model": str(rm_run),
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
        s = score(probs[gold][:, : len(of(cfg).labels)], table.frame["label"][gold])
        result["gold"] = {"pairs": int(gold.sum()), "rm_accuracy": round(s["accuracy"], 4), "rm_logloss": round(s["logloss"], 4)}
    write_json(out / "rank.json", result)
    write_text(out / "rank.md", _markdown(result))
    _plot(result, out / "rank.png")
    return result


def gold_among(result: dict, leave_out: tuple[str, ...] = (REFERENCE,)) -> dict | None:
    """Gold-pair accuracy over the pairs whose systems are not in `leave_out`: a reward model trained on
    students' and teachers' answers is measured on those; the reference's bare "Answer: X" is not one of them."""
    kept = [p for p in result["pairwise"] if p["gold_pairs"] and p["a"] not in leave_out and p["b"] not in leave_out]
    n = sum(p["gold_pairs"] for p in kept)
    return {"pairs": n, "accuracy": round(sum(p["gold_accuracy"] * p["gold_pairs"] for p in kept) / n, 4)} if n else None


def _markdown(r: dict) -> str:
    lines = [f"# {r['dataset']} ({r['split']}): {r['questions']} questions, {r['pairs']} pairs judged by the reward model", "",
             "| system | accuracy | Bradley-Terry strength | 95% interval |", "|---|---|---|---|"]
    for s in sorted(r["systems"], key=lambda s: -s["bt_strength"]):
        lines.append(f"| {s['name']} | {s['accuracy']:.3f} | {s['bt_strength']:+.3f} | [{s['bt_low']:+.3f}, {s['bt_high']:+.3f}] |")
    lines += ["", "| A | B | P(A wins) | P(B wins) | P(tie) | n | gold pairs | right one preferred |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {p['a']} | {p['b']} | {p['p_a_wins']:.3f} | {p['p_b_wins']:.3f} | {p['p_tie']:.3f} | {p['n']} | "
              f"{p['gold_pairs']} | {'' if p['gold_accuracy'] is None else format(p['gold_accuracy'], '.3f')} |" for p in r["pairwise"]]
    if "gold" in r:
        g = r["gold"]
        lines += ["", f"Gold preferences (correct answer against incorrect, {g['pairs']} pairs): reward model accuracy "
                  f"{g['rm_accuracy']:.3f}, log loss {g['rm_logloss']:.4f}."]
    return "\n".join(lines) + "\n"


def _plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted(r["systems"], key=lambda s: s["bt_strength"])
    y = np.arange(len(systems))
    est = np.array([s["bt_strength"] for s in systems])
    err = np.array([[e - s["bt_low"], s["bt_high"] - e] for s, e in zip(systems, est)]).T
    fig, ax = plt.subplots(figsize=(6, 1 + 0.5 * len(systems)))
    ax.errorbar(est, y, xerr=err, fmt="o", capsize=4)
    ax.set_yticks(y, [f"{s['name']} (acc {s['accuracy']:.2f})" for s in systems])
    ax.set_xlabel("Bradley-Terry log-strength (reward model), 95% bootstrap interval")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    save_figure(fig, path)
