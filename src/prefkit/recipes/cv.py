"""`prefkit cv`: K-fold CV grouped by prompt. One model folder per fold (fold0, fold1, ...), out-of-fold
predictions (`oof.csv`, and `oof_logits.csv` at full precision for distillation and blending), `metrics.json`
(with each rule of `prefkit.toolbox.rules` measured on the OOF, and under "length" the length-only rule beside the
model's accuracy where the shorter answer won), `rules.json`, `reliability.png`; optionally a temperature fitted
on the OOF. With `train.length_balance`, each fold's training rows (never its validation rows) are length-balanced
(`rules.length_balanced`), their counts logged and kept in the fold's trained.json and in metrics.json. With
`--resume`, finished folds are kept and an interrupted one continues from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prefkit.competition import competition_of
from prefkit.config import USES, Config
from prefkit.core.dist import is_main
from prefkit.core.runs import MARKER, REWARD_MODEL_KINDS, is_trained, mark_trained
from prefkit.data.folds import assign_folds
from prefkit.errors import PrefkitError
from prefkit.io import write_json
from prefkit.metrics import (
    apply_temperature,
    fit_temperature,
    label_curves,
    prior_logloss,
    reliability_plot,
    score,
    uniform_logloss,
)
from prefkit.recipes.common import load_labelled, log, start
from prefkit.rm import probes
from prefkit.rm.learners import check_source, make_learner, record_golden, token_line
from prefkit.toolbox import rules
from prefkit.toolbox.predictions import Predictions
from prefkit.toolbox.pseudo import checked_pseudo_rows, join_pseudo_rows

SECTIONS = USES  # the config keys it reads, by model.kind


def kept_predictions(folder: Path, saved: Path, ids: list[str], k: int) -> np.ndarray:
    """A finished fold's saved validation predictions, kept by --resume only when they are of this fold's rows:
    the same ids in the same order as the fold held out when it trained (`probes.record_training`); another
    seed, fold count or training file would put them on other rows."""
    probs = np.load(saved)
    held_out = (probes.read_record(folder) or {}).get("held_out")
    if held_out is None:  # a fold of an older prefkit: only the count can be checked
        log(f"fold {k}: trained by an older prefkit, its validation rows not recorded: kept on the count alone")
        held_out = ids if len(probs) == len(ids) else []
    if held_out != ids or len(probs) != len(ids):
        other = len(set(ids) - set(held_out))
        raise PrefkitError(f"{folder}: --resume would keep this fold's predictions of {len(probs)} rows, but fold {k} "
                           f"is now {len(ids)} rows ({other} it did not hold out, or in another order): the data, "
                           "cv.seed or cv.n_splits changed since it was trained; start another output_dir")
    return probs


def main(cfg: Config, name: str = "", resume: bool = False) -> dict:
    check_source(cfg)
    out = start(cfg, "cv", REWARD_MODEL_KINDS, "a causal_lm student trains with `prefkit cot sft`", SECTIONS, name, resume)
    table = load_labelled(cfg.data.train, cfg)
    folds = assign_folds(table, cfg.cv.n_splits, cfg.cv.seed)
    pseudo = None
    if cfg.train.pseudo_labels:  # checked against every labelled row before any fold trains (or is kept)
        pseudo = checked_pseudo_rows(cfg.train.pseudo_labels, table)
        log(f"{cfg.train.pseudo_labels}: {len(pseudo)} pseudo-labelled pairs join each fold's training rows")
    run_folds = cfg.cv.folds if cfg.cv.folds is not None else list(range(cfg.cv.n_splits))
    comp = competition_of(cfg)
    labels = table.frame["label"].to_numpy()
    oof = np.full((len(table), len(comp.labels)), np.nan)
    per_fold, stats = [], {}
    tokens: dict[str, int] = {}  # sequences from the token cache and rendered, over the folds trained now
    balance: dict[str, dict] = {}  # train.length_balance: the counts of each fold's training rows
    for k in run_folds:
        folder = out / f"fold{k}"
        va = folds == k
        saved = folder / "valid_predictions.npy"
        held_out = [str(x) for x in table.frame["id"][va]]
        if resume and is_trained(folder) and saved.exists():
            oof[va] = kept_predictions(folder, saved, held_out, k)
            log(f"fold {k}: finished earlier, kept")
            counts = json.loads((folder / MARKER).read_text()).get("length_balance")
        else:
            train, counts = table.subset(~va), None
            if cfg.train.length_balance:  # the labelled training rows only; pseudo-labelled pairs join after
                train, counts = rules.length_balanced(train, cfg.train.seed)
                log(f"fold {k}: length-balanced training rows: {rules.balance_line(counts)}")
            learner = make_learner(cfg)
            history = learner.fit(join_pseudo_rows(train, pseudo), table.subset(va), folder, resume)
            oof[va], stats = learner.predict(table.subset(va))
            for key, n in (learner.tokens() or {}).items():
                tokens[key] = tokens.get(key, 0) + n
            learner.release()  # before the next fold's model is built
            del learner
            if is_main():
                np.save(saved, oof[va])
            record_golden(cfg, folder)  # the fold model's scores on fixed rows, checked wherever it predicts
            probes.record_training(cfg, folder, held_out)  # its tokenizer, special tokens and held-out rows
            mark_trained(folder, {"kind": cfg.model.kind, "fold": k, "rows": len(train),
                                  "history_tail": history[-1:] if history else [],
                                  **({"length_balance": counts} if counts else {})})
        if counts:
            balance[str(k)] = counts
        per_fold.append({"fold": k, **score(oof[va], labels[va])})
        log(f"{name or 'cv'} fold {k}: logloss {per_fold[-1]['logloss']:.4f}  accuracy {per_fold[-1]['accuracy']:.4f}  "
            f"n {per_fold[-1]['n']}", summary=True)
    if tokens:
        log(token_line(tokens, cfg))
    done = ~np.isnan(oof[:, 0])
    uniform = uniform_logloss(len(comp.labels))
    prior = prior_logloss(labels[done], len(comp.labels))
    metrics = {**score(oof[done], labels[done]), "competition": comp.name, "metric": comp.metric,
               "uniform_logloss": uniform, "prior_logloss": prior, "folds": per_fold, "data": str(cfg.data.train),
               "skipped_rows": len(table.skipped), "dropped_rows": table.dropped_labels}
    if stats:
        metrics["predict"] = stats
    if tokens:
        metrics["tokens"] = tokens
    if balance:
        metrics["length_balance"] = balance
    if cfg.cv.temperature_scaling:
        t = fit_temperature(oof[done], labels[done])
        metrics["temperature"] = t
        metrics["calibrated"] = score(apply_temperature(oof[done], t), labels[done])
    rows = table.subset(done)
    metrics["rules"] = rules.measure(rows, oof[done], folds[done], comp)
    for rule, r in metrics["rules"].items():
        if r["rows"]:
            log(f"rule {rule}: {r['rows']} rows; their OOF log loss {r['logloss_model']:.4f} (model) -> "
                f"{r['logloss_rule']:.4f} (rule fitted on the other folds); predict.rules=[{rule}] applies it")
    metrics["length"] = rules.length_view(rows, oof[done])  # length bias in view in every run
    log(rules.length_line(metrics["length"]))
    probed = probes.after_training(cfg, out, table, scored=(oof[done], labels[done]))  # the model itself, on a sample
    if probed is not None:
        metrics["probes"] = probed
    if is_main():
        write_json(out / rules.FILE, rules.fitted_rules(rows, comp))
        Predictions(comp, table.frame["id"][done], oof[done], folds[done], labels[done]).write(out)
        write_json(out / "metrics.json", metrics)
        reliability_plot(label_curves(oof[done], labels[done]), out / "reliability.png", title=f"OOF, {int(done.sum())} rows")
    log(f"CV logloss {metrics['logloss']:.4f} (uniform {uniform:.4f}, label prior {prior:.4f})  accuracy {metrics['accuracy']:.4f}  "
        f"({comp.name}: {comp.metric})  -> {out}")
    return metrics

