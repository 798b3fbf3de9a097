"""What every recipe does first: resolve its output folder, save the resolved config, load labelled data."""

from __future__ import annotations

import time
from pathlib import Path

from prefkit.config import Config, save_config
from prefkit.data import PairTable, load_pairs
from prefkit.dist import is_main, log, wait  # noqa: F401  (log: used by the recipes)
from prefkit.errors import PrefkitError


def output_dir(cfg: Config, job: str, name: str = "") -> Path:
    """`output_dir` from the config, or runs/<job>[-<name>]-<time>; created, with config.yaml written in it."""
    if not cfg.output_dir:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg.output_dir = str(Path("runs") / "-".join(x for x in (job, name, stamp) if x))
    out = Path(cfg.output_dir)
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out)
    wait()
    return out


def load_labelled(path: str | None, cfg: Config, what: str = "data.train") -> PairTable:
    if not path:
        raise PrefkitError(f"{what} is not set: pass {what}=PATH")
    table = load_pairs(path, cfg.data)
    report_skipped(table)
    unlabelled = int(table.frame["label"].isna().sum())
    if unlabelled:
        first = table.frame.loc[table.frame["label"].isna(), "id"].iloc[0]
        raise PrefkitError(f"{path}: {unlabelled} rows have no label (first: id {first!r}); training needs labels")
    if len(table) == 0:
        raise PrefkitError(f"{path}: no rows to train on")
    return table


def report_skipped(table: PairTable) -> None:
    if table.skipped:
        log(table.skipped_report())
    if table.repaired_cells:
        log(f"{table.source}: replaced lone UTF-16 surrogates in {table.repaired_cells} cells with U+FFFD")
