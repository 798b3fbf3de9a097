"""Golden scores: a model scores a small fixed sample when it is trained, and again wherever it is loaded to
predict, before it predicts anything. Scores that moved mean the model computes otherwise than it did when CV
measured it: most often a dependency upgraded under it (ms-swift#6704: the same checkpoint scores otherwise
after a library upgrade), which is what a Kaggler meets who trains here and scores in a kernel with the image's
versions. The model folder's `golden.json` (written by `cv`, `train` and `merge` before trained.json, and so
carried with the model into a Kaggle bundle) holds the rows themselves, the probabilities, and what they were computed with: the versions of
python, prefkit and the packages that compute the kind's scores, the device, the compute dtype and the
tokenizer's fingerprint.

The rows are made by prefkit (`prefkit.data.synthetic`), never a user's: a bundle must not carry training
rows. Six arena-like pairs (the first of three turns, in Spanish) and one row far longer than
`template.max_length`, so that truncation and the template's budgets are on the scored path.

`prefkit predict` (and so the Kaggle kernel, which runs it), `repredict`, the CoT ranking and verifier check each model
right after it loads (`check`, from `prefkit.rm.run.Run`): beyond the tolerance of the compute dtype it
stops, naming |dP| and every version or setting that differs; within it, a difference of versions is a note.
`predict.golden_check=false` skips the check where a change is known and wanted. `prefkit doctor` lists the
same comparison as the probe "golden" (`compare`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import json
import platform
from pathlib import Path
from typing import Any, Callable

import numpy as np

from prefkit.config import Config
from prefkit.core.dist import is_main, log
from prefkit.core.tokenizer import fingerprint
from prefkit.data.synthetic import FILLER, GOOD, make_pairs
from prefkit.data.table import PairTable, TableBuilder
from prefkit.errors import PrefkitError
from prefkit.io import write_json

FILE = "golden.json"
ROWS, SEED = 6, 0  # six synthetic pairs of seed 0: the first has three turns and a Spanish prompt
LONG_CHARS = 8  # the long row's response, in characters per token of template.max_length: past it with any tokenizer

# the packages whose upgrade can change a kind's scores (python and prefkit for both)
PACKAGES = {"features": ("numpy", "scikit-learn", "joblib"),
            "seq_cls": ("torch", "transformers", "peft", "bitsandbytes", "tokenizers", "accelerate")}

# The largest |dP| allowed between the scores as recorded and as computed now, by compute dtype. fp32: CPU and GPU
# kernels (and other shapes of batch) sum in other orders (the tiny Gemma-2 reloaded on one CPU: under 1e-5);
# 1e-3 leaves a wide margin for that and still catches a computation that changed. fp16/bf16: as far as
# the dtype probe lets the compute dtype be from fp32 (`probes.DTYPE_TOLERANCE`), since another GPU or kernel
# rounds otherwise. float64 (the features model's scikit-learn): the same fitted model gives the same
# probabilities on any CPU up to BLAS rounding. Recorded in one dtype and computed in another: both tolerances
# added, as each side may be that far from the exact scores.
TOLERANCE = {"float64": 1e-6, "float32": 1e-3, "float16": 2e-2, "bfloat16": 5e-2}


# ------------------------------------------------------------------------------------------------ the rows

def golden_rows(max_length: int) -> list[dict]:
    """The fixed sample, as stored in golden.json: six synthetic pairs and one long row."""
    table = make_pairs(ROWS, seed=SEED, long_fraction=0.0, multi_turn_fraction=0.3, sentences=(1, 4))
    rows = [{"id": f"golden-{i + 1}", **{c: list(r[c]) for c in ("prompt", "response_a", "response_b")}}
            for i, r in enumerate(table.frame.to_dict("records"))]
    sentences = itertools.cycle(s.format(t="binary search", T="Binary search") for s in GOOD + FILLER)
    text = ""
    while len(text) < LONG_CHARS * max_length:
        text += next(sentences) + " "
    rows.append({"id": f"golden-{ROWS + 1}", "prompt": [text[: len(text) // 4] + "\n\nExplain binary search."],
                 "response_a": [text], "response_b": [None]})  # a null turn: the template's empty-turn text
    return rows


def rows_table(rows: list[dict], source: str) -> PairTable:
    """The golden rows as a pair table, as they are scored. Public for inspection: tests render them."""
    b = TableBuilder(source)
    for i, r in enumerate(rows, start=1):
        b.add(i, None, r["id"], r["prompt"], r["response_a"], r["response_b"], None)
    return b.build()


# ------------------------------------------------------------------------------------ what scored them

def package_version(package: str) -> str | None:
    """An installed package's version, None where it is not installed. Public for inspection: tests plant
    another version through it."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(cfg: Config, learner: Any) -> dict:
    """What the scores are computed with: versions, device, compute dtype, backend, quantization, tokenizer."""
    env = {"python": platform.python_version(), "prefkit": package_version("prefkit")}
    env.update({p: package_version(p) for p in PACKAGES[learner.kind]})
    if learner.kind == "features":
        return {**env, "device": "cpu", "dtype": "float64"}
    import torch

    from prefkit.core.modeling import compute_dtype

    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    tokenizer = fingerprint(learner.tokenizer)["sha256"]  # what it does, as the doctor's tokenizer probe reads it
    return {**env, "device": device, "dtype": str(compute_dtype(cfg.model.dtype)).removeprefix("torch."),
            "backend": cfg.predict.backend, "quantization": cfg.quantization.mode, "tokenizer": tokenizer}


