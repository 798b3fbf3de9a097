"""TruthfulQA MC1/MC2 from log-likelihoods: the scores by hand, batching that changes nothing, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prefkit.cot.truthfulqa import answer_logprobs, mc_scores
from tests.conftest import SHARED, need_shared

TINY = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"


def test_mc_scores_by_hand():
    mc1, mc2 = mc_scores(-2.0, [-2.0, -3.0], [-2.5, -4.0])
    assert mc1 == 1.0  # the best answer beats every incorrect one
    p = np.exp([-2.0, -3.0, -2.5, -4.0])
    assert mc2 == pytest.approx((p[0] + p[1]) / p.sum())
    assert mc_scores(-3.0, [-3.0], [-2.9])[0] == 0.0


def test_log_likelihoods_do_not_depend_on_the_batch(tmp_path):
    import torch

    from prefkit.config import load_config
    from prefkit.core.batching import IGNORE
    from prefkit.core.modeling import build_model
    from prefkit.core.tokenizer import Vocab, byte_tokenizer

    cfg = load_config(TINY, ["quantization.mode=none"])
    model = build_model(cfg, Vocab.of(byte_tokenizer()), "causal_lm", trainable=False)
    samples = [{"input_ids": list(range(5, 5 + n)), "labels": [IGNORE] * 3 + list(range(8, 5 + n))} for n in (6, 9, 4)]
    together = answer_logprobs(model, samples, 0, batch_size=3)
    alone = np.array([answer_logprobs(model, [s], 0)[0] for s in samples])
    assert np.allclose(together, alone, atol=1e-4) and (together < 0).all()
    logits = model(input_ids=torch.tensor([samples[2]["input_ids"]])).logits.float()
    lp = torch.log_softmax(logits[0, :-1], -1)
    by_hand = sum(lp[t - 1, samples[2]["input_ids"][t]].item() for t in range(3, 4))
    assert alone[2] == pytest.approx(by_hand, abs=1e-4)


def test_truthfulqa_command_scores_a_config(run_cli, tmp_path):
    need_shared(SHARED / "truthfulqa" / "TruthfulQA.csv")
    r = run_cli("cot", "truthfulqa", TINY, "--limit", 4, "--out", tmp_path / "tqa.json", f"cot.data_root={SHARED}")
    assert r.code == 0, r.err
    result = json.loads((tmp_path / "tqa.json").read_text())
    assert result["questions"] == 4 and result["trained"] is False and 0 <= result["mc1"] <= 1 and 0 < result["mc2"] < 1
