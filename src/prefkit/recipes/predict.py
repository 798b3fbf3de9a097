"""`prefkit predict`: a submission from a run folder. Every finished model folder of the run (the fold
models of `cv`, the model of `train`) predicts the test rows; their probabilities are averaged (fold
ensembling), the run's temperature is applied when CV fitted one, and the submission is validated. The
averaged probabilities are kept in the output folder as probabilities.csv, and as logits.csv at full
precision (a teacher or blend member, `prefkit.toolbox.predictions`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.competition import of
from prefkit.config import Config, load_config
from prefkit.core import runs
from prefkit.core.dist import is_main
from prefkit.core.runs import output_dir
from prefkit.data import PairTable, load_pairs
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path, refuse_overwrite, write_json
from prefkit.metrics import apply_temperature, margins
from prefkit.recipes.common import log, report_skipped, report_unused
from prefkit.rm.learners import ensemble_predict
from prefkit.submission import write_submission
from prefkit.toolbox import rules
from prefkit.toolbox.predictions import RECORD_FILE, TEST_FILE, run_record, write_logits

# What an override may change: the run's saved config is otherwise what it was trained with
SECTIONS = ["output_dir", "data.*", "predict.*", "template.tokenizer", "model.path", "model.dtype",
            "model.attn_implementation", "quantization.*"]


def run_config(run_dir: str | Path, overrides: list[str] = ()) -> Config:
    """A run folder's saved config with `overrides` applied (only the SECTIONS keys may change)."""
    if not runs.is_run(run_dir):
        runs.open_config(run_dir)  # the refusal, before the overrides are looked at
    report_unused(load_config(None, overrides), "predict", SECTIONS)
    return runs.open_config(run_dir, overrides, kinds=runs.REWARD_MODEL_KINDS)


def run_probabilities(cfg: Config, run_dir: str | Path, table: PairTable) -> tuple[np.ndarray, dict]:
    """The run's fold-averaged probabilities of the rows, its temperature applied where CV fitted one."""
    run_dir = Path(run_dir)
    p, stats = ensemble_predict(cfg, run_dir, table, log)
    metrics_file = run_dir / "metrics.json"
    temperature = json.loads(metrics_file.read_text()).get("temperature") if metrics_file.exists() else None
    if temperature:
        p = apply_temperature(p, temperature)
    return p, {"models": [x["model"] for x in stats], "temperature": temperature, "rows": len(table), "per_model": stats}


def check_cascade(cfg: Config) -> None:
    """`predict.cascade.run` must be a run of the same competition: its probabilities replace part of ours, column
    for column. Checked before anything is predicted."""
    cc = cfg.predict.cascade
    if not cc.run:
        return
    second = runs.open_config(cc.run)  # refuses a folder that is not a run
    if second.competition != cfg.competition:
        raise PrefkitError(f"predict.cascade.run={cc.run} is a competition={second.competition} run "
                           f"({', '.join(of(second).labels)}); this run predicts competition={cfg.competition} "
                           f"({', '.join(of(cfg).labels)}): give a {cfg.competition} run")


def cascade(cfg: Config, table: PairTable, p: np.ndarray, second=None) -> tuple[np.ndarray, dict]:
    """`predict.cascade`: the least sure `fraction` of the rows re-scored by a second run and blended in with
    `weight`. `second(rows) -> probabilities` stands in for predicting with the run (repredict passes that run's
    out-of-fold predictions)."""
    cc = cfg.predict.cascade
    if not cc.run:
        return p, {}
    order = np.sort(np.argsort(margins(p), kind="stable")[: int(np.ceil(cc.fraction * len(p)))])
    subset = PairTable(table.frame.iloc[order].reset_index(drop=True), table.source)
    log(f"cascade: {cc.run} re-scores the {len(order)} least sure of {len(p)} rows (weight {cc.weight})")
    if second is None:
        second_cfg = run_config(cc.run)
        second_cfg.output_dir = cfg.output_dir
        q, _ = run_probabilities(second_cfg, cc.run, subset)
    else:
        q = second(subset)
    p = p.copy()
    p[order] = (1 - cc.weight) * p[order] + cc.weight * q
    return p, {"run": cc.run, "rows": len(order), "weight": cc.weight}


def tta_report(stats: dict) -> str:
    per = [f"{m['model']} {m.get('tta_rows', 0)}" for m in stats["per_model"]]
    return f"swap TTA rows of {stats['rows']}: " + ", ".join(per)


def main(run_dir: str | Path, test: str | Path, out_file: str | Path, overrides: list[str] = ()) -> pd.DataFrame | None:
    cfg = run_config(run_dir, overrides)
    rules.check(cfg.predict.rules)
    check_cascade(cfg)
    fitted = rules.load(run_dir) if cfg.predict.rules else {}
    if not any(o.startswith("output_dir=") for o in overrides):
        cfg.output_dir = None  # never write into the training run's folder
    inputs = {"--run": run_dir, "--test": test, "predict.cascade.run": cfg.predict.cascade.run}
    refuse_overwrite(out_file, inputs)
    if cfg.output_dir:
        refuse_overwrite(cfg.output_dir, inputs, "output_dir")
    out = output_dir(cfg, "predict")
    table = load_pairs(test, cfg.data)
    report_skipped(table)
    p, stats = run_probabilities(cfg, run_dir, table)
    log(tta_report(stats))
    p, stats["cascade"] = cascade(cfg, table, p)
    if cfg.predict.rules:
        p, stats["rules"] = rules.apply(table, p, fitted, cfg.predict.rules)
        log("rules: " + ", ".join(f"{k} on {v} rows" for k, v in stats["rules"].items()))
    if not is_main():
        return None
    comp = of(cfg)
    (out / RECORD_FILE).unlink(missing_ok=True)  # an earlier predict's record must not name these predictions
    sub = write_submission(table.frame["id"], table.frame["id"], p, out_file, cfg.predict.clip, comp)
    with atomic_path(out / "probabilities.csv") as tmp:  # unclipped, in every competition (WSDM submits labels)
        pd.DataFrame({"id": table.frame["id"], **{c: p[:, i] for i, c in enumerate(comp.columns)}}).to_csv(
            tmp, index=False, float_format="%.6f")
    write_logits(out / TEST_FILE, table.frame["id"], p, comp)
    # last, with the run that predicted: `prefkit blend --test-preds` matches the folder to its run by it
    write_json(out / RECORD_FILE, {**stats, "run": run_record(run_dir)})
    log(f"wrote {len(sub)} predictions ({len(stats['models'])} models averaged) -> {out_file}")
    return sub
