"""`prefkit cot sample`: K rationales a question from one student, scored, one JSONL row a sample (the row:
`prefkit.cot.sampling`).

    prefkit cot sample --run RUN_OR_CONFIG cot.dataset=addsub --k 8 --temperature 0.7 --top-p 0.95 --out S.jsonl

K=1 at temperature 0 is the greedy answer. The questions are put in one length order and cut into batches of
`cot.generate_batch_size` sequences (K of them a question); batch b draws from a generator seeded with (seed, b),
so a run gives the same samples whatever stopped it.

Resumable: rows go to `<out>.partial` a batch at a time (flushed); after an interrupt, the same command keeps
the questions that have all K rows and redoes the rest; the file is renamed to `<out>` when every question is
in. `cot.backend=vllm` is not offered here yet (vLLM's own seeding differs); the transformers path runs anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prefkit.console import keep_bars
from prefkit.cot.datasets import load, names
from prefkit.cot.generate import Student, generation_settings, length_order
from prefkit.cot.sampling import read_samples, score_row
from prefkit.cot.student import open_student
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path


def _done(partial: Path, k: int) -> dict[int, list[dict]]:
    """Questions with all K rows in a partial file; a torn last line (the process died mid-write) is dropped."""
    by_q: dict[int, list[dict]] = {}
    if not partial.exists():
        return by_q
    for line in partial.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_q.setdefault(int(row["index"]), []).append(row)
    return {q: sorted(rows, key=lambda r: r["sample"])[:k] for q, rows in by_q.items()
            if len({r["sample"] for r in rows}) >= k}


def main(source: str | Path, out_file: str | Path, split: str = "test", k: int = 8, temperature: float = 0.7,
         top_p: float = 0.95, seed: int = 0, limit: int | None = None, overrides: list[str] = ()) -> dict:
    if k < 1:
        raise PrefkitError(f"--k must be at least 1, got {k}")
    if k > 1 and temperature <= 0:
        raise PrefkitError(f"--k {k} needs --temperature above 0 (greedy decoding gives one answer a question)")
    cfg, _, _ = open_student(source, overrides, load_model=False)
    if len(names(cfg.cot.dataset)) != 1:
        raise PrefkitError(f"cot.dataset={cfg.cot.dataset}: sampling answers one dataset; add cot.dataset=NAME")
    if cfg.cot.backend != "transformers":
        raise PrefkitError("prefkit cot sample runs with cot.backend=transformers")
    dataset = cfg.cot.dataset
    out = Path(out_file)
    if out.exists():
        rows = read_samples(out)
        return {"dataset": dataset, "split": split, "out": str(out), "rows": len(rows), "kept": True}
    examples = load(dataset, split, Path(cfg.cot.data_root))[:limit]
    partial = out.with_name(out.name + ".partial")
    done = _done(partial, k)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the partial file with the complete questions only (written aside, then renamed), then appended to
    with atomic_path(partial) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rows in done.values():
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    student = Student(source, overrides)
    prompts = [student.prompt_ids(e.question) for e in examples]
    order = length_order(prompts)
    per_batch = max(1, cfg.cot.generate_batch_size // k)  # questions a batch: K sequences each
    batches = [order[s : s + per_batch] for s in range(0, len(order), per_batch)]
    settings = generation_settings(cfg.cot.max_new_tokens, student.pad, student.stops, temperature, top_p, k)
    todo = [(b, batch) for b, batch in enumerate(batches) if any(examples[i].index not in done for i in batch)]
    if done:
        print(f"{partial}: resuming, {len(done)} of {len(examples)} questions already sampled", flush=True)
    with open(partial, "a", encoding="utf-8") as fh:
        for b, batch in tqdm(todo, desc=f"sample {dataset} k={k}", unit="batch", leave=keep_bars(), mininterval=1.0):
            torch.manual_seed(seed * 1_000_003 + b)  # the batch's own stream: the same samples after a resume
            texts = student.complete([prompts[i] for i in batch], settings)
            for i, completions in zip(batch, texts):
                if examples[i].index in done:
                    continue
                rows = [score_row(dataset, split, examples[i], j, c) for j, c in enumerate(completions)]
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                done[examples[i].index] = rows
            fh.flush()
            os.fsync(fh.fileno())
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:  # in question order
        for e in examples:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in done[e.index])
    partial.unlink()
    correct = sum(r["correct"] for e in examples for r in done[e.index])
    return {"dataset": dataset, "split": split, "out": str(out), "questions": len(examples), "k": k,
            "rows": len(examples) * k, "correct": correct, "temperature": temperature, "top_p": top_p, "seed": seed}
