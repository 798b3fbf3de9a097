"""`prefkit blend RUN... --out DIR`: blend cv runs on their out-of-fold predictions (`prefkit.blend`).

Writes into DIR: `blend.json` (the runs, the method and its weights, the scores), `blender.joblib`, the
blender-CV predictions as `oof.csv` and `oof_logits.csv` (so a blend can teach a student or pseudo-label like a
run), `metrics.json` and `table.md` (each run against the blend on the same rows). With `--test-preds`, one
predict folder (or logits/probabilities file) per run in the same order, it also writes the blended test
`probabilities.csv`, `logits.csv` and the submission.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from prefkit.blend import Blender, blender_cv
from prefkit.competition import COMPETITIONS, Competition
from prefkit.config import load_config
from prefkit.data.table import PairTable
from prefkit.dist import log
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path, write_json, write_text
from prefkit.metrics import score
from prefkit.predictions import OOF_FILE, TEST_FILE, logit_columns, probabilities, read_logits, write_logits
from prefkit.submission import write_submission

BLEND_FILE = "blend.json"


def _competition(runs: list[Path]) -> Competition:
    names = set()
    for run in runs:
        if not (run / "config.yaml").is_file():
            raise PrefkitError(f"{run}: not a run folder (no config.yaml); blend the folders written by `prefkit cv`")
        names.add((yaml.safe_load((run / "config.yaml").read_text()) or {}).get("competition", "lmsys"))
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


def main(runs: list[str], out: str, method: str = "simplex", test_preds: list[str] = (),
         submission: str | None = None) -> dict:
    runs_p = [Path(r) for r in runs]
    if len(runs_p) < 2:
        raise PrefkitError("blend needs at least two runs")
    if test_preds and len(test_preds) != len(runs_p):
        raise PrefkitError(f"--test-preds: {len(test_preds)} given for {len(runs_p)} runs; give one per run, in order")
    comp = _competition(runs_p)
    ids, frames = _aligned(runs_p, comp, "out-of-fold predictions")
    for run, f in zip(runs_p, frames):
        if "fold" not in f.columns or "label" not in f.columns:
            raise PrefkitError(f"{run}: its predictions have no fold and label columns: blend cv runs (their OOF)")
    labels, folds = frames[0]["label"].to_numpy(), frames[0]["fold"].to_numpy()
    for run, f in zip(runs_p[1:], frames[1:]):
        if not np.array_equal(f["label"].to_numpy(), labels):
            raise PrefkitError(f"{run}: its labels differ from {runs_p[0]}'s for the same ids")
    members = [probabilities(f[logit_columns(comp)].to_numpy()) for f in frames]
    log(f"blending {len(members)} runs on {len(ids)} out-of-fold rows ({method}, blender CV over "
        f"{len(np.unique(folds))} folds)")
    blended = blender_cv(members, labels, folds, method)
    final = Blender(method).fit(members, labels)
    table = [_row(str(r), m, labels) for r, m in zip(runs_p, members)] + [_row(f"blend ({method}, blender CV)", blended, labels)]
    metrics = {**score(blended, labels), "competition": comp.name, "metric": comp.metric, "members": table,
               "blender": final.describe()}
    best = min(table[:-1], key=lambda r: r["logloss"])
    metrics["gain_over_best_logloss"] = round(best["logloss"] - table[-1]["logloss"], 4)

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    final.save(out_dir / "blender.joblib")
    with atomic_path(out_dir / "oof.csv") as tmp:
        pd.DataFrame({"id": ids, "fold": folds, "label": labels,
                      **{c: blended[:, i] for i, c in enumerate(comp.columns)}}).to_csv(tmp, index=False, float_format="%.6f")
    write_logits(out_dir / OOF_FILE, ids, blended, comp, fold=folds, label=labels)
    lines = ["| model | log loss | accuracy | ECE |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['logloss']:.4f} | {r['accuracy']:.4f} | {r['ece']:.4f} |" for r in table]
    lines += ["", f"Blender: {json.dumps(final.describe())}. The blend row is the blender's own CV (fitted on the "
              "other folds' OOF, scored on this fold's)."]
    if test_preds:
        test_ids, test_frames = _aligned(list(test_preds), comp, "test predictions")
        p = final.predict([probabilities(f[logit_columns(comp)].to_numpy()) for f in test_frames])
        write_logits(out_dir / TEST_FILE, test_ids, p, comp)
        with atomic_path(out_dir / "probabilities.csv") as tmp:
            pd.DataFrame({"id": test_ids, **{c: p[:, i] for i, c in enumerate(comp.columns)}}).to_csv(
                tmp, index=False, float_format="%.6f")
        sub = Path(submission) if submission else out_dir / "submission.csv"
        write_submission(test_ids, test_ids, p, sub, comp=comp)
        metrics["submission"] = str(sub)
        lines.append(f"\nBlended submission of {len(test_ids)} test rows: {sub}")
    write_text(out_dir / "table.md", "\n".join(lines) + "\n")
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / BLEND_FILE, {"runs": [str(r.resolve()) for r in runs_p], "competition": comp.name,
                                      **final.describe()})
    log("\n".join(lines))
    return metrics


def is_blend(path: str | Path) -> bool:
    return (Path(path) / BLEND_FILE).is_file()


def blend_probabilities(blend_dir: str | Path, table: PairTable, overrides: list[str] = ()) -> tuple[np.ndarray, dict]:
    """A blend's probabilities of new rows: every member run predicts them, the saved blender combines them."""
    from prefkit.recipes.predict import run_config, run_probabilities

    blend_dir = Path(blend_dir)
    info = json.loads((blend_dir / BLEND_FILE).read_text())
    members, stats = [], []
    for run in info["runs"]:
        log(f"blend member {run}")
        cfg = run_config(run, overrides)
        p, s = run_probabilities(cfg, run, table)
        members.append(p)
        stats.append({"run": run, **s})
    return Blender.load(blend_dir / "blender.joblib").predict(members), {"members": stats, **info}


def blend_config(blend_dir: str | Path, overrides: list[str] = ()):
    """The config of a blend's first member (its data and competition settings)."""
    info = json.loads((Path(blend_dir) / BLEND_FILE).read_text())
    return load_config(Path(info["runs"][0]) / "config.yaml", overrides)
