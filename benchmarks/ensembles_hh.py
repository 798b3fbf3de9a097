"""Ensembles measured on real preferences: fold models averaged, adapters merged into one, several seeds against
several folds (MAP 2025 1st: seeds beat folds), each against the single full-data model, on HH-RLHF
`helpful-base.test` rows none of them trained on, by the paired difference of each row's score.

    python benchmarks/ensembles_hh.py [--outer 0,1] [--seeds 1,2] [--work runs/ensembles_hh] [--analyse-only]

Design. Outer fold k of methods_hh's grouped folds (the same rows and folds: methods_hh's feature baseline, kept in
results/methods_hh/features.csv.gz, is the reference of folds) is the held-out set; the other four folds are the
training rows, written once as an LMSYS CSV (`write_lmsys_csv`: the ids and A/B orders of the HH-RLHF reading,
checked by reading it back). Every model is the anchor's config (methods_hh's: rm/smollm2_135m_cpu with
model.dtype=bfloat16) trained on those rows, and predicts fold k's rows:

- the single full-data model: the anchor's own out-of-fold predictions of fold k (methods_hh's `smollm2` run, whose
  fold-k model trained on the four other folds), read from results/methods_hh/smollm2.csv.gz, never trained here;
- inner fold models, four models of 3/5 of the rows each, each predicting fold k alone. `--inner teachers` (the
  default): distill_hh's SmolLM2 teacher pairs {k, j} (j != k), each trained on the 3 folds other than k and j
  with the anchor's config: a 4-fold inner cv over the training folds on methods_hh's own folds, whose predictions
  of fold k distill_hh keeps (results/methods_hh/teachers/smollm2/pair*.csv.gz) and whose run folders it leaves in
  its work folder (runs/distill_hh/teachers/smollm2/pair*: the merges read them): the models the distillation of
  fold k's student needs anyway, so no inner model is trained twice. `--inner cv`: `prefkit cv CONFIG
  data.train=<the four folds> cv.n_splits=4` (grouped by prompt anew), each fold model predicting fold k
  (`Run.open(...).predict_fold`): what a smoke run does, having no teachers;
  (a) the fold average: their probabilities averaged, as `prefkit predict --run` of that cv run averages them;
- (b) adapters merged into one: `prefkit merge --run <inner cv>`, or one `--run` for each teacher pair (LoRA A and
  B, and the heads, averaged apart) and
  `prefkit merge --into-base` (each adapter merged into the base weights, then averaged: exactly
  base + mean_k(B_k A_k)), each then `prefkit predict --run <merged> --test <fold k>`;
- (c) seeds: `prefkit train CONFIG data.train=<the four folds> train.seed=S` for each of --seeds (default 1,2; the
  anchor is seed 0), `prefkit predict` of fold k, averaged with the anchor: three models of 4/5 of the rows, the
  compute of (a)'s four of 3/5 (2.4 training sets each).

Reported, each against the anchor (variant minus anchor, `prefkit.toolbox.compare.paired`, verdict at 2 standard
errors): one inner model alone (what 3/5 of the data costs), (a), both (b), (c), and (a) with (c); and against (a)
in the column `vs fold average`: (b) (does one merged model keep what averaging gains?) and (c) (seeds against
folds at the same compute). Length is in view as in methods_hh (the accuracy where the shorter answer won).

Why no model scores a row it trained on: fold k's rows (and every other row of their prompts: the folds are grouped)
are left out of the written training file, so the inner cv, the merges and the seed models never see them, and the
anchor's fold-k model trained without them by its own cv. Training reads no held-out label either
(train.eval_every is 0; no model, weight or temperature is chosen on fold k). Kept predictions are checked against
the reference (the same rows, folds and labels) before they are used.

Kept, so the work resumes across sessions and extends to more outer folds (`--outer 0,1,...`): each model's
predictions of fold k in results/methods_hh/ensembles_fold{k}_{model}.csv.gz, and in ensembles.json the settings
and, for each command, its line and seconds. A model whose predictions are kept is never trained or asked again;
the runs in --work resume (`--resume`) where a command stopped. `--kept` points these files elsewhere, and
`--smoke DIR` puts everything (data, reference, anchor, runs, kept predictions, report) under DIR: a smoke run
never writes into results/.

Cost an outer fold with `--inner cv`, an estimate: about 6 anchor folds of compute (5 trainings on 4/5 of the rows and 12
predictions of a fifth). At about 12 min a SmolLM2 fold on 2 cores with bf16 (~10 min training, ~2 min predicting
a fifth): the inner cv 4 x (a training on 3/5 + predicting its inner fold) ~ 38 min, fold k by each inner model
~ 8 min, two merges and their predictions ~ 5 min, two seeds 2 x (a training on 4/5 + predicting fold k) ~ 24 min:
about 75 min an outer fold, 6 h 15 min for all five; at the 21-23 min a fold methods_hh took on 2026-12-07 beside
another job, about 2 h 10 min an outer fold. One outer fold (471 rows) gives paired errors of a few thousandths in
log loss; add outer folds until they are under 0.005. The anchor's own fold is methods_hh's, not counted here.
With `--inner teachers` the inner cv is distill_hh's (4 of its 10 teacher pairs, about 15 min each on one
thread): what is left here is the two merges and the two seeds, about 55 min an outer fold on one thread.

    python benchmarks/methods_hh.py --variants features,smollm2 --folds 0     # the anchor's fold 0 (kept)
    python benchmarks/distill_hh.py --variants smollm2_distill_smollm2 --folds 0   # teacher pairs {0, j} (and fold 0's student)
    python benchmarks/ensembles_hh.py --outer 0                              # then 0,1 in a later session
    python benchmarks/ensembles_hh.py --smoke /tmp/ensembles_smoke --inner cv  # 150 rows, MiniLM+LoRA (26 min on 1 core)
    python benchmarks/ensembles_hh.py --smoke /tmp/ensembles_smoke_smollm2 --smoke-config smollm2 --inner cv

Writes results/ensembles_hh.{json,md} (--out). HH-RLHF has no ties: a coin scores log loss ln 2 = 0.693.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, HH, write_results  # noqa: E402
from methods_hh import _DECODER, ANCHOR, KEPT, describe  # noqa: E402
from rm_helpful import _prefkit, fold_seconds  # noqa: E402

INNER = 4  # inner folds: each inner model trains on 3 of the 4 training folds, 3/5 of the rows
# smoke runs: the first rows of the file, short sequences, one epoch, LoRA (so that both merges run)
SMOKE_ROWS = 150
_CHEAP = ["template.max_length=64", "train.save_every=0", "train.probe_rows=4"]
SMOKES = {"minilm": ("rm/minilm_cpu", ["lora.enabled=true", "lora.target_modules=[query,key,value]",
                                       "train.epochs=1", *_CHEAP]),
          "smollm2": (_DECODER[0], [*_DECODER[1], *_CHEAP])}
COLUMNS = ["variant", "folds", "rows", "log loss", "accuracy", "ECE", "vs anchor: log loss", "vs anchor: accuracy",
           "verdict", "vs fold average", "where shorter won", "trained", "wall a fold"]


def ensembles(seeds: list[int], base_merge: bool) -> dict[str, tuple[list[str], str, str, dict[str, float]]]:
    """name: (its models, what it is, what it trained, its cost: the book's command keys with their shares)."""
    inner = [f"inner{j}" for j in range(INNER)]
    seeded = [ANCHOR, *(f"seed{s}" for s in seeds)]
    out = {
        ANCHOR: ([ANCHOR], "the single full-data model: the anchor's fold-k model (methods_hh)", "1 x 4/5",
                 {ANCHOR: 1}),
        "one inner model": (["inner0"], "inner fold 0's model alone", "1 x 3/5", {"inner": 1 / INNER, "inner0": 1}),
        "(a) fold average": (inner, f"the {INNER} inner fold models, probabilities averaged", f"{INNER} x 3/5",
                             {"inner": 1, **dict.fromkeys(inner, 1)}),
        "(b) adapters averaged": (["merged"], f"`prefkit merge`: the {INNER} inner models' weights (LoRA A and B "
                                  "apart, heads) averaged into one model", f"{INNER} x 3/5", {"inner": 1, "merged": 1}),
        "(b) merged into base": (["merged_base"], f"`prefkit merge --into-base`: base + the mean of the {INNER} "
                                 "adapters' B A, heads averaged", f"{INNER} x 3/5", {"inner": 1, "merged_base": 1}),
        "(c) seeds": (seeded, f"the anchor and train.seed {', '.join(map(str, seeds))} on the same rows, "
                      "probabilities averaged", f"{len(seeded)} x 4/5", dict.fromkeys(seeded, 1)),
        "(a) + (c)": (inner + seeded, "the fold models and the seed models, probabilities averaged",
                      f"{INNER} x 3/5 + {len(seeded)} x 4/5", {"inner": 1, **dict.fromkeys(inner + seeded, 1)}),
    }
    if not base_merge:  # whole fine-tuned models: nothing to merge into a base
        del out["(b) merged into base"]
    if not seeds:  # no seed model: (c) would be the anchor alone, and (a) + (c) the fold models with the anchor
        del out["(c) seeds"]
        out["(a) + the anchor"] = (inner + [ANCHOR], "the fold models and the anchor, probabilities averaged",
                                   f"{INNER} x 3/5 + 1 x 4/5", {"inner": 1, **dict.fromkeys(inner + [ANCHOR], 1)})
        del out["(a) + (c)"]
    return out


def kept_file(kept: Path, k: int, model: str) -> Path:
    return kept / f"ensembles_fold{k}_{model}.csv.gz"


def read_book(kept: Path) -> dict:
    path = kept / "ensembles.json"
    return json.loads(path.read_text()) if path.exists() else {}


def check_setting(kept: Path, setting: dict) -> None:
    """The kept predictions are of one setting (config, overrides, data, inner folds): refuse to mix another in."""
    from prefkit.io import write_json

    book = read_book(kept)
    if book.get("setting", setting) != setting:
        raise SystemExit(f"{kept / 'ensembles.json'}: its predictions were made with {book['setting']}, not "
                         f"{setting}; give another --kept")
    write_json(kept / "ensembles.json", {**book, "setting": setting})


def spent(kept: Path, k: int, key: str, seconds: float, command: str) -> None:
    """Add a command's seconds to fold k's book (a command resumed in a later session adds to what it took)."""
    from prefkit.io import write_json

    book = read_book(kept)
    entry = book.setdefault("folds", {}).setdefault(str(k), {}).setdefault(key, {"seconds": 0.0, "commands": []})
    entry["seconds"] = round(entry["seconds"] + seconds, 1)
    entry["commands"].append({"command": command, "seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d")})
    write_json(kept / "ensembles.json", book)


