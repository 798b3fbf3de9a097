"""A reward-model run opened in one place (`prefkit.rm.run`): its models averaged or one fold alone, its
temperature applied only when asked, a student's folder refused, a blend predicting through its members, and
`prefkit predict`'s cascade asking the second run through it. Feature-baseline runs: no model downloads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prefkit import cli
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.errors import PrefkitError
from prefkit.metrics import apply_temperature, margins
from prefkit.rm.run import Blend, Run, open_run_or_blend

FAST = ["features.max_iter=20", "train.probe_rows=0"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Two 3-fold feature runs of the same rows (one with a fitted temperature), their blend, and test rows."""
    d = tmp_path_factory.mktemp("run")
    write_lmsys_csv(make_pairs(90, seed=7), d / "train.csv")
    write_lmsys_csv(make_pairs(24, seed=8), d / "test.csv")
    for name, extra in (("warm", ["cv.temperature_scaling=true"]), ("plain", ["features.arithmetic=true"])):
        assert cli.main(["cv", "features_baseline", f"data.train={d / 'train.csv'}", "cv.n_splits=3",
                         f"output_dir={d / name}", *FAST, *extra]) == 0
    assert cli.main(["blend", str(d / "warm"), str(d / "plain"), "--out", str(d / "blend")]) == 0
    return d


def rows(d: Path, cfg):
    from prefkit.data import load_pairs

    return load_pairs(d / "test.csv", cfg.data)


def test_a_run_averages_its_fold_models_and_applies_its_temperature_only_when_asked(made):
    run = Run.open(made / "warm")
    t = run.temperature
    assert t and t == json.loads((made / "warm" / "metrics.json").read_text())["temperature"]
    table = rows(made, run.config)
    raw, stats = run.predict(table, calibrated=False)
    folds = [run.predict_fold(k, table)[0] for k in range(3)]
    assert np.allclose(raw, np.mean(folds, axis=0)) and not np.allclose(folds[0], folds[1])
    assert stats["models"] == ["fold0", "fold1", "fold2"] and stats["temperature"] is None and stats["rows"] == 24
    calibrated, stats = run.predict(table)
    assert stats["temperature"] == t and np.allclose(calibrated, apply_temperature(raw, t))
    assert not np.allclose(calibrated, raw)
    with pytest.raises(PrefkitError, match="fold7: not a finished fold model"):
        run.predict_fold(7, table)


def test_a_student_run_is_refused_by_the_run_and_by_the_learners(made, tmp_path):
    """Before: only some callers checked the kind; `cot rerank --rm STUDENT` reached `learners._class`, which sent
    every kind but `features` to the reward-model learner."""
    from prefkit.config import load_config
    from prefkit.rm.learners import load_learner

    student = tmp_path / "student"
    shutil.copytree(made / "warm", student)
    saved = yaml.safe_load((student / "config.yaml").read_text())
    saved["model"]["kind"] = "causal_lm"
    (student / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(PrefkitError, match="a model.kind=causal_lm run; this needs features or seq_cls"):
        Run.open(student, made_by="`prefkit cv` (a verifier)")
    with pytest.raises(PrefkitError, match="model.kind=causal_lm: not a reward model"):
        load_learner(load_config(student / "config.yaml"), student / "fold0")


def test_a_blend_opens_like_a_run_and_predicts_through_its_members(made):
    from prefkit.toolbox.blend import Blender

    blend = open_run_or_blend(made / "blend")
    assert isinstance(blend, Blend) and isinstance(open_run_or_blend(made / "warm"), Run)
    assert [m.path for m in blend.members] == [(made / n).resolve() for n in ("warm", "plain")]
    assert blend.config.data == Run.open(made / "warm").config.data
    table = rows(made, blend.config)
    p, stats = blend.predict(table, say=lambda line: None)
    members = [Run.open(made / n).predict(table)[0] for n in ("warm", "plain")]
    assert np.allclose(p, Blender.load(made / "blend" / "blender.joblib").predict(members))
    assert [s["run"] for s in stats["members"]] == [str((made / n).resolve()) for n in ("warm", "plain")]
    with pytest.raises(PrefkitError, match="not a blend"):
        Blend.open(made / "warm")


def test_predict_with_a_cascade_asks_the_second_run_for_the_least_sure_rows(made, run_cli, tmp_path):
    out = tmp_path / "cascade.csv"
    r = run_cli("predict", "--run", made / "warm", "--test", made / "test.csv", "--out", out,
                f"output_dir={tmp_path / 'p'}", f"predict.cascade.run={made / 'plain'}", "predict.cascade.fraction=0.25",
                "predict.cascade.weight=1.0")
    assert r.code == 0, r.err
    assert "re-scores the 6 least sure of 24 rows (weight 1.0)" in r.err
    first, second = Run.open(made / "warm"), Run.open(made / "plain")
    table = rows(made, first.config)
    mine = first.predict(table)[0]
    least_sure = np.sort(np.argsort(margins(mine), kind="stable")[:6])
    want = mine.copy()
    want[least_sure] = second.predict(table.subset(least_sure))[0]
    got = pd.read_csv(tmp_path / "p" / "probabilities.csv").iloc[:, 1:].to_numpy()
    assert np.allclose(got, want, atol=1e-6)
    stats = json.loads((tmp_path / "p" / "predict_stats.json").read_text())
    assert stats["cascade"] == {"run": str(made / "plain"), "rows": 6, "weight": 1.0}
