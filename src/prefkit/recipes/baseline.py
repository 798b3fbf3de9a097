"""Feature-baseline jobs: cross-validation, training on all rows, and prediction to a submission."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.config import Config, load_config
from prefkit.data import load_pairs
from prefkit.data.folds import assign_folds
from prefkit.features import FeatureModel, table_features
from prefkit.io import atomic_path, write_json
from prefkit.metrics import UNIFORM_LOGLOSS, reliability_plot, score
from prefkit.recipes.common import load_labelled, log, output_dir, report_skipped
from prefkit.submission import write_submission

MODEL_FILE = "model.joblib"


def cv(cfg: Config, name: str = "") -> dict:
    """K-fold CV grouped by prompt: oof.csv, metrics.json and reliability.png in the output folder."""
    out = output_dir(cfg, "cv", name)
    table = load_labelled(cfg.data.train, cfg)
    folds = assign_folds(table, cfg.cv.n_splits, cfg.cv.seed)
    feats = table_features(table)
    labels = table.frame["label"].to_numpy()
    oof = np.zeros((len(table), 3))
    per_fold = []
    for k in range(cfg.cv.n_splits):
        tr, va = folds != k, folds == k
        model = FeatureModel(cfg.features, cfg.train.seed).fit(
            tuple(x[tr] for x in feats), labels[tr], cfg.train.swap_augment
        )
        oof[va] = model.predict_proba(tuple(x[va] for x in feats), cfg.predict.swap_tta)
        per_fold.append({"fold": k, **score(oof[va], labels[va])})
        log(f"fold {k}: logloss {per_fold[-1]['logloss']:.4f}  accuracy {per_fold[-1]['accuracy']:.4f}  n {per_fold[-1]['n']}")
    metrics = {**score(oof, labels), "uniform_logloss": UNIFORM_LOGLOSS, "folds": per_fold,
               "data": str(cfg.data.train), "skipped_rows": len(table.skipped)}
    frame = pd.DataFrame({"id": table.frame["id"], "fold": folds, "label": labels,
                          "winner_model_a": oof[:, 0], "winner_model_b": oof[:, 1], "winner_tie": oof[:, 2]})
    with atomic_path(out / "oof.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    write_json(out / "metrics.json", metrics)
    reliability_plot(oof, labels, out / "reliability.png", title=f"OOF, {len(table)} rows")
    log(f"CV logloss {metrics['logloss']:.4f} (uniform {UNIFORM_LOGLOSS:.4f})  accuracy {metrics['accuracy']:.4f}  -> {out}")
    return metrics


def train(cfg: Config, name: str = "") -> Path:
    """Train on every labelled row; the run folder holds the model and its resolved config."""
    out = output_dir(cfg, "train", name)
    table = load_labelled(cfg.data.train, cfg)
    model = FeatureModel(cfg.features, cfg.train.seed).fit(
        table_features(table), table.frame["label"].to_numpy(), cfg.train.swap_augment
    )
    model.save(out / MODEL_FILE)
    log(f"trained on {len(table)} rows -> {out}")
    return out


def predict(run_dir: str | Path, test: str | Path, out_file: str | Path, overrides: list[str] = ()) -> pd.DataFrame:
    """Submission for `test` from a trained run, with the run's config (plus overrides)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml", overrides)
    if not any(o.startswith("output_dir=") for o in overrides):
        cfg.output_dir = None  # never write into the training run's folder
    model = FeatureModel.load(run_dir / MODEL_FILE)
    output_dir(cfg, "predict")
    table = load_pairs(test, cfg.data)
    report_skipped(table)
    probs = model.predict_proba(table_features(table), cfg.predict.swap_tta)
    sub = write_submission(table.frame["id"], table.frame["id"], probs, out_file, cfg.predict.clip)
    log(f"wrote {len(sub)} predictions -> {out_file}")
    return sub
