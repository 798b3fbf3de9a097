"""`prefkit blend RUN... --out DIR`: blend cv runs on their out-of-fold predictions (`prefkit.toolbox.blend`).

Writes into DIR: `blend.json` (the runs, the method and its weights, the scores), `blender.joblib`, the
blender-CV predictions as `oof.csv` and `oof_logits.csv` (so a blend can teach a student or pseudo-label like a
run), `metrics.json` and `table.md` (each run against the blend on the same rows). With `--test-preds`, one
predict folder per run, it also writes the blended test `probabilities.csv`, `logits.csv` and the submission. A
predict folder records the run that predicted it, and is matched to that run whatever the order given; a
logits/probabilities file records none and takes its run's place in the order given.

A blend's files are one unit: they are written into a folder beside DIR and replace the previous blend's there
at the end (`prefkit.io.staged_folder`), so DIR never holds two blends' files, and a blend that fails leaves the
previous one whole. DIR may be neither an input (a run, a predict folder) nor inside one, nor another run's folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from prefkit.competition import COMPETITIONS, Competition
from prefkit.config import config_hash
from prefkit.core import runs as run_folders
from prefkit.core.dist import log
from prefkit.errors import PrefkitError
from prefkit.io import (
    refuse_overwrite,
    same_path,
    staged_folder,
    write_json,
    write_text,
)
from prefkit.metrics import score
from prefkit.rm.run import BLEND_FILE, Run, is_blend
from prefkit.submission import write_submission
from prefkit.toolbox.blend import Blender, blender_cv
from prefkit.toolbox.predictions import (
    OOF_FILE,
    TEST_FILE,
    Predictions,
    probabilities_of,
    read_logits,
    recorded_run,
)

# every file a blend may write into its folder (BLEND_FILE, the marker, last)
BLEND_OUTPUTS = (BLEND_FILE, "blender.joblib", "oof.csv", OOF_FILE, "metrics.json", "table.md", TEST_FILE,
                 "probabilities.csv", "submission.csv")


def _competition(runs: list[Path]) -> Competition:
    names = {Run.open(run, made_by="`prefkit cv`").config.competition for run in runs}
    if len(names) > 1:
        raise PrefkitError(f"the runs are of different competitions ({', '.join(sorted(names))}); blend runs of one")
    return COMPETITIONS[names.pop()]


def _aligned(sources: list, comp: Competition, what: str) -> tuple[pd.Index, list[pd.DataFrame]]:
    """Each source's frame in the first one's row order; every source must predict exactly the same ids."""
    frames = [read_logits(s, comp) for s in sources]
    ids = frames[0].index
    for s, f in zip(sources[1:], frames[1:]):
        missing, extra = ids.difference(f.index), f.index.difference(ids)
        if len(missing) or len(extra):
            first = missing[0] if len(missing) else extra[0]
            raise PrefkitError(f"{s}: its {what} cover other rows than {sources[0]}'s ({len(missing)} missing, "
                               f"{len(extra)} extra; first: id {first!r}); blend runs of the same data")
    return ids, [f.loc[ids] for f in frames]


def _row(name: str, probs: np.ndarray, labels: np.ndarray) -> dict:
    s = score(probs, labels)
    return {"model": name, "logloss": round(s["logloss"], 4), "accuracy": round(s["accuracy"], 4),
            "ece": round(s["ece"], 4)}


def _test_preds_in_run_order(runs: list[Path], test_preds: list[str]) -> list[str]:
    """--test-preds in the runs' order, whatever order they were given in: a predict folder is matched to the run
    it records (`prefkit.toolbox.predictions.run_record`: the run's folder, else its config hash). A source
    without a record (a logits or probabilities file, a folder of an older prefkit) takes a place left, in the
    order given, and is said."""
    placed: dict[int, str] = {}
    unrecorded = []
    for pred in test_preds:
        rec = recorded_run(pred)
        if rec is None:
            unrecorded.append(pred)
            continue
        i = _run_of(runs, rec, pred)
        if i in placed:
            raise PrefkitError(f"--test-preds {placed[i]} and {pred}: both are predictions of run {runs[i]}; "
                               "give one predict folder per run")
        placed[i] = pred
    for i, pred in zip([i for i in range(len(runs)) if i not in placed], unrecorded):
        log(f"note: --test-preds {pred} records no run (not a folder written by `prefkit predict`): taken as "
            f"{runs[i]}'s by its place")
        placed[i] = pred
    return [placed[i] for i in range(len(runs))]


def _run_of(runs: list[Path], rec: dict, pred: str) -> int:
    """Which of `runs` a predict folder's record names: the same folder, else the one run of its config hash."""
    for i, run in enumerate(runs):
        if same_path(run, Path(rec["path"])):
            return i
    by_hash = [i for i, run in enumerate(runs) if rec.get("config_hash") and config_hash(run) == rec["config_hash"]]
    if len(by_hash) == 1:
        return by_hash[0]
    blended = ", ".join(map(str, runs))
    if by_hash:
        raise PrefkitError(f"--test-preds {pred}: predicted by run {rec['path']}, whose config (hash "
                           f"{rec['config_hash']}) is that of several runs blended ({blended}); predict each run again")
    raise PrefkitError(f"--test-preds {pred}: predicted by run {rec['path']}, which is none of the runs blended "
                       f"({blended}); give the predict folder of each run")


def _check_outputs(runs: list[Path], out_dir: Path, test_preds: list[str], submission: str | None) -> None:
    """The blend writes neither into nor over its inputs, nor over a run folder."""
    inputs = {"run": runs, "--test-preds": list(test_preds)}
    refuse_overwrite(out_dir, inputs)
    for name in BLEND_OUTPUTS:
        refuse_overwrite(out_dir / name, inputs)
    if submission:
        refuse_overwrite(submission, inputs, "--submission")
    if run_folders.is_run(out_dir) and not is_blend(out_dir):
        raise PrefkitError(f"--out {out_dir}: is a run folder (it has config.yaml), whose predictions the blend's "
                           "would replace; give a folder for the blend")


def main(runs: list[str], out: str, method: str = "simplex", test_preds: list[str] = (),
         submission: str | None = None) -> dict:
    runs_p = [Path(r) for r in runs]
    if len(runs_p) < 2:
        raise PrefkitError("blend needs at least two runs")
    if test_preds and len(test_preds) != len(runs_p):
        raise PrefkitError(f"--test-preds: {len(test_preds)} given for {len(runs_p)} runs; give one per run")
    out_dir = Path(out)
    _check_outputs(runs_p, out_dir, list(test_preds), submission)
    comp = _competition(runs_p)
    ids, frames = _aligned(runs_p, comp, "out-of-fold predictions")
    for run, f in zip(runs_p, frames):
        if "fold" not in f.columns or "label" not in f.columns:
            raise PrefkitError(f"{run}: its predictions have no fold and label columns: blend cv runs (their OOF)")
    labels, folds = frames[0]["label"].to_numpy(), frames[0]["fold"].to_numpy()
    for run, f in zip(runs_p[1:], frames[1:]):
        if not np.array_equal(f["label"].to_numpy(), labels):
            raise PrefkitError(f"{run}: its labels differ from {runs_p[0]}'s for the same ids")
    members = [probabilities_of(f, comp) for f in frames]
    log(f"blending {len(members)} runs on {len(ids)} out-of-fold rows ({method}, blender CV over "
        f"{len(np.unique(folds))} folds)")
    blended = blender_cv(members, labels, folds, method)
    final = Blender(method).fit(members, labels)
    table = [_row(str(r), m, labels) for r, m in zip(runs_p, members)] + [_row(f"blend ({method}, blender CV)", blended, labels)]
    metrics = {**score(blended, labels), "competition": comp.name, "metric": comp.metric, "members": table,
               "blender": final.describe()}
    best = min(table[:-1], key=lambda r: r["logloss"])
    metrics["gain_over_best_logloss"] = round(best["logloss"] - table[-1]["logloss"], 4)
    lines = ["| model | log loss | accuracy | ECE |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['logloss']:.4f} | {r['accuracy']:.4f} | {r['ece']:.4f} |" for r in table]
    lines += ["", f"Blender: {json.dumps(final.describe())}. The blend row is the blender's own CV (fitted on the "
              "other folds' OOF, scored on this fold's)."]
    info = {"runs": [str(r.resolve()) for r in runs_p], "competition": comp.name, **final.describe()}
    p = test_ids = None
    if test_preds:  # everything is read and computed before anything is written
        ordered = _test_preds_in_run_order(runs_p, list(test_preds))
        test_ids, test_frames = _aligned(ordered, comp, "test predictions")
        p = final.predict([probabilities_of(f, comp) for f in test_frames])
        info["test_preds"] = [str(Path(t).resolve()) for t in ordered]
    sub = Path(submission) if submission else out_dir / "submission.csv"
    sub_inside = sub.resolve().parent == out_dir.resolve() or out_dir.resolve() in sub.resolve().parents
    sub_name = str(sub.resolve().relative_to(out_dir.resolve())) if sub_inside else None
    if sub_inside and sub_name != "submission.csv" and sub_name in BLEND_OUTPUTS:
        raise PrefkitError(f"--submission {sub}: is the blend's own {sub_name}; give another name")
    previous = _previous_files(out_dir)

    # all of the blend's files as one unit: a folder never holds two blends' files, a failed blend leaves the old one
    with staged_folder(out_dir, BLEND_FILE, owned=set(BLEND_OUTPUTS) | previous) as stage:
        final.save(stage / "blender.joblib")
        Predictions(comp, ids, blended, folds, labels).write(stage)
        if test_preds:
            Predictions(comp, test_ids, p).write(stage)
            if sub_inside:
                write_submission(test_ids, test_ids, p, stage / sub_name, comp=comp)
            metrics["submission"] = str(sub)
            lines.append(f"\nBlended submission of {len(test_ids)} test rows: {sub}")
        write_text(stage / "table.md", "\n".join(lines) + "\n")
        write_json(stage / "metrics.json", metrics)
        files = sorted(str(f.relative_to(stage)) for f in stage.rglob("*") if f.is_file()) + [BLEND_FILE]
        write_json(stage / BLEND_FILE, {**info, "files": files})
    if test_preds and not sub_inside:
        write_submission(test_ids, test_ids, p, sub, comp=comp)
    log("\n".join(lines))
    return metrics


def _previous_files(out_dir: Path) -> set[str]:
    """The files the blend in `out_dir` (if any) says it wrote."""
    try:
        files = json.loads((out_dir / BLEND_FILE).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str)}
