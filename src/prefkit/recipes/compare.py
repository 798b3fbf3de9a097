"""`prefkit compare RUN RUN... [--out FILE.json]`: is a run better than the first (the baseline) beyond noise?

The runs are cv runs or blends (`prefkit blend`) with out-of-fold predictions of the same rows in the same folds
(`oof_logits.csv`, else `oof.csv`). Each is set against the baseline row by row (`prefkit.toolbox.compare`): the
mean difference of log loss and of accuracy with its standard error, over all rows and per fold, and a plain
verdict ("better by 0.0120 ± 0.0040 log loss" beyond 2 standard errors, else "within noise"). Runs of other rows,
folds, labels or another competition are refused. Where the baseline's data file can still be read, the table
also gives each run's accuracy where the shorter answer won and where the longer won (`rules.length_view`).
Prints a table; `--out` writes the figures as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.competition import COMPETITIONS
from prefkit.core import runs as run_folders
from prefkit.core.dist import log
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.io import check_writable, refuse_overwrite, write_json
from prefkit.metrics import score
from prefkit.recipes.common import load_labelled
from prefkit.rm.run import BLEND_FILE, Run, is_blend, open_run_or_blend
from prefkit.toolbox.compare import NOISE, align, paired, verdict
from prefkit.toolbox.predictions import probabilities_of, read_logits
from prefkit.toolbox.rules import length_view


def _competition(run: Path) -> str:
    if is_blend(run):
        return json.loads((run / BLEND_FILE).read_text(encoding="utf-8")).get("competition", "lmsys")
    if run_folders.is_run(run):
        return Run.open(run).config.competition
    raise PrefkitError(f"{run}: neither a cv run (no config.yaml) nor a blend (no {BLEND_FILE}); give folders "
                       "written by `prefkit cv` or `prefkit blend`")


def _length_rows(run: Path, ids: pd.Index, labels: np.ndarray) -> PairTable | None:
    """The baseline's data rows in the order of `ids`, for the length view; None, said, where its data file
    cannot be read now or no longer holds these rows with these labels."""
    try:
        cfg = open_run_or_blend(run).config
        table = load_labelled(cfg.data.train, cfg)
    except (PrefkitError, OSError) as e:
        log(f"note: no length view: the data of {run} cannot be read now ({e})")
        return None
    first = ~table.frame["id"].duplicated().to_numpy()
    at = pd.Series(np.flatnonzero(first), index=table.frame["id"][first])  # each id's (first) row
    rows = at.loc[ids].to_numpy() if ids.isin(at.index).all() else None
    if rows is None or not np.array_equal(table.frame["label"].to_numpy()[rows], labels):
        log(f"note: no length view: {cfg.data.train} no longer holds {run}'s rows with their labels")
        return None
    return table.subset(rows)


def main(runs: list[str], out: str | None = None) -> dict:
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise PrefkitError("compare needs at least two runs: the baseline first, then the runs set against it")
    if out:
        refuse_overwrite(out, {"RUN": runs})
        check_writable(out)
    names = [_competition(p) for p in paths]
    if len(set(names)) > 1:
        raise PrefkitError("the runs are of different competitions ("
                           + ", ".join(f"{p}: {n}" for p, n in zip(paths, names)) + "); compare runs of one")
    comp = COMPETITIONS[names[0]]
    frames = [read_logits(p, comp) for p in paths]
    for p, f in zip(paths, frames):
        if "fold" not in f.columns or "label" not in f.columns:
            raise PrefkitError(f"{p}: its predictions have no fold and label columns: compare cv runs or blends "
                               "(their out-of-fold predictions)")
    frames = align(frames, [str(p) for p in paths])
    labels, folds = frames[0]["label"].to_numpy(), frames[0]["fold"].to_numpy()
    probs = [probabilities_of(f, comp) for f in frames]
    rows = _length_rows(paths[0], frames[0].index, labels)
    report = {"baseline": str(paths[0]), "competition": comp.name, "rows": len(labels),
              "folds": [int(k) for k in np.unique(folds)], "noise_se": NOISE, "runs": []}
    for i, (p, pr) in enumerate(zip(paths, probs)):
        s = score(pr, labels)
        entry = {"run": str(p), "logloss": s["logloss"], "accuracy": s["accuracy"]}
        if rows is not None:
            entry["length"] = length_view(rows, pr)
        if i:
            d = paired(probs[0], pr, labels, folds)
            entry["vs_baseline"] = {**d, "verdict": verdict(str(p), str(paths[0]), d)}
        report["runs"].append(entry)
    if out:
        write_json(out, report)
    return report


def _pm(d: dict) -> str:
    return "-" if d["se"] is None else f"{d['mean']:+.4f} ± {d['se']:.4f}"


def _group(g: dict) -> str:
    return "-" if g["accuracy"] is None else f"{g['accuracy']:.4f} ({g['rows']})"


def markdown(report: dict) -> str:
    """The report as tables: each run's scores and differences, the log loss difference per fold, the verdicts."""
    runs, base = report["runs"], report["runs"][0]
    length = "length" in base
    lines = [f"Baseline: {report['baseline']} ({report['rows']} out-of-fold rows, folds "
             f"{', '.join(map(str, report['folds']))}, competition {report['competition']}). Δ: run minus baseline, "
             "row by row, ± one standard error of the mean (a negative Δ log loss is better).", ""]
    head = ["run", "log loss", "accuracy", "Δ log loss", "Δ accuracy"]
    head += ["accuracy where the shorter won (rows)", "where the longer won (rows)"] if length else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        v = r.get("vs_baseline")
        cells = [r["run"] + ("" if v else " (baseline)"), f"{r['logloss']:.4f}", f"{r['accuracy']:.4f}",
                 _pm(v["logloss"]) if v else "", _pm(v["accuracy"]) if v else ""]
        cells += [_group(r["length"]["shorter_won"]), _group(r["length"]["longer_won"])] if length else []
        lines.append("| " + " | ".join(cells) + " |")
    folds = runs[1]["vs_baseline"]["folds"]
    lines += ["", "Δ log loss per fold:", "",
              "| run | " + " | ".join(f"fold {f['fold']} ({f['rows']} rows)" for f in folds) + " |",
              "|" + "---|" * (len(folds) + 1)]
    lines += ["| " + " | ".join([r["run"]] + [_pm(f["logloss"]) for f in r["vs_baseline"]["folds"]]) + " |"
              for r in runs[1:]]
    if length:
        view = base["length"]
        lines += ["", f"Length rule (the longer last answer wins) on these rows: accuracy {view['rule_accuracy']:.4f}; "
                  f"{view['differ_share']:.1%} of the pairs differ in length."]
    lines += [""] + [r["vs_baseline"]["verdict"] for r in runs[1:]]
    return "\n".join(lines)