def plain_probabilities(learner: Any, table: PairTable) -> np.ndarray:
    """The learner's probabilities without swap TTA (what a user sets for `predict.swap_tta`, `tta_fraction` or
    `tta_budget_s` must not move the golden scores): the learner reads those settings from its config.
    Public for inspection: tests make the scoring fail through it."""
    cfg = learner.cfg
    learner.cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, swap_tta=False, tta_fraction=1.0,
                                                                       tta_budget_s=None))
    try:
        return np.asarray(learner.predict(table)[0], dtype=np.float64)
    finally:
        learner.cfg = cfg


# ------------------------------------------------------------------------------------------- recording

def record(cfg: Config, folder: Path, learner: Any) -> None:
    """golden.json in `folder`: the golden rows scored by `learner`, the model of `folder` loaded as prediction
    will load it (`learners.record_golden` loads it), so the two scorings differ only by what they run with.
    Every process scores (prediction is shared out over processes); the main one writes."""
    rows = golden_rows(cfg.template.max_length)
    probs = plain_probabilities(learner, rows_table(rows, f"<golden rows of {folder}>"))
    env = environment(learner.cfg, learner)
    if is_main():
        write_json(folder / FILE, {"rows": rows, "probabilities": probs.tolist(), "environment": env})


# -------------------------------------------------------------------------------------------- checking

def _read(folder: Path) -> dict | None:
    path = folder / FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or not {"rows", "probabilities", "environment"} <= saved.keys():
            raise ValueError("rows, probabilities and environment are not all there")
        return saved
    except (ValueError, OSError) as e:
        raise PrefkitError(f"{path}: not the golden scores prefkit writes ({e}); delete it to predict without "
                           "the check, or predict.golden_check=false") from None


def _tolerance(was: str | None, now: str) -> float:
    tol = TOLERANCE.get(now, TOLERANCE["float16"])
    return tol if was == now else tol + TOLERANCE.get(was, TOLERANCE["float16"])


def changes(was: dict, now: dict) -> dict[str, tuple]:
    """What differs between two environments: name -> (recorded, now)."""
    return {k: (was.get(k), now.get(k)) for k in dict.fromkeys([*was, *now]) if was.get(k) != now.get(k)}


def _said(changed: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())


