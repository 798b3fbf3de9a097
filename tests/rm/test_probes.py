"""The model probes (`prefkit.rm.probes`): a sound tiny model passes every one, and each planted fault is caught
by its probe, naming the rows: a padding side the model cannot read, a head reading a padding position, a
model whose output depends on its batch, pad = EOS, an fp16 path that differs from fp32, a position bias,
Gemma-2 on SDPA, a metric that ignores the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefkit.config import load_config
from prefkit.core.modeling import build_model
from prefkit.metrics import score
from prefkit.rm import probes
from prefkit.rm.learners import FeatureLearner
from prefkit.rm.reward_model import RewardModelLearner
from tests.conftest import FAST, MINILM, TINY, learnable

PLAIN = ["quantization.mode=none"]  # the tiny Gemma-2 in fp32 with LoRA: seconds
JUDGE = ["model.head=lm_tokens", "template.answers=[A, B, T]", "template.max_length=160"]


def ready(config, overrides: list[str]) -> RewardModelLearner:
    """A learner holding an untrained model (random head): the probes need no training to find these faults."""
    cfg = load_config(config, FAST + overrides)
    learner = RewardModelLearner(cfg)
    learner.model = build_model(cfg, learner.head.task, learner.pad_id, learner.vocab_size, trainable=False,
                                outputs=learner.head.outputs)
    return learner


def rows(n: int = 12):
    table = learnable(n, seed=3)
    table.frame.loc[0, "response_a"] = ["a much longer answer than the others, " * 2]  # lengths that differ
    return table


def by_name(found: list[probes.Probe]) -> dict[str, probes.Probe]:
    return {p.name: p for p in found}


@pytest.mark.parametrize("overrides", [PLAIN, PLAIN + ["model.head=bt"], PLAIN + JUDGE, ["model.dtype=float16"]],
                         ids=["cls3", "bt", "lm_tokens", "nf4-fp16"])
def test_a_sound_tiny_model_passes_every_probe(overrides):
    found = probes.probe(ready(TINY, overrides), rows())
    assert not [p.line() for p in found if p.failed]
    got = by_name(found)
    assert {"swap", "dtype", "position", "attention", "labels"} <= got.keys()
    used = [p for p in found if p.name.startswith("batch") and p.status == "ok"]
    assert len(used) == 1 and used[0].values["padded_sequences"] > 0, "the side prediction uses, with padding"
    if "model.dtype=float16" in overrides:  # compared with fp32 for real, within its tolerance
        assert got["dtype"].status == "ok" and 0 < got["dtype"].values["max_abs_diff"] < probes.DTYPE_TOLERANCE[torch.float16]
    else:
        assert got["dtype"].status == "n/a" and "fp32" in got["dtype"].figure
    if "model.head=bt" in overrides:
        assert got["swap"].values["max_abs_diff"] < 1e-6 and "symmetric" in got["swap"].tolerance
    for p in found:  # every line prints its figure, and its tolerance where it is held to one
        assert p.figure in p.line() and (p.status not in ("ok", "FAIL") or p.tolerance in p.line())


def test_minilm_passes_and_reads_its_first_token():
    got = by_name(probes.probe(ready(MINILM, ["template.max_length=64"]), rows()))
    assert not [p.line() for p in got.values() if p.failed]
    assert got["position"].values["pooling"] == "first" and got["attention"].status == "info"


def test_a_pooler_padded_on_the_left_is_caught():
    """MiniLM pools its first token: padded on the left, a short row's first token is padding."""
    learner = ready(MINILM, ["template.max_length=64"])
    learner.head.left_pad = True
    got = by_name(probes.probe(learner, rows()))
    assert got["batch (left padding)"].failed and got["position"].failed
    assert got["position"].rows == learner_rows(), "every row is shorter than the longer one added to its batch"
    assert got["batch (left padding)"].values["max_abs_diff"] > probes.BATCH_TOLERANCE[torch.float32]


def learner_rows() -> list[str]:
    return list(rows().frame["id"])


def test_a_judge_padded_on_the_right_reads_padding():
    learner = ready(TINY, PLAIN + JUDGE)
    learner.head.left_pad = False  # the judge reads the final position, padding for every shorter row
    got = by_name(probes.probe(learner, rows()))
    assert got["batch (right padding)"].failed and got["position"].failed
    assert "its last real token is at" in got["position"].figure
    assert len(got["position"].rows) == len(rows()), "every row is shorter than the added longer one"


def test_a_head_reading_the_wrong_position_is_caught():
    """The model takes another id for padding than the batches use: its classifier picks a padding position."""
    learner = ready(TINY, PLAIN)
    learner.model.config.pad_token_id = 5
    got = by_name(probes.probe(learner, rows()))
    assert got["position"].failed and "the model takes 5 for padding" in got["position"].figure
    assert got["batch (right padding)"].failed and got["batch (right padding)"].rows


def test_a_checkpoint_that_names_another_padding_id_reads_the_right_position():
    """A checkpoint whose config gives another pad_token_id than the id batches are padded with (SmolLM2-135M-
    Instruct: 2 against its tokenizer's 0) is built to read the last real token of every row all the same."""
    cfg = load_config(TINY, FAST + PLAIN)
    learner = RewardModelLearner(cfg)
    cfg.model.random_init.update(pad_token_id=learner.pad_id + 5)
    learner.model = build_model(cfg, learner.head.task, learner.pad_id, learner.vocab_size, trainable=False,
                                outputs=learner.head.outputs)
    assert learner.model.config.pad_token_id == learner.pad_id
    got = by_name(probes.probe(learner, rows()))
    assert not got["position"].failed and not got["batch (right padding)"].failed
    assert got["position"].values["model_pad_token_id"] == learner.pad_id


