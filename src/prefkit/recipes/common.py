"""What every recipe does first: resolve its output folder, save the resolved config, load labelled data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefkit.competition import keep_labelled, of
from prefkit.config import Config, save_config, unused_keys
from prefkit.core.dist import is_main, log, wait  # noqa: F401  (log: used by the recipes)
from prefkit.data import PairTable, load_pairs
from prefkit.errors import PrefkitError
from prefkit.lock import acquire


def output_dir(cfg: Config, job: str, name: str = "") -> Path:
    """`output_dir` from the config, or runs/<job>[-<name>]-<time>; created, with config.yaml written in it.
    A tracker of `train.report_to` whose package is missing stops the job here, before data or models load."""
    from prefkit.core import trackers

    trackers.check(cfg.train.report_to)
    if not cfg.output_dir:
        cfg.output_dir = str(_same_in_every_process(_new_run_folder(job, name) if is_main() else None))
    out = Path(cfg.output_dir)
    if is_main():
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PrefkitError(f"output_dir {out}: cannot create it ({e.strerror or e})") from None
        acquire(out, " ".join(x for x in ("prefkit", job, name) if x), log)  # one command per folder
        save_config(cfg, out)
    wait()
    return out


def _new_run_folder(job: str, name: str) -> Path:
    """runs/<job>[-<name>]-<time>, made here, exclusively: a second command started in the same second gets
    -2 (then -3, ...) instead of sharing the folder, where the same second would have it refused as in use (or,
    in one process, write over the first)."""
    base = Path("runs") / "-".join(x for x in (job, name, time.strftime("%Y%m%d-%H%M%S")) if x)
    out, n = base, 1
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                out.mkdir(exist_ok=False)  # exclusive: of two commands, one gets each name
                return out
            except FileExistsError:
                n += 1
                out = base.with_name(f"{base.name}-{n}")
    except OSError as e:
        raise PrefkitError(f"output_dir {out}: cannot create it ({e.strerror or e})") from None


def _same_in_every_process(value: Any) -> Any:
    """The main process's value in every process of a multi-GPU launch (the others made no folder)."""
    from prefkit.core.dist import state

    if state().num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def require_kind(cfg: Config, job: str, kinds: tuple[str, ...], hint: str) -> None:
    """Refuse a config of another kind of model up front (an SFT config given to `cv`), with what to run."""
    if cfg.model.kind not in kinds:
        raise PrefkitError(f"`{job}` trains model.kind {' or '.join(kinds)}; this config has model.kind={cfg.model.kind} "
                           f"({hint})")


def report_unused(cfg: Config, job: str, sections: list[str] | dict[str, list[str]]) -> None:
    """A key the job does not read (its recipe's `SECTIONS`: a list, or one per model kind) is said, once, up
    front: it would otherwise look like it had an effect."""
    keys = unused_keys(cfg, sections)
    if keys:
        kind = f" with model.kind={cfg.model.kind}" if isinstance(sections, dict) else ""
        log(f"note: `{job}`{kind} does not read {', '.join(keys)}: "
            f"{'they have' if len(keys) > 1 else 'it has'} no effect")


def load_labelled(path: str | None, cfg: Config, what: str = "data.train") -> PairTable:
    if not path:
        raise PrefkitError(f"{what} is not set: pass {what}=PATH")
    table = load_pairs(path, cfg.data)
    report_skipped(table)
    unlabelled = int(table.frame["label"].isna().sum())
    if unlabelled:
        first = table.frame.loc[table.frame["label"].isna(), "id"].iloc[0]
        raise PrefkitError(f"{path}: {unlabelled} rows have no label (first: id {first!r}); training needs labels")
    table = keep_labelled(table, of(cfg), cfg.data.ties)
    if table.dropped_labels:
        log(f"{path}: dropped {table.dropped_labels} rows labelled tie (competition={cfg.competition} has no ties)")
    if len(table) == 0:
        raise PrefkitError(f"{path}: no rows to train on")
    return table


def report_skipped(table: PairTable) -> None:
    if table.skipped:
        log(table.skipped_report())
    if table.repaired_cells:
        log(f"{table.source}: replaced lone UTF-16 surrogates in {table.repaired_cells} cells with U+FFFD")
