"""Student SFT through the shared loop (tiny random Gemma-2, nf4 + LoRA), generation, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from prefkit.config import load_config
from prefkit.core.batching import IGNORE
from prefkit.core.modeling import build_model
from prefkit.core.tokenizer import Vocab, byte_tokenizer, special_ids
from prefkit.core.train import trainable_state
from prefkit.cot.completions import CompletionData
from tests.conftest import SHARED, need_shared

TINY = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"
BYTES = Vocab.of(byte_tokenizer())  # the tiny models' tokenizer: padding id 0, 259 ids


def test_collate_masks_prompt_and_padding():
    samples = [{"input_ids": [1, 5, 6, 7], "labels": [IGNORE, IGNORE, 6, 7]}, {"input_ids": [1, 8], "labels": [IGNORE, 8]}]
    t = CompletionData(samples, batch_size=2, seed=0, pad_id=0).collate(np.array([0, 1]), epoch=0)
    assert t["input_ids"].tolist() == [[1, 5, 6, 7], [1, 8, 0, 0]]
    assert t["labels"].tolist() == [[IGNORE, IGNORE, 6, 7], [IGNORE, 8, IGNORE, IGNORE]]
    assert t["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_byte_tokenizer_special_ids():
    assert special_ids(byte_tokenizer()) == (1, 2)


def test_sft_generate_eval(run_cli, tmp_path):
    need_shared(SHARED / "reasoning")
    run = tmp_path / "sft"
    args = [f"output_dir={run}", f"cot.data_root={SHARED}", "template.max_length=160", "train.save_every=0",
            "train.log_every=1"]
    r = run_cli("cot", "sft", TINY, *args)
    assert r.code == 0, r.err
    assert "323 of 420 teacher rationales have the right answer" in r.err
    log = [json.loads(x) for x in (run / "model" / "log.jsonl").read_text().splitlines()]
    assert np.mean([x["loss"] for x in log[-5:]]) < np.mean([x["loss"] for x in log[:5]]), "the loss falls"
    trained = load_file(run / "model" / "adapter_model.safetensors")
    fresh = trainable_state(build_model(load_config(TINY), BYTES, "causal_lm"))
    lora_b = [k for k in trained if "lora_B" in k]
    assert lora_b and all(not torch.equal(trained[k], torch.zeros_like(trained[k])) for k in lora_b)
    assert any("lora_B" in k and torch.equal(v, torch.zeros_like(v)) for k, v in fresh.items()), "B starts at zero"

    pred = tmp_path / "pred.jsonl"
    r = run_cli("cot", "generate", "--run", run, "--out", pred, "--limit", "5", "cot.max_new_tokens=12")
    assert r.code == 0, r.err
    rows = [json.loads(x) for x in pred.read_text().splitlines()]
    # the tiny byte-level student writes one character a token: each answer is what it generated, 1 to 12 of them
    assert len(rows) == 5 and all(isinstance(x["completion"], str) and 0 < len(x["completion"]) <= 12 for x in rows), \
        "every question gets a completion of at most cot.max_new_tokens=12 generated tokens"
    r = run_cli("cot", "eval", "--dataset", "multiarith", "--predictions", pred, "--split", "test", "--data-root", SHARED)
    out = json.loads(r.out)
    assert r.code == 0 and out["n"] == 180 and out["completions"] == 5 and out["missing"] == 175


def test_sft_needs_a_causal_lm_config(run_cli, tmp_path):
    r = run_cli("cot", "sft", TINY, "model.kind=seq_cls", f"output_dir={tmp_path}")
    assert r.code == 2 and "model.kind=causal_lm" in r.err
