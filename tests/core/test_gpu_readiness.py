"""The GPU paths, run on this CPU: each defect that a read of the code against working public GPU code found
has a test here that fails without its fix (the GPU-readiness issue, items 1-12)."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.core.batching import shard, train_batches
from prefkit.core.modeling import build_model
from prefkit.core.tokenizer import Vocab, byte_tokenizer
from prefkit.core.train import (
    NonFiniteLoss,
    fit,
    load_checkpoint,
    make_accelerator,
    save_checkpoint,
)
from prefkit.errors import PrefkitError
from prefkit.rm.heads import Classifier
from prefkit.rm.pair_data import PairTrainData
from prefkit.rm.predictor import NonFiniteLogits, PredictSettings, predict_logits
from prefkit.rm.reward_model import RewardModelLearner
from tests.conftest import FAST, TINY, learnable

CLS3 = Classifier(COMPETITIONS["lmsys"])  # the A/B/tie head

ROOT = Path(__file__).resolve().parents[2]
SFT_TINY = ROOT / "configs" / "sft" / "tiny_gemma2.yaml"
BYTES = Vocab.of(byte_tokenizer())  # the tiny models' tokenizer: padding id 0, 259 ids


# 1. ------------------------------------------------------------------ every trainable parameter is fp32


@pytest.mark.parametrize("overrides,frozen", [
    (["quantization.mode=none", "model.dtype=float16"], torch.float16),  # peft leaves the head's copy in fp16
    (["quantization.mode=none", "model.dtype=bfloat16"], torch.bfloat16),
    (["model.dtype=float16"], torch.float16),  # nf4: the frozen non-4-bit weights stay fp16 too (not upcast)
    (["quantization.mode=none", "lora.enabled=false", "model.dtype=float16"], None),  # full fine-tuning
])
def test_every_trainable_parameter_is_fp32(overrides, frozen):
    model = build_model(load_config(TINY, overrides), BYTES, "seq_cls", outputs=3)
    trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable), "the head trains"
    assert set(trainable.values()) == {torch.float32}, {n: d for n, d in trainable.items() if d != torch.float32}
    stored = {p.dtype for p in model.parameters() if not p.requires_grad and p.dtype.is_floating_point}
    if frozen is None:
        assert not stored, "full fine-tuning: every weight trains, from fp32 master weights"
    else:
        assert stored == {frozen}, f"frozen weights stay in the compute dtype, got {stored}"


def test_fp16_on_cpu_runs_autocast_and_a_grad_scaler(tmp_path):
    """The T4 path (fp16 compute, fp32 master weights, grad scaler) runs here: the head's gradients are fp32,
    so the scaler unscales them (torch refuses fp16 gradients), and the model learns."""
    cfg = load_config(TINY, FAST + ["train.epochs=6", "quantization.mode=none", "model.dtype=float16"])
    learner = RewardModelLearner(cfg)
    history = learner.fit(learnable(32), None, tmp_path / "m")
    scales = [h["grad_scale"] for h in history]
    assert scales[0] < 65536.0 and all(s > 0 for s in scales), "the scaler ran and backed off from its first scale"
    assert np.mean([h["loss"] for h in history[-5:]]) < np.mean([h["loss"] for h in history[:5]])


def test_grad_scaler_state_survives_a_checkpoint(tmp_path):
    cfg = load_config(TINY, FAST + ["quantization.mode=none", "model.dtype=float16"])
    acc = make_accelerator()
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    from prefkit.core.train import Position

    save_checkpoint(tmp_path, acc, model, opt, sched, scaler, Position(7, 0, 7))
    fresh = torch.amp.GradScaler("cpu")
    assert fresh.get_scale() == 65536.0
    pos = load_checkpoint(tmp_path, acc, model, opt, sched, fresh)
    assert pos.step == 7 and fresh.get_scale() == 1024.0, "--resume keeps the scale the run had learnt"


# 2. ------------------------------------------------------------------------- one model at a time


def test_cv_and_ensemble_hold_one_model_at_a_time(tmp_path, monkeypatch):
    """With the cycle collector off, a fold's model must be gone before the next one is built: only the
    explicit release frees a model that sits in reference cycles (the peft models fold ensembling loads do)."""
    import prefkit.rm.reward_model as rm
    from prefkit.data.arena import write_lmsys_csv
    from prefkit.recipes import cv
    from prefkit.rm.run import Run

    # Imported first, outside the folds: on a CPU with AVX-512 BF16, bitsandbytes' import logs a failed kernel-hub
    # lookup with the exception as an argument, and pytest's log capture keeps that record, its traceback and
    # every frame up the import stack, the building fold's included, so the model would stay alive through it.
    pytest.importorskip("bitsandbytes")
    alive: list[weakref.ref] = []

    def spying(original):
        def build(*args, **kwargs):
            gc.collect(0)  # (young objects only: nothing that lives in a cycle is freed by this)
            still = [r for r in alive if r() is not None]
            assert not still, "the previous model is still in memory while the next one is built"
            model = original(*args, **kwargs)
            alive.append(weakref.ref(model))
            return model
        return build

    monkeypatch.setattr(rm, "build_model", spying(rm.build_model))
    monkeypatch.setattr(rm, "load_trained", spying(rm.load_trained))
    write_lmsys_csv(learnable(24), tmp_path / "train.csv")
    cfg = load_config(TINY, FAST + ["cv.n_splits=3", f"data.train={tmp_path / 'train.csv'}",
                                    f"output_dir={tmp_path / 'run'}"])
    gc.collect()
    gc.disable()
    try:
        cv.main(cfg)
        assert len(alive) == 7, "three fold models, each loaded for its golden scores, fold0 again for the probes"
        Run.open(tmp_path / "run").predict(learnable(6, seed=4))
        assert len(alive) == 10
    finally:
        gc.enable()


# 3. -------------------------------------------------------------------------------- no KV cache


def test_no_kv_cache_in_classifier_forwards():
    cfg = load_config(TINY, FAST + ["quantization.mode=none"])
    assert build_model(cfg, BYTES, "seq_cls", trainable=False, outputs=3).config.use_cache is False
    model = build_model(cfg, BYTES, "seq_cls", outputs=3)
    model.config.use_cache = True  # as a checkpoint's own config.json says
    outputs = []
    model.register_forward_hook(lambda module, args, out: outputs.append(out))
    seqs = [np.arange(3, 3 + n) for n in (5, 9, 12)]
    model.eval()
    predict_logits(model, CLS3, seqs, PredictSettings(pad_id=0, batch_tokens=64))
    model.train()
    data = PairTrainData(CLS3, seqs, None, np.eye(3, dtype=np.float32), "none", 3, 0, 0)
    data.loss(model, data.collate(np.arange(3), 0))
    assert len(outputs) >= 2 and all(o.past_key_values is None for o in outputs)


# 4. ------------------------------------------------------------------------ gradient checkpointing


@pytest.mark.parametrize("quant", ["nf4", "none"])
def test_checkpointing_is_non_reentrant_and_frozen_layers_need_no_gradient(quant):
    overrides = [f"quantization.mode={quant}", "model.gradient_checkpointing=true", "lora.skip_first_layers=1"]
    model = build_model(load_config(TINY, overrides), BYTES, "seq_cls", outputs=3)
    inner = model.base_model.model.model
    seen = {}

    def record(name):
        def hook(module, args, out):
            out = out[0] if isinstance(out, tuple) else out
            seen[name] = out.requires_grad
        return hook

    inner.embed_tokens.register_forward_hook(record("embeddings"))
    inner.layers[0].register_forward_hook(record("layer 0"))
    inner.layers[1].register_forward_hook(record("layer 1"))
    model.train()
    x = torch.randint(3, 259, (2, 16))
    loss = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits.float().sum()
    # non-reentrant checkpointing, by what it does rather than by a private attribute: torch documents that the
    # reentrant variant refuses torch.autograd.grad ("Checkpointing is not compatible with .grad()")
    lora = inner.layers[1].self_attn.q_proj.lora_B["default"].weight  # lora_A gets 0 while B is still 0
    (grad,) = torch.autograd.grad(loss, [lora], retain_graph=True)
    assert grad is not None and grad.abs().sum() > 0
    loss.backward()
    assert seen == {"embeddings": False, "layer 0": False, "layer 1": True}, \
        "backward stops at the first layer with adapters: nothing below it is recomputed for a gradient"
    assert inner.layers[1].self_attn.q_proj.lora_A["default"].weight.grad is not None


# 5. ------------------------------------------------------------------------------ DDP stragglers


def test_processes_get_batches_of_similar_length_at_each_step():
    lengths = np.random.default_rng(0).integers(20, 2048, 4000)
    world = 2
    batches = train_batches(lengths, 4, seed=0, epoch=0, world=world)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(4000)), "every row once"
    w0, w1 = (np.array([int(lengths[b].max()) for b in shard(batches, r, world)]) for r in range(world))
    # the faster process idles for the difference in padded width at every step: 47% of the time when batches
    # are dealt without regard to length (measured with world=1 batches), under 5% here
    idle = np.abs(w0 - w1).sum() / np.maximum(w0, w1).sum()
    assert idle < 0.05 and np.quantile(np.abs(w0 - w1), 0.9) < 100, idle
    # one process still sees a shuffled mix of lengths, not a sorted run
    assert abs(np.corrcoef(np.arange(len(w0)), w0)[0, 1]) < 0.2
    assert [b.tolist() for b in train_batches(lengths, 4, 0, 0)] == [b.tolist() for b in train_batches(lengths, 4, 0, 0, world=1)]


# 6. ------------------------------------------------------------------------------- non-finite values


class NaNOn99(torch.nn.Module):
    """A tiny classifier whose logits are NaN for every row holding token 99."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(128, 3)

    def forward(self, input_ids, attention_mask, use_cache=None):
        logits = self.emb(input_ids).mean(dim=1)
        bad = (input_ids == 99).any(dim=1, keepdim=True)
        return type("Out", (), {"logits": torch.where(bad, torch.full_like(logits, float("nan")), logits)})()


