"""Competition mode: WSDM Cup files through cv -> predict -> an `id,winner` submission, ties refused or
dropped, the metrics by hand, the Kaggle slug in the kernel metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.data.arena import write_lmsys_csv, write_wsdm_parquet
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import score, uniform_logloss
from prefkit.submission import write_submission

FEATURES = Path(__file__).resolve().parents[1] / "configs" / "rm" / "features_baseline.yaml"


def wsdm_pairs(n: int, seed: int, labelled: bool = True) -> PairTable:
    t = make_pairs(2 * n, seed=seed, multi_turn_fraction=0.0)
    f = t.frame[t.frame["label"] != "tie"].head(n).reset_index(drop=True)
    return PairTable(f if labelled else f.assign(label=None), t.source)


@pytest.mark.slow
def test_wsdm_file_through_cv_and_predict(run_cli, tmp_path):
    write_wsdm_parquet(wsdm_pairs(300, 1), tmp_path / "train.parquet")
    test = wsdm_pairs(40, 2, labelled=False)
    write_wsdm_parquet(test, tmp_path / "test.parquet")
    r = run_cli("cv", FEATURES, "competition=wsdm", f"data.train={tmp_path / 'train.parquet'}", "cv.n_splits=3",
                f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert m["competition"] == "wsdm" and m["metric"] == "accuracy" and m["n"] == 300
    assert m["accuracy"] > 0.7 and m["logloss"] < m["uniform_logloss"] == pytest.approx(np.log(2))
    oof = pd.read_csv(tmp_path / "cv" / "oof.csv")
    assert list(oof.columns) == ["id", "fold", "label", "winner_model_a", "winner_model_b"]
    assert "(wsdm: accuracy)" in r.err

    out = tmp_path / "submission.csv"
    r = run_cli("predict", "--run", tmp_path / "cv", "--test", tmp_path / "test.parquet", "--out", out,
                f"output_dir={tmp_path / 'pred'}")
    assert r.code == 0, r.err
    sub = pd.read_csv(out, dtype={"id": str})
    assert list(sub.columns) == ["id", "winner"] and list(sub["id"]) == list(test.frame["id"])
    assert set(sub["winner"]) <= {"model_a", "model_b"} and sub["winner"].nunique() == 2
    probs = pd.read_csv(tmp_path / "pred" / "probabilities.csv", dtype={"id": str})
    expected = np.where(probs["winner_model_a"] >= probs["winner_model_b"], "model_a", "model_b")
    assert list(sub["winner"]) == list(expected), "the submission names the more probable response"


def test_ties_in_a_wsdm_run_are_refused_or_dropped(run_cli, tmp_path):
    table = make_pairs(120, seed=3, multi_turn_fraction=0.0)
    write_lmsys_csv(table, tmp_path / "lmsys.csv")
    first_tie = table.frame[table.frame["label"] == "tie"].iloc[0]
    ties = int((table.frame["label"] == "tie").sum())
    r = run_cli("cv", FEATURES, "competition=wsdm", f"data.train={tmp_path / 'lmsys.csv'}", "cv.n_splits=2",
                f"output_dir={tmp_path / 'a'}")
    assert r.code == 2 and "Traceback" not in r.err
    assert f"{ties} rows are labelled 'tie' (row {first_tie['row']}, id {first_tie['id']!r} first)" in r.err
    assert "data.ties=drop" in r.err
    r = run_cli("cv", FEATURES, "competition=wsdm", "data.ties=drop", f"data.train={tmp_path / 'lmsys.csv'}",
                "cv.n_splits=2", f"output_dir={tmp_path / 'b'}")
    assert r.code == 0, r.err
    assert f"dropped {ties} rows labelled tie" in r.err
    m = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert m["dropped_rows"] == ties and m["n"] == 120 - ties


def test_two_class_scores_by_hand():
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    s = score(probs, ["a", "b", "b"])
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["logloss"] == pytest.approx(-(np.log(0.8) + np.log(0.7) + np.log(0.4)) / 3)
    assert uniform_logloss(2) == pytest.approx(0.693147, abs=1e-6)


def test_wsdm_submission_by_hand(tmp_path):
    sub = write_submission(["q", "p"], ["p", "q"], np.array([[0.2, 0.8], [0.9, 0.1]]), tmp_path / "s.csv",
                           comp=COMPETITIONS["wsdm"])
    assert sub.to_dict("list") == {"id": ["q", "p"], "winner": ["model_a", "model_b"]}
    assert (tmp_path / "s.csv").read_text().splitlines() == ["id,winner", "q,model_a", "p,model_b"]
    with pytest.raises(PrefkitError, match=r"expected \(2, 2\) for wsdm"):
        write_submission(["q", "p"], ["p", "q"], np.full((2, 3), 1 / 3), tmp_path / "t.csv", comp=COMPETITIONS["wsdm"])


def test_kernel_metadata_names_the_competition():
    from prefkit.competition import kaggle_data_path
    from prefkit.kaggle.kernel import kernel_metadata

    cfg = load_config(FEATURES, ["competition=wsdm", "kaggle.kernel=me/wsdm-infer"])
    assert kernel_metadata(cfg, "infer", "me/bundle")["competition_sources"] == ["wsdm-cup-multilingual-chatbot-arena"]
    assert kaggle_data_path(cfg, "test") == "/kaggle/input/wsdm-cup-multilingual-chatbot-arena/test.parquet"
    lmsys = load_config(FEATURES, ["kaggle.test_path=/kaggle/input/x/t.csv"])
    assert kaggle_data_path(lmsys, "test") == "/kaggle/input/x/t.csv"
    assert kaggle_data_path(lmsys, "train") == "/kaggle/input/lmsys-chatbot-arena/train.csv"


def test_wsdm_writer_refuses_ties_and_turns(tmp_path):
    table = make_pairs(30, seed=4)
    with pytest.raises(PrefkitError, match="WSDM rows have one turn and a winner"):
        write_wsdm_parquet(table, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
