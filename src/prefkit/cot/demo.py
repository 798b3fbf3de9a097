"""`prefkit cot demo`: the student loop end to end on CPU with no network.

1. the file teacher (the paper's text-davinci-002 rationales) on one dataset, its correct rationales counted;
2. LoRA SFT of a tiny random student (configs/sft/tiny_gemma2.yaml) on them;
3. the student answers the test questions; answer accuracy of student and teacher on the same questions;
4. a reward model ranks student, teacher and reference answers: the MiniLM one (configs/rm/minilm_cpu.yaml,
   trained here on prefkit's synthetic arena pairs) unless `--rm RUN` names a trained run.
Writes report.md and metrics.json. The tiny student is random and learns the format, not arithmetic: the
demo shows the loop runs, not a good student.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from prefkit.config import load_config
from prefkit.cot import generate, rank, sft
from prefkit.cot.datasets import teacher_file
from prefkit.cot.evaluate import evaluate
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.dist import log
from prefkit.io import write_json, write_text
from prefkit.recipes import train as train_recipe
from prefkit.recipes.common import output_dir
from prefkit.shipped import config_path

STUDENT = config_path("sft/tiny_gemma2")  # shipped configs (prefkit.shipped)
RM = config_path("rm/minilm_cpu")


def main(overrides: list[str], rm_run: str | None = None, limit: int = 30, rm_rows: int = 600) -> dict:
    t0 = time.perf_counter()
    cfg = load_config(STUDENT, ["train.save_every=0", *overrides])
    out = output_dir(cfg, "cot-demo")
    root, dataset = Path(cfg.cot.data_root), cfg.cot.dataset

    teacher_all = evaluate(dataset, teacher_file(dataset, root), "all", root)
    student_cfg = copy.deepcopy(cfg)
    student_cfg.output_dir = str(out / "student")
    sft.main(student_cfg)
    predictions = out / "student_predictions.jsonl"
    generate.main(out / "student", predictions, "test", limit)
    student_acc = evaluate(dataset, predictions, "test", root)

    if rm_run is None:
        arena = out / "rm_data" / "arena.csv"
        write_lmsys_csv(make_pairs(rm_rows, seed=0), arena)
        rm_cfg = load_config(RM, [f"data.train={arena}", "template.max_length=128", f"output_dir={out / 'reward_model'}"])
        rm_run = str(train_recipe.main(rm_cfg, "minilm"))
    ranking = rank.main(rm_run, dataset, {"student": str(predictions), "teacher": str(teacher_file(dataset, root)),
                                          rank.REFERENCE: None}, out / "rank", "test", root, limit)
    seconds = time.perf_counter() - t0
    metrics = {"dataset": dataset, "teacher_accuracy_all": teacher_all["accuracy"],
               "teacher_rationales_surviving": teacher_all["surviving_completions"],
               "student_questions": limit, "student": student_acc, "ranking": ranking, "seconds": round(seconds, 1)}
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", f"""# prefkit cot demo: {dataset}

Teacher (text-davinci-002, Zero-shot-CoT, the paper's file): accuracy {teacher_all['accuracy']:.4f} over the
{teacher_all['completions']} completions of all {teacher_all['n']} questions (the paper's rule; the first completion
of each question alone: {teacher_all['accuracy_first']:.4f}). {teacher_all['surviving_completions']} rationales have
the right answer.

Student: a tiny random Gemma-2 (nf4 + LoRA) fine-tuned on the surviving training rationales; it answered
{limit} test questions: {student_acc['correct_first']} right.

Ranking by the reward model `{rm_run}`:

{(out / 'rank' / 'rank.md').read_text()}
Time: {seconds:.0f} s.
""")
    log(f"cot demo done in {seconds:.0f} s -> {out / 'report.md'}")
    return metrics