def test_non_finite_loss_stops_training_and_names_the_rows(tmp_path):
    seqs = [np.array([5, 6, 7])] * 6 + [np.array([5, 99, 7])] + [np.array([8, 9])] * 5
    names = [f"row{i}" for i in range(12)]
    data = PairTrainData(CLS3, seqs, None, np.eye(3, dtype=np.float32)[np.arange(12) % 3], "none", 4, 0, 0, names)
    cfg = load_config(TINY, FAST + ["train.epochs=1", "train.batch_size=4"])
    with pytest.raises(NonFiniteLoss, match=r"not finite for micro-batch rows .*id 'row6'"):
        fit(NaNOn99(), data, cfg, tmp_path)


def test_non_finite_logits_stop_prediction_and_name_the_rows():
    seqs = [np.array([5, 6]), np.array([5, 99]), np.array([7, 8, 9])]
    with pytest.raises(NonFiniteLogits, match=r"1 of 3 rows have non-finite logits \(ids 'b'\)"):
        predict_logits(NaNOn99().eval(), CLS3, seqs, PredictSettings(0, 64), names=["a", "b", "c"])


# 7. ---------------------------------------------------------------- evaluation during training, time


def test_evaluation_during_training_is_a_capped_sample_without_tta(tmp_path, monkeypatch):
    import prefkit.rm.predictor as predictor

    descs = []
    original = predictor.predict_logits

    def spy(model, head, seqs, settings, *args, **kwargs):
        descs.append((settings.desc, len(seqs)))
        return original(model, head, seqs, settings, *args, **kwargs)

    monkeypatch.setattr(predictor, "predict_logits", spy)
    cfg = load_config(TINY, FAST + ["quantization.mode=none", "train.epochs=1", "train.eval_every=2",
                                    "train.eval_rows=10"])
    history = RewardModelLearner(cfg).fit(learnable(16), learnable(40, seed=3), tmp_path / "m")
    evals = [h for h in history if "eval_logloss" in h]
    assert evals and all(h["eval_n"] == 10 for h in evals)
    assert descs and set(descs) == {("eval", 10)}, "10 rows, the plain A/B order only"


