"""GPU check: does prefkit's GPU path fit a Kaggle T4 and stay finite, and how fast is it?

One command for a borrowed GPU machine with no internet and no weights. Models are the real Gemma-2 shapes
with random weights, drawn directly on the GPU in the compute dtype (seconds; `modeling.build_model`), fed
synthetic token ids of fixed lengths (the worst case: every row at the full length; no tokenizer needed).
Each phase runs in its own process, so its peak memory is its own:

    train-9b   Gemma-2 9B, nf4 QLoRA as configs/rm/gemma2_9b_qlora_t4x2.yaml, 20 steps of 2 rows x 1,024 tokens,
               gradient checkpointing, through `prefkit.core.train.fit`
    infer-9b   Gemma-2 9B nf4, 256 rows x 2,048 tokens with swap TTA (512 sequences), batch_tokens 8,192,
               through `prefkit.rm.predictor.predict_logits`
    train-2b, infer-2b   the same for Gemma-2 2B (configs/rm/gemma2_2b_qlora_t4x2.yaml)
    sft-2b     Gemma-2 2B as a causal LM, nf4 + LoRA, 20 steps of 4 x 512 tokens (the second half is completion),
               through `prefkit.cot.completions.CompletionData` and `fit`

`--t4-cap` caps this process's GPU memory at a T4's 15 GiB (`torch.cuda.set_per_process_memory_fraction`)
once the model is built (building draws the full-precision random weights first; a real checkpoint loads
shard by shard), and the goal is a peak of at most 14.5 GiB allocated in every phase. Per phase: the
weights' memory, peak allocated memory, s/step or rows/s, tokens/s, MFU (model FLOPs counted by torch on the
architecture, 3x forward for training) against the GPU's data-sheet peak, and whether every loss and logit
was finite. `--suite tiny` runs the same phases on a 2-layer Gemma-2 on CPU in seconds (CI's smoke test).

    python benchmarks/gpu_check.py [--suite gpu|tiny] [--phases train-9b,infer-9b,...] [--t4-cap] [--dtype float16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

T4_CAP_GIB = 15.0
T4_GOAL_GIB = 14.5

# phase -> (preset, kind, sizes); the tiny suite keeps the shapes of the work and shrinks the sizes
SUITES = {
    "gpu": {
        "train-9b": ("gemma2-9b", "train", {"rows": 2, "length": 1024, "steps": 20}),
        "infer-9b": ("gemma2-9b", "infer", {"rows": 256, "length": 2048, "batch_tokens": 8192}),
        "train-2b": ("gemma2-2b", "train", {"rows": 2, "length": 1024, "steps": 20}),
        "infer-2b": ("gemma2-2b", "infer", {"rows": 256, "length": 2048, "batch_tokens": 8192}),
        "sft-2b": ("gemma2-2b", "sft", {"rows": 4, "length": 512, "steps": 20}),
    },
    "tiny": {
        "train-tiny": ("tiny", "train", {"rows": 2, "length": 128, "steps": 4}),
        "infer-tiny": ("tiny", "infer", {"rows": 16, "length": 256, "batch_tokens": 1024}),
        "sft-tiny": ("tiny", "sft", {"rows": 4, "length": 128, "steps": 4}),
    },
}


DTYPE = ["model.dtype=auto"]  # set from --dtype


def _config(preset: str, extra: list[str]):
    cfg = harness.preset_config(preset, ["train.save_every=0", "train.eval_every=0", "train.log_every=1",
                                         "train.warmup_ratio=0", *DTYPE, *extra])
    if not cfg.model.random_init:  # the tiny preset: its config's own random_init
        raise SystemExit(f"preset {preset} has no random_init")
    return cfg


def _vocab(cfg) -> int:
    return int(cfg.model.random_init.get("vocab_size", 259))


def _build(cfg, task: str, cap: bool, trainable: bool):
    from prefkit.core.modeling import build_model
    from prefkit.core.tokenizer import Vocab
    from prefkit.rm.heads import make_head

    outputs = make_head(cfg).outputs if task == "seq_cls" else None
    vocab = Vocab(tokenizer=None, pad_id=0, size=_vocab(cfg), bos_id=None, eos_id=None)  # random weights: no tokenizer read
    model = build_model(cfg, vocab, task, trainable=trainable, outputs=outputs)
    harness.sync()
    weights = round(torch.cuda.memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    if cap and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, T4_CAP_GIB * 2**30 / total))
    harness.reset_peak()
    return model, weights


def _ids(n: int, length: int, vocab: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, length) for _ in range(n)]


def train_phase(preset: str, sizes: dict, cap: bool, sft: bool) -> dict:
    from prefkit.core.train import fit, make_accelerator
    from prefkit.cot.completions import CompletionData
    from prefkit.cot.formats import IGNORE
    from prefkit.rm.heads import make_head
    from prefkit.rm.pair_data import PairTrainData

    rows, length, steps = sizes["rows"], sizes["length"], sizes["steps"]
    extra = [f"train.batch_size={rows}", "train.grad_accum=1", "train.epochs=1", "model.gradient_checkpointing=true"]
    cfg = _config(preset, extra)
    task = "causal_lm" if sft else "seq_cls"
    model, weights = _build(cfg, task, cap, trainable=True)
    n = rows * steps
    ids = _ids(n, length, _vocab(cfg))
    if sft:  # the first half of each row is the prompt, the second half the completion the loss reads
        samples = [{"input_ids": x.tolist(), "labels": [IGNORE] * (length // 2) + x[length // 2:].tolist()} for x in ids]
        data = CompletionData(samples, rows, 0, 0)
    else:
        targets = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
        data = PairTrainData(make_head(cfg), ids, None, targets, "none", rows, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        harness.sync()
        t0 = time.perf_counter()
        history = fit(model, data, cfg, Path(tmp), None, False, make_accelerator())
        harness.sync()
        seconds = time.perf_counter() - t0
    losses = [h["loss"] for h in history if "loss" in h]
    per_token = 3 * harness.forward_flops_per_token(model, min(length, 2048), task)
    tokens = n * length
    peak, peak_source = harness.device_peak_flops(torch.bfloat16)
    return {"steps": len(losses), "rows_per_step": rows, "tokens_per_row": length,
            "weights_gib": weights, "s_per_step": round(seconds / max(len(losses), 1), 3),
            "tokens_per_s": round(tokens / seconds, 1), "mfu": round(per_token * tokens / seconds / peak, 4),
            "mfu_peak": peak_source, "finite": bool(np.isfinite(losses).all()),
            "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}


def infer_phase(preset: str, sizes: dict, cap: bool) -> dict:
    from prefkit.core.modeling import compute_dtype
    from prefkit.rm.heads import make_head
    from prefkit.rm.predictor import PredictSettings, predict_logits

    cfg = _config(preset, [f"predict.batch_tokens={sizes['batch_tokens']}"])
    model, weights = _build(cfg, "seq_cls", cap, trainable=False)
    rows, length = sizes["rows"], sizes["length"]
    seqs = _ids(rows, length, _vocab(cfg))
    swapped = _ids(rows, length, _vocab(cfg), seed=1)  # the swapped order: a second pass over as many tokens
    dtype = compute_dtype(cfg.model.dtype)
    head = make_head(cfg)
    settings = PredictSettings(0, sizes["batch_tokens"], dtype=dtype)
    predict_logits(model, head, seqs[:1], replace(settings, desc="warm-up"))
    harness.reset_peak()
    harness.sync()
    t0 = time.perf_counter()
    logits, stats = predict_logits(model, head, seqs, settings)
    logits_s, _ = predict_logits(model, head, swapped, settings.swapped())
    harness.sync()
    seconds = time.perf_counter() - t0
    tokens = 2 * rows * length
    per_token = harness.forward_flops_per_token(model, min(length, 2048), "seq_cls")
    peak, peak_source = harness.device_peak_flops(torch.bfloat16)
    return {"rows": rows, "passes": 2, "tokens_per_row": length, "batch_tokens": sizes["batch_tokens"],
            "weights_gib": weights, "rows_per_s": round(rows / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "mfu": round(per_token * tokens / seconds / peak, 4),
            "mfu_peak": peak_source, "finite": bool(np.isfinite(logits).all() and np.isfinite(logits_s).all())}


def phase(args) -> dict:
    from prefkit.core.modeling import compute_dtype

    preset, kind, sizes = SUITES[args.suite][args.phase]
    if kind == "infer":
        result = infer_phase(preset, sizes, args.t4_cap)
    else:
        result = train_phase(preset, sizes, args.t4_cap, sft=kind == "sft")
    peak_mem = harness.peak_memory_gib()
    cfg = _config(preset, [])
    on_gpu = torch.cuda.is_available()
    return {"phase": args.phase, "preset": preset, "quantization": cfg.quantization.mode,
            "dtype": str(compute_dtype(cfg.model.dtype)).replace("torch.", ""), "t4_cap": bool(args.t4_cap and on_gpu),
            **result, "peak_mem_gib": round(peak_mem, 2), "fits_t4": peak_mem <= T4_GOAL_GIB if on_gpu else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=list(SUITES), default="gpu" if torch.cuda.is_available() else "tiny")
    ap.add_argument("--phases", default="", help="comma-separated phases of the suite (default: all)")
    ap.add_argument("--t4-cap", action="store_true", help=f"cap GPU memory at {T4_CAP_GIB:g} GiB once the model is built")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"],
                    help="model.dtype (auto: bf16 on Ampere and later; float16 is the T4's)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=harness.HERE / "results")
    args = ap.parse_args()
    DTYPE[:] = [f"model.dtype={args.dtype}"]
    if args.phase:
        print(json.dumps(phase(args)))
        return
    names = [p for p in args.phases.split(",") if p] or list(SUITES[args.suite])
    unknown = [p for p in names if p not in SUITES[args.suite]]
    if unknown:
        raise SystemExit(f"unknown phase {unknown[0]!r} in suite {args.suite} (known: {', '.join(SUITES[args.suite])})")
    rows = []
    for name in names:
        argv = ["--suite", args.suite, "--phase", name, "--dtype", args.dtype, *(["--t4-cap"] if args.t4_cap else [])]
        rows.append(harness.run_variant(Path(__file__), argv))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cmd = " ".join(["python benchmarks/gpu_check.py", *sys.argv[1:]])
    cols = ["phase", "quantization", "dtype", "weights_gib", "peak_mem_gib", "fits_t4", "s_per_step", "rows_per_s",
            "tokens_per_s", "mfu", "finite"]
    suffix = ("" if not args.phases else "_" + "_".join(names)) + ("" if args.dtype == "auto" else f"_{args.dtype}")
    harness.write_results(f"gpu_check_{args.suite}{suffix}", args.out, {"command": cmd, "t4_cap": args.t4_cap}, cols, rows,
                          f"`{cmd}`: random weights of the real shapes, every row at the full length; peak memory is "
                          f"torch's allocated peak on a GPU (resident set size on CPU), the T4 goal {T4_GOAL_GIB} GiB. "
                          "MFU against the GPU's data-sheet bf16/fp16 peak (the measured fp32 matmul peak on CPU).")
    if any(not r["finite"] for r in rows):
        raise SystemExit("non-finite losses or logits: see the table")


if __name__ == "__main__":
    main()
