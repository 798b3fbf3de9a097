"""`prefkit pseudo-label --run RUN_OR_BLEND --data UNLABELLED --out FILE [--min-margin M]`: soft labels for
unlabelled pairs from a trained run (fold ensemble) or a blend of runs, the unsure ones dropped and counted
(`prefkit.toolbox.pseudo`). The file feeds `train.pseudo_labels` (and `train.soft_labels`, `train.distill.teacher`)."""

from __future__ import annotations

import json
from pathlib import Path

from prefkit.competition import competition_of
from prefkit.data import load_pairs
from prefkit.errors import PrefkitError
from prefkit.io import check_writable, refuse_overwrite, same_path, write_json
from prefkit.recipes.common import log, report_skipped, require_rows
from prefkit.rm.run import BLEND_FILE, is_blend, open_run_or_blend
from prefkit.toolbox.pseudo import write_pseudo_labels


def main(run: str, data: str, out: str, min_margin: float = 0.0, overrides: list[str] = ()) -> dict:
    blend = is_blend(run)
    summary = Path(out).with_suffix(".json")
    inputs = {"--run": run, "--data": data,
              "a run of the blend": json.loads((Path(run) / BLEND_FILE).read_text()).get("runs", []) if blend else []}
    refuse_overwrite(out, inputs)
    refuse_overwrite(summary, inputs, "--out's summary")
    check_writable(out)
    if same_path(Path(out), summary):
        raise PrefkitError(f"--out {out}: the pseudo-labels' summary is written to {summary}; give a .csv name")
    source = open_run_or_blend(run, overrides)
    cfg = source.config
    table = load_pairs(data, cfg.data)
    report_skipped(table)
    require_rows(table, data, "to pseudo-label")
    labelled = int(table.frame["label"].notna().sum())
    if labelled:
        log(f"{data}: {labelled} rows carry labels; pseudo-labelling ignores them")
    probs, _ = source.predict(table, log)
    info = write_pseudo_labels(out, table, probs, competition_of(cfg), min_margin)
    info.update({"source": str(run), "data": str(data), "out": str(out)})
    write_json(summary, info)
    log(f"pseudo-labelled {info['kept']} of {info['rows']} pairs; dropped {info['dropped']} with a margin <= {min_margin} "
        f"(the gap between the two most probable labels) -> {out}")
    return info
