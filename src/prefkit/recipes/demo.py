"""`prefkit demo`: the whole loop on a sample set prefkit makes, with no data and no network.

Default: the embedded CPU reward model (configs/rm/minilm_cpu.yaml: MiniLM fine-tuned as a 3-label
cross-encoder) on 1,200 training and 300 test pairs, at 128 tokens and 3 folds so that it runs in minutes
on 2 cores. CV trains one model per fold; the submission averages the fold models with A/B swap TTA (as
Kaggle entries do), so no fourth training is spent on all rows (`prefkit train` does that).

With `competition=wsdm` the sample set is WSDM Cup's: one turn per row, no ties, parquet files with a
`winner` column, and the submission is `id,winner`.

Writes in output_dir: data/train and data/test (LMSYS CSV, or WSDM parquet), cv/ (fold models, oof.csv,
metrics.json, reliability.png), predict/, submission.csv, metrics.json and report.md.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from prefkit.competition import of
from prefkit.config import Config, load_config
from prefkit.data.arena import write_lmsys_csv, write_wsdm_parquet
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.dist import is_main, wait
from prefkit.io import write_json, write_text
from prefkit.heads import head_name
from prefkit.metrics import uniform_logloss
from prefkit.recipes import cv, predict
from prefkit.recipes.common import log, output_dir
from prefkit.shipped import config_path as config_path_of

DEFAULT_CONFIG = "rm/minilm_cpu"  # a shipped config (prefkit.shipped)
# What the demo changes in the config it is given, to fit its time: shorter rows, three folds.
DEMO_OVERRIDES = ["template.max_length=128", "cv.n_splits=3"]


def _report(cfg: Config, config_path: Path, metrics: dict, stats: dict, sub_head: str, seconds: dict) -> str:
    rows = "\n".join(f"| {f['fold']} | {f['logloss']:.4f} | {f['accuracy']:.4f} | {f['n']} |" for f in metrics["folds"])
    padding = f"{stats['padding_ratio']:.3f}" if "padding_ratio" in stats else "n/a"
    comp = of(cfg)
    head = f", head `{head_name(cfg)}`" if cfg.model.kind == "seq_cls" else ""
    return f"""# prefkit demo

Config `{config_path.name}` (model kind `{cfg.model.kind}`{head}{f", backbone `{cfg.model.path}`" if cfg.model.path else ""}),
{metrics['n']} synthetic {comp.name.upper()}-format pairs made by `prefkit.data.synthetic`, grouped {len(metrics['folds'])}-fold CV.
The competition scores {comp.metric}; uniform prediction has log loss {uniform_logloss(len(comp.labels)):.4f}.

| fold | log loss | accuracy | n |
|---|---|---|---|
{rows}
| **all (OOF)** | **{metrics['logloss']:.4f}** | **{metrics['accuracy']:.4f}** | {metrics['n']} |

Expected calibration error (top class): {metrics['ece']:.4f}. Reliability plot: `cv/reliability.png`.
Submission: the {len(metrics['folds'])} fold models averaged, each with A/B swap TTA; padding ratio of the
length-sorted test batches (padded tokens / real tokens): {padding}.

```
{sub_head}```

Time: {seconds['cv']:.0f} s CV (training and out-of-fold prediction), {seconds['predict']:.0f} s test prediction,
{seconds['total']:.0f} s in all.
"""


def _sample(rows: int, seed: int, competition: str) -> PairTable:
    """`rows` synthetic pairs; for WSDM single-turn ones without ties (the first `rows` such of a larger draw)."""
    if competition != "wsdm":
        return make_pairs(rows, seed=seed)
    drawn = make_pairs(2 * rows, seed=seed, multi_turn_fraction=0.0)
    f = drawn.frame[drawn.frame["label"] != "tie"].head(rows).reset_index(drop=True)
    return PairTable(f, drawn.source)


def main(overrides: list[str], config: str | None = None, rows: int = 1200) -> dict:
    t0 = time.perf_counter()
    config_path = config_path_of(config or DEFAULT_CONFIG)
    cfg = load_config(config_path, DEMO_OVERRIDES + list(overrides))
    out = output_dir(cfg, "demo")
    data_dir = out / "data"
    train_set = _sample(rows, cfg.data.seed, cfg.competition)
    test_set = _sample(max(rows // 4, 10), cfg.data.seed + 1, cfg.competition)
    test_set = PairTable(test_set.frame.assign(label=None), test_set.source)
    write, ext = (write_wsdm_parquet, "parquet") if cfg.competition == "wsdm" else (write_lmsys_csv, "csv")
    cfg.data.train, cfg.data.test = str(data_dir / f"train.{ext}"), str(data_dir / f"test.{ext}")
    if is_main():
        write(train_set, cfg.data.train)
        write(test_set, cfg.data.test)
    wait()  # the other processes read these next
    log(f"sample set: {len(train_set)} training and {len(test_set)} test pairs -> {data_dir}")

    cv_cfg = copy.deepcopy(cfg)
    cv_cfg.output_dir = str(out / "cv")
    metrics = cv.main(cv_cfg)
    t_cv = time.perf_counter()
    sub = predict.main(out / "cv", cfg.data.test, out / "submission.csv", [f"output_dir={out / 'predict'}"])
    t_end = time.perf_counter()
    seconds = {"cv": t_cv - t0, "predict": t_end - t_cv, "total": t_end - t0}
    if is_main():
        stats_file = out / "predict" / "predict_stats.json"
        per_model = json.loads(stats_file.read_text())["per_model"] if stats_file.exists() else []
        stats = per_model[0] if per_model else {}
        write_json(out / "metrics.json", {**metrics, "seconds": {k: round(v, 1) for k, v in seconds.items()},
                                          "test_padding_ratio": stats.get("padding_ratio")})
        head = sub.head().to_csv(index=False, float_format="%.4f")
        write_text(out / "report.md", _report(cfg, config_path, metrics, stats, head, seconds))
    log(f"demo done in {seconds['total']:.0f} s: CV logloss {metrics['logloss']:.4f}, accuracy {metrics['accuracy']:.4f} "
        f"-> {out / 'report.md'}")
    return metrics