# 9. ------------------------------------------------------------------------------------- vLLM merge


def test_vllm_merge_runs_on_cpu_in_a_working_folder_on_the_main_process(tmp_path, monkeypatch, run_cli):
    import prefkit.core.dist
    import prefkit.core.modeling
    from prefkit.core.vllm_backend import MERGED_MARKER, merged_checkpoint
    from prefkit.data.arena import write_lmsys_csv

    write_lmsys_csv(learnable(12), tmp_path / "a.csv")
    run = tmp_path / "input" / "rm"  # stands for /kaggle/input/...: nothing may be written there
    r = run_cli("train", TINY, f"data.train={tmp_path / 'a.csv'}", *FAST, "quantization.mode=none", f"output_dir={run}")
    assert r.code == 0, r.err
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    cfg = load_config(run / "config.yaml")
    devices = []
    original = prefkit.core.modeling.build_model

    def spy(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return original(*args, **kwargs)

    monkeypatch.setattr(prefkit.core.modeling, "build_model", spy)
    waits = []
    monkeypatch.setattr(prefkit.core.dist, "wait", lambda: waits.append(1))
    monkeypatch.setattr(prefkit.core.dist, "is_main", lambda: False)
    target = merged_checkpoint(cfg, run / "model", tmp_path / "work", "seq_cls", 3)
    assert waits and not target.exists() and not devices, "another process writes nothing; it waits for the main one"
    monkeypatch.setattr(prefkit.core.dist, "is_main", lambda: True)
    target = merged_checkpoint(cfg, run / "model", tmp_path / "work", "seq_cls", 3)
    assert target == tmp_path / "work" / "merged" / "model" and (target / MERGED_MARKER).is_file()
    assert devices == [torch.device("cpu")], "merged on the CPU"
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before, "the run folder is left as it was"


# 10. ----------------------------------------------------------------------------------- SFT memory


def test_completion_loss_computes_the_lm_head_at_completion_positions_only():
    from prefkit.cot.completions import completion_loss
    from prefkit.cot.formats import IGNORE

    cfg = load_config(SFT_TINY, ["quantization.mode=none"])
    model = build_model(cfg, BYTES, "causal_lm")
    ids = torch.randint(3, 259, (3, 20))
    labels = ids.clone()
    labels[0, :12] = IGNORE
    labels[1, :5] = IGNORE
    labels[2, :17] = IGNORE
    labels[1, 15:] = IGNORE  # padding
    mask = torch.ones_like(ids)
    shapes = []
    model.get_output_embeddings().register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape)))
    ours = completion_loss(model, ids, mask, labels)
    n = int((labels[:, 1:] != IGNORE).sum())
    assert shapes == [(n, 259)], "the LM head ran on the completion positions alone"
    ours.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    full = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss  # transformers' own
    full.backward()
    assert torch.allclose(ours, full, atol=1e-5)
    for k, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(grads[k], p.grad, atol=1e-5), k


