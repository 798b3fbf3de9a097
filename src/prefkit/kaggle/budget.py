"""Will an inference kernel finish within the competition's time limit on T4x2?

    seconds = models x (load + rows x passes x tokens per row / (tokens per second per GPU x GPUs))

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


def estimate(cfg: Config, n_models: int, tokens_per_row: float | None = None) -> dict:
    table = _table()
    key = model_key(cfg)
    entry = table["models"][key]
    if entry.get("tokens_per_s"):
        tps, how = float(entry["tokens_per_s"]), "measured"
    else:
        per_token = entry.get("forward_flops_per_token") or 2 * entry["parameters"]
        tps = entry["utilisation"] * table["t4_peak_flops"] / per_token
        how = f"estimated from FLOPs at {entry['utilisation']:.0%} of the T4's fp16 peak (not measured)"
    kc = cfg.kaggle
    gpus = max(kc.gpus, 1)
    passes = 2 if cfg.predict.swap_tta else 1
    per_row = tokens_per_row or cfg.template.max_length
    compute = kc.test_rows * passes * per_row / (tps * gpus)
    seconds = n_models * (table["load_seconds_per_model"][key] + compute)
    return {"model": key, "tokens_per_s_per_gpu": round(tps), "throughput": how, "gpus": gpus, "models": n_models,
            "rows": kc.test_rows, "passes": passes, "tokens_per_row": round(per_row, 1),
            "hours": round(seconds / 3600, 2), "limit_hours": kc.time_limit_hours,
            "fits": seconds / 3600 <= kc.time_limit_hours}
