"""`prefkit cot sample`: K rationales a question from one student, scored, one JSONL row a sample (the row:
`prefkit.cot.sampling`).

    prefkit cot sample --run RUN_OR_CONFIG cot.dataset=addsub --k 8 --temperature 0.7 --top-p 0.95 --out S.jsonl

K=1 at temperature 0 is the greedy answer. The questions are put in one length order and cut into batches of
`cot.generate_batch_size` sequences (K of them a question); batch b draws from a generator seeded with (seed, b),
so a run gives the same samples whatever stopped it.

Resumable: rows go to `<out>.partial` a batch at a time (flushed); after an interrupt, the same command keeps
the questions that have all K rows and redoes the rest; the file is renamed to `<out>` when every question is
in. Each row records the settings that decide its samples (`sampling`: the student, K, temperature, top-p, seed,
--limit, max_new_tokens and the batch size, which decides each batch's seed): a partial or finished file of other
settings is refused, never resumed into a mix or kept in place of what was asked (a file of an older prefkit,
without them, is checked by its dataset, split and K). `cot.backend=vllm` is not offered here yet (vLLM's own
seeding differs); the transformers path runs anywhere.
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


# how each recorded setting is given on the command line, for a refusal that says what to type
FLAGS = {"dataset": "cot.dataset={}", "split": "--split {}", "student": "--run {}", "k": "--k {}",
         "temperature": "--temperature {}", "top_p": "--top-p {}", "seed": "--seed {}", "limit": "--limit {}",
         "max_new_tokens": "cot.max_new_tokens={}", "generate_batch_size": "cot.generate_batch_size={}"}


def _partial_rows(partial: Path) -> list[dict]:
    """The rows of a partial file; a torn last line (the process died mid-write) is dropped."""
    rows = []
    for line in partial.read_text(encoding="utf-8").splitlines() if partial.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _same_settings(path: Path, rows: list[dict], now: dict, partial: bool) -> None:
    """Refuse a file whose rows were sampled otherwise than `now` asks, naming the settings on both sides."""
    if not rows:
        return
    was = {"dataset": rows[0]["dataset"], "split": rows[0]["split"], **rows[0].get("sampling", {})}
    was.setdefault("k", 1 + max(int(r["sample"]) for r in rows))  # an older prefkit's file: K read off its rows
    differ = [key for key in FLAGS if key in was and was[key] != now[key]]
    if differ:
        def flags(d: dict) -> str:
            return " ".join(FLAGS[key].format(d[key]) for key in differ)

        what, then = (("an interrupted run", "to resume it, another --out, or delete it to start again") if partial
                      else ("sampled", "to keep it, or another --out"))
        raise PrefkitError(f"{path}: {what} with {flags(was)}, not {flags(now)}: give {flags(was)} {then}")


def _done(rows: list[dict], k: int) -> dict[int, list[dict]]:
    """Questions with all K rows among a partial file's rows."""
    by_q: dict[int, list[dict]] = {}
    for row in rows:
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
    sampling = {"student": str(Path(source).resolve()) if Path(source).exists() else str(source), "k": k,
                "temperature": temperature, "top_p": top_p, "seed": seed, "limit": limit,
                "max_new_tokens": cfg.cot.max_new_tokens, "generate_batch_size": cfg.cot.generate_batch_size}
    now = {"dataset": dataset, "split": split, **sampling}
    if out.exists():
        rows = read_samples(out)
        _same_settings(out, rows, now, partial=False)
        return {"dataset": dataset, "split": split, "out": str(out), "rows": len(rows), "kept": True}
    examples = load(dataset, split, Path(cfg.cot.data_root))[:limit]
    partial = out.with_name(out.name + ".partial")
    rows = _partial_rows(partial)
    _same_settings(partial, rows, now, partial=True)
    done = _done(rows, k)
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
                rows = [{**score_row(dataset, split, examples[i], j, c), "sampling": sampling}
                        for j, c in enumerate(completions)]
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
