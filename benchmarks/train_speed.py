"""Training speed: prefkit's loop against a plain transformers Trainer (+ peft) setup, in one run.

    python benchmarks/train_speed.py --preset minilm [--rows 400] [--max-length 512]

Variants (each in its own process; the same model built by prefkit.core.modeling: from_pretrained or random
weights of the preset's shape, the config's LoRA through peft and 4-bit weights through bitsandbytes, so only
the data pipeline and the loop differ):
  plain    what public notebooks do: per row, an f-string and a tokenizer call (truncated at max_length), a
           list of dicts, `DataCollatorWithPadding` (pads each random batch to its longest row) and
           `transformers.Trainer` with the config's batch size, accumulation, rate, warmup and cosine schedule
  prefkit  prefkit's template (one batched tokenizer call), length-grouped batches (`batching.train_batches`)
           and `prefkit.core.train.fit`, with the same hyper-parameters
One epoch over the same rows each. Reports samples/s, real tokens/s, the padding ratio the batches carried,
model FLOPs utilisation (FLOPs of a training step counted by torch, per real token), peak memory per
process, and the loss of the first and last steps (both must learn), with prefkit's speed as a ratio to plain.
Writes results/train_speed_<preset>.{json,md}.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

LABEL = {"a": 0, "b": 1, "tie": 2}


def plain(cfg, learner, table, out: Path) -> dict:
    from transformers import (
        DataCollatorWithPadding,
        PreTrainedTokenizerFast,
        Trainer,
        TrainingArguments,
    )

    from prefkit.core.modeling import build_model, compute_dtype

    tc = cfg.train
    model = build_model(cfg, learner.vocab, "seq_cls", outputs=learner.head.outputs)  # not timed: the same for both
    harness.reset_peak()
    t0 = time.perf_counter()
    hf = PreTrainedTokenizerFast(tokenizer_object=learner.tokenizer, pad_token=learner.tokenizer.id_to_token(learner.pad_id))
    rows = []
    for p, a, b, y in zip(table.frame["prompt"], table.frame["response_a"], table.frame["response_b"], table.frame["label"]):
        text = (f"<prompt>: {' '.join(map(str, p))}\n\n<response_a>: {' '.join(map(str, a))}"
                f"\n\n<response_b>: {' '.join(map(str, b))}")
        enc = hf(text, truncation=True, max_length=cfg.template.max_length)
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": LABEL[y]})
    pad = DataCollatorWithPadding(hf)
    seen = {"real": 0, "padded": 0}

    def collate(features):
        batch = pad(features)
        seen["real"] += int(batch["attention_mask"].sum())
        seen["padded"] += batch["attention_mask"].numel()
        return batch

    dtype = compute_dtype(cfg.model.dtype)  # the Trainer's own mixed precision in the same compute dtype
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=tc.batch_size, gradient_accumulation_steps=tc.grad_accum,
        num_train_epochs=1, learning_rate=tc.learning_rate, weight_decay=tc.weight_decay, warmup_steps=tc.warmup_ratio,  # < 1: a ratio
        lr_scheduler_type="cosine", max_grad_norm=tc.max_grad_norm, logging_steps=1, save_strategy="no",
        report_to="none", seed=tc.seed, fp16=dtype == torch.float16, bf16=dtype == torch.bfloat16, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    t1 = time.perf_counter()
    trainer.train()
    harness.sync()
    t2 = time.perf_counter()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": t2 - t0, "prep_seconds": t1 - t0, "real": seen["real"], "padded": seen["padded"],
            "losses": losses, "model": model}


def prefkit_loop(cfg, learner, table, out: Path) -> dict:
    from prefkit.core.modeling import build_model
    from prefkit.core.train import fit, make_accelerator
    from prefkit.metrics import hard_targets
    from prefkit.rm.pair_data import PairTrainData

    tc = cfg.train
    model = build_model(cfg, learner.vocab, "seq_cls", outputs=learner.head.outputs)  # not timed: the same for both
    harness.reset_peak()
    t0 = time.perf_counter()
    ids = learner.renderer.render(table).input_ids
    data = PairTrainData(learner.head, ids, None, hard_targets(table.frame["label"], 3), "none", tc.batch_size, tc.seed, learner.pad_id)
    lengths = data.len
    acc = make_accelerator()
    batches = data.batches(0, acc.num_processes)
    t1 = time.perf_counter()
    history = fit(model, data, cfg, out, None, False, acc)
    harness.sync()
    t2 = time.perf_counter()
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return {"seconds": t2 - t0, "prep_seconds": t1 - t0, "real": int(lengths.sum()), "padded": padded,
            "losses": [r["loss"] for r in history if "loss" in r], "model": model}


def variant(args) -> dict:
    from prefkit.rm.learners import make_learner

    extra = ["train.epochs=1", "train.save_every=0", "train.eval_every=0", "train.log_every=1", "train.swap_augment=none"]
    if args.max_length:
        extra.append(f"template.max_length={args.max_length}")
    cfg = harness.preset_config(args.preset, extra, args.tokenizer)
    learner = make_learner(cfg)
    table, source = harness.bench_pairs(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        r = (plain if args.variant == "plain" else prefkit_loop)(cfg, learner, table, Path(tmp))
    model = r.pop("model")
    peak_mem = harness.peak_memory_gib()
    per_token = 3 * harness.forward_flops_per_token(model)
    peak, peak_source = harness.device_peak_flops()
    losses = r["losses"]
    return {"variant": args.variant, "preset": args.preset, "data": source, "rows": args.rows,
            "max_length": cfg.template.max_length, "batch_size": cfg.train.batch_size, "grad_accum": cfg.train.grad_accum,
            "lora": cfg.lora.enabled, "quantization": cfg.quantization.mode, "seconds": round(r["seconds"], 2),
            "prep_seconds": round(r["prep_seconds"], 2), "samples_per_s": round(args.rows / r["seconds"], 2),
            "tokens_per_s": round(r["real"] / r["seconds"], 1), "padding_ratio": round(r["padded"] / r["real"] - 1, 4),
            "mfu": round(per_token * r["real"] / r["seconds"] / peak, 4), "mfu_peak": peak_source,
            "peak_mem_gib": round(peak_mem, 2), "first_loss": round(float(np.mean(losses[:3])), 4),
            "last_loss": round(float(np.mean(losses[-3:])), 4), "steps": len(losses)}


def main() -> None:
    ap = harness.parser(__doc__, 400, ["plain", "prefkit"])
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(variant(args)))
        return
    common = harness.common_argv(args)
    rows = []
    for v in ("plain", "prefkit"):
        rows.append(harness.run_variant(Path(__file__), [*common, "--variant", v]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]["samples_per_s"]
    for r in rows:
        r["speed_vs_plain"] = round(r["samples_per_s"] / base, 3)
        r["memory_vs_plain"] = round(r["peak_mem_gib"] / rows[0]["peak_mem_gib"], 3)
    cmd = " ".join(["python benchmarks/train_speed.py", *sys.argv[1:]])
    cols = ["variant", "samples_per_s", "tokens_per_s", "padding_ratio", "mfu", "peak_mem_gib", "first_loss",
            "last_loss", "speed_vs_plain", "memory_vs_plain"]
    r0 = rows[0]
    harness.write_results(f"train_speed_{args.preset}", args.out, {"command": cmd}, cols, rows,
                          f"`{cmd}`: one epoch over {args.rows} rows of {r0['data']}, max_length {r0['max_length']}, "
                          f"batch {r0['batch_size']} x accumulation {r0['grad_accum']}, LoRA {r0['lora']}, weights "
                          f"{r0['quantization']}. Times include tokenisation, not the model's loading. Utilisation against the {r0['mfu_peak']}. "
                          f"Each variant ran in its own process; peak memory is that process's.")


if __name__ == "__main__":
    main()
