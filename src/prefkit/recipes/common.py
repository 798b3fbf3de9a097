"""What every recipe does first: check the model kind, say which keys it does not read, start its run folder
(`prefkit.core.runs`), keep a model finished earlier; load labelled data."""

from __future__ import annotations

from pathlib import Path

from prefkit.competition import competition_of, keep_labelled
from prefkit.config import Config, unused_keys
from prefkit.core.dist import log
from prefkit.core.runs import is_trained, output_dir
from prefkit.data import PairTable, load_pairs
from prefkit.errors import PrefkitError


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


def start(cfg: Config, job: str, kinds: tuple[str, ...], hint: str, sections: list[str] | dict[str, list[str]],
          name: str = "", resume: bool = False) -> Path:
    """The prologue of the training recipes (`cv`, `train`, `cot sft`): refuse a config of another model kind
    (with `hint`, what to run instead), say which keys the job does not read, then start the run folder (named
    after the job's last word), refusing one that holds another run (or, with `resume`, a run made otherwise)."""
    require_kind(cfg, f"prefkit {job}", kinds, hint)
    report_unused(cfg, job, sections)
    return output_dir(cfg, job.split()[-1], name, resume=resume, inputs=input_files(cfg))


def input_files(cfg: Config) -> dict[str, object]:
    """The files a training job reads, by config key: none may lie where the job writes."""
    tc = cfg.train
    return {"data.train": cfg.data.train, "data.test": cfg.data.test, "train.soft_labels": tc.soft_labels,
            "train.pseudo_labels": tc.pseudo_labels, "train.distill.teacher": list(tc.distill.teacher),
            "cot.samples": list(cfg.cot.samples)}


def finished_earlier(folder: Path, resume: bool) -> bool:
    """With --resume, a model folder that finished is kept (and said so) rather than trained again."""
    if resume and is_trained(folder):
        log(f"{folder}: finished earlier, kept")
        return True
    return False


def load_labelled(path: str | None, cfg: Config, what: str = "data.train") -> PairTable:
    if not path:
        raise PrefkitError(f"{what} is not set: pass {what}=PATH")
    table = load_pairs(path, cfg.data)
    report_skipped(table)
    unlabelled = int(table.frame["label"].isna().sum())
    if unlabelled:
        first = table.frame.loc[table.frame["label"].isna(), "id"].iloc[0]
        raise PrefkitError(f"{path}: {unlabelled} rows have no label (first: id {first!r}); training needs labels")
    table = keep_labelled(table, competition_of(cfg), cfg.data.ties)
    if table.dropped_labels:
        log(f"{path}: dropped {table.dropped_labels} rows labelled tie (competition={cfg.competition} has no ties)")
    if len(table) == 0:
        raise PrefkitError(f"{path}: no rows to train on")
    return table


def require_rows(table: PairTable, path: str | Path, what: str) -> None:
    """A file with a header and no rows (or none left after skipping bad ones) is refused before any model loads."""
    if len(table) == 0:
        skipped = f" ({len(table.skipped)} skipped as bad)" if table.skipped else " (a header and no rows)"
        raise PrefkitError(f"{path}: no rows {what}{skipped}")


def report_skipped(table: PairTable) -> None:
    if table.skipped:
        log(table.skipped_report())
    if table.repaired_cells:
        log(f"{table.source}: replaced lone UTF-16 surrogates in {table.repaired_cells} cells with U+FFFD")
