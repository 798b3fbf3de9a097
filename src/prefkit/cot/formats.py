"""Training samples for students, and completion-only loss masks.

Fine-tune-CoT form (as in the paper's own fine-tuning files, which this reproduces byte for byte):
    prompt      "<question>\\n\\n###\\n\\n"
    completion  " <rationale>\\n\\n-->\\n\\n<answer> END"
Alpaca form: the Stanford Alpaca prompt with the rationale and answer as the response. Only rationales whose
answer is correct are kept; `teacher_samples` counts what survives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import DEFAULT_ROOT, load, teacher_file
from prefkit.errors import PrefkitError

IGNORE = -100  # label of tokens that carry no loss (torch's cross-entropy ignore_index)
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def finetune_cot(question: str, rationale: str, answer: str) -> dict[str, str]:
    return {"prompt": f"{question}\n\n###\n\n", "completion": f" {rationale.strip()}\n\n-->\n\n{answer} END"}


def alpaca(question: str, rationale: str, answer: str) -> dict[str, str]:
    return {"prompt": ALPACA.format(instruction=question), "completion": f"{rationale.strip()}\n\nThe answer is {answer}."}


FORMATS = {"finetune_cot": finetune_cot, "alpaca": alpaca}


def teacher_samples(dataset: str, split: str = "train", root: Path = DEFAULT_ROOT, diverse: bool = False,
                    form: str = "finetune_cot") -> tuple[list[dict[str, str]], dict]:
    """Samples from the teacher's rationales whose answer is correct (completion 0, or all with `diverse`)."""
    if form not in FORMATS:
        raise PrefkitError(f"unknown format {form!r} (known: {', '.join(FORMATS)})")
    data = json.loads(teacher_file(dataset, root).read_text(encoding="utf-8"))["data"]
    samples, seen = [], 0
    for ex in load(dataset, split, root):
        comps = sorted(data.get(str(ex.index), []), key=lambda c: c.get("completion_index", 0))
        for c in comps if diverse else comps[:1]:
            seen += 1
            if is_correct(dataset, extract(dataset, c.get("completion") or "", None), ex.answer):
                samples.append(FORMATS[form](ex.question, c.get("reasoning_completion") or "", ex.answer))
    return samples, {"dataset": dataset, "split": split, "diverse": diverse, "rationales": seen, "surviving": len(samples)}


def completion_only(tokenizer: Any, prompt: str, completion: str, max_length: int,
                    bos_id: int | None = None, eos_id: int | None = None) -> dict[str, list[int]]:
    """Token ids of prompt + completion and labels that are IGNORE on every prompt token: the loss falls on the
    completion alone. A `tokenizers.Tokenizer`; the prompt is cut from its head when the pair is too long."""
    p = tokenizer.encode(prompt, add_special_tokens=False).ids
    c = tokenizer.encode(completion, add_special_tokens=False).ids + ([eos_id] if eos_id is not None else [])
    head = [bos_id] if bos_id is not None else []
    room = max_length - len(head) - len(c)
    if room < 1:
        c = c[: max_length - len(head) - 1]
        room = 1
    p = p[-room:]
    ids = head + p + c
    return {"input_ids": ids, "labels": [IGNORE] * (len(head) + len(p)) + c}
