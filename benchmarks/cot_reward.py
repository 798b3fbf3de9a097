"""A chain-of-thought reward model trained on right-against-wrong answers, measured on held-out questions.

    python benchmarks/cot_reward.py [--work runs/cot_students] [--rm-config rm/minilm_cpu] [key=value ...]

Reads what benchmarks/cot_students.py wrote in --work (the zero-shot and fine-tuned students' answers to
every test question of the six datasets) and the teacher files, then:
1. `prefkit cot pairs` over the six datasets: for each question, a right answer against a wrong one (at most 2
   pairs a question), questions split 70/30;
2. the reward model (`--rm-config`, default MiniLM with the bt head) trained on the 70% side;
3. `prefkit cot rank` on each dataset's held-out questions: zero-shot student, fine-tuned student, teacher and
   reference by Bradley-Terry, and the reward model's gold-pair accuracy, in all and by pair of systems (a
   model that only tells one system's style from another's shows it there).
Writes results/cot_reward.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, write_results  # noqa: E402

RM_SETTINGS = ["model.head=bt", "template.max_length=256", "train.epochs=3"]
COLUMNS = ["dataset", "held-out questions", "gold pairs", "gold accuracy", "gold log loss", "ranking (Bradley-Terry)",
           "accuracy (zero-shot / fine-tuned / teacher)"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/cot_students")
    ap.add_argument("--rm-config", default="rm/minilm_cpu")
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("overrides", nargs="*", help="config overrides for the reward model (key=value)")
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.cot.datasets import DEFAULT_ROOT, names, teacher_file
    from prefkit.cot.pairs import REFERENCE, TEACHER
    from prefkit.cot.rank import gold_among
    from prefkit.recipes import cot_pairs, cot_rank
    from prefkit.recipes import train as train_recipe
    from prefkit.shipped import config_path

    work = Path(args.work)
    datasets = names(args.datasets)
    systems = {"zero-shot student": str(work / "zero_shot" / "{dataset}.jsonl"),
               "fine-tuned student": str(work / "finetuned" / "{dataset}.jsonl"), "teacher": TEACHER}
    t0, reused = time.perf_counter(), (work / "reward_model" / "model").exists()
    if (work / "pairs" / "split.json").exists():
        made = json.loads((work / "pairs" / "summary.json").read_text())
    else:
        made = cot_pairs.main(",".join(datasets), systems, work / "pairs", "test", root=DEFAULT_ROOT)
    rm_dir = work / "reward_model"
    if not (rm_dir / "model").exists():
        cfg = load_config(config_path(args.rm_config), [f"data.train={work / 'pairs' / 'train.csv'}", *RM_SETTINGS,
                                                         *args.overrides, f"output_dir={rm_dir}"])
        train_recipe.main(cfg, "cot")
    trained_s = None if reused else round(time.perf_counter() - t0, 1)  # None: an earlier run's model, reused
    rows, by_pair, gold_total, pairwise = [], {}, [], []
    for d in datasets:
        ranked = cot_rank.main(rm_dir, d, {"zero-shot student": str(work / "zero_shot" / f"{d}.jsonl"),
                                           "fine-tuned student": str(work / "finetuned" / f"{d}.jsonl"),
                                           "teacher": str(teacher_file(d, DEFAULT_ROOT)), REFERENCE: None},
                               work / "rank" / d, "test", DEFAULT_ROOT, questions=work / "pairs" / "split.json")
        g = ranked.get("gold", {})
        acc = {s["name"]: s["accuracy"] for s in ranked["systems"]}
        order = sorted(ranked["systems"], key=lambda s: -s["bt_strength"])
        rows.append({"dataset": d, "held-out questions": ranked["questions"], "gold pairs": g.get("pairs", 0),
                     "gold accuracy": g.get("rm_accuracy"), "gold log loss": g.get("rm_logloss"),
                     "ranking (Bradley-Terry)": " > ".join(s["name"] for s in order),
                     "accuracy (zero-shot / fine-tuned / teacher)":
                         f"{acc['zero-shot student']:.3f} / {acc['fine-tuned student']:.3f} / {acc['teacher']:.3f}"})
        pairwise += ranked["pairwise"]
        for p in ranked["pairwise"]:
            if p["gold_pairs"]:
                key = f"{p['a']} vs {p['b']}"
                n, right = by_pair.get(key, (0, 0.0))
                by_pair[key] = (n + p["gold_pairs"], right + p["gold_accuracy"] * p["gold_pairs"])
        if g:
            gold_total.append((g["pairs"], g["rm_accuracy"]))
    n_gold = sum(n for n, _ in gold_total)
    overall = float(np.sum([n * a for n, a in gold_total]) / n_gold) if n_gold else None
    # the headline: pairs between the systems the reward model was trained on (the reference's bare
    # "Answer: X", never in its training pairs, is reported beside it)
    seen = gold_among({"pairwise": pairwise}) or {"pairs": 0, "accuracy": None}
    n_seen = seen["pairs"]
    summary = {"rm_config": args.rm_config, "rm_settings": [*RM_SETTINGS, *args.overrides], "pairs": made,
               "gold_pairs_students_and_teacher": n_seen, "gold_accuracy_students_and_teacher": seen["accuracy"],
               "gold_pairs": n_gold, "gold_accuracy": None if overall is None else round(overall, 4),
               "gold_by_pair_of_systems": {k: {"pairs": n, "accuracy": round(r / n, 4)} for k, (n, r) in by_pair.items()},
               "seconds_pairs_and_training": trained_s}
    summary["held_out_pairs"] = against_the_source_prior(work, rm_dir)
    h = summary["held_out_pairs"]
    intro = INTRO + f"""