def timed(args: list, log: Path, kept: Path, k: int, key: str) -> None:
    args = [str(a) for a in args]
    t0 = time.perf_counter()
    _prefkit(args, log)
    spent(kept, k, key, time.perf_counter() - t0, "prefkit " + " ".join(args))


def resumed(args: list, run_dir: Path) -> list:
    """A training command, with --resume where an earlier one started the run."""
    return [args[0], "--resume", *args[1:]] if (run_dir / "run.json").exists() else args


def aligned(frame: pd.DataFrame, heldout: pd.DataFrame, prob_cols: list[str], what: str) -> np.ndarray:
    """Predictions (indexed by id) in `heldout`'s row order, refused unless of its rows, folds and labels."""
    if set(frame.index) != set(heldout.index):
        raise SystemExit(f"{what}: predicts {len(frame)} rows, not the {len(heldout)} of the reference's fold "
                         f"{heldout['fold'].iloc[0]}")
    frame = frame.loc[heldout.index]
    if not ((frame["fold"] == heldout["fold"]).all() and (frame["label"] == heldout["label"]).all()):
        raise SystemExit(f"{what}: other folds or labels than the reference's")
    return frame[prob_cols].to_numpy()


def read_kept(path: Path, heldout: pd.DataFrame, prob_cols: list[str]) -> np.ndarray:
    frame = pd.read_csv(path, dtype={"id": str}).set_index("id")
    return aligned(frame, heldout, prob_cols, f"{path} (delete it to predict it again)")


