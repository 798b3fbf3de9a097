"""Chain-of-thought students against the Fine-tune-CoT paper's small students, on the paper's test splits.

    python benchmarks/cot_students.py [--config sft/smollm2_135m_cpu] [--work runs/cot_students] [--limit N]

For each of the six datasets: the student's zero-shot accuracy (its base weights, the question as its chat
turn) and its Fine-tune-CoT accuracy (LoRA SFT on the teacher's correct training rationales, then greedy
answers in the same format), beside the paper's 0.3B student (GPT-3 ada; Ho et al. 2023, "Large Language
Models Are Reasoning Teachers", Table 1: Fine-tune-CoT, and Fine-tune-CoT with diverse reasoning) and the
teacher file's own accuracy on the same questions.

One student is fine-tuned on all six datasets' rationales at once (`cot.dataset=all`), one epoch: the paper
fine-tuned one student a dataset for more epochs, which is more CPU than one session has. Diverse reasoning
is not run: the teacher files here hold one temperature-0 rationale a question (a few questions carry
extra samples), not the paper's sampled ones.

Every step is kept in --work and reused when the script runs again (a long run can stop and go on); the
results are rewritten after every dataset: results/cot_students.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, write_results  # noqa: E402

# Ho et al. 2023, Table 1, the 0.3B (ada) student: accuracy in %.
PAPER_FT_COT = {"singleeq": 7.24, "addsub": 6.72, "multiarith": 6.11, "svamp": 5.00, "date_understanding": 17.12,
                "tracking_shuffled_objects": 49.33}
PAPER_DIVERSE = {"singleeq": 9.21, "addsub": 10.08, "multiarith": 23.89, "svamp": 14.33, "date_understanding": 58.56,
                 "tracking_shuffled_objects": 61.78}
COLUMNS = ["dataset", "questions", "zero-shot", "Fine-tune-CoT", "paper 0.3B Fine-tune-CoT", "paper 0.3B diverse",
           "teacher (file)", "beats zero-shot", "reaches paper"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sft/smollm2_135m_cpu")
    ap.add_argument("--work", default="runs/cot_students")
    ap.add_argument("--limit", type=int, default=None, help="the first N test questions of each dataset")
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("overrides", nargs="*", help="config overrides for the student (key=value)")
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.cot.datasets import names, teacher_file
    from prefkit.cot.evaluate import evaluate
    from prefkit.recipes import cot_generate
    from prefkit.recipes import cot_sft as sft
    from prefkit.shipped import config_path

    work = Path(args.work)
    datasets = names(args.datasets)
    base = load_config(config_path(args.config), args.overrides)
    root = Path(base.cot.data_root)
    rows: dict[str, dict] = {d: {"dataset": d} for d in datasets}
    seconds: dict[str, float] = {}

    def answer(source: str | Path, kind: str) -> None:
        for d in datasets:
            out = work / kind / f"{d}.jsonl"
            if not out.exists():
                t = time.perf_counter()
                cot_generate.main(source, out, "test", args.limit, [*args.overrides, f"cot.dataset={d}"])
                seconds[f"{kind}/{d}"] = round(time.perf_counter() - t, 1)
            got = evaluate(d, out, "test", root, args.limit)
            rows[d]["questions"] = got["n"]
            rows[d][kind] = round(100 * got["accuracy_first"], 2)
            report()

    def report() -> None:
        table = []
        for d, r in rows.items():
            if "questions" not in r:
                continue
            teacher = evaluate(d, teacher_file(d, root), "test", root, args.limit)  # its first completion a question
            n = r["questions"]
            t_acc = round(100 * teacher["accuracy_first"], 2)
            ft, zs = r.get("finetuned"), r.get("zero_shot")
            table.append({"dataset": d, "questions": n, "zero-shot": zs, "Fine-tune-CoT": ft,
                          "paper 0.3B Fine-tune-CoT": PAPER_FT_COT[d], "paper 0.3B diverse": PAPER_DIVERSE[d],
                          "teacher (file)": t_acc,
                          "beats zero-shot": None if ft is None or zs is None else ft > zs,
                          "reaches paper": None if ft is None else ft >= PAPER_FT_COT[d]})
        done = [r for r in table if r["beats zero-shot"] is not None]
        summary = {"config": args.config, "overrides": args.overrides, "limit": args.limit, "seconds": seconds,
                   "beats_zero_shot": sum(bool(r["beats zero-shot"]) for r in done),
                   "reaches_paper": sum(bool(r["reaches paper"]) for r in done), "datasets_done": len(done)}
        write_results("cot_students", Path(args.out), summary, COLUMNS, table, INTRO.format(config=args.config))

    answer(args.config, "zero_shot")
    cfg = load_config(config_path(args.config), [*args.overrides, f"cot.dataset={','.join(datasets)}",
                                                  f"output_dir={work / 'student'}"])
    t = time.perf_counter()
    run = sft.main(cfg, resume=True)
    seconds.setdefault("sft", round(time.perf_counter() - t, 1))
    answer(run, "finetuned")
    return 0


INTRO = """
Accuracy (%) on each dataset's test split (the paper's split), greedy decoding. Student: `{config}`; zero-shot:
its base weights; Fine-tune-CoT: one LoRA student trained one epoch on the teacher's correct rationales of all
six training splits. Paper columns: the 0.3B (GPT-3 ada) student of Ho et al. 2023, Table 1. Teacher: the
paper's text-davinci-002 Zero-shot-CoT file, first completion of each test question. Written by
benchmarks/cot_students.py.
"""

if __name__ == "__main__":
    sys.exit(main())
