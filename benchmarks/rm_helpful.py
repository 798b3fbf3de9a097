"""Which CPU reward model learns real human preferences: grouped 5-fold CV on HH-RLHF `helpful-base.test`.

    python benchmarks/rm_helpful.py [--work runs/rm_helpful] [--variants features,minilm_bt,...] [--cross VARIANTS|all]

Every variant is `prefkit cv` on the same file with the same folds (cv.seed 42, 5 grouped splits), in its own
process, one after another (a finished run in --work is reused, an interrupted one resumed). For each: out-of-fold
log loss, accuracy and ECE over the folds it trained, the wall time a fold (between consecutive folds' saved
validation predictions: model load, rendering, training and prediction), and its OOF blended with the feature
baseline's (prefkit's simplex blender, fitted fold by fold on the other folds: nested, so the blend's score is
out of fold too; a variant that trained one fold has its rows cut into 5 seeded parts for this). Decoder
variants train the folds given in VARIANTS only (CPU time); their rows are compared with the same folds' rows
of the others. With --cross, each run's fold models (averaged, as `prefkit predict`
does) score `harmless-base.test`: trained on helpfulness, judged on harmlessness (one SmolLM2 fold model took
19 min there on 2 cores in session 15: 4,624 sequences at about 4 a second).

Writes results/rm_helpful.{json,md}. HH-RLHF has no ties: a coin scores log loss ln 2 = 0.693 and accuracy 0.5.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, ROOT, write_results  # noqa: E402

HH = ROOT.parent / "shared" / "data" / "preference" / "hh-rlhf"
_GEMMA3_BT = ["model.head=bt", "template.max_length=128", "template.prompt_share=0.3", "train.swap_augment=none",
              "train.batch_size=8", "train.learning_rate=5e-4", "lora.skip_first_layers=10",
              "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"]
# name: (config, overrides, folds (None: all), what it is)
VARIANTS: dict[str, tuple[str, list[str], list[int] | None, str]] = {
    "features": ("rm/features_baseline", [], None, "feature baseline (gradient boosting on text features)"),
    "minilm_bt_128": ("rm/minilm_cpu", ["model.head=bt", "template.max_length=128"], None,
                  "MiniLM-L6 cross-encoder, full fine-tune, bt, 128 tokens a response, 2 epochs"),
    "minilm_cls3_128": ("rm/minilm_cpu", ["model.head=cls3", "template.max_length=128"], None,
                        "MiniLM-L6, cls3 (prompt + A + B in 128 tokens), 2 epochs"),
    # the SmolLM2 rows pin adapters on the last 8 layers: the shipped config's layers when they were measured
    "smollm2_bt_128": ("rm/smollm2_135m_cpu", ["lora.skip_first_layers=22"], [0],
                       "the shipped decoder config on fold 0 (run again after the padding fix of session 14)"),
    "smollm2_cpu": ("rm/smollm2_135m_cpu", ["lora.skip_first_layers=22"], None,
                    "the shipped decoder config: SmolLM2-135M-Instruct + LoRA r16 on the last 8 of 30 layers + score "
                    "head, bt, 128 tokens a response, fp32, 1 epoch"),
    "smollm2_cls3_128": ("rm/smollm2_135m_cpu", ["model.head=cls3", "train.swap_augment=random",
                                                 "lora.skip_first_layers=22"], [0],
                         "the same with the 3-class pair head (prompt + A + B in 128 tokens)"),
    "smollm2_bt_128_nf4": ("rm/smollm2_135m_cpu", ["template.max_length=128", "lora.skip_first_layers=22",
                                               "train.epochs=1", "train.learning_rate=5e-4",
                                               "quantization.mode=nf4"], [0],
                       "the same with nf4 weights (bitsandbytes, the GPU configs' path)"),
    "gemma3_bt_128": ("rm/gemma3_270m_cpu", _GEMMA3_BT, [0],
                      "Gemma 3 270M base (the gemma3 extra) in the SmolLM2 config's shape: LoRA on the last 8 of 18 "
                      "layers, bt, 128 tokens a response, fp32, 1 epoch"),
    "gemma3_cpu": ("rm/gemma3_270m_cpu", _GEMMA3_BT, None, "the same over all five folds"),
}
COLUMNS = ["variant", "folds", "rows", "log loss", "accuracy", "ECE", "blend with features: log loss",
           "blend: accuracy", "wall a fold", "harmless-base: log loss", "harmless-base: accuracy"]


def _prefkit(args: list[str], log: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; from prefkit.cli import main; sys.exit(main())", *args]
    print("$ prefkit " + " ".join(args), flush=True)
    with open(log, "a") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=os.environ.copy()).returncode
    if rc:
        raise SystemExit(f"prefkit {args[0]} failed (exit {rc}); see {log}")


def run_variant(name: str, work: Path, data: Path) -> Path:
    config, overrides, folds, _ = VARIANTS[name]
    out = work / name
    if (out / "metrics.json").exists():
        return out
    args = ["cv", config, f"data.train={data}", f"output_dir={out}", *overrides]
    if folds is not None:
        args.append(f"cv.folds=[{','.join(map(str, folds))}]")
    if out.exists():
        args.insert(1, "--resume")
    _prefkit(args, work / f"{name}.log")
    return out


def fold_seconds(run: Path) -> list[float]:
    """Wall time of each fold this run trained: from the run's (last) start, its config.yaml, or the previous
    fold's saved validation predictions to this fold's. Folds saved before that start (kept by --resume, or
    copied in from a run that trained them) are not timed here."""
    start = (run / "config.yaml").stat().st_mtime
    out, prev = [], start
    for end in sorted(p.stat().st_mtime for p in run.glob("fold*/valid_predictions.npy")):
        if end > start:
            out.append(end - max(prev, start))
        prev = end
    return out


def scores(probs: np.ndarray, labels) -> dict:
    from prefkit.metrics import score

    s = score(probs, labels)
    return {"log loss": round(s["logloss"], 4), "accuracy": round(s["accuracy"], 4), "ECE": round(s["ece"], 4)}


def cross_set(run: Path, work: Path, cross: Path) -> dict:
    from prefkit.config import load_config
    from prefkit.recipes.common import load_labelled

    out = work / "cross" / run.name
    out.parent.mkdir(parents=True, exist_ok=True)
    if not (out / "probabilities.csv").exists():
        _prefkit(["predict", "--run", str(run), "--test", str(cross), "--out", str(work / "cross" / f"{run.name}.csv"),
                  f"output_dir={out}"],
                 work / f"{run.name}.cross.log")
    table = load_labelled(str(cross), load_config(run / "config.yaml"))
    probs = pd.read_csv(out / "probabilities.csv").set_index("id").loc[table.frame["id"]]
    s = scores(probs.to_numpy(), table.frame["label"])
    return {"harmless-base: log loss": s["log loss"], "harmless-base: accuracy": s["accuracy"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/rm_helpful")
    ap.add_argument("--data", default=str(HH / "helpful-base.test.jsonl.gz"))
    ap.add_argument("--cross-data", default=str(HH / "harmless-base.test.jsonl.gz"))
    ap.add_argument("--variants", default="features,minilm_bt_128,smollm2_cpu")
    ap.add_argument("--cross", default="", help="variants (comma-separated; 'all': every one) whose fold models also "
                                                "score harmless-base.test")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()

    from prefkit.toolbox.blend import blender_cv

    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark reads HH-RLHF from ../shared/data")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = args.variants.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    if "features" not in names:
        names.insert(0, "features")
    t0 = time.perf_counter()
    runs = {name: run_variant(name, work, data) for name in names}
    oof = {name: pd.read_csv(run / "oof.csv").set_index("id") for name, run in runs.items()}
    prob_cols = [c for c in oof["features"].columns if c.startswith("winner_")]
    rows = []
    for name, run in runs.items():
        frame = oof[name]
        feats = oof["features"].loc[frame.index]
        assert (feats["fold"] == frame["fold"]).all(), f"{name}: folds differ from the feature baseline's"
        labels = frame["label"].to_numpy()
        secs = fold_seconds(run) if name != "features" else []
        row = {"variant": name, "what": VARIANTS[name][3], "folds": ",".join(map(str, sorted(frame["fold"].unique()))),
               "rows": len(frame), **scores(frame[prob_cols].to_numpy(), labels),
               "wall a fold": f"{np.mean(secs) / 60:.1f} min" if secs else "",
               "seconds a fold": [round(s, 1) for s in secs],
               "command": f"prefkit cv {VARIANTS[name][0]} data.train=<helpful-base.test> "
                          + " ".join(VARIANTS[name][1])
                          + (f" cv.folds={VARIANTS[name][2]}" if VARIANTS[name][2] is not None else "")}
        if name != "features":
            groups = frame["fold"].to_numpy()
            if len(set(groups)) == 1:  # one fold trained: the blend is fitted across 5 seeded parts of its rows
                groups = np.random.default_rng(0).permutation(len(frame)) % 5
            blended = blender_cv([frame[prob_cols].to_numpy(), feats[prob_cols].to_numpy()], labels, groups, "simplex")
            b = scores(blended, labels)
            row |= {"blend with features: log loss": b["log loss"], "blend: accuracy": b["accuracy"]}
        if args.cross == "all" or name in args.cross.split(","):
            row |= cross_set(run, work, Path(args.cross_data))
        rows.append(row)
    # the baseline on exactly the rows of each fold subset, so decoder rows on fold 0 have a comparison
    for subset in sorted({r["folds"] for r in rows} - {rows[0]["folds"]}):
        folds = [int(f) for f in subset.split(",")]
        frame = oof["features"][oof["features"]["fold"].isin(folds)]
        rows.append({"variant": f"features on folds {subset}", "folds": subset, "rows": len(frame),
                     **scores(frame[prob_cols].to_numpy(), frame["label"].to_numpy())})
    intro = (__doc__.split("\n\n")[0] + "\n\nHH-RLHF has no ties: a coin scores log loss 0.693, accuracy 0.5. "
             f"Runs in {work}; this collection took {time.perf_counter() - t0:.0f} s.")
    write_results("rm_helpful", Path(args.out), {"data": data.name, "cv": "5 grouped folds, seed 42"},
                  COLUMNS, rows, intro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