def keep(kept: Path, k: int, model: str, probs: np.ndarray, heldout: pd.DataFrame, prob_cols: list[str]) -> None:
    """A model's predictions of fold k (in `heldout`'s row order) beside id, fold and label, written atomically."""
    from prefkit.io import atomic_path

    frame = heldout[["fold", "label"]].assign(**{c: probs[:, i] for i, c in enumerate(prob_cols)})
    with atomic_path(kept_file(kept, k, model)) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
        frame.round(6).to_csv(fh)


def write_split(table, reference: pd.DataFrame, k: int, folder: Path) -> tuple[Path, Path]:
    """The training rows (every fold but k) and the held-out rows (fold k) as LMSYS CSVs with the HH-RLHF reading's
    ids and A/B orders, each read back and compared with the rows it was written from."""
    from prefkit.config import DataConfig
    from prefkit.data import load_pairs
    from prefkit.data.arena import write_lmsys_csv

    fold = reference.loc[table.frame["id"].astype(str), "fold"].to_numpy()
    cols = ["id", "prompt", "response_a", "response_b", "label"]
    paths = []
    for name, mask in (("train", fold != k), ("heldout", fold == k)):
        path = folder / f"{name}.csv"
        rows = table.subset(mask).frame[cols].reset_index(drop=True)
        if not path.exists():
            write_lmsys_csv(table.subset(mask), path)
        back = load_pairs(path, DataConfig()).frame[cols].reset_index(drop=True)
        if not back.astype(str).equals(rows.astype(str)):
            raise SystemExit(f"{path}: does not read back as the {len(rows)} rows it was written from; delete it")
        paths.append(path.resolve())
    return paths[0], paths[1]