The held-out pairs themselves (`pairs/test.csv`, {h['pairs']} pairs, students and teacher only): reward model
**{h['rm_accuracy']:.4f}**; a judge that knows only which system wrote each answer and prefers the one that was
right more often in the training pairs of that dataset (the source prior): {h['prior_accuracy']:.4f}. On the
{h['against_prior_pairs']} pairs where the source prior is wrong (the usually-worse system is the right one), the
reward model picks the right answer in {h['rm_accuracy_against_prior']:.4f}.
"""
    intro += f"\nHeld-out gold pairs between the students and the teacher (the systems it was trained on): " \
        f"**{summary['gold_accuracy_students_and_teacher']}** accuracy on {n_seen} pairs; with the reference answers too: " \
        f"{summary['gold_accuracy']} on {n_gold} pairs.\n\n" + \
        "By pair of systems (held-out questions):\n\n| pair | gold pairs | right one preferred |\n|---|---|---|\n" + \
        "\n".join(f"| {k} | {v['pairs']} | {v['accuracy']:.3f} |" for k, v in summary["gold_by_pair_of_systems"].items())
    write_results("cot_reward", Path(args.out), summary, COLUMNS, rows, intro)
    return 0


def against_the_source_prior(work: Path, rm_dir: Path) -> dict:
    """The reward model on the held-out pairs, against the source prior: in these pairs the teacher is far more
    often right than a student, so a judge could score well by recognising who wrote an answer. The prior
    prefers, within a dataset, the system with the higher share of right answers among its training pairs."""
    import pandas as pd

    from prefkit.data import load_pairs
    from prefkit.rm.run import Run

    run = Run.open(rm_dir)
    cfg = run.config
    train = load_pairs(work / "pairs" / "train.csv", cfg.data).frame
    test = load_pairs(work / "pairs" / "test.csv", cfg.data)
    probs, _ = run.predict(test, calibrated=False)
    f = test.frame

    def sides(frame: pd.DataFrame) -> pd.DataFrame:
        a_right = frame["label"] == "a"
        return pd.DataFrame({"dataset": frame["id"].str.split(":").str[0],
                             "right": frame["model_a"].where(a_right, frame["model_b"]),
                             "wrong": frame["model_b"].where(a_right, frame["model_a"])})

    tr, te = sides(train), sides(f)
    wins = {}
    for d, g in tr.groupby("dataset"):
        for name in set(g["right"]) | set(g["wrong"]):
            r, w = int((g["right"] == name).sum()), int((g["wrong"] == name).sum())
            wins[(d, name)] = r / (r + w)
    prior_ok = np.array([wins.get((d, r), 0.5) > wins.get((d, w), 0.5) for d, r, w in te.itertuples(index=False)])
    rm_ok = (probs[:, 0] > probs[:, 1]) == (f["label"] == "a").to_numpy()
    against = ~prior_ok
    return {"pairs": len(f), "rm_accuracy": round(float(rm_ok.mean()), 4), "prior_accuracy": round(float(prior_ok.mean()), 4),
            "against_prior_pairs": int(against.sum()),
            "rm_accuracy_against_prior": round(float(rm_ok[against].mean()), 4) if against.any() else None}


INTRO = """
A reward model trained on right-against-wrong answers to the same question (`prefkit cot pairs` over the six
datasets' test splits: the zero-shot and fine-tuned SmolLM2-135M students' answers and the teacher's file),
questions split 70/30; measured by `prefkit cot rank` on the held-out 30%: gold-pair accuracy is the share of
right-against-wrong pairs where it prefers the right answer. Written by benchmarks/cot_reward.py.
"""

if __name__ == "__main__":
    sys.exit(main())
