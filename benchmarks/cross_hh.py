"""The methods of issue 38 judged across sets: fold-0 models trained on HH-RLHF `helpful-base.test` (methods_hh's
fold 0: the four other folds) scoring `harmless-base.test`, where the labellers preferred the less harmful answer,
often the shorter one or a refusal (the rule "the longer last answer wins" is right on 0.445 of its pairs). A way of
training that rewards length less for itself should lose less here: this is the cross-set half of the length
control judgement (the other half, the accuracy where the shorter answer won, is in methods_hh's report).

    python benchmarks/cross_hh.py [--models smollm2,smollm2_length_balanced,...] [--rows 1000]

Each model is one trained fold-0 model (a cv run's fold0, or a train run's model), asked once for the first --rows
pairs of `harmless-base.test` (file order); its probabilities are kept in results/methods_hh/cross/<model>.csv.gz
(committed: a later run asks only the models not kept, and refuses kept ones of other rows). Reported: each model's
log loss and accuracy there, its accuracy where the shorter and where the longer answer won, and its paired
difference against the anchor's fold-0 model on the same rows (`prefkit.toolbox.compare.paired`).

One row needs no model: "smollm2, length removed", the anchor's harmless-base logits less the linear fit on the log
length ratio that the anchor's helpful-base out-of-fold predictions give (all 5 folds, fitted there, recalibrated
there; no harmless-base label read): does methods_hh's length control after training transfer?

Cost: a SmolLM2 model scores about 4 sequences a second on one thread in bf16 (two a pair): about 8-9 min for 1,000
pairs; the feature model, seconds. HH-RLHF has no ties: a coin scores log loss 0.693.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import methods_hh as mh  # noqa: E402
from harness import HERE, HH, write_results  # noqa: E402
from rm_helpful import scores  # noqa: E402

# name: (run folder, fold of a cv run or None for a train run's model, what it is)
MODELS: dict[str, tuple[str, int | None, str]] = {
    "features": ("runs/methods_hh/features", 0, "the feature baseline's fold-0 model (hist_gb)"),
    mh.ANCHOR: ("runs/methods_hh/smollm2", 0, "the anchor's fold-0 model"),
    "smollm2_length_balanced": ("runs/trainsets_hh/smollm2_length_balanced/fold0", None,
                                "length-balanced training (trainsets_hh): shorter-won pairs copied to half"),
    "smollm2_pseudo": ("runs/trainsets_hh/smollm2_pseudo/fold0", None, "pseudo-labels of fold 0 (trainsets_hh)"),
    "smollm2_left": ("runs/methods_hh/smollm2_left", 0, "truncation from the left (methods_hh)"),
    "smollm2_right": ("runs/methods_hh/smollm2_right", 0, "truncation from the right (methods_hh)"),
    "gemma3": ("runs/methods_hh/gemma3", 0, "Gemma 3 270M as shipped, bf16: its fold-0 model (methods_hh)"),
    # trained in session 20 by a methods_hh variant since folded into distill_hh's `minilm` (the same config)
    "minilm": ("runs/methods_hh/minilm", 0, "MiniLM-L6 as shipped: its fold-0 model"),
    "minilm_distill_smollm2": ("runs/distill_hh/students/minilm_distill_smollm2/fold0", 0,
                               "MiniLM distilled from the nested SmolLM2 teachers, fold 0 (distill_hh)"),
}
REMOVED = f"{mh.ANCHOR}, length removed"
COLUMNS = ["variant", "rows", "log loss", "accuracy", "ECE", "vs anchor: log loss", "vs anchor: accuracy",
           "verdict", "length rule", "where shorter won", "vs anchor where shorter won", "where longer won", "seconds"]


def rows_of(data: Path, n: int, work: Path) -> Path:
    """The first `n` pairs of `data` (file order) as a file of their own, named as the source so ids stay."""
    from prefkit.io import write_text

    small = work / f"first{n}" / data.name.removesuffix(".gz")
    if not small.exists():
        with gzip.open(data, "rt", encoding="utf-8", newline="\n") as src:
            write_text(small, "".join(line for _, line in zip(range(n), src)))
    return small


def ask(name: str, rows_file: Path, kept: Path) -> pd.DataFrame:
    """Model `name`'s probabilities of the rows: kept, or asked now (one model, in this process) and kept."""
    from prefkit.data import load_pairs
    from prefkit.io import atomic_path
    from prefkit.rm.run import Run

    path = kept / f"{name}.csv.gz"
    if not path.exists():
        folder, fold, _ = MODELS[name]
        run = Run.open(folder)
        table = load_pairs(rows_file, run.config.data)
        t0 = time.perf_counter()
        probs, _ = run.predict(table) if fold is None else run.predict_fold(fold, table)
        cols = [f"winner_{c}" for c in ("model_a", "model_b", "tie")][:probs.shape[1]]
        frame = pd.DataFrame(probs, columns=cols, index=pd.Index(table.frame["id"].astype(str), name="id"))
        frame.insert(0, "label", table.frame["label"].to_numpy())
        frame["seconds"] = round(time.perf_counter() - t0, 1)
        kept.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
            frame.round(6).to_csv(fh)
        print(f"{name}: {len(frame)} rows in {frame['seconds'].iloc[0]:.0f} s", flush=True)
    return pd.read_csv(path, dtype={"id": str}).set_index("id")