def predict_cli(run_dir: Path, test: Path, where: Path, heldout: pd.DataFrame, prob_cols: list[str], log: Path,
                kept: Path, k: int, key: str) -> np.ndarray:
    """`prefkit predict` of the held-out file by a run (its probabilities.csv, in `heldout`'s row order)."""
    timed(["predict", "--run", run_dir.resolve(), "--test", test, "--out", where.resolve().with_suffix(".csv"),
           f"output_dir={where.resolve()}"], log, kept, k, key)
    frame = pd.read_csv(where / "probabilities.csv", dtype={"id": str}).set_index("id")
    return frame.loc[heldout.index, prob_cols].to_numpy()


def teacher_pairs(k: int, n_folds: int = INNER + 1) -> list[str]:
    """The teacher pairs {k, j} of distill_hh, j != k in order: inner model i is the pair of the i-th other fold."""
    return [f"pair{min(j, k)}{max(j, k)}" for j in range(n_folds) if j != k]


def teacher_inner(k: int, heldout: pd.DataFrame, prob_cols: list[str], kept_teachers: Path) -> list[np.ndarray]:
    """Fold k's probabilities by each teacher pair {k, j}, from distill_hh's kept logits (of folds j and k)."""
    from prefkit.metrics import probabilities

    out = []
    for name in teacher_pairs(k):
        path = kept_teachers / f"{name}.csv.gz"
        if not path.exists():
            raise SystemExit(f"{path}: not kept; train fold {k}'s teacher pairs first: python benchmarks/distill_hh.py "
                             f"--variants smollm2_distill_smollm2 --folds {k}")
        frame = pd.read_csv(path, dtype={"id": str}).set_index("id")
        frame = frame[frame["fold"] == k]
        logits = frame[["logit_a", "logit_b", "logit_tie"]].to_numpy()
        probs = pd.DataFrame(probabilities(logits)[:, :len(prob_cols)], index=frame.index, columns=prob_cols)
        out.append(aligned(probs.assign(fold=frame["fold"], label=heldout.loc[frame.index, "label"]), heldout,
                           prob_cols, str(path)))
    return out


