"""Prediction speed: prefkit against the plain transformers pipeline, in one run, with A/B-swap TTA.

    python benchmarks/predict_speed.py --preset minilm [--rows 600] [--max-length 512] [--quant none,nf4,int8]

Variants (each in its own process, the same model weights, every row predicted in both A/B orders):
  plain    what public notebooks do: per row, a Python f-string and a tokenizer call (truncated and padded to
           max_length), rows in file order, a fixed number per batch
  sorted   prefkit's rendering (token budgets, one batched tokenizer call), rows sorted by length, the same
           fixed number per batch, padded to the batch's longest row
  budget   prefkit's prediction path: sorted rows, each batch filled up to `predict.batch_tokens`
and, with --quant, `budget` once per weight format (none = the config's compute dtype, nf4, int8).
Reports rows/s, real tokens/s, padding ratio, model FLOPs utilisation and peak memory per process, and each
variant's speed as a ratio to `plain`. Writes results/predict_speed_<preset>.{json,md}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def plain_pipeline(model, tok, pad_id: int, table, max_length: int, batch: int, device) -> tuple[int, int]:
    """The notebook loop. Returns (real tokens, padded tokens)."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=tok.id_to_token(pad_id))
    f = table.frame
    real = padded = 0
    for swap in (False, True):
        for start in range(0, len(f), batch):
            rows = f.iloc[start : start + batch]
            texts = []
            for p, a, b in zip(rows["prompt"], rows["response_a"], rows["response_b"]):
                a, b = (b, a) if swap else (a, b)
                texts.append(f"<prompt>: {' '.join(map(str, p))}\n\n<response_a>: {' '.join(map(str, a))}"
                             f"\n\n<response_b>: {' '.join(map(str, b))}")
            enc = [hf(t, truncation=True, max_length=max_length, padding="max_length") for t in texts]
            ids = torch.tensor([e["input_ids"] for e in enc], device=device)
            mask = torch.tensor([e["attention_mask"] for e in enc], device=device)
            model(input_ids=ids, attention_mask=mask).logits.float().cpu()  # to the host, as a notebook does
            real += int(mask.sum())
            padded += mask.numel()
    return real, padded


def sorted_fixed(model, ids: list[np.ndarray], pad_id: int, batch: int, device) -> tuple[int, int]:
    from prefkit.core.batching import collate

    order = np.argsort([-len(x) for x in ids], kind="stable")
    real = padded = 0
    for start in range(0, len(order), batch):
        t = collate([ids[i] for i in order[start : start + batch]], pad_id)
        model(input_ids=t["input_ids"].to(device), attention_mask=t["attention_mask"].to(device))
        real += int(t["attention_mask"].sum())
        padded += t["attention_mask"].numel()
    return real, padded


def variant(args) -> dict:
    from prefkit.core.modeling import build_model
    from prefkit.rm.learners import make_learner
    from prefkit.rm.predictor import PredictSettings, predict_logits

    extra = [f"template.max_length={args.max_length}"] if args.max_length else []
    if args.quant != "config":
        extra.append(f"quantization.mode={args.quant}")
    cfg = harness.preset_config(args.preset, extra, args.tokenizer)
    learner = make_learner(cfg)
    table, source = harness.bench_pairs(args.rows)
    model = build_model(cfg, learner.vocab, "seq_cls", trainable=False, outputs=learner.head.outputs).eval()
    device = next(model.parameters()).device
    L, batch_tokens = cfg.template.max_length, cfg.predict.batch_tokens
    batch = max(1, batch_tokens // L)
    with torch.inference_mode():  # warm-up: first-call allocations and kernel choice stay out of the timing
        model(input_ids=torch.full((1, 16), 5, device=device), attention_mask=torch.ones((1, 16), dtype=torch.long, device=device))
    harness.sync()
    harness.reset_peak()
    t0 = time.perf_counter()
    with torch.inference_mode():
        if args.variant == "plain":
            real, padded = plain_pipeline(model, learner.tokenizer, learner.pad_id, table, L, batch, device)
        else:
            ids = learner.renderer.render(table).input_ids + learner.renderer.render(table, swap=True).input_ids
            if args.variant == "sorted":
                real, padded = sorted_fixed(model, ids, learner.pad_id, batch, device)
            else:
                predict_logits(model, learner.head, ids, PredictSettings(learner.pad_id, batch_tokens, desc="budget"))
                from prefkit.core.batching import predict_batches

                lengths = np.array([len(x) for x in ids])
                real = int(lengths.sum())
                padded = sum(len(b) * int(lengths[b].max()) for b in predict_batches(lengths, batch_tokens, True))
    harness.sync()
    seconds = time.perf_counter() - t0
    per_token = harness.forward_flops_per_token(model)
    peak, peak_source = harness.device_peak_flops()
    return {"variant": args.variant if args.quant == "config" else f"budget {args.quant}", "preset": args.preset,
            "data": source, "rows": args.rows, "passes": 2, "max_length": L, "seconds": round(seconds, 2),
            "rows_per_s": round(2 * args.rows / seconds, 2), "tokens_per_s": round(real / seconds, 1),
            "padding_ratio": round(padded / real - 1, 4), "mfu": round(per_token * real / seconds / peak, 4),
            "mfu_peak": peak_source, "peak_mem_gib": round(harness.peak_memory_gib(), 2),
            "quantization": cfg.quantization.mode}


def main() -> None:
    ap = harness.parser(__doc__, 600, ["plain", "sorted", "budget"])
    ap.add_argument("--quant", default="", help="also time `budget` with these weight formats: none,nf4,int8")
    args = ap.parse_args()
    if args.variant:
        args.quant = args.quant or "config"
        print(json.dumps(variant(args)))
        return
    common = harness.common_argv(args)
    rows = []
    for v in ("plain", "sorted", "budget"):
        rows.append(harness.run_variant(Path(__file__), [*common, "--variant", v]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    for q in filter(None, args.quant.split(",")):
        rows.append(harness.run_variant(Path(__file__), [*common, "--variant", "budget", "--quant", q]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]["rows_per_s"]
    for r in rows:
        r["speed_vs_plain"] = round(r["rows_per_s"] / base, 3)
    cmd = " ".join(["python benchmarks/predict_speed.py", *sys.argv[1:]])
    cols = ["variant", "quantization", "rows_per_s", "tokens_per_s", "padding_ratio", "mfu", "peak_mem_gib", "speed_vs_plain"]
    harness.write_results(f"predict_speed_{args.preset}", args.out, {"command": cmd}, cols, rows,
                          f"`{cmd}`: {args.rows} rows of {rows[0]['data']}, both A/B orders, max_length "
                          f"{rows[0]['max_length']}; utilisation against the {rows[0]['mfu_peak']}. Each variant "
                          f"ran in its own process; peak memory is that process's.")


if __name__ == "__main__":
    main()
