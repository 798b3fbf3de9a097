"""`prefkit repredict --run CV_RUN [key=value ...]`: the out-of-fold predictions of a cv run again, each fold's
model predicting its own validation rows, under other prediction settings (`predict.*`: budgeted swap TTA, the
cascade, rules, batching). Nothing is trained; the folds are the run's (its oof_logits.csv). A cascade run
contributes its own out-of-fold predictions of the same rows, so the score stays out of fold.

Writes oof.csv, oof_logits.csv and metrics.json (with how many rows got the swap pass) into its output folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.competition import competition_of
from prefkit.core.runs import output_dir
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite, write_json
from prefkit.metrics import score
from prefkit.recipes.common import load_labelled, log
from prefkit.rm.run import Run
from prefkit.toolbox import cascade, rules
from prefkit.toolbox.predictions import Predictions, probabilities_of, read_logits


def _mismatch(saved: pd.DataFrame, table: PairTable, need_all_saved: bool) -> str:
    """How saved out-of-fold predictions and the data disagree ('' when they do not): rows on one side only
    (every saved row must be in the data, or every data row saved: `need_all_saved`), and labels that differ."""
    ids = table.frame["id"]
    missing = int((~saved.index.isin(ids)).sum()) if need_all_saved else int((~ids.isin(saved.index)).sum())
    found = ids.isin(saved.index)
    differ = 0
    if "label" in saved.columns:
        differ = int((saved.loc[ids[found], "label"].to_numpy() != table.frame.loc[found, "label"].to_numpy()).sum())
    what = ([f"{missing} rows are missing"] if missing else []) + ([f"{differ} rows have other labels"] if differ else [])
    return " and ".join(what)


def main(run_dir: str | Path, overrides: list[str] = ()) -> dict:
    run_dir = Path(run_dir)
    run = Run.open(run_dir, overrides)
    cfg = run.config
    if not any(o.startswith("output_dir=") for o in overrides):
        cfg.output_dir = None  # never write into the cv run's folder
    if cfg.predict.cascade.run:
        cascade.check(cfg, Run.open(cfg.predict.cascade.run).config)
    comp = competition_of(cfg)
    saved = read_logits(run_dir, comp)  # its oof_logits.csv (or the oof.csv of an older run)
    if "fold" not in saved.columns:
        raise PrefkitError(f"{run_dir}: its predictions have no folds (give a folder written by `prefkit cv`)")
    if cfg.output_dir:
        refuse_overwrite(cfg.output_dir, {"--run": run_dir, "predict.cascade.run": cfg.predict.cascade.run,
                                          "data.train": cfg.data.train}, "output_dir")
    table = load_labelled(cfg.data.train, cfg)
    table = table.subset(table.frame["id"].isin(saved.index))
    if problem := _mismatch(saved, table, need_all_saved=True):
        # a relative data.train is read from the folder the command runs in, which may hold another file of that name
        raise PrefkitError(f"data.train={cfg.data.train} is not the data {run_dir} was trained on: of its out-of-fold "
                           f"rows, {problem}. Pass data.train=PATH to the file the run was trained on")
    other = None
    if cfg.predict.cascade.run:
        other = read_logits(cfg.predict.cascade.run, comp)
        if problem := _mismatch(other, table, need_all_saved=False):
            raise PrefkitError(f"predict.cascade.run={cfg.predict.cascade.run} was not cross-validated on the rows of "
                               f"{run_dir}: of {len(table)} rows, {problem} in its out-of-fold predictions")
    if cfg.predict.rules:
        rules.check(cfg.predict.rules)
    out = output_dir(cfg, "repredict")  # after every check: a refused command leaves no folder
    folds = saved.loc[table.frame["id"], "fold"].to_numpy().astype(int)
    labels = table.frame["label"].to_numpy()
    p = np.zeros((len(table), len(comp.labels)))
    per_fold = []
    for k in sorted(set(folds)):
        va = folds == k
        p[va], stats = run.predict_fold(k, table.subset(va), log)  # each fold's model on its own validation rows
        per_fold.append({"fold": int(k), **score(p[va], labels[va]), "tta_rows": stats.get("tta_rows", 0),
                         "seconds": stats.get("seconds")})
        log(f"fold {k}: logloss {per_fold[-1]['logloss']:.4f}  swap TTA on {per_fold[-1]['tta_rows']} of {int(va.sum())} rows")
    second = None
    if other is not None:

        def second(subset: PairTable) -> np.ndarray:
            return probabilities_of(other.loc[subset.frame["id"]], comp)

    p, cascaded = cascade.apply(cfg.predict.cascade, table, p, second, log)
    ruled = {}
    if cfg.predict.rules:
        p, ruled = rules.out_of_fold(table, p, folds, comp, cfg.predict.rules)
    metrics = {**score(p, labels), "competition": comp.name, "metric": comp.metric, "run": str(run_dir),
               "tta_rows": int(sum(f["tta_rows"] for f in per_fold)), "folds": per_fold,
               "tta_fraction": cfg.predict.tta_fraction, "tta_budget_s": cfg.predict.tta_budget_s}
    if cascaded:
        metrics["cascade"] = cascaded
    if ruled:
        metrics["rules"] = ruled
    Predictions(comp, table.frame["id"], p, folds, labels).write(out)
    write_json(out / "metrics.json", metrics)
    log(f"OOF logloss {metrics['logloss']:.4f}  accuracy {metrics['accuracy']:.4f}  swap TTA on {metrics['tta_rows']} "
        f"of {len(table)} rows -> {out}")
    return metrics