def train_fold(k: int, table, reference: pd.DataFrame, prob_cols: list[str], config: str, overrides: list[str],
               models: list[str], work: Path, kept: Path, teachers: tuple[Path, Path] | None) -> None:
    """Every model of outer fold k whose predictions are not kept: trained (or resumed), then asked for fold k.
    `teachers`: (distill_hh's kept teacher logits, its teacher run folders) when they are the inner models."""
    from prefkit.data import load_pairs
    from prefkit.rm.run import Run

    todo = [m for m in models if not kept_file(kept, k, m).exists()]
    if not todo:
        return
    folder = work / f"fold{k}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "prefkit.log"
    heldout = reference[reference["fold"] == k]
    train_csv, heldout_csv = write_split(table, reference, k, folder)
    inner = folder / "inner"
    merge_runs = [inner.resolve()]
    if teachers is not None:
        kept_teachers, runs = teachers
        for j, p in enumerate(teacher_inner(k, heldout, prob_cols, kept_teachers)):
            if f"inner{j}" in todo:
                keep(kept, k, f"inner{j}", p, heldout, prob_cols)
        merge_runs = [(runs / name).resolve() for name in teacher_pairs(k)]
        lacking = [r for r in merge_runs if not (r / "config.yaml").exists()]
        if lacking and any(m.startswith("merged") for m in todo):
            raise SystemExit(f"{lacking[0]}: distill_hh's teacher run is not there (its predictions are kept, its "
                             "model is not): the merges need the trained models")
    elif any(m.startswith(("inner", "merged")) for m in todo) and not (inner / "metrics.json").exists():
        # metrics.json is written last by cv: without it, a fold model is missing
        timed(resumed(["cv", config, f"data.train={train_csv}", f"output_dir={inner.resolve()}", *overrides,
                       f"cv.n_splits={INNER}"], inner), log, kept, k, "inner")
    run = rows = None
    for j in range(INNER):
        if f"inner{j}" in todo and teachers is None:
            if run is None:
                run = Run.open(inner)
                rows = load_pairs(heldout_csv, run.config.data)
            t0 = time.perf_counter()
            p, _ = run.predict_fold(j, rows)
            p = pd.DataFrame(p, index=rows.frame["id"].astype(str)).loc[heldout.index].to_numpy()
            keep(kept, k, f"inner{j}", p, heldout, prob_cols)
            spent(kept, k, f"inner{j}", time.perf_counter() - t0, f"Run.open('{inner}').predict_fold({j}, fold {k})")
    for model, flag in (("merged", []), ("merged_base", ["--into-base"])):
        if model in todo:
            merged = folder / model
            if not (merged / "config.yaml").exists():  # merge moves its folder into place when it is done
                runs = [a for r in merge_runs for a in ("--run", r)]
                timed(["merge", *runs, "--out", merged.resolve(), *flag], log, kept, k, model)
            p = predict_cli(merged, heldout_csv, folder / f"{model}_predict", heldout, prob_cols, log, kept, k, model)
            keep(kept, k, model, p, heldout, prob_cols)
    for model in (m for m in todo if m.startswith("seed")):
        run_dir = folder / model
        timed(resumed(["train", config, f"data.train={train_csv}", f"output_dir={run_dir.resolve()}", *overrides,
                       f"train.seed={model.removeprefix('seed')}"], run_dir), log, kept, k, model)
        p = predict_cli(run_dir, heldout_csv, folder / f"{model}_predict", heldout, prob_cols, log, kept, k, model)
        keep(kept, k, model, p, heldout, prob_cols)


def anchor_seconds(anchor: Path, k: int) -> float | None:
    """The anchor's fold-k wall time: methods_hh's folds.json beside its kept predictions, or the cv run it is the
    oof.csv of (a smoke run's); None where neither says."""
    book = anchor.parent / "folds.json"
    if book.exists():
        return json.loads(book.read_text()).get(anchor.name.split(".")[0], {}).get(str(k), {}).get("seconds")
    trained = sorted(int(p.parent.name[4:]) for p in anchor.parent.glob("fold*/valid_predictions.npy"))
    secs = fold_seconds(anchor.parent) if (anchor.parent / "config.yaml").exists() else []
    return dict(zip(trained, secs)).get(k) if len(secs) == len(trained) else None


