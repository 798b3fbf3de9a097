"""The four heads on the tiny Gemma-2 through the real path (nf4 + LoRA): each learns, reloads to the same
outputs and is A/B symmetric with swap TTA; the Bradley-Terry tie model and the judge's padding by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.core.modeling import build_model
from prefkit.core.tokenizer import Vocab, byte_tokenizer
from prefkit.core.train import trainable_state
from prefkit.data import swap_ab
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import score, swap_probs
from prefkit.rm.heads import BradleyTerry, make_head
from prefkit.rm.reward_model import RewardModelLearner
from tests.conftest import FAST, TINY, learnable

JUDGE = ["template.answers=[A, B, T]", "template.max_length=160"]  # byte tokens: one letter is one token
BYTES = Vocab.of(byte_tokenizer())  # the tiny models' tokenizer: padding id 0, 259 ids
HEADS = {
    "cls3": [],
    "cls2": ["competition=wsdm"],
    "bt": [],
    "lm_tokens": JUDGE,
}


def no_ties(table: PairTable) -> PairTable:
    return PairTable(table.frame[table.frame["label"] != "tie"].reset_index(drop=True), table.source)


@pytest.mark.parametrize("head", list(HEADS))
def test_head_learns_reloads_and_is_swap_symmetric(head, tmp_path):
    cfg = load_config(TINY, FAST + ["train.epochs=4", f"model.head={head}", *HEADS[head]])
    table = learnable(48)
    if cfg.competition == "wsdm":
        table = no_ties(table)
    learner = RewardModelLearner(cfg)
    assert learner.head.name == head
    before = trainable_state(build_model(cfg, learner.vocab, learner.head.task, outputs=learner.head.outputs))
    history = learner.fit(table, None, tmp_path / "m")
    after = trainable_state(learner.model)
    assert set(before) == set(after) and all(not torch.equal(before[k], after[k]) for k in before), "every trainable tensor moved"
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], (head, history[0]["loss"], history[-1]["loss"])
    probs, stats = learner.predict(table)
    k = len(COMPETITIONS[cfg.competition].labels)
    assert probs.shape == (len(table), k) and np.allclose(probs.sum(axis=1), 1.0) and stats["rows"] == len(table)
    assert score(probs, table.frame["label"])["accuracy"] > 0.9, head
    assert np.allclose(learner.predict(swap_ab(table))[0], swap_probs(probs), atol=1e-5), "TTA: swapped row, swapped answer"
    reloaded = RewardModelLearner.load(cfg, tmp_path / "m")
    assert np.allclose(reloaded.predict(table)[0], probs, atol=1e-5), "save and reload give the same outputs"


def test_davidson_ties_by_hand():
    """P(A) : P(B) : P(tie) = pi_A : pi_B : nu sqrt(pi_A pi_B), pi = exp(s), log nu = t_A + t_B (Davidson 1970)."""
    head = BradleyTerry(COMPETITIONS["lmsys"])
    s_a, t_a, s_b, t_b = 1.2, 0.5, -0.3, -0.2
    probs = head.probs(np.array([[s_a, t_a], [s_b, t_b]]))
    pa, pb, nu = np.exp(s_a), np.exp(s_b), np.exp(t_a + t_b)
    z = pa + pb + nu * np.sqrt(pa * pb)
    assert np.allclose(probs, [[pa / z, pb / z, nu * np.sqrt(pa * pb) / z]])
    two = BradleyTerry(COMPETITIONS["wsdm"])  # A or B: plain Bradley-Terry, sigmoid of the difference
    assert two.outputs == 1 and np.allclose(two.probs(np.array([[s_a], [s_b]])), [[1 / (1 + np.exp(s_b - s_a)),
                                                                                  1 / (1 + np.exp(s_a - s_b))]])
    loss = head.loss(torch.tensor([[s_a, t_a], [s_b, t_b]]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert loss.item() == pytest.approx(-np.log(probs[0, 2]), rel=1e-5)


def test_bt_starts_from_a_single_score_reward_model(tmp_path):
    """A public reward model's one output becomes the score; the tie term starts at zero."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = load_config(TINY, ["quantization.mode=none"])
    rm_config = AutoConfig.for_model(vocab_size=259, num_labels=1, pad_token_id=0,
                                     **{k: v for k, v in cfg.model.random_init.items()})
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_config(rm_config)
    rm.save_pretrained(tmp_path / "rm")
    bt = load_config(TINY, ["quantization.mode=none", "lora.enabled=false", "model.head=bt",
                            f"model.path={tmp_path / 'rm'}", "model.random_init={}"])
    model = build_model(bt, BYTES, "seq_cls", trainable=False, outputs=make_head(bt).outputs)
    assert model.config.num_labels == 2 and model.score.weight.shape[0] == 2
    assert torch.equal(model.score.weight[0], rm.score.weight[0]) and not model.score.weight[1].any()
    ids = torch.tensor([[1, 40, 41, 42], [1, 50, 51, 52]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits[:, 0], rm(input_ids=ids).logits[:, 0], atol=1e-5)


@pytest.mark.parametrize("source", ["backbone", "random"])
def test_a_new_bt_head_starts_its_tie_term_at_zero(tmp_path, source):
    """A head missing from the checkpoint (a plain backbone) or drawn at random: the score is random, the tie term
    t zero, so nu = 1 at the start (a random t gave SmolLM2 P(tie) = 0.96 before any step on HH-RLHF)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = load_config(TINY, ["quantization.mode=none"])
    overrides = ["quantization.mode=none", "lora.enabled=false", "model.head=bt"]
    if source == "backbone":
        lm_config = AutoConfig.for_model(vocab_size=259, pad_token_id=0, **cfg.model.random_init)
        AutoModelForCausalLM.from_config(lm_config).save_pretrained(tmp_path / "lm")
        overrides += [f"model.path={tmp_path / 'lm'}", "model.random_init={}"]
    bt = load_config(TINY, overrides)
    head = make_head(bt)
    model = build_model(bt, BYTES, "seq_cls", outputs=head.outputs, zero_outputs=head.zero_outputs)
    assert head.zero_outputs == (1,) and model.score.weight.shape[0] == 2
    assert model.score.weight[0].abs().sum() > 0 and not model.score.weight[1].any()
    wsdm = load_config(TINY, [*overrides, "competition=wsdm"])
    assert make_head(wsdm).outputs == 1 and make_head(wsdm).zero_outputs == ()


def test_judge_outputs_do_not_depend_on_the_batch(tmp_path):
    """lm_tokens reads the last position of left-padded rows, positions counted from each row's first token:
    a row predicted alone or beside a longer one gets the same answer logits."""
    cfg = load_config(TINY, ["quantization.mode=none", "model.head=lm_tokens", *JUDGE])
    table = learnable(12, seed=5)
    table.frame.loc[0, "response_a"] = ["a much longer answer than the others, " * 3]
    learner = RewardModelLearner(cfg)
    learner.model = build_model(cfg, learner.vocab, "causal_lm", trainable=False)
    cfg.predict.swap_tta = False
    cfg.predict.batch_tokens = 100_000
    together = learner.predict(table)[0]
    cfg.predict.batch_tokens = 1  # one row per batch: no padding at all
    alone = learner.predict(table)[0]
    assert np.allclose(together, alone, atol=1e-5)


def test_judge_answers_must_be_single_distinct_tokens():
    cfg = load_config(TINY, ["model.head=lm_tokens"])  # " A" is two byte tokens
    with pytest.raises(PrefkitError, match="' A' is 2 tokens"):
        make_head(cfg, byte_tokenizer())
    cfg = load_config(TINY, ["model.head=lm_tokens", "template.answers=[A, A, T]"])
    with pytest.raises(PrefkitError, match="two answers are the same token"):
        make_head(cfg, byte_tokenizer())
    cfg = load_config(TINY, ["model.head=lm_tokens", "template.answers=[A, B]"])
    with pytest.raises(PrefkitError, match="2 answers; the competition has 3 labels"):
        make_head(cfg, byte_tokenizer())


def test_head_must_fit_the_competition():
    with pytest.raises(PrefkitError, match="model.head=cls3 predicts 3 classes; competition=wsdm has 2"):
        make_head(load_config(TINY, ["model.head=cls3", "competition=wsdm"]))
    with pytest.raises(PrefkitError, match="model.head=cls2 predicts 2 classes; competition=lmsys has 3"):
        make_head(load_config(TINY, ["model.head=cls2"]))
    assert make_head(load_config(TINY, ["competition=wsdm"])).name == "cls2"
    assert make_head(load_config(TINY)).name == "cls3"
