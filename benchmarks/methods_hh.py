"""Which of the winners' methods moves a real reward model: each measured on HH-RLHF `helpful-base.test` against
the shipped decoder config, on the same grouped folds, by the paired difference of each row's score.

    python benchmarks/methods_hh.py [--variants smollm2,smollm2_smooth,...] [--folds 0,1,2,3,4]
                                    [--work runs/methods_hh] [--analyse-only]

Every variant is `prefkit cv` on the same file with the same folds (cv.seed 42, 5 grouped splits) and seeds,
one process after another. The anchor, `smollm2`, is configs/rm/smollm2_135m_cpu.yaml as shipped except for
`model.dtype=bfloat16`: bf16 autocast, 1.5x faster a step than fp32 on a CPU with AVX-512 BF16 (2.8 s against
4.1 s at 8 pairs; on a CPU without it bf16 is 30x slower, so run every variant of one comparison on the same
kind of CPU). Every variant of the same backbone takes the same dtype, so only the method differs.

A SmolLM2 fold takes 12-20 minutes on 2 cores, so this benchmark is run over several sessions: each finished
fold's out-of-fold predictions are kept in results/methods_hh/<variant>.csv.gz (committed, with the seconds and
the dtype of each fold in results/methods_hh/folds.json), and a later run trains only the folds a variant lacks.
Predictions kept are checked against the folds of this checkout's feature baseline (the same rows, the same fold
of each row) before they are used.

Analyses that need no training, on the rows every compared run has:
- each variant against the anchor: the mean per-row difference of log loss and of accuracy with its standard
  error (`prefkit.toolbox.compare.paired`), and the verdict at 2 standard errors;
- length in view for every run: the length-only rule's accuracy on the same rows, and the run's accuracy where
  the shorter answer won and where the longer won (`prefkit.toolbox.rules.length_view`);
- blends (nested: each fold's blender fitted on the other folds): the anchor with the feature baseline;
- length control after training: the anchor's logit with the part that a linear fit on the log length ratio
  explains taken out (fitted on the other folds), recalibrated: what the model knows beyond length.

Distilled students (benchmarks/distill_hh.py: nested teachers) are trained there and reported here from their kept
predictions. Writes results/methods_hh.{json,md}. HH-RLHF has no ties: a coin scores log loss ln 2 = 0.693, accuracy 0.5.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, HH, write_results  # noqa: E402
from rm_helpful import _prefkit, fold_seconds, scores  # noqa: E402

KEPT = HERE / "results" / "methods_hh"
ANCHOR = "smollm2"
# the anchor: rm/smollm2_135m_cpu as every kept fold here was trained, adapters on its last 8 layers (the shipped
# default until the 16 layers measured here replaced it), pinned so that a fold trained later is the same model
_DECODER = ("rm/smollm2_135m_cpu", ["model.dtype=bfloat16", "lora.skip_first_layers=22"])
# name: (config, overrides, what it is); "{work}" in an override is the work folder (files the benchmark writes);
# config None: kept predictions of code since changed, reported but never trained again
VARIANTS: dict[str, tuple[str | None, list[str], str]] = {
    "features": ("rm/features_baseline", [], "feature baseline (gradient boosting on text features)"),
    "features_logreg": ("rm/features_baseline", ["features.estimator=logreg"],
                        "feature baseline, logistic regression"),
    "features_no_tta": ("rm/features_baseline", ["predict.swap_tta=false"],
                        "feature baseline without swap TTA (the anchor's bt head is symmetric: prefkit skips TTA there)"),
    ANCHOR: (_DECODER[0], _DECODER[1],
             "the decoder config as shipped until session 21: SmolLM2-135M-Instruct + LoRA r16 on the last 8 of 30 "
             "layers (pinned here; 16 shipped since, the smollm2_16layers variant) + bt score "
             "head, 128 tokens a response (prompt share 0.3, middle cut), 1 epoch, lr 5e-4, bf16 autocast"),
    "smollm2_tie_random": (None, _DECODER[1],
                           "the anchor as trained before the fix of 2026-12-07 (prefkit 58168cb): a new bt head's tie "
                           "term t started random, P(tie) 0.96 before the first step on rows with no ties"),
    "smollm2_smooth": (_DECODER[0], [*_DECODER[1], "train.soft_labels={work}/smooth_0.95.csv"],
                       "label smoothing (WSDM Cup 5th): targets 0.95 / 0.05 instead of 1 / 0"),
    "smollm2_left": (_DECODER[0], [*_DECODER[1], "template.head_fraction=0.0"],
                     "truncation from the left: each text keeps its tail (LMSYS 19th)"),
    "smollm2_right": (_DECODER[0], [*_DECODER[1], "template.head_fraction=1.0"],
                      "truncation from the right: each text keeps its head"),
    "smollm2_256": (_DECODER[0], [*_DECODER[1], "template.max_length=256"],
                    "a larger budget: 256 tokens a response (2x the cost)"),
    "smollm2_2ep": (_DECODER[0], [*_DECODER[1], "train.epochs=2"], "retuning: 2 epochs"),
    "smollm2_lr1e-3": (_DECODER[0], [*_DECODER[1], "train.learning_rate=1e-3"], "retuning: lr 1e-3"),
    "smollm2_16layers": (_DECODER[0], [*_DECODER[1], "lora.skip_first_layers=14"],
                         "retuning: adapters on the last 16 of 30 layers"),
    "gemma3": ("rm/gemma3_270m_cpu", ["model.dtype=bfloat16"],
               "the other decoder backbone: Gemma 3 270M base as shipped (LoRA on the last 8 of 18 layers, bt, 128 "
               "tokens a response), bf16 autocast like the anchor"),
}
# blends of kept runs, each fitted fold by fold on the other folds (prefkit.toolbox.blend.blender_cv, as `prefkit
# blend` reports them), or a plain mean: (name, members, method, what)
BLENDS = [
    ("smollm2 + features", [ANCHOR, "features"], "simplex",
     "the anchor blended with the feature baseline (simplex weights, nested by fold)"),
    ("smollm2 + features_logreg", [ANCHOR, "features_logreg"], "simplex",
     "the anchor blended with the logistic-regression feature baseline (simplex weights, nested by fold)"),
    ("smollm2 + both feature models", [ANCHOR, "features", "features_logreg"], "simplex",
     "the anchor and both feature baselines (simplex weights, nested by fold)"),
    ("smollm2 + both feature models, stacked", [ANCHOR, "features", "features_logreg"], "stack",
     "the anchor and both feature baselines stacked (a logistic regression on their log-probabilities, nested)"),
    ("smollm2 + gemma3, mean", [ANCHOR, "gemma3"], "mean", "the two decoder backbones averaged"),
    ("three backbones + both feature models", [ANCHOR, "gemma3", "minilm", "features", "features_logreg"],
     "simplex", "SmolLM2, Gemma 3, MiniLM and both feature baselines (simplex weights, nested by fold)"),
    ("three backbones + both feature models, stacked", [ANCHOR, "gemma3", "minilm", "features", "features_logreg"],
     "stack", "the same five stacked (a logistic regression on their log-probabilities, nested by fold)"),
    ("two decoders + both feature models", [ANCHOR, "gemma3", "features", "features_logreg"], "simplex",
     "SmolLM2, Gemma 3 and both feature baselines (simplex weights, nested by fold)"),
    ("smollm2 + smollm2_tie_random, mean", [ANCHOR, "smollm2_tie_random"], "mean",
     "two anchors averaged: the same config trained twice, differing in one random draw (the tie term's start)"),
    ("smollm2_16layers + both feature models", ["smollm2_16layers", "features", "features_logreg"], "simplex",
     "the recipe blend with adapters on the last 16 layers in place of the anchor (simplex weights, nested by fold)"),
    ("smollm2_16layers + gemma3 + both feature models", ["smollm2_16layers", "gemma3", "features", "features_logreg"],
     "simplex", "the best blend with adapters on the last 16 layers in place of the anchor (simplex, nested by fold)"),
    # length control in a blend: the length-balanced models (trainsets_hh.py) in place of, or beside, the recipe's
    ("smollm2_length_balanced + both feature models", ["smollm2_length_balanced", "features", "features_logreg"],
     "simplex", "length-balanced training (8 layers) in place of the anchor, with both feature baselines (simplex, "
     "nested by fold)"),
    ("smollm2_16layers + smollm2_length_balanced + both feature models",
     ["smollm2_16layers", "smollm2_length_balanced", "features", "features_logreg"], "simplex",
     "the recipe blend with the length-balanced model (8 layers) beside its 16-layer model (simplex, nested by fold)"),
    ("smollm2_16layers_length_balanced + both feature models",
     ["smollm2_16layers_length_balanced", "features", "features_logreg"], "simplex",
     "length-balanced training with 16 layers in place of the recipe's model, with both feature baselines "
     "(simplex, nested by fold)"),
    # the decoders alone: no length-driven feature model for the blender to weigh back in
    ("smollm2_16layers + smollm2_length_balanced + gemma3", ["smollm2_16layers", "smollm2_length_balanced", "gemma3"],
     "simplex", "the decoders alone: 16 layers, length-balanced (8 layers) and Gemma 3 (simplex, nested by fold)"),
    ("smollm2_16layers + smollm2_16layers_length_balanced + gemma3",
     ["smollm2_16layers", "smollm2_16layers_length_balanced", "gemma3"], "simplex",
     "the decoders alone: 16 layers, length-balanced with 16 layers and Gemma 3 (simplex, nested by fold)"),
]
# more blends set against each other, paired: (blend, reference); a SmolLM2 variant in place of the anchor, and
# Gemma 3 or a length-balanced model added to the blend of the SmolLM2 config shipped since session 21
SWAPPED = [("smollm2_16layers + both feature models", "smollm2 + both feature models"),
           ("smollm2_16layers + gemma3 + both feature models", "two decoders + both feature models"),
           ("smollm2_16layers + gemma3 + both feature models", "smollm2_16layers + both feature models"),
           ("smollm2_length_balanced + both feature models", "smollm2 + both feature models"),
           ("smollm2_16layers + smollm2_length_balanced + both feature models",
            "smollm2_16layers + both feature models"),
           ("smollm2_16layers_length_balanced + both feature models", "smollm2_16layers + both feature models"),
           ("smollm2_16layers + smollm2_length_balanced + gemma3", "smollm2_16layers + both feature models"),
           ("smollm2_16layers + smollm2_16layers_length_balanced + gemma3", "smollm2_16layers + both feature models")]
RECIPE = "smollm2 + both feature models"  # the 8-layer recipe blend: what a larger blend's members add is set against it
COLUMNS = ["variant", "folds", "rows", "log loss", "accuracy", "ECE", "vs anchor: log loss", "vs anchor: accuracy",
           "verdict", "length rule", "where shorter won", "vs anchor where shorter won", "where longer won", "wall a fold"]


def kept(name: str) -> pd.DataFrame | None:
    path = KEPT / f"{name}.csv.gz"
    return pd.read_csv(path, dtype={"id": str}).set_index("id") if path.exists() else None


def keep(name: str, frame: pd.DataFrame, seconds: dict[int, float], dtype: str) -> None:
    """Merge a run's new folds into the kept predictions (atomic rewrite) and their wall times into folds.json."""
    from prefkit.io import write_text

    KEPT.mkdir(parents=True, exist_ok=True)
    # two runs of this benchmark (one a core, even of one variant on other folds) may keep folds at the same time:
    # one keeper at a time, from reading the kept predictions to rewriting folds.json, each file rewritten atomically
    with open(KEPT / ".folds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = kept(name)
        new = frame if old is None else pd.concat([old[~old["fold"].isin(frame["fold"].unique())], frame])
        tmp = KEPT / f".{name}.csv.gz.tmp"
        # gzip without a time stamp: the same predictions kept again give the same bytes (no change for git to
        # show); a temporary file of a fixed name, not prefkit.io.atomic_path's random one: gzip writes the name in
        # its header
        new.sort_values(["fold"], kind="stable").round(6).to_csv(tmp, compression={"method": "gzip", "mtime": 0})
        os.replace(tmp, KEPT / f"{name}.csv.gz")
        book_path = KEPT / "folds.json"
        book = json.loads(book_path.read_text()) if book_path.exists() else {}
        for fold in sorted(frame["fold"].unique()):
            book.setdefault(name, {})[str(fold)] = {"seconds": seconds.get(int(fold)), "dtype": dtype,
                                                   "date": time.strftime("%Y-%m-%d")}
        write_text(book_path, json.dumps(book, indent=1, sort_keys=True) + "\n")


def prepare(work: Path, reference: pd.DataFrame, prob_cols: list[str]) -> None:
    """Files variants read: the label-smoothed targets of every row (soft labels of the training rows): 0.95 on
    the winner, 0.05 on the other response, 0 on a tie (HH-RLHF has none; the file's columns are the lmsys
    competition's, which HH-RLHF is read as)."""
    smooth = work / "smooth_0.95.csv"
    if not smooth.exists():
        targets = np.zeros((len(reference), len(prob_cols)))
        a_won = (reference["label"] == "a").to_numpy()
        targets[:, 0] = np.where(a_won, 0.95, 0.05)
        targets[:, 1] = 1.0 - targets[:, 0]
        pd.DataFrame(targets, index=reference.index, columns=prob_cols).to_csv(smooth)


def run(name: str, folds: list[int], work: Path, data: Path, reference: pd.DataFrame) -> pd.DataFrame:
    """The variant's out-of-fold predictions of `folds`: kept ones, and the missing folds trained now."""
    config, overrides, _ = VARIANTS[name]
    have = kept(name)
    done = set() if have is None else set(have["fold"].unique())
    missing = [f for f in folds if f not in done]
    if missing and config is None:
        raise SystemExit(f"{name}: folds {missing} are not kept, and this variant is the code of an older prefkit "
                         f"(kept predictions only): {VARIANTS[name][2]}")
    if missing:
        out = work / name
        args = ["cv", config, f"data.train={data}", f"output_dir={out}",
                *[o.replace("{work}", str(work)) for o in overrides], f"cv.folds=[{','.join(map(str, missing))}]"]
        if (out / "run.json").exists():
            args.insert(1, "--resume")
        _prefkit(args, work / f"{name}.log")
        oof = pd.read_csv(out / "oof.csv", dtype={"id": str}).set_index("id")
        fresh = oof[oof["fold"].isin(missing)]
        secs = dict(zip(sorted(missing), fold_seconds(out))) if name not in ("features", "features_logreg") else {}
        dtype = next((o.split("=")[1] for o in overrides if o.startswith("model.dtype=")), "float32")
        keep(name, fresh, secs, dtype)
        have = kept(name)
    frame = have[have["fold"].isin(folds)]
    ref = reference.loc[frame.index]
    if not (ref["fold"] == frame["fold"]).all() or not (ref["label"] == frame["label"]).all():
        raise SystemExit(f"{name}: kept predictions have other folds or labels than this checkout's data; "
                         f"delete {KEPT / (name + '.csv.gz')} to train them again")
    return frame


def log_length_ratio(table, ids) -> np.ndarray:
    from prefkit.toolbox.rules import last_turn_lengths

    la, lb = last_turn_lengths(table)
    z = pd.Series(np.log1p(la) - np.log1p(lb), index=table.frame["id"].astype(str))
    return z.loc[ids].to_numpy()


def length_removed(logit: np.ndarray, z: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """P(A) from the logit with its linear dependence on the log length ratio taken out, fitted on the other folds
    and recalibrated there by a one-feature logistic regression: nested, so out of fold."""
    from sklearn.linear_model import LogisticRegression

    out = np.zeros(len(logit))
    for k in np.unique(folds):
        tr, va = folds != k, folds == k
        slope, intercept = np.polyfit(z[tr], logit[tr], 1)
        resid = logit - slope * z - intercept
        lr = LogisticRegression().fit(resid[tr, None], labels[tr] == 0)
        out[va] = lr.predict_proba(resid[va, None])[:, 1]
    return out


def describe(name: str, probs: np.ndarray, frame: pd.DataFrame, table, anchor: pd.DataFrame | None,
             what: str, seconds: list[float]) -> dict:
    from prefkit.toolbox.compare import paired, verdict
    from prefkit.toolbox.rules import length_groups, length_view

    labels = frame["label"].to_numpy()
    sub = table.subset(table.frame["id"].astype(str).isin(frame.index).to_numpy())
    order = pd.Series(np.arange(len(frame)), index=frame.index).loc[sub.frame["id"].astype(str)].to_numpy()
    view = length_view(sub, probs[order])
    row = {"variant": name, "what": what, "folds": ",".join(map(str, sorted(frame["fold"].unique()))),
           "rows": len(frame), **scores(probs, labels),
           "length rule": view["rule_accuracy"], "where shorter won": view["shorter_won"]["accuracy"],
           "where longer won": view["longer_won"]["accuracy"], "length view": view,
           "wall a fold": f"{np.mean(seconds) / 60:.1f} min" if seconds else "", "seconds a fold": seconds}
    if anchor is not None and name != ANCHOR:
        prob_cols = [c for c in anchor.columns if c.startswith("winner_")]
        diff = paired(anchor.loc[frame.index, prob_cols].to_numpy(), probs, labels, frame["fold"].to_numpy())
        ll, acc = diff["logloss"], diff["accuracy"]
        row |= {"vs anchor: log loss": f"{ll['mean']:+.4f} ± {ll['se']:.4f}",
                "vs anchor: accuracy": f"{acc['mean']:+.4f} ± {acc['se']:.4f}",
                "verdict": verdict(name, ANCHOR, diff).split(": ", 1)[-1], "paired": diff}
        # length control is judged where the shorter answer won: the same comparison on those rows alone
        shorter = length_groups(sub)[0]
        d = paired(anchor.loc[frame.index, prob_cols].to_numpy()[order][shorter], probs[order][shorter],
                   labels[order][shorter], frame["fold"].to_numpy()[order][shorter])["accuracy"]
        row["vs anchor where shorter won"] = f"{d['mean']:+.4f} ± {d['se']:.4f}" if d["se"] is not None else ""
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/methods_hh")
    ap.add_argument("--data", default=str(HH / "helpful-base.test.jsonl.gz"))
    ap.add_argument("--variants", default=f"features,{ANCHOR}")
    ap.add_argument("--folds", default="0,1,2,3,4", help="folds to train for the variants named in --variants")
    ap.add_argument("--analyse-only", action="store_true", help="train nothing: report the kept predictions")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.recipes.common import load_labelled
    from prefkit.toolbox.blend import blender_cv

    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark reads HH-RLHF from ../shared/data")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    wanted = args.variants.split(",")
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    t0 = time.perf_counter()
    all_folds = [0, 1, 2, 3, 4]
    # the reference of rows and folds: the feature baseline over every fold (minutes), trained in each checkout
    if not (work / "features" / "metrics.json").exists():
        _prefkit(["cv", "rm/features_baseline", f"data.train={data}", f"output_dir={work / 'features'}"],
                 work / "features.log")
    reference = pd.read_csv(work / "features" / "oof.csv", dtype={"id": str}).set_index("id")
    keep("features", reference, {}, "float32")
    prob_cols = [c for c in reference.columns if c.startswith("winner_")]
    prepare(work, reference, prob_cols)
    table = load_labelled(str(data), load_config(work / "features" / "config.yaml"))

    folds = [int(f) for f in args.folds.split(",")]
    frames = {}
    for name in VARIANTS:
        if name in wanted and not args.analyse_only:
            run(name, folds, work, data, reference)  # trains the folds it lacks
        if (have := kept(name)) is not None:  # the report: every kept fold, not only those asked for now
            frames[name] = run(name, sorted(set(have["fold"].unique())), work, data, reference)
    from distill_hh import DISTILLED  # students trained by distill_hh.py: reported here from their kept predictions
    from trainsets_hh import TRAINSETS  # fold training rows changed (pseudo-labels, length-balanced): trainsets_hh.py

    for name, what in {**DISTILLED, **TRAINSETS}.items():
        if name not in VARIANTS and (have := kept(name)) is not None:
            VARIANTS[name] = (None, [], what)
            frames[name] = run(name, sorted(set(have["fold"].unique())), work, data, reference)
    book = json.loads((KEPT / "folds.json").read_text()) if (KEPT / "folds.json").exists() else {}
    anchor = frames.get(ANCHOR)
    rows = []
    for name, frame in frames.items():
        secs = [v["seconds"] for v in book.get(name, {}).values() if v.get("seconds")]
        if anchor is not None and name != ANCHOR:
            frame = frame.loc[frame.index.intersection(anchor.index)]
        rows.append(describe(name, frame[prob_cols].to_numpy(), frame, table, anchor, VARIANTS[name][2], secs))

    added = []
    if anchor is not None and "features" in frames:
        ids = anchor.index
        labels = anchor["label"].to_numpy()
        fold_of = anchor["fold"].to_numpy()
        p_anchor = anchor[prob_cols].to_numpy()
        blends, holds = {}, {}
        for name, members, method, what in BLENDS:
            if all(m in frames and frames[m].index.isin(ids).sum() == len(ids) for m in members):
                probs = [frames[m].loc[ids, prob_cols].to_numpy() for m in members]
                blends[name] = np.mean(probs, axis=0) if method == "mean" else blender_cv(probs, labels, fold_of, method)
                holds[name] = set(members)
                rows.append(describe(name, blends[name], anchor, table, anchor, what, []))
        # a blend's member is worth its training only if it adds to the blend without it: each blend of more
        # members than the recipe blend's (all of them among its own) against the recipe blend, paired per row
        from prefkit.toolbox.compare import paired

        larger = [(n, RECIPE) for n in blends if RECIPE in holds and holds[n] > holds[RECIPE]]
        for name, reference in larger + [(n, r) for n, r in SWAPPED if n in blends and r in blends]:
            d = paired(blends[reference], blends[name], labels, fold_of)
            added.append(f"{name} against {reference}: {d['logloss']['mean']:+.4f} ± {d['logloss']['se']:.4f} log "
                         f"loss, {d['accuracy']['mean']:+.4f} ± {d['accuracy']['se']:.4f} accuracy")
        y = (labels != "a").astype(int)  # 0: A won
        p = np.clip(p_anchor[:, 0] / p_anchor[:, :2].sum(axis=1), 1e-6, 1 - 1e-6)
        pa = length_removed(np.log(p / (1 - p)), log_length_ratio(table, ids), y, fold_of)
        removed = np.zeros_like(p_anchor)
        removed[:, 0], removed[:, 1] = pa, 1 - pa
        rows.append(describe("smollm2, length removed", removed, anchor, table, anchor,
                             "length control after training: the anchor's logit less its linear fit on the log "
                             "length ratio (fitted on the other folds), recalibrated", []))
    intro = (__doc__.split("\n\n")[0] + "\n\nHH-RLHF has no ties: a coin scores log loss 0.693, accuracy 0.5. "
             "`vs anchor`: the mean per-row difference (variant minus anchor; a negative log loss is better) ± its "
             "standard error, on the rows both predicted. Kept predictions in results/methods_hh/; "
             f"this report took {time.perf_counter() - t0:.0f} s."
             + ("\n\nWhat a member adds to a blend (the larger blend minus the recipe blend, per row), and what a "
                "SmolLM2 variant in place of the anchor, or Gemma 3 added to it, changes in a blend: "
                + "; ".join(added) + "." if added else ""))
    write_results("methods_hh", Path(args.out), {"data": data.name, "cv": "5 grouped folds, seed 42",
                                                 "anchor": ANCHOR}, COLUMNS, rows, intro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