def smoke(folder: Path, data: Path, name: str, outer: list[int]) -> tuple[Path, Path, Path, str, list[str]]:
    """Inputs of a smoke run under `folder`: the first SMOKE_ROWS rows of the file (named as it is, so that the ids
    are the same), their reference folds (the feature baseline's cv) and the anchor (the cheap config's cv of the
    outer folds)."""
    config, overrides = SMOKES[name]
    small = folder / data.name.removesuffix(".gz")
    if not small.exists():
        from prefkit.io import write_text

        with gzip.open(data, "rt", encoding="utf-8", newline="\n") as src:
            write_text(small, "".join(line for _, line in zip(range(SMOKE_ROWS), src)))
    log = folder / "prefkit.log"
    if not (folder / "features" / "metrics.json").exists():
        _prefkit(["cv", "rm/features_baseline", f"data.train={small}", f"output_dir={folder / 'features'}"], log)
    anchor = folder / "anchor"
    have = set(pd.read_csv(anchor / "oof.csv")["fold"]) if (anchor / "oof.csv").exists() else set()
    if not set(outer) <= have:
        _prefkit(resumed(["cv", config, f"data.train={small}", f"output_dir={anchor}", *overrides,
                          f"cv.folds=[{','.join(map(str, outer))}]"], anchor), log)
    return small, folder / "features" / "oof.csv", anchor / "oof.csv", config, overrides