def test_a_model_that_depends_on_its_batch_is_caught(monkeypatch):
    learner = ready(TINY, PLAIN)
    plain = learner.head.forward
    towards_a = torch.tensor([0.1, 0.0, 0.0])  # more so the more rows share the batch
    monkeypatch.setattr(learner.head, "forward", lambda model, batch: plain(model, batch) + towards_a * len(batch["input_ids"]))
    got = by_name(probes.probe(learner, rows()))
    assert got["batch (right padding)"].failed and len(got["batch (right padding)"].rows) == len(rows())
    assert not got["position"].failed, "it still reads the right position"


def pad_is_eos_tokenizer(path):
    """Bytes with <bos> first and <eos> last, and no padding token: prefkit then pads with <eos>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    specials = ["<bos>", "<eos>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 0), ("<eos>", 1)])
    tok.save(str(path))
    return path


def test_pad_equal_to_eos_is_caught(tmp_path):
    """Every row ends with EOS, the padding id: the classifier stops short of it (transformers#35352)."""
    cfg = load_config(TINY, FAST + PLAIN + [f"template.tokenizer={pad_is_eos_tokenizer(tmp_path / 'tok.json')}"])
    cfg.model.random_init.update(pad_token_id=1, bos_token_id=0, eos_token_id=1)
    learner = RewardModelLearner(cfg)
    assert learner.pad_id == 1
    learner.model = build_model(cfg, "seq_cls", learner.pad_id, learner.vocab_size, trainable=False, outputs=3)
    got = by_name(probes.probe(learner, rows()))
    position = got["position"]
    assert position.failed and "pad = EOS" in position.figure and position.values["misread_sequences"] == len(rows())
    assert position.rows == learner_rows() and "'r1'" in position.line()


def test_an_fp16_path_that_differs_is_caught(monkeypatch):
    learner = ready(TINY, ["model.dtype=float16"])
    plain = learner.head.forward

    def drifting(model, batch):  # what fp16 overflow does to real weights: outputs off under autocast only
        out = plain(model, batch)
        return out + torch.tensor([2.0, 0.0, 0.0]) if torch.is_autocast_enabled("cpu") else out

    monkeypatch.setattr(learner.head, "forward", drifting)
    stored = {name: p.dtype for name, p in learner.model.named_parameters()}
    got = by_name(probes.probe(learner, rows()))
    assert got["dtype"].failed and got["dtype"].values["max_abs_diff"] > probes.DTYPE_TOLERANCE[torch.float16]
    assert len(got["dtype"].rows) == len(rows()) and not got["batch (right padding)"].failed
    assert torch.float16 in stored.values(), "frozen weights stored in fp16"
    assert {name: p.dtype for name, p in learner.model.named_parameters()} == stored, "put back as they were"


def test_a_position_bias_fails_the_swap_probe(monkeypatch):
    learner = ready(TINY, PLAIN)
    plain = learner.head.forward
    monkeypatch.setattr(learner.head, "forward", lambda model, batch: plain(model, batch) + torch.tensor([3.0, 0.0, 0.0]))
    swap = by_name(probes.probe(learner, rows()))["swap"]
    assert swap.failed and swap.values["mean_abs_diff"] > probes.SWAP_TOLERANCE and swap.rows


def test_a_symmetric_head_must_be_exact(monkeypatch):
    """bt is symmetric by construction: a head that is not (here a bias towards the first sequence) fails."""
    learner = ready(TINY, PLAIN + ["model.head=bt"])
    plain = learner.head.row_logits
    monkeypatch.setattr(learner.head, "row_logits", lambda out: plain(out) + torch.tensor([0.05, 0.0, 0.0], dtype=out.dtype))
    swap = by_name(probes.probe(learner, rows()))["swap"]
    assert swap.failed and "symmetric" in swap.tolerance and swap.values["mean_abs_diff"] < probes.SWAP_TOLERANCE


def test_gemma2_on_sdpa_is_caught():
    learner = ready(TINY, PLAIN)
    assert probes._attention_probe(learner.model).status == "ok"
    learner.model.config._attn_implementation = "sdpa"  # as a model loaded elsewhere may come
    assert probes._attention_probe(learner.model).failed


def test_a_metric_that_ignores_the_labels_is_caught():
    table = learnable(30, seed=1)
    labels = table.frame["label"].to_numpy()
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], size=len(labels))
    assert probes.labels_probe(probs, labels).status == "ok"
    blind = lambda p, y: score(p, p.argmax(axis=1).choose(np.array(["a", "b", "tie"])))  # noqa: E731
    caught = probes.labels_probe(probs, labels, metric=blind)
    assert caught.failed and "the metric does not read the labels" in caught.figure
    same = probes.labels_probe(np.tile(probs[:1], (len(labels), 1)), labels)
    assert same.failed and "every row has the same prediction" in same.figure
    one_class = probes.labels_probe(probs, np.array(["a"] * len(labels)))  # a shuffle moves nothing: a class does
    assert one_class.status == "ok" and one_class.values["how"] == "moved a class"


def test_features_model_gets_swap_and_labels_only(tmp_path):
    cfg = load_config(None, ["model.kind=features", "features.max_iter=20"])
    learner = FeatureLearner(cfg)
    table = learnable(60)
    learner.fit(table, None, tmp_path)
    got = by_name(probes.probe(learner, rows(20)))
    assert got["swap"].status == "ok" and got["labels"].status == "ok"
    assert all(got[n].status == "n/a" and "features model" in got[n].figure for n in ("batch", "dtype", "position"))
    biased = lambda feats, tta: np.tile([0.9, 0.05, 0.05], (len(feats[0]), 1))  # noqa: E731 - "A" whatever the order
    learner.model.predict_proba = biased
    assert by_name(probes.probe(learner, rows(20)))["swap"].failed
