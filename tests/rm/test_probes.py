"""The model probes (`prefkit.rm.probes`): a sound tiny model passes every one, and each planted fault is caught
by its probe, naming the rows: a padding side the model cannot read (a pooler, a decoder with absolute
positions), a head reading a padding position, a model whose output depends on its batch, pad = EOS, a padding id
in every sequence, an fp16 path that differs from fp32, activations that overflow fp16, a swap that does nothing,
a position bias without swap TTA, Gemma-2 on SDPA, a metric that ignores the labels or A against B; on a trained
folder: a head re-initialised on load, left untrained or not saved, a head that does not read its input, a
tokenizer that is not the run's, sequences that end otherwise than in training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from prefkit.config import load_config
from prefkit.core.modeling import build_model
from prefkit.core.tokenizer import byte_tokenizer
from prefkit.metrics import score, swap_probs
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
    learner.model = build_model(cfg, learner.vocab, learner.head.task, trainable=False,
                                outputs=learner.head.outputs)
    return learner


def probe(learner, table, scored=None) -> list[probes.Probe]:
    """The probes on what they read of a learner, as `probe_folder` gives them a loaded one: its model, head,
    renderer and padding id (a `probes.Subject`), or a features learner's model."""
    subject = (learner.model if learner.kind == "features"
               else probes.Subject(learner.model, learner.head, learner.renderer, learner.pad_id))
    return probes.probe(learner.cfg, subject, table, scored)


def rows(n: int = 12):
    table = learnable(n, seed=3)
    table.frame.loc[0, "response_a"] = ["a much longer answer than the others, " * 2]  # lengths that differ
    return table


def by_name(found: list[probes.Probe]) -> dict[str, probes.Probe]:
    return {p.name: p for p in found}


@pytest.mark.parametrize("overrides", [PLAIN, PLAIN + ["model.head=bt"], PLAIN + JUDGE, ["model.dtype=float16"]],
                         ids=["cls3", "bt", "lm_tokens", "nf4-fp16"])
def test_a_sound_tiny_model_passes_every_probe(overrides):
    # The labels probe reads validation predictions of their own here: an untrained model prefers one of the two
    # answers these rows repeat on every row, and may well disagree with the labels (its own tests are below).
    table = rows()
    scored = (np.random.default_rng(0).dirichlet([2, 2, 2], size=len(table)), table.frame["label"].to_numpy())
    found = probe(ready(TINY, overrides), table, scored)
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
    got = by_name(probe(ready(MINILM, ["template.max_length=64"]), rows()))
    assert not [p.line() for p in got.values() if p.failed]
    assert got["position"].values["pooling"] == "first" and got["attention"].status == "info"


def test_a_pooler_padded_on_the_left_is_caught():
    """MiniLM pools its first token: padded on the left, a short row's first token is padding."""
    learner = ready(MINILM, ["template.max_length=64"])
    learner.head.left_pad = True
    got = by_name(probe(learner, rows()))
    assert got["batch (left padding)"].failed and got["position"].failed
    assert got["position"].rows == learner_rows(), "every row is shorter than the longer one added to its batch"
    assert got["batch (left padding)"].values["max_abs_diff"] > probes.BATCH_TOLERANCE[torch.float32]


def learner_rows() -> list[str]:
    return list(rows().frame["id"])


def test_a_judge_padded_on_the_right_reads_padding():
    learner = ready(TINY, PLAIN + JUDGE)
    learner.head.left_pad = False  # the judge reads the final position, padding for every shorter row
    got = by_name(probe(learner, rows()))
    assert got["batch (right padding)"].failed and got["position"].failed
    assert "its last real token is at" in got["position"].figure
    assert len(got["position"].rows) == len(rows()), "every row is shorter than the added longer one"


def test_a_head_reading_the_wrong_position_is_caught():
    """The model takes another id for padding than the batches use: its classifier picks a padding position."""
    learner = ready(TINY, PLAIN)
    learner.model.config.pad_token_id = 5
    got = by_name(probe(learner, rows()))
    assert got["position"].failed and "the model takes 5 for padding" in got["position"].figure
    assert got["batch (right padding)"].failed and got["batch (right padding)"].rows


