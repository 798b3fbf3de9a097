from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefkit.config import FeaturesConfig
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.metrics import score, swap_probs, uniform_logloss
from prefkit.rm.features import FeatureModel, table_features
from tests.conftest import HH, need_shared

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "rm" / "features_baseline.yaml"


@pytest.fixture(scope="module")
def arena_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("arena")
    train, test = make_pairs(800, seed=11), make_pairs(120, seed=12)
    write_lmsys_csv(train, d / "train.csv")
    write_lmsys_csv(PairTable(test.frame.assign(label=None), "t"), d / "test.csv")
    return d / "train.csv", d / "test.csv"


def test_fit_learns_and_tta_is_swap_symmetric():
    t = make_pairs(600, seed=2)
    feats = table_features(t)
    labels = t.frame["label"].to_numpy()
    weak = FeatureModel(FeaturesConfig(max_iter=1)).fit(feats, labels, swap_augment="both")
    strong = FeatureModel(FeaturesConfig()).fit(feats, labels, swap_augment="both")
    weak_loss = score(weak.predict_proba(feats, swap_tta=True), labels)["logloss"]
    strong_loss = score(strong.predict_proba(feats, swap_tta=True), labels)["logloss"]
    assert strong_loss < weak_loss < uniform_logloss(3) + 1e-9, "more boosting rounds fit the training set better"
    fa, fb, shared = feats
    p = strong.predict_proba(feats, swap_tta=True)
    p_swapped = strong.predict_proba((fb, fa, shared), swap_tta=True)
    assert np.allclose(p_swapped, swap_probs(p)), "with TTA, a swapped row gets the swapped prediction"
    assert np.allclose(p.sum(axis=1), 1.0)


@pytest.mark.slow
def test_cv_writes_oof_and_metrics(run_cli, arena_files, tmp_path):
    train, _ = arena_files
    r = run_cli("cv", CONFIG, f"data.train={train}", f"output_dir={tmp_path}", "cv.n_splits=4")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 800 and len(m["folds"]) == 4
    assert m["logloss"] < uniform_logloss(3) - 0.2, "the planted preference signal is learnt"
    oof = pd.read_csv(tmp_path / "oof.csv", dtype={"id": str})
    assert len(oof) == 800 and oof["id"].is_unique and set(oof["fold"]) == {0, 1, 2, 3}
    probs = oof[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy()
    assert m["logloss"] == pytest.approx(score(probs, oof["label"])["logloss"], abs=1e-4)
    f0 = oof["fold"] == 0
    assert m["folds"][0]["logloss"] == pytest.approx(score(probs[f0], oof["label"][f0])["logloss"], abs=1e-4)
    assert (tmp_path / "reliability.png").exists() and (tmp_path / "config.yaml").exists()


def test_train_then_predict_submission(run_cli, arena_files, tmp_path):
    train, test = arena_files
    run = tmp_path / "run"
    assert run_cli("train", CONFIG, f"data.train={train}", f"output_dir={run}").code == 0
    out = tmp_path / "sub" / "submission.csv"
    r = run_cli("predict", "--run", run, "--test", test, "--out", out, f"output_dir={tmp_path / 'pred'}")
    assert r.code == 0, r.err
    sub = pd.read_csv(out, dtype={"id": str})
    test_ids = pd.read_csv(test, dtype={"id": str})["id"]
    assert list(sub["id"]) == list(test_ids)
    assert np.allclose(sub.iloc[:, 1:].sum(axis=1), 1.0, atol=1e-6)
    assert (tmp_path / "pred" / "config.yaml").exists()
    assert (run / "config.yaml").read_text().count(str(run)) == 1, "predict did not rewrite the run's config"


def test_train_refuses_unlabelled(run_cli, arena_files, tmp_path):
    _, test = arena_files
    r = run_cli("train", CONFIG, f"data.train={test}", f"output_dir={tmp_path}")
    assert r.code == 2 and "120 rows have no label" in r.err


@pytest.mark.slow
def test_hh_rlhf_baseline_beats_chance(run_cli, tmp_path):
    path = need_shared(HH / "helpful-base.test.jsonl.gz")
    r = run_cli("cv", CONFIG, f"data.train={path}", f"output_dir={tmp_path}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 2354
    assert m["logloss"] < np.log(2) and m["accuracy"] > 0.55  # no ties: a coin flip scores ln 2 = 0.693
