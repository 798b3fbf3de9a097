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
from prefkit.config import Config, explicit_keys, load_config, parse_override, reads, to_dict
from prefkit.core import runs
from prefkit.core.dist import is_main
from prefkit.core.runs import output_dir
from prefkit.data import PairTable, load_pairs
from prefkit.errors import PrefkitError
from prefkit.io import check_writable, refuse_overwrite, write_json
from prefkit.metrics import apply_temperature, margins
from prefkit.recipes.common import log, report_skipped, require_rows
from prefkit.rm.learners import ensemble_predict
from prefkit.submission import write_submission
from prefkit.toolbox import rules
from prefkit.toolbox.predictions import RECORD_FILE, Predictions, run_record

# What an override may change: the run's saved config is otherwise what it was trained with. The tokenizer and
# the backbone may be found elsewhere (a Kaggle input folder), as long as they are the ones it was trained with.
SECTIONS = ["output_dir", "data.*", "predict.*", "template.tokenizer", "model.path", "model.dtype",
            "model.attn_implementation", "quantization.*"]
# What only training reads: an override of these is ignored, and said so.
TRAINING_ONLY = ["train.*", "cv.*", "kaggle.*"]


def run_config(run_dir: str | Path, overrides: list[str] = ()) -> Config:
    """A run folder's saved config with `overrides` applied. Only the SECTIONS keys may change: an override of a
    key only training reads is ignored (with a note), and one of a setting the trained model fixes (its template,
    head, features, LoRA shape, competition) is refused where it differs from the run's, since applying it would
    score with a model other than the one trained, and ignoring it would be a lie."""
    if not runs.is_run(run_dir):
        runs.open_config(run_dir)  # the refusal, before the overrides are looked at
    keys = explicit_keys(load_config(None, overrides))  # each override's key, checked
    was = runs.flat_settings(to_dict(runs.open_config(run_dir, kinds=runs.REWARD_MODEL_KINDS)))
    given = runs.flat_settings(to_dict(runs.open_config(run_dir, overrides)))
    fixed_keys = [k for k in keys if not reads(k, SECTIONS + TRAINING_ONLY)]
    fixed = sorted(f for f in set(was) | set(given)
                   if was.get(f) != given.get(f) and any(_under(f, k) for k in fixed_keys))
    if fixed:
        shown = "; ".join(f"{f}={given.get(f)!r} (trained with {was.get(f)!r})" for f in fixed)
        raise PrefkitError(f"{run_dir}: {shown}: the trained model fixes {'these' if len(fixed) > 1 else 'this'}, so "
                           f"predict keeps the run's; drop the override, or train a run with it. Predict may change "
                           f"{', '.join(SECTIONS)}")
    ignored = [k for k in keys if reads(k, TRAINING_ONLY)]
    if ignored:
        log(f"note: `predict` does not read {', '.join(ignored)} (training settings): "
            f"{'they are' if len(ignored) > 1 else 'it is'} ignored")
    keep = [o for o in overrides if not reads(parse_override(o)[0], TRAINING_ONLY)]
    return runs.open_config(run_dir, keep, kinds=runs.REWARD_MODEL_KINDS)


def _under(flat_key: str, key: str) -> bool:
    """`flat_key` (a leaf of the saved config) is `key`, lies under it, or holds it (a mapping such as data.columns)."""
    return flat_key == key or flat_key.startswith(key + ".") or key.startswith(flat_key + ".")


def run_probabilities(cfg: Config, run_dir: str | Path, table: PairTable) -> tuple[np.ndarray, dict]:
    """The run's fold-averaged probabilities of the rows, its temperature applied where CV fitted one."""
    run_dir = Path(run_dir)
    unfinished = runs.unfinished_models(run_dir, cfg)
    if unfinished:  # a killed or partial run: say what the average lacks, not only what it holds
        log(f"note: {run_dir}: {len(unfinished)} model folder(s) not finished, left out of the average: "
            f"{', '.join(unfinished)} (finish the run with --resume for all)")
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
    subset = table.subset(order)
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
    check_writable(out_file)
    if cfg.output_dir:
        refuse_overwrite(cfg.output_dir, inputs, "output_dir")
    out = output_dir(cfg, "predict")
    table = load_pairs(test, cfg.data)
    report_skipped(table)
    require_rows(table, test, "to predict")
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
    Predictions(comp, table.frame["id"], p).write(out)  # unclipped, in every competition (WSDM submits labels)
    # last, with the run that predicted: `prefkit blend --test-preds` matches the folder to its run by it
    write_json(out / RECORD_FILE, {**stats, "run": run_record(run_dir)})
    log(f"wrote {len(sub)} predictions ({len(stats['models'])} models averaged) -> {out_file}")
    return sub
