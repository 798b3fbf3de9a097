"""`submissions/ledger.csv`: every submission with its run, config hash and CV score, and the leaderboard
score once Kaggle has it, so that CV can be read against LB."""

from __future__ import annotations

import csv
import json
import time
import uuid
from pathlib import Path

import pandas as pd

from prefkit.config import config_hash
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path, new_figure, save_figure

COLUMNS = ["id", "date", "competition", "run", "config_hash", "cv_logloss", "kernel", "kernel_version", "file",
           "message", "lb_score"]
DEFAULT = Path("submissions") / "ledger.csv"


def cv_logloss(run_dir: Path) -> float | None:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()).get("logloss") if p.is_file() else None


def new_row(competition: str, run_dir: Path, message: str, file: str | None, kernel: str | None,
            version: int | None) -> dict:
    return {"id": uuid.uuid4().hex[:8], "date": time.strftime("%Y-%m-%d %H:%M"), "competition": competition,
            "run": str(run_dir), "config_hash": config_hash(run_dir), "cv_logloss": cv_logloss(run_dir),
            "kernel": kernel or "", "kernel_version": version if version is not None else "", "file": file or "",
            "message": message, "lb_score": ""}


def read(path: Path = DEFAULT) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise PrefkitError(f"{path}: column {missing[0]!r}: missing column (not a prefkit ledger?)")
    return frame


def write(frame: pd.DataFrame, path: Path = DEFAULT) -> None:
    with atomic_path(path) as tmp:
        frame[COLUMNS].to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)


def append(row: dict, path: Path = DEFAULT) -> None:
    frame = read(path)
    write(pd.concat([frame, pd.DataFrame([{k: "" if v is None else str(v) for k, v in row.items()}])], ignore_index=True), path)


def fill_scores(path: Path, submissions: list) -> int:
    """Match Kaggle's submissions to ledger rows by the ledger id in their description; fill LB scores."""
    frame = read(path)
    filled = 0
    for sub in submissions:
        text = str(getattr(sub, "description", "") or "")
        score = getattr(sub, "public_score", None) or getattr(sub, "publicScore", None)
        for i, rid in enumerate(frame["id"]):
            if f"[{rid}]" in text and score not in (None, "") and frame.at[i, "lb_score"] != str(score):
                frame.at[i, "lb_score"] = str(score)
                filled += 1
    write(frame, path)
    return filled


def show(path: Path = DEFAULT, plot: Path | None = None) -> str:
    frame = read(path)
    if frame.empty:
        return f"{path}: no submissions yet"
    cols = ["date", "id", "config_hash", "cv_logloss", "lb_score", "kernel", "kernel_version", "message"]
    text = frame[cols].to_string(index=False)
    if plot is not None:
        both = frame[(frame["cv_logloss"] != "") & (frame["lb_score"] != "")]
        fig, ax = new_figure((5, 5))
        ax.scatter(both["cv_logloss"].astype(float), both["lb_score"].astype(float))
        for _, r in both.iterrows():
            ax.annotate(r["id"], (float(r["cv_logloss"]), float(r["lb_score"])), fontsize=7)
        ax.set_xlabel("CV log loss")
        ax.set_ylabel("leaderboard score")
        ax.set_title(f"CV against LB ({len(both)} of {len(frame)} submissions scored)")
        save_figure(fig, plot)
    return text
