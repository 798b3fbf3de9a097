"""`prefkit cot generate --run RUN_OR_CONFIG --out FILE`: a student answers a dataset split: a trained one
(an SFT run folder) or, zero-shot, the base weights of a config.

Batched greedy generation with transformers (prompts left-padded, longest first), cut at the format's end
marker (" END", or the chat template's end of turn); writes JSONL `{"index", "completion"}` that
`prefkit cot eval` reads. `cot.backend=vllm` hands the same prompts to vLLM (GPU machines, when installed;
see `prefkit.vllm_backend`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from prefkit.console import keep_bars
from prefkit.cot.datasets import load, names
from prefkit.cot.formats import sample_format
from prefkit.cot.sft import special_ids
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path
from prefkit.cot.student import open_student
from prefkit.templates import config_tokenizer, pad_token_id

END = " END"


def generation_settings(max_new_tokens: int, pad: int, stops: list[int]) -> dict:
    """Greedy decoding with a dynamic KV cache and no compilation. Gemma-2 checkpoints ship
    `cache_implementation: hybrid` in generation_config.json, a static cache that transformers compiles the
    forward for, once per batch shape: with length-sorted batches every batch is a new shape, and compiling
    costs more than the generation itself."""
    return {"do_sample": False, "max_new_tokens": max_new_tokens, "pad_token_id": pad, "eos_token_id": stops or None,
            "use_cache": True, "cache_implementation": "dynamic", "disable_compile": True}


@torch.no_grad()
def main(source: str | Path, out_file: str | Path, split: str = "test", limit: int | None = None,
         overrides: list[str] = ()) -> dict:
    cfg, _, trained = open_student(source, overrides, load_model=False)
    datasets = names(cfg.cot.dataset)
    if len(datasets) != 1:
        raise PrefkitError(f"cot.dataset={cfg.cot.dataset}: generation answers one dataset; add cot.dataset=NAME")
    tok = config_tokenizer(cfg)
    form = sample_format(cfg)
    bos, eos = special_ids(tok, form)
    stops = [i for i in [eos, *(tok.token_to_id(t) for t in getattr(form, "stop_tokens", []))] if i is not None]
    examples = load(cfg.cot.dataset, split, Path(cfg.cot.data_root))[:limit]
    texts = [form(e.question, "", "")["prompt"] for e in examples]
    if cfg.cot.backend == "vllm":
        if not trained:
            raise PrefkitError("cot.backend=vllm serves a trained student (an SFT run folder)")
        return _with_vllm(Path(source) / "model", cfg, examples, texts, out_file, split)
    pad = pad_token_id(tok)
    _, model, _ = open_student(source, overrides)
    device = next(model.parameters()).device
    prompts = [([bos] if bos is not None else []) + tok.encode(t, add_special_tokens=False).ids for t in texts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    completions: dict[int, str] = {}
    bs = max(1, cfg.cot.generate_batch_size)
    for start in tqdm(range(0, len(order), bs), desc=f"generate {cfg.cot.dataset}", unit="batch", leave=keep_bars(),
                      mininterval=1.0):
        batch = order[start : start + bs]
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):  # left padding: every prompt ends where generation starts
            ids[r, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[r, width - len(prompts[i]):] = 1
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             **generation_settings(cfg.cot.max_new_tokens, pad, stops))
        for r, i in enumerate(batch):
            text = tok.decode(out[r, width:].tolist(), skip_special_tokens=True)
            completions[i] = text.split(END)[0] + (END if END in text else "")
    _write(out_file, examples, [completions[i] for i in range(len(examples))])
    return {"dataset": cfg.cot.dataset, "split": split, "rows": len(examples), "out": str(out_file), "backend": "transformers"}


def _write(out_file: str | Path, examples: list, completions: list[str]) -> None:
    with atomic_path(out_file) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for e, c in zip(examples, completions):
            fh.write(json.dumps({"index": e.index, "completion": c}, ensure_ascii=False) + "\n")


def _with_vllm(folder: Path, cfg, examples: list, prompts: list[str], out_file, split: str) -> dict:
    """The student through vLLM: the LoRA adapter is merged into a full copy of the base model first (in
    `merged/` beside the output file), since vLLM serves a plain checkpoint (its LoRA support needs the base
    weights it was started with)."""
    from prefkit import vllm_backend

    vllm_backend.require()  # before the merge, which takes a while
    request = vllm_backend.build_request(prompts, 1, 0.0, cfg.cot.max_new_tokens, [END, *vllm_backend.chat_stops(cfg)])
    merged = vllm_backend.merged_checkpoint(cfg, folder, Path(out_file).resolve().parent)  # beside the output: writable
    texts = vllm_backend.generate(str(merged), request)
    _write(out_file, examples, [t[0] for t in texts])
    return {"dataset": cfg.cot.dataset, "split": split, "rows": len(examples), "out": str(out_file), "backend": "vllm"}