# 11. ------------------------------------------------------------------------------------ generation


def test_generation_uses_a_dynamic_cache_even_when_the_checkpoint_asks_for_hybrid():
    from transformers import Cache, DynamicCache

    from prefkit.cot.generate import generation_settings

    cfg = load_config(SFT_TINY, ["quantization.mode=none"])
    model = build_model(cfg, BYTES, "causal_lm", trainable=False)
    model.generation_config.cache_implementation = "hybrid"  # what Gemma-2's generation_config.json says
    # whatever keyword transformers hands the cache under (`past_key_values` before 5.24, `cache` since), the
    # forward receives a Cache object: record its type, not the name of the argument
    caches = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: caches.extend(type(v) for v in [*args, *kwargs.values()] if isinstance(v, Cache)),
        with_kwargs=True)
    settings = generation_settings(4, 0, [2])
    assert settings["cache_implementation"] == "dynamic" and settings["disable_compile"] is True
    x = torch.randint(3, 259, (2, 6))
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **settings)
    assert out.shape[0] == 2 and caches and set(caches) == {DynamicCache}


# 12. ------------------------------------------------------------------------------- attention choice


def test_gemma2_attention_choices():
    with pytest.raises(PrefkitError, match="does not run Gemma-2 with SDPA"):
        build_model(load_config(TINY, ["quantization.mode=none", "model.attn_implementation=sdpa"]), BYTES, "seq_cls", outputs=3)
    flex = build_model(load_config(TINY, ["quantization.mode=none", "model.attn_implementation=flex_attention"]),
                       BYTES, "seq_cls", trainable=False, outputs=3)
    assert flex.config._attn_implementation == "flex_attention" and flex.config.attn_logit_softcapping == 50.0


