"""Will a kernel finish within the competition's time limit on T4x2?

Inference:  seconds = models x (load + rows x passes x tokens per row / (tokens per second per GPU x GPUs))
Training (each fold of `cv`): load + training + evaluations during training + the fold's OOF prediction, where
a training token costs (1 + backward + recompute) forward passes: backward 1 with LoRA (activation gradients
only: frozen weights get none), 2 in full fine-tuning; recompute 1 with gradient checkpointing.

`passes` is 2 with swap TTA. Tokens per row are the rendered test rows' mean when the test file is at hand,
else `template.max_length` (the worst case). Tokens per second come from `t4_throughput.json`: measured
where a benchmark has filled `tokens_per_s`, else estimated from the forward FLOPs per token that
benchmarks/t4_estimate.py counted (2 x parameters where none was counted) at the table's utilisation; the
estimate says which it used.
"""

from __future__ import annotations

import json
from importlib import resources

from prefkit.config import Config
from prefkit.errors import PrefkitError


def _table() -> dict:
    return json.loads(resources.files("prefkit.kaggle").joinpath("t4_throughput.json").read_text())


def model_key(cfg: Config) -> str:
    name = (cfg.model.path or "").lower()
    for key in ("gemma-2-9b", "gemma-2-2b", "minilm"):
        if key in name:
            return key
    raise PrefkitError(f"no T4 throughput known for model.path={cfg.model.path!r} "
                       f"(known: gemma-2-9b, gemma-2-2b, minilm); push with --force to skip the check")


def _throughput(cfg: Config) -> tuple[str, float, str, float]:
    """(model key, forward tokens/s on one T4, how that was found, load seconds)."""
    table = _table()
    key = model_key(cfg)
    entry = table["models"][key]
    if entry.get("tokens_per_s"):
        tps, how = float(entry["tokens_per_s"]), "measured"
    else:
        per_token = entry.get("forward_flops_per_token") or 2 * entry["parameters"]
        tps = entry["utilisation"] * table["t4_peak_flops"] / per_token
        how = f"estimated from FLOPs at {entry['utilisation']:.0%} of the T4's fp16 peak (not measured)"
    return key, tps, how, table["load_seconds_per_model"][key]


def estimate_training(cfg: Config, tokens_per_row: float | None = None) -> dict:
    """Hours of a `cv` training kernel on T4x2: every fold it trains, evaluated and predicted out of fold."""
    key, tps, how, load = _throughput(cfg)
    kc, tc, cv = cfg.kaggle, cfg.train, cfg.cv
    gpus = max(kc.gpus, 1)
    per_row = tokens_per_row or cfg.template.max_length
    folds = len(cv.folds) if cv.folds is not None else cv.n_splits
    rows = min(kc.train_rows, cfg.data.limit) if cfg.data.limit else kc.train_rows
    valid_rows = rows / cv.n_splits
    train_rows = rows - valid_rows
    cost = 1 + (1 if cfg.lora.enabled else 2) + (1 if cfg.model.gradient_checkpointing else 0)
    train_s = train_rows * tc.epochs * per_row * cost / (tps * gpus)
    steps = train_rows * tc.epochs / (tc.batch_size * tc.grad_accum * gpus)
    evals = int(steps // tc.eval_every) if tc.eval_every else 0
    eval_rows = min(tc.eval_rows or valid_rows, valid_rows)
    eval_s = evals * eval_rows * (2 if tc.eval_tta else 1) * per_row / (tps * gpus)
    oof_s = valid_rows * (2 if cfg.predict.swap_tta else 1) * per_row / (tps * gpus)
    seconds = folds * (load + train_s + eval_s + oof_s)
    return {"model": key, "tokens_per_s_per_gpu": round(tps), "throughput": how, "gpus": gpus, "folds": folds,
            "train_rows": round(train_rows), "epochs": tc.epochs, "tokens_per_row": round(per_row, 1),
            "forward_passes_per_training_token": cost, "evaluations": evals, "eval_rows": round(eval_rows),
            "hours_per_fold": {"training": round(train_s / 3600, 2), "evaluation": round(eval_s / 3600, 2),
                               "oof": round(oof_s / 3600, 2)},
            "hours": round(seconds / 3600, 2), "limit_hours": kc.time_limit_hours,
            "fits": seconds / 3600 <= kc.time_limit_hours}


def estimate(cfg: Config, n_models: int, tokens_per_row: float | None = None) -> dict:
    """Hours of an inference kernel on T4x2: every model of the run predicts the test set."""
    key, tps, how, load = _throughput(cfg)
    kc = cfg.kaggle
    gpus = max(kc.gpus, 1)
    passes = 2 if cfg.predict.swap_tta else 1
    per_row = tokens_per_row or cfg.template.max_length
    compute = kc.test_rows * passes * per_row / (tps * gpus)
    seconds = n_models * (load + compute)
    return {"model": key, "tokens_per_s_per_gpu": round(tps), "throughput": how, "gpus": gpus, "models": n_models,
            "rows": kc.test_rows, "passes": passes, "tokens_per_row": round(per_row, 1),
            "hours": round(seconds / 3600, 2), "limit_hours": kc.time_limit_hours,
            "fits": seconds / 3600 <= kc.time_limit_hours}