def test_a_checkpoint_that_names_another_padding_id_reads_the_right_position():
    """A checkpoint whose config gives another pad_token_id than the id batches are padded with (SmolLM2-135M-
    Instruct: 2 against its tokenizer's 0) is built to read the last real token of every row all the same."""
    cfg = load_config(TINY, FAST + PLAIN)
    learner = RewardModelLearner(cfg)
    cfg.model.random_init.update(pad_token_id=learner.pad_id + 5)
    learner.model = build_model(cfg, learner.vocab, learner.head.task, trainable=False,
                                outputs=learner.head.outputs)
    assert learner.model.config.pad_token_id == learner.pad_id
    got = by_name(probe(learner, rows()))
    assert not got["position"].failed and not got["batch (right padding)"].failed
    assert got["position"].values["model_pad_token_id"] == learner.pad_id


def test_a_model_that_depends_on_its_batch_is_caught(monkeypatch):
    learner = ready(TINY, PLAIN)
    plain = learner.head.forward
    towards_a = torch.tensor([0.1, 0.0, 0.0])  # more so the more rows share the batch
    monkeypatch.setattr(learner.head, "forward", lambda model, batch: plain(model, batch) + towards_a * len(batch["input_ids"]))
    got = by_name(probe(learner, rows()))
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
    learner.model = build_model(cfg, learner.vocab, "seq_cls", trainable=False, outputs=3)
    got = by_name(probe(learner, rows()))
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
    got = by_name(probe(learner, rows()))
    assert got["dtype"].failed and got["dtype"].values["max_abs_diff"] > probes.DTYPE_TOLERANCE[torch.float16]
    assert len(got["dtype"].rows) == len(rows()) and not got["batch (right padding)"].failed
    assert torch.float16 in stored.values(), "frozen weights stored in fp16"
    assert {name: p.dtype for name, p in learner.model.named_parameters()} == stored, "put back as they were"


@pytest.mark.parametrize("tta", [True, False])
def test_a_position_bias_is_shown_and_fails_only_without_swap_tta(monkeypatch, tta):
    """A model that leans to the first answer on every row: swap TTA cancels that exactly (it is the figure the
    old verdict held to 0.1, which a clean tiny model trained a few steps crossed on one fold of two); with
    predict.swap_tta=false it goes into every prediction."""
    learner = ready(TINY, PLAIN + [f"predict.swap_tta={str(tta).lower()}"])
    plain = learner.head.forward
    monkeypatch.setattr(learner.head, "forward", lambda model, batch: plain(model, batch) + torch.tensor([3.0, 0.0, 0.0]))
    swap = by_name(probe(learner, rows()))["swap"]
    assert swap.values["position_bias"] > 0.8 and "position bias +0.8" in swap.figure
    assert swap.values["rows_mirrored"] == 0, "the model still reads the answers, a little"
    if tta:
        assert swap.status == "ok" and "swap TTA cancels the position bias" in swap.tolerance
    else:
        assert swap.failed and "predict.swap_tta=false" in swap.figure and swap.rows == learner_rows()


def test_a_swap_that_does_nothing_is_caught_on_an_untrained_model(monkeypatch):
    """The swapped rendering is the plain one: the old verdict (mean |P(A) - P'(B)| against 0.1) passed it on a
    model that is not yet sure of anything; the inputs themselves show it."""
    learner = ready(TINY, PLAIN)
    plain = learner.head.sequences
    monkeypatch.setattr(learner.head, "sequences", lambda renderer, table, swap=False: plain(renderer, table))
    swap = by_name(probe(learner, rows()))["swap"]
    assert swap.failed and "the swap does nothing" in swap.figure
    assert swap.values["mean_abs_diff"] < probes.SWAP_TOLERANCE, "the figure the old verdict read"
    f = rows().frame  # rows with two equal answers swap to themselves: not named
    differ = [i for i, a, b in zip(f["id"], f["response_a"], f["response_b"]) if a != b]
    assert swap.rows == differ and 0 < len(differ) < len(f)


def test_a_model_that_reads_nothing_the_swap_changes_is_caught(monkeypatch):
    """Outputs that do not depend on the answers: the swapped rows score as the plain rows mirrored."""
    learner = ready(TINY, PLAIN)
    monkeypatch.setattr(learner.head, "forward",
                        lambda model, batch: torch.tensor([[0.3, 0.1, 0.0]]).repeat(len(batch["input_ids"]), 1))
    got = by_name(probe(learner, rows()))
    assert got["swap"].failed and "score exactly as the plain rows mirrored" in got["swap"].figure
    assert got["head"].failed and "does not read the input" in got["head"].figure


def test_a_symmetric_head_must_be_exact(monkeypatch):
    """bt is symmetric by construction: a head that is not (here a bias towards the first sequence) fails."""
    learner = ready(TINY, PLAIN + ["model.head=bt"])
    plain = learner.head.row_logits
    monkeypatch.setattr(learner.head, "row_logits", lambda out: plain(out) + torch.tensor([0.05, 0.0, 0.0], dtype=out.dtype))
    swap = by_name(probe(learner, rows()))["swap"]
    assert swap.failed and "symmetric" in swap.tolerance and swap.values["mean_abs_diff"] < probes.SWAP_TOLERANCE