# ------------------------------------------------- the GPU dtypes end to end: cv -> predict -> cot sft


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("quant", ["nf4", "none"])
def test_tiny_gemma2_cv_predict_sft_in_gpu_dtypes(run_cli, tmp_path, dtype, quant):
    from prefkit.data.arena import write_lmsys_csv
    from prefkit.data.table import PairTable
    from tests.conftest import SHARED, need_shared

    over = [f"model.dtype={dtype}", f"quantization.mode={quant}"]
    write_lmsys_csv(learnable(24), tmp_path / "train.csv")
    test = learnable(7, seed=5)
    write_lmsys_csv(PairTable(test.frame.assign(label=None), "t"), tmp_path / "test.csv")
    r = run_cli("cv", TINY, f"data.train={tmp_path / 'train.csv'}", *FAST, *over, "cv.n_splits=2",
                f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    metrics = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert np.isfinite(metrics["logloss"]) and metrics["n"] == 24
    r = run_cli("predict", "--run", tmp_path / "cv", "--test", tmp_path / "test.csv", "--out", tmp_path / "sub.csv",
                f"output_dir={tmp_path / 'p'}")
    assert r.code == 0, r.err
    sub = np.loadtxt(tmp_path / "sub.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    assert sub.shape == (7, 3) and np.isfinite(sub).all() and np.allclose(sub.sum(axis=1), 1.0)
    need_shared(SHARED / "reasoning")
    r = run_cli("cot", "sft", SFT_TINY, *over, f"output_dir={tmp_path / 'sft'}", f"cot.data_root={SHARED}",
                "template.max_length=128", "train.epochs=0.25", "train.save_every=0", "train.log_every=1")
    assert r.code == 0, r.err
    log = [json.loads(x) for x in (tmp_path / "sft" / "model" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["loss"]) for x in log)


def test_identical_sequences_are_computed_once_and_each_gets_its_output():
    """A Bradley-Terry verifier scores K samples of a question, each against the same anchor sequence: the
    anchor ran K times. Now each distinct sequence runs once and the outputs are spread back in order."""
    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(128, 3)
            self.rows = 0

        def forward(self, input_ids, attention_mask, use_cache=None):
            self.rows += len(input_ids)
            m = attention_mask.unsqueeze(-1).float()
            return type("Out", (), {"logits": (self.emb(input_ids) * m).sum(dim=1) / m.sum(dim=1)})()

    anchor = np.array([5, 6, 7])
    seqs = [x for k in range(4) for x in (np.array([10 + k, 11, 12, 13][: 2 + k]), anchor.copy())]
    seqs += [np.array([10, 11])]  # a duplicate of the first sample too
    model = Counting().eval()
    got, stats = predict_logits(model, CLS3, seqs, PredictSettings(pad_id=0, batch_tokens=64))
    assert model.rows == 5 and stats["unique_sequences"] == 5 and stats["rows"] == 9
    each = np.concatenate([predict_logits(model, CLS3, [x], PredictSettings(0, 64))[0] for x in seqs])
    assert np.allclose(got, each, atol=1e-6)
    assert np.allclose(got[1], got[3]) and np.allclose(got[0], got[8]) and not np.allclose(got[0], got[2])