def compare(cfg: Config, folder: Path, learner: Any) -> dict:
    """The golden scores of `folder` against the loaded `learner`'s: the fields of a `prefkit.rm.probes.Probe`
    named "golden" (`Probe(**compare(...))`; this module lies below the probes, which import the learners that
    check with it): status FAIL beyond the tolerance, ok within it (what changed in its figure), n/a without
    golden.json."""
    saved = _read(folder)
    if saved is None:
        return _fields("n/a", f"{folder.name}: no {FILE} (trained before prefkit recorded golden scores)")
    now = environment(cfg, learner)
    was = saved["environment"]
    changed = changes(was, now)
    if "tokenizer" in changed and was.get("tokenizer"):  # refused before scoring: other ids may lie past the embedding
        return _fields("FAIL", f"not the tokenizer the model was trained with (fingerprint {was['tokenizer']} at "
                       f"training, {now['tokenizer']} now: template.tokenizer={cfg.template.tokenizer!r}); its rows "
                       "would be read as other tokens", "the tokenizer of training", ["all rows"],
                       {"changed": changed})
    table = rows_table(saved["rows"], f"<golden rows of {folder / FILE}>")
    probs, recorded = plain_probabilities(learner, table), np.asarray(saved["probabilities"], dtype=np.float64)
    tol = _tolerance(was.get("dtype"), now["dtype"])
    values = {"tolerance": tol, "changed": changed, "golden_rows": len(table)}
    if probs.shape != recorded.shape:
        return _fields("FAIL", f"{probs.shape[1]} probabilities a row, {recorded.shape[1]} recorded", f"{tol:.0e}",
                       ["all rows"], values)
    diff = np.abs(probs - recorded).max(axis=1)
    diff[~np.isfinite(diff)] = np.inf
    values["max_abs_diff"] = float(diff.max())
    figure = (f"max |dP| {diff.max():.1e} on {len(table)} golden rows, as recorded at training against now; "
              + (f"changed: {_said(changed)}" if changed else "same versions and settings"))
    rows = [r["id"] for r, d in zip(saved["rows"], diff) if d > tol]
    return _fields("FAIL" if rows else "ok", figure, f"{tol:.0e} ({now['dtype']})", rows, values)


def _fields(status: str, figure: str, tolerance: str = "", rows: list | None = None,
            values: dict | None = None) -> dict:
    return {"name": "golden", "status": status, "figure": figure, "tolerance": tolerance, "rows": rows or [],
            "values": values or {}}


def check(cfg: Config, folder: Path, learner: Any, say: Callable[[str], None] | None = None) -> None:
    """Before `learner` (loaded from `folder`) predicts: stop when its golden scores moved beyond the tolerance,
    naming what changed; a note when versions differ within it, or when the folder has no golden scores."""
    if not cfg.predict.golden_check:
        return
    say = say or log
    found = compare(cfg, folder, learner)
    values, tolerance = found["values"], found["tolerance"]
    changed, diff = values.get("changed", {}), values.get("max_abs_diff")
    if found["status"] == "FAIL" and "max_abs_diff" not in values and "tokenizer" in changed:
        raise PrefkitError(f"{folder}: {found['figure']}: give the tokenizer it was trained with (template.tokenizer, "
                           "where it lies now), or set predict.golden_check=false if the change is known and wanted")
    if found["status"] == "FAIL":
        pins = [f"{k}=={a}" for k, (a, _) in changed.items() if k in PACKAGES[learner.kind] + ("prefkit",) and a]
        what = (f"changed since training: {_said(changed)}" if changed else
                "the same versions and settings: the model's files, or an override, changed what it computes")
        fix = f"install the versions it was trained with (pip install {' '.join(pins)})" if pins else "undo the change"
        raise PrefkitError(
            f"{folder}: the model scores its golden rows otherwise than when it was trained ("
            + (f"max |dP| {diff:.2e}, " if diff is not None else f"{found['figure']}, ")
            + f"tolerance {tolerance}; rows {', '.join(found['rows'])}); {what}. Its predictions would not be the "
            f"ones CV measured: {fix}, or set predict.golden_check=false if the change is known and wanted")
    if found["status"] == "n/a":
        say(f"note: {found['figure']}: its scores are not checked against training")
    elif changed:
        say(f"note: {folder.name} scores its golden rows as at training (max |dP| {diff:.1e}, tolerance {tolerance}) "
            f"with {_said(changed)}")
