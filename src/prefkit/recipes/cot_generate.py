"""`prefkit cot generate --run RUN_OR_CONFIG --out FILE`: a student answers a dataset split: a trained one
(an SFT run folder) or, zero-shot, the base weights of a config.

Batched greedy generation with transformers (`prefkit.cot.generate`: prompts left-padded, longest first), cut at the format's end
marker (" END", or the chat template's end of turn); writes JSONL `{"index", "completion", "dataset", "question"}`
that `prefkit cot eval` reads (and checks against the dataset it is scored on). `cot.backend=vllm` hands the
same prompts to vLLM (GPU machines, when installed;
see `prefkit.core.vllm_backend`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prefkit.console import keep_bars
from prefkit.cot.datasets import load, names
from prefkit.cot.formats import StudentFormat
from prefkit.cot.generate import END, Student, generation_settings, length_order
from prefkit.cot.student import open_student
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path


@torch.no_grad()
def main(source: str | Path, out_file: str | Path, split: str = "test", limit: int | None = None,
         overrides: list[str] = ()) -> dict:
    cfg, _, trained = open_student(source, overrides, load_model=False)
    if len(names(cfg.cot.dataset)) != 1:
        raise PrefkitError(f"cot.dataset={cfg.cot.dataset}: generation answers one dataset; add cot.dataset=NAME")
    examples = load(cfg.cot.dataset, split, Path(cfg.cot.data_root))[:limit]
    if cfg.cot.backend == "vllm":
        if not trained:
            raise PrefkitError("cot.backend=vllm serves a trained student (an SFT run folder)")
        return _with_vllm(Path(source) / "model", cfg, StudentFormat.of(cfg), examples, out_file, split)
    student = Student(source, overrides)
    prompts = [student.prompt_ids(e.question) for e in examples]
    order = length_order(prompts)
    settings = generation_settings(cfg.cot.max_new_tokens, student.pad, student.stops)
    completions: dict[int, str] = {}
    bs = max(1, cfg.cot.generate_batch_size)
    for start in tqdm(range(0, len(order), bs), desc=f"generate {cfg.cot.dataset}", unit="batch", leave=keep_bars(),
                      mininterval=1.0):
        batch = order[start : start + bs]
        for i, texts in zip(batch, student.complete([prompts[i] for i in batch], settings)):
            completions[i] = texts[0]
    _write(out_file, examples, [completions[i] for i in range(len(examples))], cfg.cot.dataset)
    return {"dataset": cfg.cot.dataset, "split": split, "rows": len(examples), "out": str(out_file), "backend": "transformers"}


def _write(out_file: str | Path, examples: list, completions: list[str], dataset: str) -> None:
    with atomic_path(out_file) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for e, c in zip(examples, completions):
            row = {"index": e.index, "completion": c, "dataset": dataset, "question": e.question}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _with_vllm(folder: Path, cfg, fmt: StudentFormat, examples: list, out_file, split: str) -> dict:
    """The student through vLLM: the LoRA adapter is merged into a full copy of the base model first (in
    `merged/` beside the output file), since vLLM serves a plain checkpoint (its LoRA support needs the base
    weights it was started with). The student's format `fmt`, opened once, gives the prompts, the stop strings
    and the chat template saved with the merged checkpoint."""
    from prefkit.core import vllm_backend

    vllm_backend.require()  # before the merge, which takes a while
    prompts = [fmt.prompt(e.question) for e in examples]
    request = vllm_backend.build_request(prompts, 1, 0.0, cfg.cot.max_new_tokens, [END, *fmt.stop_texts])
    merged = vllm_backend.merged_checkpoint(cfg, folder, Path(out_file).resolve().parent,  # beside the output: writable
                                            chat_tokenizer=fmt.chat_tokenizer)
    texts = vllm_backend.generate(str(merged), request)
    _write(out_file, examples, [t[0] for t in texts], cfg.cot.dataset)
    return {"dataset": cfg.cot.dataset, "split": split, "rows": len(examples), "out": str(out_file), "backend": "vllm"}
