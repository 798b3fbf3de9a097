"""The vLLM backend's own logic, without vllm (it cannot be installed on these CPU machines)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from prefkit.core.vllm_backend import build_request, generate, map_outputs
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
    from tests.conftest import SHARED, need_shared

    need_shared(SHARED / "reasoning")
    tiny = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"
    run = tmp_path / "sft"
    r = run_cli("cot", "sft", tiny, f"output_dir={run}", f"cot.data_root={SHARED}", "cot.dataset=singleeq",
                "template.max_length=96", "train.save_every=0")
    assert r.code == 0, r.err
    r = run_cli("cot", "generate", "--run", run, "--out", tmp_path / "p.jsonl", "cot.backend=vllm")
    assert r.code == 2 and "vllm is not installed" in r.err and "Traceback" not in r.err
    assert not (run / "model.merged").exists() and not (tmp_path / "p.jsonl").exists()


def test_classify_requests_and_probabilities():
    import numpy as np

    from prefkit.core.vllm_backend import classify_requests, probs_from

    seqs = [np.array([2, 10, 11]), np.array([2, 12])]
    assert classify_requests(seqs) == [{"prompt_token_ids": [2, 10, 11]}, {"prompt_token_ids": [2, 12]}]
    out = [NS(outputs=NS(probs=[0.7, 0.2, 0.1])), NS(outputs=NS(probs=[0.1, 0.1, 0.8]))]
    assert probs_from(out, 2, 3).tolist() == [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    with pytest.raises(RuntimeError, match="1 results for 2 rows"):
        probs_from(out[:1], 2, 3)
    with pytest.raises(RuntimeError, match="sum to 1"):
        probs_from([NS(outputs=NS(probs=[5.0, 1.0, 0.0]))] * 2, 2, 3)


def test_reward_model_merged_for_vllm_matches_the_adapter(tmp_path, run_cli):
    """The checkpoint vLLM's pooling runner would load: LoRA and score head merged, same logits as the adapter."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from prefkit.config import load_config
    from prefkit.core.modeling import load_trained
    from prefkit.core.tokenizer import Vocab, byte_tokenizer
    from prefkit.core.vllm_backend import merged_checkpoint
    from prefkit.data.arena import write_lmsys_csv
    from prefkit.data.synthetic import make_pairs

    tiny = Path(__file__).resolve().parents[2] / "configs" / "rm" / "tiny_gemma2.yaml"
    write_lmsys_csv(make_pairs(24, seed=1), tmp_path / "a.csv")
    run = tmp_path / "rm"
    r = run_cli("train", tiny, f"data.train={tmp_path / 'a.csv'}", "template.max_length=128", f"output_dir={run}")
    assert r.code == 0, r.err
    cfg = load_config(run / "config.yaml")
    folder = next(p for p in run.iterdir() if (p / "adapter_config.json").is_file())
    merged = merged_checkpoint(cfg, folder, tmp_path / "work", "seq_cls", 3)
    assert merged == tmp_path / "work" / "merged" / folder.name
    full = AutoModelForSequenceClassification.from_pretrained(str(merged)).eval()
    adapter = load_trained(load_config(run / "config.yaml", ["quantization.mode=none"]), Vocab.of(byte_tokenizer()), folder,
                           "seq_cls", outputs=3)
    ids = torch.tensor([[2, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        assert torch.allclose(full(input_ids=ids).logits, adapter(input_ids=ids).logits, atol=1e-4)

    r = run_cli("predict", "--run", run, "--test", tmp_path / "a.csv", "--out", tmp_path / "s.csv", "predict.backend=vllm")
    if importlib.util.find_spec("vllm") is None:
        assert r.code == 2 and "vllm is not installed" in r.err and not (tmp_path / "s.csv").exists()


def test_judge_request_and_answer_logprobs():
    """The lm_tokens judge on vLLM: one greedy token among the answers, the logprobs after the allowed-token mask."""
    import numpy as np

    from prefkit.core.vllm_backend import JUDGE_ENGINE, judge_params, logprobs_from

    assert judge_params([65, 66, 84]) == {"max_tokens": 1, "temperature": 0.0, "allowed_token_ids": [65, 66, 84],
                                          "logprobs": 3}
    assert JUDGE_ENGINE == {"enable_prefix_caching": True, "logprobs_mode": "processed_logprobs"}
    lp = lambda d: NS(outputs=[NS(logprobs=[{t: NS(logprob=v) for t, v in d.items()}])])
    out = [lp({66: -0.2, 65: -1.8, 84: -3.0}), lp({84: -0.1, 65: -2.5, 66: -3.5})]
    assert np.allclose(logprobs_from(out, 2, [65, 66, 84]), [[-1.8, -0.2, -3.0], [-2.5, -3.5, -0.1]])
    with pytest.raises(RuntimeError, match="no log-probability for answer token 84"):
        logprobs_from([lp({65: -0.1, 66: -2.0})], 1, [65, 66, 84])
    with pytest.raises(RuntimeError, match="1 results for 2 rows"):
        logprobs_from(out[:1], 2, [65, 66, 84])


def test_each_head_owns_its_vllm_path(monkeypatch):
    """A classifier head asks vLLM's pooling runner, lm_tokens one judged token (softmax over its answers), and bt
    (two sequences a row) is refused before any model loads."""
    import numpy as np

    from prefkit.competition import COMPETITIONS
    from prefkit.core import vllm_backend
    from prefkit.rm.heads import BradleyTerry, Classifier, LmTokens

    calls = []
    monkeypatch.setattr(vllm_backend, "classify", lambda path, seqs, k: calls.append(("classify", path, k))
                        or np.full((len(seqs), k), 1 / k))
    monkeypatch.setattr(vllm_backend, "judge_logprobs", lambda path, seqs, ids: calls.append(("judge", path, ids))
                        or np.log(np.array([[0.5, 0.25, 0.25]] * len(seqs))))
    comp = COMPETITIONS["lmsys"]
    seqs = [np.array([1, 2]), np.array([3])]
    assert Classifier(comp).vllm_probs("m", seqs).shape == (2, 3)
    judge = LmTokens(comp)
    judge.token_ids = [65, 66, 84]
    assert np.allclose(judge.vllm_probs("m", seqs), [[0.5, 0.25, 0.25]] * 2)
    assert calls == [("classify", "m", 3), ("judge", "m", [65, 66, 84])]
    assert Classifier(comp).vllm and judge.vllm and not BradleyTerry(comp).vllm