def length_removed_across(anchor_oof: pd.DataFrame, helpful, cross: pd.DataFrame, harmless) -> np.ndarray:
    """P(A) on the cross set from the anchor's logit less the linear fit on the log length ratio, fitted (with the
    recalibration) on the anchor's helpful-base out-of-fold predictions: no cross-set label read."""
    from sklearn.linear_model import LogisticRegression

    def logit(frame):
        p = np.clip(frame["winner_model_a"] / (frame["winner_model_a"] + frame["winner_model_b"]), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p)).to_numpy()

    z_fit = mh.log_length_ratio(helpful, anchor_oof.index)
    slope, intercept = np.polyfit(z_fit, logit(anchor_oof), 1)
    resid = logit(anchor_oof) - slope * z_fit - intercept
    lr = LogisticRegression().fit(resid[:, None], (anchor_oof["label"] == "a").to_numpy())
    z = mh.log_length_ratio(harmless, cross.index)
    return lr.predict_proba((logit(cross) - slope * z - intercept)[:, None])[:, 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=f"features,{mh.ANCHOR},smollm2_length_balanced",
                    help=f"models to ask (known: {', '.join(MODELS)}); kept ones are reported too")
    ap.add_argument("--rows", type=int, default=1000, help="the first ROWS pairs of the cross set")
    ap.add_argument("--data", default=str(HH / "harmless-base.test.jsonl.gz"))
    ap.add_argument("--helpful", default=str(HH / "helpful-base.test.jsonl.gz"))
    ap.add_argument("--work", default="runs/cross_hh")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--kept", default=str(mh.KEPT / "cross"), help="folder of the kept probabilities")
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.recipes.common import load_labelled
    from prefkit.toolbox.compare import paired, verdict
    from prefkit.toolbox.rules import length_groups, length_view

    data, work, kept = Path(args.data), Path(args.work), Path(args.kept)
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark reads HH-RLHF from ../shared/data")
    wanted = [m for m in args.models.split(",") if m]
    unknown = sorted(set(wanted) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; known: {sorted(MODELS)}")
    t0 = time.perf_counter()
    rows_file = rows_of(data, args.rows, work)
    harmless = load_labelled(str(rows_file), load_config(None))
    ids = harmless.frame["id"].astype(str)
    frames = {}
    for name in MODELS:
        if name in wanted or (kept / f"{name}.csv.gz").exists():
            frame = ask(name, rows_file, kept)
            if set(frame.index) != set(ids) or not (frame.loc[ids, "label"].to_numpy() == harmless.frame["label"]).all():
                raise SystemExit(f"{kept / (name + '.csv.gz')}: other rows than the first {args.rows} of {data.name}; "
                                 "delete it to ask the model again, or give the --rows it was asked with")
            frames[name] = frame.loc[ids]
    anchor_oof = mh.kept(mh.ANCHOR)
    if mh.ANCHOR in frames and anchor_oof is not None:
        helpful = load_labelled(args.helpful, load_config(None))
        pa = length_removed_across(anchor_oof, helpful, frames[mh.ANCHOR], harmless)
        frames[REMOVED] = pd.DataFrame({"label": frames[mh.ANCHOR]["label"], "winner_model_a": pa,
                                        "winner_model_b": 1 - pa, "winner_tie": 0.0}, index=frames[mh.ANCHOR].index)
    labels = harmless.frame["label"].to_numpy()
    one_fold = np.zeros(len(ids), int)
    shorter = length_groups(harmless)[0]  # the pairs where the shorter answer won: length control's own test
    rows = []
    for name, frame in frames.items():
        cols = [c for c in frame.columns if c.startswith("winner_")]
        probs = frame[cols].to_numpy()
        view = length_view(harmless, probs)
        row = {"variant": name, "what": MODELS[name][2] if name in MODELS else "length control after training, "
               "fitted on helpful-base", "rows": len(frame), **scores(probs, labels),
               "length rule": view["rule_accuracy"], "where shorter won": view["shorter_won"]["accuracy"],
               "where longer won": view["longer_won"]["accuracy"], "length view": view,
               "seconds": float(frame["seconds"].iloc[0]) if "seconds" in frame else None}
        if name != mh.ANCHOR and mh.ANCHOR in frames:
            base = frames[mh.ANCHOR][cols].to_numpy()
            diff = paired(base, probs, labels, one_fold)
            ll, acc = diff["logloss"], diff["accuracy"]
            row |= {"vs anchor: log loss": f"{ll['mean']:+.4f} ± {ll['se']:.4f}",
                    "vs anchor: accuracy": f"{acc['mean']:+.4f} ± {acc['se']:.4f}",
                    "verdict": verdict(name, mh.ANCHOR, diff).split(": ", 1)[-1], "paired": diff}
            d = paired(base[shorter], probs[shorter], labels[shorter], one_fold[shorter])["accuracy"]
            row["vs anchor where shorter won"] = f"{d['mean']:+.4f} ± {d['se']:.4f}"
        rows.append(row)
    intro = (__doc__.split("\n\n")[0] + f"\n\nThe first {args.rows} pairs of `{data.name}`; every model trained on "
             "methods_hh's folds 1-4 of helpful-base.test. `vs anchor`: the mean per-row difference (model minus the "
             "anchor's fold-0 model; a negative log loss is better) ± its standard error. "
             f"This run took {time.perf_counter() - t0:.0f} s.")
    write_results("cross_hh", Path(args.out), {"data": data.name, "rows": args.rows, "trained on": "helpful-base.test "
                                               "folds 1-4 (methods_hh)"}, COLUMNS, rows, intro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
