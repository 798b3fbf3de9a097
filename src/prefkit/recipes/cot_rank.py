"""`prefkit cot rank`: which student answers best, by answer accuracy and by a trained reward model
(`prefkit.cot.rank`): rank.json, rank.md and rank.png (Bradley-Terry strengths with their intervals) in --out.
`--questions split.json` ranks only the held-out questions of a `prefkit cot pairs` split, the ones the reward
model was not trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefkit.cot.datasets import DEFAULT_ROOT, load
from prefkit.cot.pairs import held_out
from prefkit.cot.rank import rank_systems
from prefkit.errors import PrefkitError
from prefkit.io import new_figure, save_figure, write_json, write_text
from prefkit.rm.run import Run


def main(rm_run: str | Path, dataset: str, systems: dict[str, str | None], out: str | Path, split: str = "test",
         root: Path = DEFAULT_ROOT, limit: int | None = None, rounds: int = 200, questions: str | Path | None = None) -> dict:
    """`questions`: a split.json from `prefkit cot pairs`: only its held-out (test-side) questions are ranked,
    the ones the reward model was not trained on."""
    if len(systems) < 2:
        raise PrefkitError("ranking needs at least two systems (--system NAME=FILE, and/or --reference)")
    rm_run, out = Path(rm_run), Path(out)
    rm = Run.open(rm_run, made_by="`prefkit cv` or `prefkit train` (a reward model)")
    examples = load(dataset, split, root)
    if questions is not None:
        keep = held_out(questions, dataset)
        examples = [e for e in examples if e.index in keep]
    examples = examples[:limit]
    if not examples:
        raise PrefkitError(f"{dataset} ({split}): no questions to rank")
    result = rank_systems(rm, dataset, split, examples, systems, rounds)
    write_json(out / "rank.json", result)
    write_text(out / "rank.md", _markdown(result))
    _plot(result, out / "rank.png")
    return result


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
    systems = sorted(r["systems"], key=lambda s: s["bt_strength"])
    y = np.arange(len(systems))
    est = np.array([s["bt_strength"] for s in systems])
    err = np.array([[e - s["bt_low"], s["bt_high"] - e] for s, e in zip(systems, est)]).T
    fig, ax = new_figure((6, 1 + 0.5 * len(systems)))
    ax.errorbar(est, y, xerr=err, fmt="o", capsize=4)
    ax.set_yticks(y, [f"{s['name']} (acc {s['accuracy']:.2f})" for s in systems])
    ax.set_xlabel("Bradley-Terry log-strength (reward model), 95% bootstrap interval")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    save_figure(fig, path)
