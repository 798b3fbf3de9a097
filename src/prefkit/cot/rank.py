"""`prefkit cot rank`: which student answers best, by answer accuracy and by a trained reward model.

Every pair of systems (students, the teacher, the reference answers) is put to the reward model on every
question, in both A/B orders (swap TTA, inside the model's predict). From the probabilities: mean win and
tie rates per pair, and Bradley-Terry strengths (a tie counts half to each side) with bootstrap intervals
over questions. Where one answer is correct and the other is not, the correct one is the gold preference:
the reward model's accuracy and log loss on those pairs say how far to trust it here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from prefkit.competition import of
from prefkit.config import load_config
from prefkit.cot import bradley_terry
from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import DEFAULT_ROOT, load
from prefkit.cot.evaluate import read_predictions
from prefkit.data.table import TableBuilder
from prefkit.errors import PrefkitError
from prefkit.io import save_figure, write_json, write_text
from prefkit.learners import ensemble_predict
from prefkit.metrics import score

REFERENCE = "reference"


def _responses(dataset: str, examples, systems: dict[str, str | None]) -> tuple[dict[str, dict[int, str]], dict[str, dict[int, bool]]]:
    texts, correct = {}, {}
    for name, path in systems.items():
        if path is None:  # the reference answers
            texts[name] = {e.index: f"The answer is {e.answer}." for e in examples}
            correct[name] = {e.index: True for e in examples}
            continue
        full, _ = read_predictions(Path(path), full_text=True)
        raw, marker = read_predictions(Path(path))
        texts[name] = {e.index: full[e.index][0] for e in examples if e.index in full}
        correct[name] = {e.index: is_correct(dataset, extract(dataset, raw[e.index][0], marker), e.answer)
                         for e in examples if e.index in raw}
    return texts, correct


def main(rm_run: str | Path, dataset: str, systems: dict[str, str | None], out: str | Path, split: str = "test",
         root: Path = DEFAULT_ROOT, limit: int | None = None, rounds: int = 200) -> dict:
    if len(systems) < 2:
        raise PrefkitError("ranking needs at least two systems (--system NAME=FILE, and/or --reference)")
    rm_run, out = Path(rm_run), Path(out)
    examples = load(dataset, split, root)[:limit]
    texts, correct = _responses(dataset, examples, systems)
    names = list(systems)
    b = TableBuilder(f"<{dataset} {split} pairs>")
    rows = []  # (question position, i, j)
    for q, e in enumerate(examples):
        for i, j in itertools.combinations(range(len(names)), 2):
            a, bb = names[i], names[j]
            if e.index not in texts[a] or e.index not in texts[bb]:
                continue
            ca, cb = correct[a][e.index], correct[bb][e.index]
            label = None if ca == cb else ("a" if ca else "b")
            b.add(len(rows) + 1, None, f"{e.index}:{a}:{bb}", [e.question], [texts[a][e.index]], [texts[bb][e.index]], label)
            rows.append((q, i, j))
    table = b.build()
    if not rows:
        raise PrefkitError("no question has answers from two systems: check the prediction files and --split")
    cfg = load_config(rm_run / "config.yaml")
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
    accuracy = {n: float(np.mean([correct[n][e.index] for e in examples if e.index in correct[n]])) for n in names}
    result = {
        "dataset": dataset, "split": split, "questions": len(examples), "pairs": len(rows), "reward_model": str(rm_run),
        "systems": [{"name": n, "accuracy": round(accuracy[n], 4), "bt_strength": round(float(strength[i]), 4),
                     "bt_low": round(float(lo[i]), 4), "bt_high": round(float(hi[i]), 4)} for i, n in enumerate(names)],
        "pairwise": [{"a": names[i], "b": names[j], "n": len(ps), "p_a_wins": round(float(np.mean(ps, axis=0)[0]), 4),
                      "p_b_wins": round(float(np.mean(ps, axis=0)[1]), 4), "p_tie": round(float(np.mean(ps, axis=0)[2]), 4)}
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


def _markdown(r: dict) -> str:
    lines = [f"# {r['dataset']} ({r['split']}): {r['questions']} questions, {r['pairs']} pairs judged by the reward model", "",
             "| system | accuracy | Bradley-Terry strength | 95% interval |", "|---|---|---|---|"]
    for s in sorted(r["systems"], key=lambda s: -s["bt_strength"]):
        lines.append(f"| {s['name']} | {s['accuracy']:.3f} | {s['bt_strength']:+.3f} | [{s['bt_low']:+.3f}, {s['bt_high']:+.3f}] |")
    lines += ["", "| A | B | P(A wins) | P(B wins) | P(tie) | n |", "|---|---|---|---|---|---|"]
    lines += [f"| {p['a']} | {p['b']} | {p['p_a_wins']:.3f} | {p['p_b_wins']:.3f} | {p['p_tie']:.3f} | {p['n']} |" for p in r["pairwise"]]
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
