"""`prefkit demo`: the whole loop on a sample set prefkit makes, with no data and no network.

Writes in output_dir: data/train.csv and data/test.csv (LMSYS form), cv/ (oof.csv, metrics.json,
reliability.png), train/ (the model), submission.csv, metrics.json (the CV scores) and report.md.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from prefkit.config import Config
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.io import write_json, write_text
from prefkit.metrics import UNIFORM_LOGLOSS
from prefkit.recipes import cv, predict, train
from prefkit.recipes.common import log, output_dir

TRAIN_ROWS, TEST_ROWS = 2400, 600


def _step(cfg: Config, out: Path, sub: str) -> Config:
    c = copy.deepcopy(cfg)
    c.output_dir = str(out / sub)
    return c


def _report(metrics: dict, sub_head: str, seconds: float) -> str:
    rows = "\n".join(f"| {f['fold']} | {f['logloss']:.4f} | {f['accuracy']:.4f} | {f['n']} |" for f in metrics["folds"])
    return f"""# prefkit demo

Feature baseline on {metrics['n']} synthetic arena-format pairs (made by `prefkit.data.synthetic`), grouped
{len(metrics['folds'])}-fold CV. Uniform prediction scores {UNIFORM_LOGLOSS:.4f}.

| fold | log loss | accuracy | n |
|---|---|---|---|
{rows}
| **all (OOF)** | **{metrics['logloss']:.4f}** | **{metrics['accuracy']:.4f}** | {metrics['n']} |

Expected calibration error (top class): {metrics['ece']:.4f}. Reliability plot: `cv/reliability.png`.

Submission (`submission.csv`, first rows):

```
{sub_head}
```

Total time: {seconds:.1f} s.
"""


def main(cfg: Config) -> dict:
    t0 = time.perf_counter()
    out = output_dir(cfg, "demo")
    data_dir = out / "data"
    train_set = make_pairs(TRAIN_ROWS, seed=cfg.data.seed)
    test_set = make_pairs(TEST_ROWS, seed=cfg.data.seed + 1)
    test_set = PairTable(test_set.frame.assign(label=None), test_set.source)
    write_lmsys_csv(train_set, data_dir / "train.csv")
    write_lmsys_csv(test_set, data_dir / "test.csv")
    log(f"sample set: {len(train_set)} training and {len(test_set)} test pairs -> {data_dir}")
    cfg.data.train, cfg.data.test = str(data_dir / "train.csv"), str(data_dir / "test.csv")

    metrics = cv.main(_step(cfg, out, "cv"))
    run = train.main(_step(cfg, out, "train"))
    sub = predict.main(run, cfg.data.test, out / "submission.csv", [f"output_dir={out / 'predict'}"])
    seconds = time.perf_counter() - t0
    write_json(out / "metrics.json", {**metrics, "seconds": round(seconds, 1)})
    write_text(out / "report.md", _report(metrics, sub.head().to_csv(index=False, float_format="%.4f"), seconds))
    log(f"demo done in {seconds:.1f} s: CV logloss {metrics['logloss']:.4f} -> {out / 'report.md'}")
    return metrics
