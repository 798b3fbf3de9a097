"""The reward model through the real path: a tiny random Gemma-2, nf4 4-bit (bitsandbytes on CPU), LoRA and
the score head; resume after kill -9; two processes (gloo) against one; MiniLM on real HH-RLHF rows."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.core.modeling import build_model, compute_dtype
from prefkit.core.tokenizer import Vocab, byte_tokenizer
from prefkit.core.train import trainable_state
from prefkit.data import swap_ab
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import score, swap_probs
from prefkit.rm.heads import Classifier
from prefkit.rm.pair_data import PairTrainData
from prefkit.rm.reward_model import RewardModelLearner
from tests.conftest import FAST, HH, MINILM, TINY, learnable, need_shared

CLS3 = Classifier(COMPETITIONS["lmsys"])  # the A/B/tie head
BYTES = Vocab.of(byte_tokenizer())  # the tiny models' tokenizer: padding id 0, 259 ids


def test_compute_dtype_follows_the_device(monkeypatch):
    assert compute_dtype("auto") == torch.float32  # CPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))  # T4: no bf16
    assert compute_dtype("auto") == torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    assert compute_dtype("auto") == torch.bfloat16
    assert compute_dtype("float16") == torch.float16


def test_gemma2_eager_attention_and_softcapping_switch():
    on = build_model(load_config(TINY), BYTES, "seq_cls", trainable=False, outputs=3)
    assert on.config._attn_implementation == "eager" and on.config.attn_logit_softcapping == 50.0
    assert type(on.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    off = build_model(load_config(TINY, ["model.softcapping=false", "quantization.mode=none"]), BYTES, "seq_cls",
                      trainable=False, outputs=3)
    assert off.config.attn_logit_softcapping is None and off.config.final_logit_softcapping is None


@pytest.mark.parametrize("mode,layer", [("nf4", "Linear4bit"), ("int8", "Linear8bitLt")])
def test_lora_on_quantized_weights_gets_gradients(mode, layer):
    model = build_model(load_config(TINY, [f"quantization.mode={mode}"]), BYTES, "seq_cls", outputs=3)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert type(q_proj.base_layer).__name__ == layer and not q_proj.base_layer.weight.requires_grad
    x = torch.randint(3, 259, (2, 16))
    model(input_ids=x, attention_mask=torch.ones_like(x)).logits.float().sum().backward()
    assert q_proj.lora_A["default"].weight.grad is not None
    assert model.base_model.model.score.modules_to_save["default"].weight.grad is not None


def test_missing_model_folder_is_a_clear_error(run_cli, tmp_path):
    r = run_cli("train", MINILM, "model.path=/kaggle/input/nothing-here", f"data.train={tmp_path / 'x.csv'}",
                f"output_dir={tmp_path}")
    assert r.code == 2 and "model.path '/kaggle/input/nothing-here': no such folder" in r.err
    assert "never downloads" in r.err and "Traceback" not in r.err


def test_qlora_trains_saves_and_reloads(tmp_path):
    cfg = load_config(TINY, FAST + ["train.epochs=6"])
    table = learnable(48)
    learner = RewardModelLearner(cfg)
    before = trainable_state(build_model(cfg, learner.vocab, "seq_cls", outputs=learner.head.outputs))
    cfg.train.eval_every = 12
    history = learner.fit(table, learnable(12, seed=9), tmp_path / "m")
    after = trainable_state(learner.model)
    evals = [h for h in history if "eval_logloss" in h]
    assert [h["step"] for h in evals] == [12, 24, 36, 48, 60, 72] and evals[-1]["eval_logloss"] < evals[0]["eval_logloss"]
    assert set(before) == set(after) and any("score" in k for k in after), "LoRA weights and the score head train"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before), "every trainable tensor moved"
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], (history[0]["loss"], history[-1]["loss"])
    probs, stats = learner.predict(table)
    assert stats["rows"] == len(table) and stats["padding_ratio"] >= 0
    assert score(probs, table.frame["label"])["logloss"] < 0.7
    reloaded = RewardModelLearner.load(cfg, tmp_path / "m")
    assert np.allclose(reloaded.predict(table)[0], probs, atol=1e-5), "adapter + head reload to the same outputs"
    assert (tmp_path / "m" / "adapter_model.safetensors").exists()
    assert any("score" in k for k in load_file(tmp_path / "m" / "adapter_model.safetensors"))


def test_swap_tta_is_symmetric(tmp_path):
    cfg = load_config(TINY, FAST + ["train.epochs=1", "quantization.mode=none"])
    table = learnable(24, seed=3)
    learner = RewardModelLearner(cfg)
    learner.fit(table, None, tmp_path / "m")
    p, p_swapped = learner.predict(table)[0], learner.predict(swap_ab(table))[0]
    assert np.allclose(p_swapped, swap_probs(p), atol=1e-6), "with TTA, a swapped row gets the swapped prediction"
    learner.cfg.predict.swap_tta = False
    raw, raw_swapped = learner.predict(table)[0], learner.predict(swap_ab(table))[0]
    assert not np.allclose(raw_swapped, swap_probs(raw), atol=1e-6), "without TTA the model alone is not symmetric"


def test_soft_labels_and_swapped_targets():
    ids = [np.array([5, 6, 7]), np.array([5, 6])]
    swapped = [np.array([9, 9, 9, 9]), np.array([8])]
    targets = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    data = PairTrainData(CLS3, ids, swapped, targets, "both", batch_size=4, seed=0, pad_id=0)
    t = data.collate(np.array([0, 3]), epoch=0)  # row 0 as is, row 1 swapped
    assert t["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]] and t["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert np.allclose(t["targets"].numpy(), [[0.7, 0.2, 0.1], [0.3, 0.1, 0.6]])

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask, use_cache):
            assert use_cache is False, "a training forward builds no KV cache"
            return type("O", (), {"logits": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])})()

    loss, n = data.loss(Fixed(), t)
    logp = torch.log_softmax(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), dim=1).numpy()
    expected = -(np.array([[0.7, 0.2, 0.1], [0.3, 0.1, 0.6]]) * logp).sum(axis=1).mean()
    assert n == 2 and float(loss) == pytest.approx(expected, abs=1e-6)


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prefkit.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_resume_after_kill_9_matches_uninterrupted_run(tmp_path):
    data = tmp_path / "train.csv"
    write_lmsys_csv(learnable(40, seed=1), data)
    args = ["train", TINY, f"data.train={data}", *FAST, "train.epochs=8", "train.save_every=2"]
    whole = _cli(*args, f"output_dir={tmp_path / 'whole'}")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()

    killed = _cli(*args, f"output_dir={tmp_path / 'killed'}")
    position = tmp_path / "killed" / "model" / "checkpoint" / "position.json"
    deadline = time.time() + 120
    while not position.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run was killed mid-training, not finished"
    step = json.loads(position.read_text())["step"]
    assert 0 < step < 80
    resumed = _cli(*args, f"output_dir={tmp_path / 'killed'}", "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resumed from" in err
    a = load_file(tmp_path / "whole" / "model" / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / "model" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert not (tmp_path / "killed" / "model" / "checkpoint").exists(), "the checkpoint goes once the model is saved"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_predict_like_one(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write_lmsys_csv(learnable(30, seed=2), train)
    t = learnable(37, seed=5)  # an odd number of rows: shards of different sizes
    write_lmsys_csv(PairTable(t.frame.assign(label=None), "t"), test)
    run = tmp_path / "run"
    p = _cli("train", TINY, f"data.train={train}", *FAST, "train.epochs=1", f"output_dir={run}")
    assert p.wait(timeout=300) == 0, p.stderr.read()
    one = _cli("predict", "--run", run, "--test", test, "--out", tmp_path / "one.csv", "predict.batch_tokens=400",
               f"output_dir={tmp_path / 'p1'}")
    assert one.wait(timeout=300) == 0, one.stderr.read()
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(_free_port()), "-m", "prefkit.cli", "--", "predict", "--run", str(run), "--test", str(test),
                          "--out", str(tmp_path / "two.csv"), "predict.batch_tokens=400", f"output_dir={tmp_path / 'p2'}"],
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = pd.read_csv(tmp_path / "one.csv", dtype={"id": str}), pd.read_csv(tmp_path / "two.csv", dtype={"id": str})
    assert len(b) == 37 and b["id"].is_unique and list(a["id"]) == list(b["id"])
    assert np.allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), atol=1e-6)
    stats = json.loads((tmp_path / "p2" / "predict_stats.json").read_text())["per_model"][0]
    assert stats["processes"] == 2 and stats["rows"] == 37


@pytest.mark.slow
def test_two_processes_train_data_parallel(tmp_path):
    train = tmp_path / "train.csv"
    write_lmsys_csv(learnable(40, seed=1), train)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(_free_port()), "-m", "prefkit.cli", "--", "train", str(TINY), f"data.train={train}", *FAST,
                        "train.epochs=4", f"output_dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(x) for x in (tmp_path / "run" / "model" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 20, "10 batches an epoch shared by 2 processes: 5 steps an epoch each"
    assert log[-1]["loss"] < log[0]["loss"]
    assert (tmp_path / "run" / "model" / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_minilm_config_on_hh_rlhf_slice(run_cli, tmp_path):
    path = need_shared(HH / "helpful-base.test.jsonl.gz")
    r = run_cli("cv", MINILM, f"data.train={path}", "data.limit=96", "cv.n_splits=2", "template.max_length=96",
                "train.epochs=1", "cv.temperature_scaling=true", f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 96 and len(m["folds"]) == 2 and np.isfinite(m["logloss"])
    assert 0.05 < m["temperature"] < 20 and m["calibrated"]["logloss"] <= m["logloss"] + 1e-9
    assert m["predict"]["padding_ratio"] >= 0
    oof = pd.read_csv(tmp_path / "oof.csv")
    assert len(oof) == 96 and oof["id"].is_unique
    assert (tmp_path / "fold0" / "trained.json").exists() and (tmp_path / "fold0" / "log.jsonl").exists()


def test_quantized_full_finetuning_is_refused():
    with pytest.raises(PrefkitError, match="lora.enabled=true"):
        build_model(load_config(TINY, ["lora.enabled=false"]), BYTES, "seq_cls", outputs=3)


def test_pretrained_backbone_gets_the_same_new_head_every_time():
    """The classification head a pretrained model lacks is drawn from a seeded generator: runs repeat."""
    cfg = load_config(MINILM)
    a = build_model(cfg, Vocab.from_config(cfg), "seq_cls", trainable=False, outputs=3).classifier.weight
    torch.manual_seed(12345)  # whatever the generator held before
    b = build_model(cfg, Vocab.from_config(cfg), "seq_cls", trainable=False, outputs=3).classifier.weight
    assert torch.equal(a, b)
    other = load_config(MINILM, ["train.seed=1"])
    assert not torch.equal(a, build_model(other, Vocab.from_config(other), "seq_cls", trainable=False, outputs=3).classifier.weight)
