"""`prefkit cot demo`: the chain-of-thought loop end to end on CPU with no network, with a real student.

1. the file teacher (the paper's text-davinci-002 rationales) on one dataset: its accuracy, its right rationales;
2. the student (default SmolLM2-135M-Instruct, configs/sft/smollm2_135m_cpu.yaml) answers `limit` test
   questions zero-shot;
3. LoRA SFT of the student on `cot.train_limit` of the teacher's right rationales of the four arithmetic
   training splits (`--train-on`); it answers the same questions again: accuracy before and after;
4. `prefkit cot pairs` from the three systems' answers (a right and a wrong one to the same question), split by
   question; a MiniLM reward model (configs/rm/minilm_cpu.yaml, bt head) trained on the train side, unless
   `--rm RUN` names one;
5. `prefkit cot rank` on the held-out questions: Bradley-Terry strengths of zero-shot student, fine-tuned
   student, teacher and reference, and the reward model's gold-pair accuracy (right against wrong);
6. best-of-K (`k` > 0): the fine-tuned student samples K answers to `sample_questions` of the test questions and
   to as many training questions; a verifier (the feature baseline with its arithmetic check) is trained on
   right-against-wrong pairs of its own training samples (`prefkit cot verifier-pairs`), and `prefkit cot rerank`
   compares the first sample, majority vote and the verifier's choice on the test questions.
Writes report.md and metrics.json; the terminal gets a line a step (`-v`: everything; always in log.txt).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from prefkit.config import load_config
from prefkit.console import quiet
from prefkit.core.dist import log
from prefkit.core.runs import output_dir
from prefkit.cot.datasets import teacher_file
from prefkit.cot.evaluate import evaluate
from prefkit.cot.pairs import REFERENCE
from prefkit.cot.rank import gold_among
from prefkit.errors import PrefkitError
from prefkit.io import write_json, write_text
from prefkit.recipes import cot_generate, cot_pairs, cot_rank, cot_rerank, cot_sample
from prefkit.recipes import cot_sft as sft
from prefkit.recipes import cot_verifier_pairs as verifier_pairs
from prefkit.recipes import train as train_recipe
from prefkit.shipped import config_path

STUDENT = "sft/smollm2_135m_cpu"  # shipped configs (prefkit.shipped)
RM = config_path("rm/minilm_cpu")
# The student's demo settings: it answers AddSub; it is fine-tuned on a seeded draw of 400 of the teacher's right
# rationales of the four arithmetic training splits (no test question of one is in another's training split).
DEMO = ["train.save_every=0", "cot.dataset=addsub", "cot.train_limit=400"]
TRAIN_ON = "singleeq,addsub,multiarith,svamp"
RM_SETTINGS = ["model.head=bt", "template.max_length=192", "train.epochs=3"]
# best-of-K: the verifier of benchmarks/cot_verifier.py that trains in seconds (MiniLM and SmolLM2 take minutes)
VERIFIER, VERIFIER_SETTINGS = config_path("rm/features_baseline"), ["features.arithmetic=true"]


def main(overrides: list[str], rm_run: str | None = None, limit: int = 64, config: str | None = None,
         verbose: bool = False, train_on: str = TRAIN_ON, k: int = 4, sample_questions: int = 16) -> dict:
    """`train_on`: the datasets whose training rationales the student is fine-tuned on (`cot.dataset` is the
    one it answers). `k` samples a question (0: no best-of-K step) on `sample_questions` test and training
    questions."""
    t0 = time.perf_counter()
    student = config_path(config or STUDENT)
    cfg = load_config(student, [*DEMO, *overrides])
    out = output_dir(cfg, "cot-demo")
    root, dataset = Path(cfg.cot.data_root), cfg.cot.dataset
    times = {}
    with quiet(out / "log.txt", verbose):
        def step(name: str, started: float) -> None:
            times[name] = round(time.perf_counter() - started, 1)

        t = time.perf_counter()
        teacher_all = evaluate(dataset, teacher_file(dataset, root), "all", root)
        zero_shot = out / "zero_shot.jsonl"
        cot_generate.main(student, zero_shot, "test", limit, [*DEMO, *overrides])
        before = evaluate(dataset, zero_shot, "test", root, limit)
        step("zero-shot answers", t)
        log(f"zero-shot student: {before['correct_first']} of {limit} right", summary=True)

        t = time.perf_counter()
        student_cfg = copy.deepcopy(cfg)
        student_cfg.output_dir = str(out / "student")
        student_cfg.cot.dataset = train_on
        sft.main(student_cfg)
        finetuned = out / "finetuned.jsonl"
        cot_generate.main(out / "student", finetuned, "test", limit, [f"cot.dataset={dataset}"])
        after = evaluate(dataset, finetuned, "test", root, limit)
        step("SFT and answers", t)
        log(f"fine-tuned student: {after['correct_first']} of {limit} right", summary=True)

        t = time.perf_counter()
        systems = {"zero-shot student": str(zero_shot), "fine-tuned student": str(finetuned),
                   "teacher": str(teacher_file(dataset, root))}
        made = cot_pairs.main(dataset, systems, out / "pairs", "test", root=root, limit=limit)
        if rm_run is None:
            rm_cfg = load_config(RM, [f"data.train={out / 'pairs' / 'train.csv'}", *RM_SETTINGS,
                                      f"output_dir={out / 'reward_model'}"])
            rm_run = str(train_recipe.main(rm_cfg, "minilm"))
        step("pairs and reward model", t)

        t = time.perf_counter()
        ranking = cot_rank.main(rm_run, dataset, {**systems, REFERENCE: None}, out / "rank", "test", root, limit,
                                questions=out / "pairs" / "split.json")
        step("ranking", t)
        gold = gold_among(ranking) or {"pairs": 0, "accuracy": float("nan")}
        log(f"reward model on held-out questions: {gold['accuracy']:.3f} gold-pair accuracy ({gold['pairs']} pairs "
            "of students' and teacher's answers)", summary=True)
        best_of_k = _best_of_k(out, dataset, k, sample_questions) if k > 0 else None
        if best_of_k:
            step(f"best-of-{k}", best_of_k.pop("started"))
    seconds = time.perf_counter() - t0
    teacher_here = evaluate(dataset, teacher_file(dataset, root), "test", root, limit)
    metrics = {"dataset": dataset, "student": cfg.model.path or f"{config or STUDENT} (random weights)",
               "questions": limit, "trained_on": train_on, "teacher_accuracy_all": teacher_all["accuracy"],
               "teacher_correct": teacher_here["correct_first"], "zero_shot": before, "finetuned": after, "pairs": made,
               "reward_model": rm_run, "gold": gold, "ranking": ranking, "best_of_k": best_of_k, "times": times,
               "seconds": round(seconds, 1)}
    write_json(out / "metrics.json", metrics)
    write_text(out / "report.md", _report(metrics, out))
    log(f"cot demo done in {seconds:.0f} s -> {out / 'report.md'}", summary=True)
    return metrics


def _best_of_k(out: Path, dataset: str, k: int, questions: int) -> dict:
    """K samples of the fine-tuned student on the first `questions` test and training questions, a verifier trained
    on right-against-wrong pairs of its training samples (a quarter of those questions held out to calibrate it),
    and the test questions reranked."""
    t = time.perf_counter()
    student, where = out / "student", [f"cot.dataset={dataset}"]
    test = cot_sample.main(student, out / "samples" / "test.jsonl", "test", k, 0.7, 0.95, 0, questions, where)
    train = cot_sample.main(student, out / "samples" / "train.jsonl", "train", k, 0.7, 0.95, 0, questions, where)
    info = {"started": t, "k": k, "questions": questions, "train_questions": questions, "rerank": None}
    try:
        info["pairs"] = verifier_pairs.main([train["out"]], out / "verifier_pairs", valid_fraction=0.25)
    except PrefkitError as e:  # too few questions with both a right and a wrong sample: said, not hidden
        log(f"best-of-{k}: no verifier: {e}", summary=True)
        info["skipped"] = str(e)
        return info
    cfg = load_config(VERIFIER, [*VERIFIER_SETTINGS, f"data.train={out / 'verifier_pairs' / 'train.csv'}",
                                 f"output_dir={out / 'verifier'}"])
    run = train_recipe.main(cfg, "verifier")
    info["rerank"] = cot_rerank.main(run, out / "verifier_pairs", [test["out"]], out / "rerank")
    x = info["rerank"]["pooled"]
    log(f"best-of-{k} on {x['n']} test questions: first {x['first']:.1%}, majority {x['majority']:.1%}, "
        f"verifier {x['verifier']:.1%} (pass@{k} {x['pass_at_k']:.1%})", summary=True)
    return info


def _report(m: dict, out: Path) -> str:
    n, zs, ft = m["questions"], m["zero_shot"], m["finetuned"]
    g, every = m["gold"], m["ranking"].get("gold")
    gold = (f"{g['accuracy']:.3f} on {g['pairs']} right-against-wrong pairs of students' and teacher's answers to "
            f"questions it was not trained on" if g["pairs"] else "no right-against-wrong pair among the held-out questions")
    if every:
        gold += f"; with the reference answers too, {every['rm_accuracy']:.3f} (log loss {every['rm_logloss']:.4f}) on {every['pairs']}"
    steps = "\n".join(f"| {k} | {v:.0f} |" for k, v in m["times"].items())
    return f"""# prefkit cot demo: {m['dataset']}

