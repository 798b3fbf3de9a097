"""The vLLM backend's own logic, without vllm (it cannot be installed on these CPU machines)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from prefkit.cot.vllm_backend import build_request, generate, map_outputs
from prefkit.errors import PrefkitError


def fake_output(prompt, texts):
    return NS(prompt=prompt, outputs=[NS(text=t) for t in texts])


def test_request_and_mapping():
    req = build_request(["q1", "q2"], samples=2, temperature=0.7, max_tokens=64)
    assert req.n == 2 and req.stop == [" END"]
    out = map_outputs(req, [fake_output("q1", ["a", "b"]), fake_output("q2", ["c", "d"])])
    assert out == [["a", "b"], ["c", "d"]]
    with pytest.raises(RuntimeError, match="out of order"):
        map_outputs(req, [fake_output("q2", ["c", "d"]), fake_output("q1", ["a", "b"])])
    with pytest.raises(RuntimeError, match="1 samples, 2 asked"):
        map_outputs(req, [fake_output("q1", ["a"]), fake_output("q2", ["c", "d"])])
    with pytest.raises(PrefkitError, match="temperature"):
        build_request(["q"], samples=3, temperature=0.0)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_clear_message_without_vllm():
    with pytest.raises(PrefkitError, match="vllm is not installed"):
        generate("/models/x", build_request(["q"]))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_generate_with_vllm_backend_fails_clearly_without_it(run_cli, tmp_path):
    pytest.importorskip("bitsandbytes")
    from tests.conftest import SHARED, need_shared

    need_shared(SHARED / "reasoning")
    tiny = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"
    run = tmp_path / "sft"
    r = run_cli("cot", "sft", tiny, f"output_dir={run}", f"cot.data_root={SHARED}", "cot.dataset=singleeq",
                "template.max_length=96", "train.save_every=0")
    assert r.code == 0, r.err
    r = run_cli("cot", "generate", "--run", run, "--out", tmp_path / "p.jsonl", "cot.backend=vllm")
    assert r.code == 2 and "vllm is not installed" in r.err and "Traceback" not in r.err
    assert not (run / "merged").exists() and not (tmp_path / "p.jsonl").exists()
