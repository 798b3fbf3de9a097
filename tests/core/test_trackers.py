"""train.report_to: each tracker receives the scalars of log.jsonl, read back from what the tracker wrote."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from prefkit.config import load_config
from prefkit.core import trackers
from prefkit.errors import PrefkitError
from prefkit.rm.reward_model import RewardModelLearner
from tests.conftest import FAST, TINY, learnable

ROOT = Path(__file__).resolve().parents[2]


def _train(out: Path, report_to: str) -> list[dict]:
    cfg = load_config(TINY, FAST + ["train.epochs=1", "quantization.mode=none", f"train.report_to=[{report_to}]"])
    RewardModelLearner(cfg).fit(learnable(8), None, out)
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_tensorboard_gets_the_logged_losses(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = _train(tmp_path / "m", "tensorboard")
    events = EventAccumulator(str(tmp_path / "m" / "tensorboard"))
    events.Reload()
    got = {e.step: e.value for e in events.Scalars("loss")}
    assert len(log) >= 2 and got == pytest.approx({r["step"]: r["loss"] for r in log})


def test_wandb_runs_offline_without_a_key_and_gets_the_logged_losses(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    log = _train(tmp_path / "m", "wandb")
    (run,) = (tmp_path / "m" / "wandb").glob("offline-run-*/run-*.wandb")
    # wandb's Python reader of offline run files went with wandb-core; its history records hold each value as
    # JSON text inside protobuf, so the file holds every logged loss as json.dumps writes it
    data = run.read_bytes()
    assert len(log) >= 2 and all(json.dumps(r["loss"]).encode() in data for r in log)


@pytest.mark.slow
def test_trackio_gets_the_logged_losses(tmp_path):
    """In a child process: trackio reads its store's folder (TRACKIO_DIR) once, when first imported."""
    script = (
        "from pathlib import Path; from tests.core.test_trackers import _train;"
        f"_train(Path({str(tmp_path / 'm')!r}), 'trackio')"
    )
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = [json.loads(x) for x in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    (db,) = (tmp_path / "store").glob("*.db")
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT step, metrics FROM metrics").fetchall()
    got = {step: json.loads(m)["loss"] for step, m in rows if "loss" in json.loads(m)}
    assert len(log) >= 2 and got == pytest.approx({r["step"]: r["loss"] for r in log})


def test_a_missing_tracker_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(PrefkitError, match=r"pip install 'prefkit\[wandb\]'"):
        trackers.check(["tensorboard", "wandb"])


def test_an_unknown_tracker_stops_at_load():
    with pytest.raises(PrefkitError, match="report_to"):
        load_config(TINY, ["train.report_to=[tensorboard, comet]"])