def test_gemma2_on_sdpa_is_caught():
    learner = ready(TINY, PLAIN)
    assert probes.attention_probe(learner.model).status == "ok"
    learner.model.config._attn_implementation = "sdpa"  # as a model loaded elsewhere may come
    assert probes.attention_probe(learner.model).failed


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
    got = by_name(probe(learner, rows(20)))
    assert got["swap"].status == "ok" and got["labels"].status == "ok"
    assert all(got[n].status == "n/a" and "features model" in got[n].figure for n in ("batch", "dtype", "position"))
    biased = lambda feats, tta: np.tile([0.9, 0.05, 0.05], (len(feats[0]), 1))  # noqa: E731 - "A" whatever the order
    learner.model.predict_proba = biased
    assert by_name(probe(learner, rows(20)))["swap"].failed


def test_a_padding_id_in_every_sequence_is_caught(tmp_path):
    """A tokenizer whose padding setting names a template token ('#', in every header): prefkit's own masks and
    its classifier's pick read the rows right, the old probe passed it; a reader that ends a sequence at its
    first padding id, or a mask made from the ids, loses most of every row."""
    tok = byte_tokenizer()
    tok.enable_padding(pad_id=tok.token_to_id("#"), pad_token="#")
    tok.save(str(tmp_path / "tok.json"))
    learner = ready(TINY, PLAIN + [f"template.tokenizer={tmp_path / 'tok.json'}"])
    assert learner.pad_id == tok.token_to_id("#")
    got = by_name(probe(learner, rows()))
    position = got["position"]
    assert position.failed and "the padding id is a real token of every sequence" in position.figure
    assert position.rows == learner_rows() and position.values["misread_sequences"] == 0
    assert not got["batch (right padding)"].failed, "the model itself reads the right position"


def test_left_padding_that_shifts_a_decoder_score_is_caught():
    """GPT-2 adds absolute position embeddings: padded on the left, each row's positions move and so does its
    score (LlamaFactory#689). A RoPE decoder (Gemma-2) does not move: its batch probe's other side is information."""
    cfg = load_config(TINY, FAST + PLAIN)
    cfg.model.random_init = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 1024,
                             "bos_token_id": 1, "eos_token_id": 2}
    learner = RewardModelLearner(cfg)
    learner.model = build_model(cfg, learner.vocab, "seq_cls", trainable=False, outputs=3)
    assert not [p.line() for p in probe(learner, rows()) if p.failed], "right padding: sound"
    learner.head.left_pad = True  # the planted fault: a classifier padded on the left
    got = by_name(probe(learner, rows()))
    batch = got["batch (left padding)"]
    assert batch.failed and batch.values["used"] and batch.values["max_abs_diff"] > 100 * probes.BATCH_TOLERANCE[torch.float32]
    assert batch.rows == learner_rows() and not got["position"].failed, "it reads the last token, moved"


def test_fp16_overflow_is_caught_naming_where_it_began():
    """Activations beyond fp16's range in one MLP (real Gemma weights have such outliers; random ones do not):
    every output is NaN, which the batch and dtype figures compared as within tolerance before."""
    learner = ready(TINY, ["model.dtype=float16"])
    mlp = learner.model.model.layers[0].mlp
    handle = mlp.register_forward_hook(lambda module, args, out: out * 1e8)
    try:
        got = by_name(probe(learner, rows()))
    finally:
        handle.remove()
    overflow = got["overflow"]
    assert overflow.failed and overflow.rows == learner_rows()
    assert overflow.values["nonfinite_modules"][0] == "model.layers.0.mlp" and "first model.layers.0.mlp" in overflow.figure
    assert got["dtype"].failed, "NaN against fp32 is out of tolerance, not within it"
    clean = by_name(probe(learner, rows()))["overflow"]
    assert clean.status == "ok" and 0 < clean.values["largest"] < probes.FP16_MAX


