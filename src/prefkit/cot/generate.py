"""Generation from a student: the student opened with its tokenizer, format and stop tokens (`Student`), the
decoding settings (greedy, or nucleus sampling of K sequences a prompt), prompts in length order, completions cut
at the Fine-tune-CoT end marker. `prefkit cot generate` (recipes/cot_generate.py) and `prefkit cot sample`
(recipes/cot_sample.py) run on it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prefkit.core.batching import collate
from prefkit.cot.formats import StudentFormat
from prefkit.cot.student import open_student
from prefkit.errors import PrefkitError

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
    """An opened student and what generating with it needs, from its format (`StudentFormat`): the prompt ids of
    a question (BOS where the format wants it), the stop ids, the pad id."""

    def __init__(self, source: str | Path, overrides: list[str] = ()):
        self.cfg, self.model, self.trained = open_student(source, overrides)
        self.format = StudentFormat.of(self.cfg)
        self.stops, self.pad = self.format.stop_ids, self.format.vocab.pad_id

    def prompt_ids(self, question: str) -> list[int]:
        return self.format.prompt_ids(question)

    @torch.no_grad()
    def complete(self, prompts: list[list[int]], settings: dict) -> list[list[str]]:
        """The completions of each prompt (`num_return_sequences` of them, in order), cut after " END"."""
        device = next(self.model.parameters()).device
        width = max(len(p) for p in prompts)
        t = collate(prompts, self.pad, left=True)  # left padding: every prompt ends where generation starts
        ids, mask = t["input_ids"], t["attention_mask"]
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **settings)
        k = settings.get("num_return_sequences", 1)
        texts = [cut(self.format.vocab.tokenizer.decode(row[width:].tolist(), skip_special_tokens=True)) for row in out]
        return [texts[r * k : (r + 1) * k] for r in range(len(prompts))]


def cut(text: str) -> str:
    """A completion up to and including the first " END" (the Fine-tune-CoT format's end marker)."""
    return text.split(END)[0] + (END if END in text else "")


def length_order(prompts: list[list[int]]) -> list[int]:
    """Longest prompts first: the batches pad least, and the largest one runs first (memory fails early)."""
    return sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