| | right answers on the first {n} test questions |
|---|---|
| student `{m['student']}`, zero-shot | {zs['correct_first']} ({zs['correct_first'] / n:.1%}) |
| the same student after Fine-tune-CoT (LoRA, rationales of {m['trained_on']}) | {ft['correct_first']} ({ft['correct_first'] / n:.1%}) |
| teacher (text-davinci-002, the paper's file) | {m['teacher_correct']} ({m['teacher_correct'] / n:.1%}) |

Teacher over all questions of the dataset (the paper's rule): {m['teacher_accuracy_all']:.4f}.

Reward model `{m['reward_model']}`: gold-pair accuracy {gold}. Pairs: {m['pairs']['train']} to train on,
{m['pairs']['test']} held out (split by question; `pairs/summary.json` counts them by pair of systems).

{(out / 'rank' / 'rank.md').read_text()}
{_best_of_k_report(m.get("best_of_k"), out)}
| step | seconds |
|---|---|
{steps}

Total: {m['seconds']:.0f} s.
"""


def _best_of_k_report(b: dict | None, out: Path) -> str:
    if not b:
        return ""
    if not b["rerank"]:
        return f"Best-of-{b['k']}: no verifier was trained ({b['skipped']}).\n"
    return (f"## Best-of-{b['k']}: majority vote and a verifier trained on the student's own samples\n\n"
            f"The fine-tuned student sampled {b['k']} answers (temperature 0.7) to each of the first {b['questions']} test "
            f"and {b['train_questions']} training questions; a verifier (the feature baseline with its arithmetic "
            f"check) was trained on {b['pairs']['train']} pairs of a right and a wrong sample of the same training "
            f"question and calibrated on {b['pairs']['valid']} of held-out training questions.\n\n"
            + (out / "rerank" / "rerank.md").read_text().split("\n", 2)[2])