def test_nan_at_padding_positions_that_nothing_reads_is_no_overflow():
    """What is computed at padding positions is never read (and a query with nothing to attend to may be NaN
    there): after the last layer, NaN at every padding position leaves the scores as they were."""
    learner = ready(TINY, PLAIN)
    norm, seen = learner.model.model.norm, {}

    def padding_nan(module, args, out):
        mask = seen["mask"].view(*out.shape[:2], 1).bool()
        return out.masked_fill(~mask, float("nan"))

    grab = learner.model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(mask=kwargs["attention_mask"]),
                                                   with_kwargs=True)
    handle = norm.register_forward_hook(padding_nan)
    try:
        got = by_name(probe(learner, rows()))
    finally:
        handle.remove()
        grab.remove()
    assert got["overflow"].status == "ok" and got["overflow"].values["nonfinite_modules"] == []
    assert not [p.line() for p in got.values() if p.failed], "the scores are read at real positions"


def test_an_fp32_model_beyond_fp16_range_is_told_not_failed():
    learner = ready(TINY, PLAIN)
    handle = learner.model.model.layers[0].mlp.register_forward_hook(lambda module, args, out: out * 1e8)
    try:
        overflow = by_name(probe(learner, rows()))["overflow"]
    finally:
        handle.remove()
    assert overflow.status == "ok" and overflow.values["largest"] > probes.FP16_MAX
    assert "in fp16 (a T4 with model.dtype=auto) it would overflow" in overflow.figure


def test_predictions_that_do_not_tell_a_from_b_are_caught():
    """P(A) = P(B) on every row (what swap TTA over a swap that does nothing gives), or a metric that reads only
    whether a row is a tie: the shuffled labels move the score, A and B exchanged do not (ms-swift#9370)."""
    table = learnable(30, seed=1)
    labels = table.frame["label"].to_numpy()
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], size=len(labels))
    sound = probes.labels_probe(probs, labels)
    assert sound.status == "ok" and sound.values["logloss_exchanged"] != sound.values["logloss"]
    even = (probs + swap_probs(probs)) / 2
    caught = probes.labels_probe(even, labels)
    assert caught.failed and "do not tell A from B" in caught.figure
    assert caught.values["logloss_shuffled"] != caught.values["logloss"], "the shuffle alone passed it"
    ties_only = lambda p, y: score((p + swap_probs(p)) / 2, y)  # noqa: E731
    assert probes.labels_probe(probs, labels, metric=ties_only).failed


def test_a_tokenizer_beyond_the_embedding_is_caught():
    learner = ready(TINY, PLAIN)
    learner.renderer.tok.add_tokens(["<extra>"])  # id 259: the model's embedding has 259 rows
    tokenizer = by_name(probe(learner, rows()))["tokenizer"]
    assert tokenizer.failed and "ids up to 259 index an embedding of 259 rows" in tokenizer.figure


# ------------------------------------------------------------------------------------ a trained folder

def fit(folder, extra: list[str] = ()):
    """The tiny Gemma-2 (fp32, LoRA + score head) trained a few steps into `folder`, with its training record."""
    cfg = load_config(TINY, FAST + PLAIN + list(extra))
    RewardModelLearner(cfg).fit(learnable(24, seed=2), None, folder)
    probes.record_training(cfg, folder)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes") / "model"
    return fit(folder), folder


def probe_trained(cfg, folder, n: int = 8) -> dict[str, probes.Probe]:
    return by_name(probes.probe_folder(cfg, folder, rows(), n))


def test_a_trained_folder_passes_and_its_record_is_compared(trained):
    cfg, folder = trained
    got = probe_trained(cfg, folder)
    assert not [p.line() for p in got.values() if p.failed]
    assert got["eos"].status == got["tokenizer"].status == got["head"].status == "ok"
    assert "as at training" in got["tokenizer"].figure and got["head"].values["loaded_vs_saved"] == 0.0
    assert got["head"].values["moved_from_init"] > 1e-3, "a few steps move the head far beyond the tolerance"


def test_a_head_reinitialised_on_load_is_caught(trained, monkeypatch):
    """ms-swift#9239: the checkpoint's head is not what the loaded model computes with."""
    from prefkit.rm import reward_model

    cfg, folder = trained
    loaded = reward_model.load_trained

    def planted(*args, **kwargs):
        model = loaded(*args, **kwargs)
        for name, p in model.named_parameters():
            if "score.modules_to_save" in name:
                torch.nn.init.normal_(p.data, std=0.02)
        return model

    monkeypatch.setattr(reward_model, "load_trained", planted)
    head = probe_trained(cfg, folder)["head"]
    assert head.failed and "re-initialised on load (ms-swift#9239)" in head.figure
    assert head.values["loaded_vs_saved"] > 1e-3


def test_a_head_left_untrained_under_lora_is_caught(tmp_path):
    """trl#2743: the LoRA adapters train, the score head does not (here its learning rate is nil)."""
    cfg = fit(tmp_path / "model", ["train.head_learning_rate=1e-30"])
    head = probe_trained(cfg, tmp_path / "model")["head"]
    assert head.failed and "never moved from its initialisation" in head.figure and head.values["moved_from_init"] == 0


