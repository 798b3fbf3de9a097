"""Prediction batching: length-sorted token-budget batches against the plain pipeline's fixed batches.

    python benchmarks/predict_batching.py [--data FILE ...] [--config configs/rm/minilm_cpu.yaml] [--measure]

For each file (default: the two HH-RLHF test files in ../shared/data), renders every row with the config's
template and reports the padding ratio (padded tokens / real tokens) of
  plain    rows in file order, a fixed number per batch sized for the longest row (what public notebooks do)
  sorted   prefkit: longest rows first, each batch filled up to `predict.batch_tokens`
With --measure, also times the config's model predicting every row both ways, in the same run (random head:
speed does not depend on the weights), and reports rows/s and their ratio.
Writes benchmarks/results/predict_batching.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HH = ROOT.parent / "shared" / "data" / "preference" / "hh-rlhf"


def main() -> None:
    from prefkit.config import load_config
    from prefkit.core.batching import padding_ratio, predict_batches
    from prefkit.data import load_pairs
    from prefkit.rm.learners import make_learner

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, nargs="*",
                    default=[HH / "helpful-base.test.jsonl.gz", HH / "harmless-base.test.jsonl.gz"])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "rm" / "minilm_cpu.yaml")
    ap.add_argument("--measure", action="store_true", help="also time the model predicting both ways")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    missing = [str(p) for p in args.data if not p.exists()]
    if missing:
        sys.exit(f"data not found: {', '.join(missing)}")

    cfg = load_config(args.config)
    learner = make_learner(cfg)
    rows = []
    for path in args.data:
        table = load_pairs(path, cfg.data)
        ids = learner.renderer.render(table).input_ids
        lengths = np.array([len(x) for x in ids])
        row = {"data": path.name, "rows": len(ids), "mean_tokens": round(float(lengths.mean()), 1),
               "max_length": cfg.template.max_length, "batch_tokens": cfg.predict.batch_tokens}
        for name, sort in (("plain", False), ("sorted", True)):
            batches = predict_batches(lengths, cfg.predict.batch_tokens, sort)
            row[f"{name}_batches"] = len(batches)
            row[f"{name}_padding_ratio"] = round(padding_ratio(batches, lengths), 4)
        if args.measure:
            from prefkit.core.modeling import build_model
            from prefkit.rm.predictor import PredictSettings, predict_logits

            model = build_model(cfg, learner.vocab, "seq_cls", trainable=False, outputs=learner.head.outputs)
            for name, sort in (("plain", False), ("sorted", True)):
                settings = PredictSettings(learner.pad_id, cfg.predict.batch_tokens, sort, desc=name)
                _, stats = predict_logits(model, learner.head, ids, settings)
                row[f"{name}_rows_per_s"] = stats["rows_per_s"]
            row["speedup_sorted_vs_plain"] = round(row["sorted_rows_per_s"] / row["plain_rows_per_s"], 3)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    result = {"benchmark": "predict_batching", "config": str(args.config.relative_to(ROOT)),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores (CPU)", "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict_batching.json").write_text(json.dumps(result, indent=2) + "\n")
    cols = ["data", "rows", "mean_tokens", "plain_padding_ratio", "sorted_padding_ratio"]
    if args.measure:
        cols += ["plain_rows_per_s", "sorted_rows_per_s", "speedup_sorted_vs_plain"]
    md = [f"# Prediction batching\n\n`python benchmarks/predict_batching.py{' --measure' if args.measure else ''}` on "
          f"{result['machine']}; config `{result['config']}` (max_length {cfg.template.max_length}, "
          f"batch_tokens {cfg.predict.batch_tokens}). Padding ratio = padded tokens / real tokens.\n",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (args.out / "predict_batching.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
