"""`Predictions`: the one writer and reader of a job's prediction files, in the formats the jobs wrote by hand."""

from __future__ import annotations

import numpy as np

from prefkit.competition import COMPETITIONS
from prefkit.toolbox.predictions import Predictions, probabilities_of, read_logits


def test_out_of_fold_and_test_predictions_write_their_files_and_read_back(tmp_path):
    comp = COMPETITIONS["lmsys"]
    p = np.array([[0.7, 0.2, 0.1], [0.125, 0.5, 0.375]])
    Predictions(comp, ["x1", "NA"], p, np.array([0, 1]), np.array(["a", "tie"])).write(tmp_path)
    assert (tmp_path / "oof.csv").read_text() == ("id,fold,label,winner_model_a,winner_model_b,winner_tie\n"
                                                  "x1,0,a,0.700000,0.200000,0.100000\nNA,1,tie,0.125000,0.500000,0.375000\n")
    assert (tmp_path / "oof_logits.csv").read_text().splitlines()[1] == "x1,0,a,-0.3566749439,-1.609437912,-2.302585093"
    back = Predictions.read(tmp_path, comp)
    assert back.ids == ["x1", "NA"] and list(back.fold) == [0, 1] and list(back.label) == ["a", "tie"]
    np.testing.assert_allclose(back.probs, p, rtol=1e-9)

    (tmp_path / "test").mkdir()
    Predictions(comp, ["t"], p[:1]).write(tmp_path / "test")
    assert (tmp_path / "test/probabilities.csv").read_text() == ("id,winner_model_a,winner_model_b,winner_tie\n"
                                                                 "t,0.700000,0.200000,0.100000\n")
    assert sorted(f.name for f in (tmp_path / "test").iterdir()) == ["logits.csv", "probabilities.csv"]
    test = Predictions.read(tmp_path / "test", comp)
    assert test.fold is None and test.label is None
    np.testing.assert_allclose(probabilities_of(read_logits(tmp_path / "test", comp), comp), p[:1], rtol=1e-9)