def test_a_head_that_was_not_saved_is_caught(trained, tmp_path):
    """The adapter without the head (not in modules_to_save): every load gets a fresh, untrained head."""
    from safetensors.torch import load_file, save_file

    cfg, folder = trained
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    weights = load_file(str(copy / "adapter_model.safetensors"))
    save_file({k: v for k, v in weights.items() if "score" not in k}, str(copy / "adapter_model.safetensors"))
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": None, "task_type": None}))
    head = probe_trained(cfg, copy)["head"]
    assert head.failed and "holds no score or classifier weights" in head.figure and "trl#2743" in head.figure


def swapped_specials_tokenizer(path):
    """The byte tokenizer with <bos> and <eos> exchanged: the same vocabulary size, other ids."""
    tok = byte_tokenizer()
    vocab = tok.get_vocab()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    order = ["<pad>", "<eos>", "<bos>"] + sorted(pre_tokenizers.ByteLevel.alphabet())
    other = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(order)}, merges=[]))
    other.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    other.decoder = decoders.ByteLevel()
    other.add_special_tokens(order[:3])
    other.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    other.save(str(path))
    assert len(other.get_vocab()) == len(vocab)
    return path


def test_a_tokenizer_that_is_not_the_runs_is_caught(trained, tmp_path):
    """template.tokenizer overridden with one of the same size and other ids: the model reads other tokens."""
    cfg, folder = trained
    other = load_config(TINY, FAST + PLAIN + [f"template.tokenizer={swapped_specials_tokenizer(tmp_path / 'tok.json')}"])
    got = probe_trained(other, folder)
    assert got["tokenizer"].failed and "not the tokenizer the model was trained with" in got["tokenizer"].figure
    assert got["eos"].failed and "sequences start with [1 '<bos>'] at training, [2 '<bos>'] now" in got["eos"].figure


def test_sequences_that_end_otherwise_than_in_training_are_caught(trained, monkeypatch):
    """trl#5813: the same tokenizer, and an EOS appended at evaluation that training never had (here the
    renderer's end-of-sequence policy changed under the model)."""
    from prefkit.rm.templates import Renderer

    cfg, folder = trained
    specials = Renderer.specials
    monkeypatch.setattr(Renderer, "specials", lambda self: (specials(self)[0], [2]))
    got = probe_trained(cfg, folder)
    assert got["eos"].failed and "sequences end with nothing at training, [2 '<eos>'] now" in got["eos"].figure
    assert got["tokenizer"].status == "ok", "the tokenizer is the run's"


def test_a_folder_without_a_record_says_so(trained, tmp_path):
    cfg, folder = trained
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / probes.RECORD).unlink()
    got = probe_trained(cfg, copy)
    assert got["eos"].status == got["tokenizer"].status == "n/a"
    assert "nothing recorded at training" in got["tokenizer"].figure and not got["head"].failed


def test_labels_swapped_since_the_model_learned_them_are_caught():
    """ms-swift#9370's planted fault: A and B exchanged in the labels the predictions are scored on. A model that
    learned the labels agrees with the exchanged ones beyond chance (a paired t statistic); one that learned
    nothing (random predictions) does not, over many samples."""
    table = learnable(40, seed=4)
    labels = table.frame["label"].to_numpy()
    rng = np.random.default_rng(1)
    learned = np.array([{"a": [0.6, 0.25, 0.15], "b": [0.25, 0.6, 0.15], "tie": [0.3, 0.3, 0.4]}[x] for x in labels])
    learned = learned + rng.uniform(0, 0.05, learned.shape)
    learned /= learned.sum(axis=1, keepdims=True)
    sound = probes.labels_probe(learned, labels)
    assert sound.status == "ok" and sound.values["exchange_t"] < -probes.EXCHANGE_T
    swapped = np.array([{"a": "b", "b": "a"}.get(x, x) for x in labels], dtype=object)
    caught = probes.labels_probe(learned, swapped)
    assert caught.failed and "agree with the labels' A and B exchanged" in caught.figure
    assert caught.values["exchange_t"] > probes.EXCHANGE_T and caught.values["exchange_p"] < probes.EXCHANGE_P
    noise = [probes.labels_probe(np.random.default_rng(s).dirichlet([2, 2, 2], size=20), labels[:20]) for s in range(200)]
    assert not [p.line() for p in noise if p.failed], "no false alarm on a model that learned nothing"
