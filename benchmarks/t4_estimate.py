"""Kaggle T4x2 time for a test set, from FLOPs counted on the real architectures and the T4's peak.

    python benchmarks/t4_estimate.py [--rows 25000] [--tokens 2048] [--update-table]

For the Gemma-2 9B and 2B shapes, counts the FLOPs of one forward pass at `--tokens` tokens (torch's flop
counter on a weightless "meta" copy: matmuls and attention, soft-capping's eager attention included) and the
FLOPs of one QLoRA training step per row at 1,024 tokens (forward, backward, and the forward recomputed by
gradient checkpointing). The time for `--rows` rows with A/B-swap TTA (two passes) on two T4s follows at a
given utilisation of the T4's fp16 peak (65 TFLOP/s, NVIDIA's data sheet). Utilisation is the unknown: where a
GPU run of benchmarks/predict_speed.py has written its measured MFU to results/, that is used; otherwise the
estimate is given at 15% (the budget table's assumption), and at 10% and 30% to show the spread. Every row is
counted at the full `--tokens` (the worst case; length-sorted batches of shorter rows cost proportionally less).
`--update-table` writes the counted FLOPs per token into prefkit's time-budget table (kaggle/t4_throughput.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

T4_PEAK = harness.GPU_PEAK["T4"]
TABLE = harness.ROOT / "src" / "prefkit" / "kaggle" / "t4_throughput.json"
SHAPES = {"gemma-2-9b": harness.GEMMA2_9B, "gemma-2-2b": harness.GEMMA2_2B}


def meta_model(shape: dict):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    fields = {k: v for k, v in shape.items() if k != "model_type"}
    config = AutoConfig.for_model(shape["model_type"], num_labels=3, pad_token_id=0, **fields)
    config._attn_implementation = "eager"  # soft-capping: what the shipped configs run
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def count(model, tokens: int, train: bool) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.zeros((1, tokens), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        if train:
            model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.sum().backward()
        else:
            with torch.no_grad():
                model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return counter.get_total_flops()


def measured_mfu(key: str) -> float | None:
    path = harness.HERE / "results" / f"predict_speed_{key.replace('-2-', '2-')}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if "CPU" in result.get("device", "CPU"):
        return None
    budget = [r for r in result["results"] if r["variant"] == "budget"]
    return budget[0]["mfu"] if budget else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=25000)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--update-table", action="store_true")
    ap.add_argument("--out", type=Path, default=harness.HERE / "results")
    args = ap.parse_args()
    rows = []
    for key, shape in SHAPES.items():
        model = meta_model(shape)
        params = sum(p.numel() for p in model.parameters())
        fwd = count(model, args.tokens, train=False)
        for p in model.parameters():  # QLoRA: the base is frozen; activations still need their gradients
            p.requires_grad_(False)
        model.get_input_embeddings().weight.requires_grad_(True)
        train_step = count(model, 1024, train=True) + count(model, 1024, train=False)  # + recompute
        total = args.rows * 2 * fwd
        mfu = measured_mfu(key)
        row = {"model": key, "parameters": params, "forward_flops_per_row": fwd,
               "forward_flops_per_token": round(fwd / args.tokens), "train_flops_per_row_1024": train_step,
               "inference_flops_total": total}
        for u in ([mfu] if mfu else []) + [0.10, 0.15, 0.30]:
            row[f"hours_at_{u:.0%}"] = round(total / (2 * T4_PEAK * u) / 3600, 2)
        row["utilisation_source"] = "measured on a GPU (benchmarks/predict_speed.py)" if mfu else "assumed"
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    if args.update_table:
        table = json.loads(TABLE.read_text())
        for r in rows:
            table["models"][r["model"]]["forward_flops_per_token"] = r["forward_flops_per_token"]
            table["models"][r["model"]]["flops_source"] = (f"counted at {args.tokens} tokens by "
                                                           "benchmarks/t4_estimate.py (torch flop counter)")
        tmp = TABLE.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=2) + "\n")
        os.replace(tmp, TABLE)
    cmd = " ".join(["python benchmarks/t4_estimate.py", *sys.argv[1:]])
    cols = ["model", "parameters", "forward_flops_per_token", "train_flops_per_row_1024", "hours_at_10%",
            "hours_at_15%", "hours_at_30%", "utilisation_source"]
    harness.write_results("t4_estimate", args.out, {"command": cmd, "rows": args.rows, "tokens": args.tokens,
                                                    "t4_peak_flops": T4_PEAK}, cols, rows,
                          f"`{cmd}`: {args.rows:,} test rows x 2 passes (swap TTA) x {args.tokens} tokens on two "
                          f"T4s (65 TFLOP/s fp16 each). FLOPs counted, utilisation assumed unless stated. Counting "
                          f"needs no GPU: the device line below is where the count ran.")


if __name__ == "__main__":
    main()
