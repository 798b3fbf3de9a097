"""`prefkit cot generate --run RUN_OR_CONFIG --out FILE`: a student answers a dataset split: a trained one
(an SFT run folder) or, zero-shot, the base weights of a config.

Batched greedy generation with transformers (prompts left-padded, longest first), cut at the format's end
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
from prefkit.core.batching import collate
from prefkit.core.tokenizer import config_tokenizer, pad_token_id, special_ids
from prefkit.cot.datasets import load, names
from prefkit.cot.formats import chat_stops, chat_tokenizer_of, sample_format
from prefkit.cot.student import open_student
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path

END = " END"


def generation_settings(max_new_tokens: int, pad: int, stops: list[int], temperature: float = 0.0,
                        top_p: float = 1.0, k: int = 1) -> dict:
    """Greedy decoding (temperature 0), or nucleus sampling of `k` sequences a prompt, with a dynamic KV cache
    and no compilation. Gemma-2 checkpoints ship `cache_implementation: hybrid` in generation_config.json, a
    static cache that transformers compiles the forward for, once per batch shape: with length-sorted batches
    every batch is a new shape, and compiling costs more than the generation itself. top_k is switched off
    (transformers' default keeps 50 words), so top_p alone shapes the sampling."""
    settings = {"max_new_tokens": max_new_tokens, "pad_token_id": pad, "eos_token_id": stops or None,
                "use_cache": True, "cache_implementation": "dynamic", "disable_compile": True}
    if temperature <= 0:
        if k != 1:
            raise PrefkitError(f"{k} samples a question need a temperature above 0 (greedy decoding gives one answer)")
        return {**settings, "do_sample": False}
    return {**settings, "do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0,
            "num_return_sequences": k}


class Student:
    """An opened student and what generating with it needs: the prompt of an example in the student's format,
    its token ids (BOS where the format wants it), the stop tokens, the pad id."""

    def __init__(self, source: str | Path, overrides: list[str] = ()):
        self.cfg, self.model, self.trained = open_student(source, overrides)
        self.tok = config_tokenizer(self.cfg)
        self.form = sample_format(self.cfg)
        self.bos, eos = special_ids(self.tok, self.form)
        self.stops = [i for i in [eos, *(self.tok.token_to_id(t) for t in getattr(self.form, "stop_tokens", []))]
                      if i is not None]
        self.pad = pad_token_id(self.tok)

    def prompt_ids(self, question: str) -> list[int]:
        text = self.form(question, "", "")["prompt"]
        return ([self.bos] if self.bos is not None else []) + self.tok.encode(text, add_special_tokens=False).ids

    @torch.no_grad()
    def complete(self, prompts: list[list[int]], settings: dict) -> list[list[str]]:
        """The completions of each prompt (`num_return_sequences` of them, in order), cut after " END"."""
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        t = collate(prompts, self.pad, left=True)  # left padding: every prompt ends where generation starts
        ids, mask = t["input_ids"], t["attention_mask"]
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **settings)
        k = settings.get("num_return_sequences", 1)
        texts = [cut(self.tok.decode(row[width:].tolist(), skip_special_tokens=True)) for row in out]
        return [texts[r * k : (r + 1) * k] for r in range(len(prompts))]


def cut(text: str) -> str:
    """A completion up to and including the first " END" (the Fine-tune-CoT format's end marker)."""
    return text.split(END)[0] + (END if END in text else "")


def length_order(prompts: list[list[int]]) -> list[int]:
    """Longest prompts first: the batches pad least, and the largest one runs first (memory fails early)."""
    return sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))


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
        form = sample_format(cfg)
        texts = [form(e.question, "", "")["prompt"] for e in examples]
        return _with_vllm(Path(source) / "model", cfg, examples, texts, out_file, split)
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


def _with_vllm(folder: Path, cfg, examples: list, prompts: list[str], out_file, split: str) -> dict:
    """The student through vLLM: the LoRA adapter is merged into a full copy of the base model first (in
    `merged/` beside the output file), since vLLM serves a plain checkpoint (its LoRA support needs the base
    weights it was started with)."""
    from prefkit.core import vllm_backend

    vllm_backend.require()  # before the merge, which takes a while
    request = vllm_backend.build_request(prompts, 1, 0.0, cfg.cot.max_new_tokens, [END, *chat_stops(cfg)])
    merged = vllm_backend.merged_checkpoint(cfg, folder, Path(out_file).resolve().parent,  # beside the output: writable
                                            chat_tokenizer=chat_tokenizer_of(cfg))
    texts = vllm_backend.generate(str(merged), request)
    _write(out_file, examples, [t[0] for t in texts], cfg.cot.dataset)
    return {"dataset": cfg.cot.dataset, "split": split, "rows": len(examples), "out": str(out_file), "backend": "vllm"}