def versus(base: np.ndarray, probs: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[str, dict]:
    """`probs` against `base`, short: the mean log loss difference ± its standard error, and the verdict's word."""
    from prefkit.toolbox.compare import NOISE, paired

    diff = paired(base, probs, labels, folds)
    m, se = diff["logloss"]["mean"], diff["logloss"]["se"]
    word = "within noise" if se is None or abs(m) <= NOISE * se else ("better" if m < 0 else "worse")
    return f"{m:+.4f} ± {se or 0:.4f} ({word})", diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outer", default="0", help="outer folds to train and report (each about 75 min of SmolLM2)")
    ap.add_argument("--seeds", default="1,2", help="train.seed of the seed models (the anchor is seed 0)")
    ap.add_argument("--work", default="runs/ensembles_hh", help="the runs (inner cv, merges, seeds, predictions)")
    ap.add_argument("--data", default=str(HH / "helpful-base.test.jsonl.gz"))
    ap.add_argument("--reference", default=str(KEPT / "features.csv.gz"), help="the folds: id, fold, label")
    ap.add_argument("--anchor", default=str(KEPT / f"{ANCHOR}.csv.gz"), help="the anchor's out-of-fold predictions")
    ap.add_argument("--kept", default=str(KEPT), help="folder of the kept predictions and ensembles.json")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder of ensembles_hh.{json,md}")
    ap.add_argument("--analyse-only", action="store_true", help="train nothing: report the kept predictions")
    ap.add_argument("--smoke", metavar="DIR", help=f"a smoke run on {SMOKE_ROWS} rows, every file under DIR")
    ap.add_argument("--smoke-config", default="minilm", choices=list(SMOKES))
    ap.add_argument("--inner", default="teachers", choices=["teachers", "cv"],
                    help="the inner fold models: distill_hh's SmolLM2 teacher pairs, or an inner cv trained here")
    ap.add_argument("--teachers-work", default="runs/distill_hh/teachers/smollm2",
                    help="distill_hh's SmolLM2 teacher run folders (for the merges)")
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.recipes.common import load_labelled
    from prefkit.rm.token_cache import ENV as TOKEN_CACHE
    from prefkit.shipped import config_path

    outer = [int(f) for f in args.outer.split(",")]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    data, reference_path, anchor_path = Path(args.data), Path(args.reference), Path(args.anchor)
    work, kept, out = Path(args.work), Path(args.kept), Path(args.out)
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark reads HH-RLHF from ../shared/data")
    config, overrides = _DECODER
    if args.smoke:
        root = Path(args.smoke)
        os.environ.setdefault(TOKEN_CACHE, str(root / "token_cache"))  # the commands' token cache: here too
        work, kept, out = root / "work", root / "kept", root / "results"
        data, reference_path, anchor_path, config, overrides = smoke(root, data, args.smoke_config, outer)
    cfg = load_config(config_path(config), overrides)
    if cfg.train.seed in seeds:
        raise SystemExit(f"--seeds {args.seeds}: {cfg.train.seed} is the anchor's own train.seed")
    t0 = time.perf_counter()
    table = load_labelled(str(data), cfg)
    ids = table.frame["id"].astype(str)
    reference = pd.read_csv(reference_path, dtype={"id": str}).set_index("id")
    missing = ids[~ids.isin(reference.index)]
    if len(missing):
        raise SystemExit(f"{reference_path}: has no fold for {len(missing)} rows of {data} (first {missing.iloc[0]})")
    reference = reference.loc[ids]
    prob_cols = [c for c in reference.columns if c.startswith("winner_")]
    anchor = pd.read_csv(anchor_path, dtype={"id": str}).set_index("id") if anchor_path.exists() else None
    plan = ensembles(seeds, cfg.lora.enabled)
    models = sorted({m for members, *_ in plan.values() for m in members} - {ANCHOR})

    lacking = [k for k in outer if anchor is None or not (anchor["fold"] == k).any()]
    if lacking:
        raise SystemExit(f"{anchor_path}: the anchor's folds {lacking} are not kept; train them first: python "
                         f"benchmarks/methods_hh.py --variants features,{ANCHOR} --folds {','.join(map(str, lacking))}")
    if args.inner == "teachers" and args.smoke:
        raise SystemExit("--smoke has no teacher pairs: give --inner cv")
    if args.inner == "teachers" and (config, overrides) != tuple(_DECODER):
        raise SystemExit("--inner teachers: distill_hh's SmolLM2 teachers are the anchor's config, not this one")
    teachers = (KEPT / "teachers" / "smollm2", Path(args.teachers_work)) if args.inner == "teachers" else None
    check_setting(kept, {"config": config, "overrides": overrides, "data": data.name, "inner folds": INNER,
                         "inner": args.inner})

    per_fold, heldouts = [], []
    for k in outer:
        heldout = reference[reference["fold"] == k]
        probs = {ANCHOR: aligned(anchor[anchor["fold"] == k], heldout, prob_cols, f"{anchor_path}, fold {k}")}
        if not args.analyse_only:
            train_fold(k, table, reference, prob_cols, config, overrides, models, work, kept, teachers)
        if not all(kept_file(kept, k, m).exists() for m in models):
            print(f"outer fold {k}: not every model is kept yet; left out of the report", flush=True)
            continue
        probs |= {m: read_kept(kept_file(kept, k, m), heldout, prob_cols) for m in models}
        seconds = {key: v["seconds"] for key, v in read_book(kept).get("folds", {}).get(str(k), {}).items()}
        seconds[ANCHOR] = anchor_seconds(anchor_path, k)
        per_fold.append((probs, seconds))
        heldouts.append(heldout)
    if not per_fold:
        raise SystemExit("no outer fold has every model kept: nothing to report")

    frame = pd.concat(heldouts)[["fold", "label"]]
    labels, folds = frame["label"].to_numpy(), frame["fold"].to_numpy()
    mean = {name: np.concatenate([np.mean([p[m] for m in members], axis=0) for p, _ in per_fold])
            for name, (members, *_) in plan.items()}
    anchor_frame = pd.DataFrame(mean[ANCHOR], index=frame.index, columns=prob_cols)
    rows = []
    for name, (members, what, trained, cost) in plan.items():
        walls = [sum(s[key] * share for key, share in cost.items()) for _, s in per_fold
                 if all(s.get(key) is not None for key in cost)]
        row = describe(name, mean[name], frame, table, anchor_frame, what, walls)
        row["trained"] = trained
        if name not in (ANCHOR, "(a) fold average"):
            row["vs fold average"], row["vs fold average: paired"] = versus(mean["(a) fold average"], mean[name],
                                                                            labels, folds)
        rows.append(row)
    done = sorted(int(k) for k in np.unique(folds))
    intro = (__doc__.split("\n\n")[0] + f"\n\nOuter folds {', '.join(map(str, done))} ({len(frame)} held-out rows); "
             f"every model: `{config}` with {' '.join(overrides)}. `trained`: models x the share of the rows each "
             "trained on. `vs anchor`: the mean per-row difference (variant minus anchor; a negative log loss is "
             "better) ± its standard error; `vs fold average`: the same against (a). `wall a fold`: the seconds of "
             f"the commands that made the ensemble's models, an outer fold. This report took "
             f"{time.perf_counter() - t0:.0f} s.")
    write_results("ensembles_hh", out, {"data": data.name, "outer folds": done, "config": config,
                                        "overrides": overrides, "seeds": seeds, "inner folds": INNER,
                                        "inner": args.inner,
                                        "anchor": str(anchor_path), "reference": str(reference_path)},
                  COLUMNS, rows, intro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
