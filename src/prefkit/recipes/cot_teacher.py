"""`prefkit cot teacher`: the paper's two-step Zero-shot-CoT teacher on a dataset split, written as the paper's
teacher file, from a model behind an OpenAI-compatible endpoint (`prefkit.cot.teacher_api`: the environment names
it; its cache, beside --out unless --cache names one, loses no paid call).
"""

from __future__ import annotations

from pathlib import Path

from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import DEFAULT_ROOT, load, spec
from prefkit.cot.teacher_api import Teacher, TeacherConfig
from prefkit.io import write_json

ZS_COT = "Q: {question}\nA: Let's think step by step."  # Zero-shot-CoT (Kojima et al., 2022), as the paper's teacher
ANSWER_PROMPT = {"number": "Therefore, the answer (arabic numerals) is", "letter": "Therefore, among A through F, the answer is"}


def main(dataset: str, out: str | Path, split: str = "train", root: Path = DEFAULT_ROOT, samples: int = 1,
         temperature: float = 0.0, concurrency: int = 4, limit: int | None = None, cache: str | Path | None = None) -> dict:
    out = Path(out)
    teacher = Teacher(TeacherConfig.from_env(concurrency=concurrency, temperature=temperature),
                      Path(cache) if cache else out.with_suffix(".cache.jsonl"))
    return write_teacher_file(teacher, dataset, split, root, out, samples, temperature, limit)


def write_teacher_file(teacher: Teacher, dataset: str, split: str, root: Path, out: Path, samples: int = 1,
                       temperature: float | None = None, limit: int | None = None) -> dict:
    """Zero-shot-CoT in two steps, as the paper's teacher: a rationale after "Let's think step by step.", then the
    answer after the dataset's answer cue. Written in the paper's teacher-completion format (`cot eval` and the
    SFT sample builder read it as they read the paper's own files)."""
    examples = load(dataset, split, root)[:limit]
    reasoning_prompts = [ZS_COT.format(question=e.question) for e in examples]
    rationales = teacher.ask(reasoning_prompts, samples, temperature)
    cue = ANSWER_PROMPT[spec(dataset).answer]
    answer_prompts = [f"{p} {r}\n{cue}" for p, rs in zip(reasoning_prompts, rationales) for r in rs]
    answers = teacher.ask(answer_prompts, 1, 0.0)
    data, k, surviving = {}, 0, 0
    for e, p, rs in zip(examples, reasoning_prompts, rationales):
        comps = []
        for c, r in enumerate(rs):
            a = answers[k][0]
            k += 1
            surviving += is_correct(dataset, extract(dataset, a, None), e.answer)
            comps.append({"sample_index": e.index, "completion_index": c, "question": e.question, "answer": e.answer,
                          "reasoning_prompt": p, "reasoning_completion": r, "prompt": f"{p} {r}\n{cue}", "completion": a})
        data[str(e.index)] = comps
    t = teacher.cfg.temperature if temperature is None else temperature
    write_json(out, {"metadata": {"dataset_key": dataset, "base_model": teacher.cfg.model, "completion_key": "zs_cot",
                                  "parameters": {"temperature": t, "samples": samples, "max_tokens": teacher.cfg.max_tokens}},
                     "data": data})
    return {"dataset": dataset, "split": split, "questions": len(examples), "rationales": k, "surviving": surviving,
            "requests": teacher.requests}
