"""`prefkit predict`: a submission from a run folder. Every finished model folder of the run (the fold
models of `cv`, the model of `train`) predicts the test rows; their probabilities are averaged (fold
ensembling), the run's temperature is applied when CV fitted one, and the submission is validated. The
averaged probabilities are kept in the output folder as probabilities.csv, and as logits.csv at full
precision (a teacher or blend member, `prefkit.toolbox.predictions`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefkit.competition import competition_of
from prefkit.core.dist import is_main
from prefkit.core.runs import output_dir
from prefkit.data import load_pairs
from prefkit.io import check_writable, refuse_overwrite, write_json
from prefkit.recipes.common import log, report_skipped, require_rows
from prefkit.rm.run import Run
from prefkit.submission import write_submission
from prefkit.toolbox import cascade, rules
from prefkit.toolbox.predictions import RECORD_FILE, Predictions, run_record


def tta_report(stats: dict) -> str:
    per = [f"{m['model']} {m.get('tta_rows', 0)}" for m in stats["per_model"]]
    return f"swap TTA rows of {stats['rows']}: " + ", ".join(per)


def main(run_dir: str | Path, test: str | Path, out_file: str | Path, overrides: list[str] = ()) -> pd.DataFrame | None:
    run = Run.open(run_dir, overrides)
    cfg = run.config
    rules.check(cfg.predict.rules)
    second = Run.open(cfg.predict.cascade.run) if cfg.predict.cascade.run else None
    if second:
        cascade.check(cfg, second.config)
    fitted = rules.load(run_dir) if cfg.predict.rules else {}
    if not any(o.startswith("output_dir=") for o in overrides):
        cfg.output_dir = None  # never write into the training run's folder
    inputs = {"--run": run_dir, "--test": test, "predict.cascade.run": cfg.predict.cascade.run}
    refuse_overwrite(out_file, inputs)
    check_writable(out_file)
    if cfg.output_dir:
        refuse_overwrite(cfg.output_dir, inputs, "output_dir")
    out = output_dir(cfg, "predict")
    table = load_pairs(test, cfg.data)
    report_skipped(table)
    require_rows(table, test, "to predict")
    p, stats = run.predict(table, log)
    log(tta_report(stats))
    if second:
        second.config.output_dir = cfg.output_dir  # its work (a vLLM merge) here too, not in its run's folder
    p, stats["cascade"] = cascade.apply(cfg.predict.cascade, table, p, lambda rows: second.predict(rows, log)[0], log)
    if cfg.predict.rules:
        p, stats["rules"] = rules.apply(table, p, fitted, cfg.predict.rules)
        log("rules: " + ", ".join(f"{k} on {v} rows" for k, v in stats["rules"].items()))
    if not is_main():
        return None
    comp = competition_of(cfg)
    (out / RECORD_FILE).unlink(missing_ok=True)  # an earlier predict's record must not name these predictions
    sub = write_submission(table.frame["id"], table.frame["id"], p, out_file, cfg.predict.clip, comp)
    Predictions(comp, table.frame["id"], p).write(out)  # unclipped, in every competition (WSDM submits labels)
    # last, with the run that predicted: `prefkit blend --test-preds` matches the folder to its run by it
    write_json(out / RECORD_FILE, {**stats, "run": run_record(run_dir)})
    log(f"wrote {len(sub)} predictions ({len(stats['models'])} models averaged) -> {out_file}")
    return sub
