"""`prefkit doctor --run RUN` and the probes that end `cv` and `train`: a sound tiny run passes every probe on
each of its folds (its figures in metrics.json, its training record in each model folder), a planted fault exits
1 naming the rows (a padding id the model does not take, a tokenizer that is not the run's, folds that share a
prompt or whose OOF is not what they held out), a probe that fails at the end of `cv` is a warning and the run
stands, and a folder that is not a finished run is refused with exit 2."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefkit import cli
from prefkit.config import load_config, save_config
from prefkit.rm import probes
from tests.conftest import FAST, TINY, lmsys_row, write_lmsys

FEATURES = Path(__file__).resolve().parents[2] / "configs" / "rm" / "features_baseline.yaml"
GOLDEN = importlib.util.find_spec("prefkit.rm.golden") is not None  # (another part of issue 42: its probe when there)
if GOLDEN:
    from prefkit.rm import golden

    GOLDEN = hasattr(golden, "probe") or hasattr(golden, "compare")
PROBED = ["batch (right padding)", "batch (left padding)", "dtype", "overflow", "swap", "position", "eos", "tokenizer",
          "head", "attention", "labels", "folds"] + (["golden"] if GOLDEN else [])


def probe_line(out: str, name: str) -> str:
    """The doctor's line of the probe `name`: "  <status>  <name> <figure>" (the status 4 wide)."""
    return next(x for x in out.splitlines() if x[8:].startswith(f"{name} "))


def pairs(path: Path, n: int = 30) -> Path:
    """A good and a bad answer (or two equal ones for a tie), of lengths that differ from row to row."""
    rows = []
    for i in range(n):
        good, bad = "Yes! Here is a clear and correct answer." + " More." * (i % 5), "no" + " no" * (i % 4)
        a, b, winner = [(good, bad, (1, 0, 0)), (bad, good, (0, 1, 0)), ("maybe", "maybe", (0, 0, 1))][i % 3]
        rows.append(lmsys_row(f"r{i}", [f"question {i % 7}?"], [a], [b], winner))
    return write_lmsys(path, rows)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """Two folds of the tiny Gemma-2 through the real path (nf4 + LoRA), made once for the module."""
    root = tmp_path_factory.mktemp("doctor")
    run = root / "cv"
    code = cli.main(["cv", str(TINY), f"data.train={pairs(root / 'train.csv')}", "cv.n_splits=2", *FAST,
                     f"output_dir={run}"])
    assert code == 0
    return run


def test_a_tiny_cv_run_passes_every_probe_and_records_them(tiny_run, run_cli):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    recorded = metrics["probes"]
    assert recorded["model"] == "fold0" and recorded["failed"] == [] and recorded["rows"] == 16
    assert recorded["position"]["status"] == "ok" and recorded["position"]["pooling"] == "last"
    assert recorded["labels"]["rows"] == metrics["n"] != 16, "the labels probe reads the out-of-fold predictions"
    r = run_cli("doctor", "--run", tiny_run, "--rows", "8")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith(f"probes of {tiny_run / 'fold0'} on 8 rows of")
    for name in PROBED:  # a line each: its status, figure and (held to one) tolerance
        line = probe_line(r.out, name)
        assert line.split()[0] in ("ok", "info", "n/a"), line
    assert "tolerance: 1e-04" in r.out and f"0 of {len(PROBED)} probes out of tolerance" in lines[-1]
    for folder in ("fold0", "fold1"):  # what training recorded for the eos, tokenizer and folds probes
        record = json.loads((tiny_run / folder / probes.RECORD).read_text())
        assert record["tokens"]["suffix"] == [] and record["tokens"]["prefix"] == [1] and record["held_out"]
    assert "held-out rows as recorded at training (2 of 2 folds)" in r.out


def test_every_fold_of_a_clean_tiny_run_passes_the_swap_probe_with_margin(tiny_run):
    """The old verdict (mean |P(A) - P'(B)| under 0.1) sat at 0.091 on one fold of such a run and failed the next;
    what the swap probe holds now is 1e-2 or more away from its tolerance on every row."""
    from prefkit.config import load_config
    from prefkit.recipes.common import load_labelled

    cfg = load_config(tiny_run / "config.yaml")
    table = load_labelled(cfg.data.train, cfg)
    for folder in ("fold0", "fold1"):
        swap = {p.name: p for p in probes.probe_folder(cfg, tiny_run / folder, table, 16)}["swap"]
        assert swap.status == "ok" and swap.values["rows_mirrored"] == 0, swap.line()
        assert swap.values["mirror_min"] > 1e4 * probes.MIRROR_TOLERANCE, swap.line()


def test_doctor_exits_1_naming_the_rows_of_a_planted_fault(tiny_run, run_cli, monkeypatch):
    """A model that takes another id for padding than its batches are padded with (prefkit builds every sequence
    classifier with its own padding id; here one is changed after loading): it reads a padding position."""
    from prefkit.rm import reward_model

    loaded = reward_model.load_trained

    def planted(*args, **kwargs):
        model = loaded(*args, **kwargs)
        model.config.pad_token_id = 7
        return model

    monkeypatch.setattr(reward_model, "load_trained", planted)
    r = run_cli("doctor", "--run", tiny_run, "--rows", "6")
    assert r.code == 1, r.err
    position = probe_line(r.out, "position")
    assert position.split()[0] == "FAIL" and "the model takes 7 for padding" in position
    assert "; rows 'r" in position and r.out.splitlines()[-1].startswith(f"2 of {len(PROBED)} probes out of tolerance: batch (right")


def swapped_ids_tokenizer(path: Path) -> Path:
    """The byte tokenizer with two byte tokens exchanged ('e' and 'o'): the same size and specials, other ids."""
    from prefkit.core.tokenizer import byte_tokenizer

    vocab = json.loads(byte_tokenizer().to_str())
    v = vocab["model"]["vocab"]
    v["e"], v["o"] = v["o"], v["e"]
    path.write_text(json.dumps(vocab))
    return path


def test_doctor_catches_a_tokenizer_swapped_under_the_model(tiny_run, run_cli, tmp_path):
    """`template.tokenizer` overridden with one the model never read: it scores other tokens, exit 0 before."""
    r = run_cli("doctor", "--run", tiny_run, "--rows", "6", f"template.tokenizer={swapped_ids_tokenizer(tmp_path / 't.json')}")
    assert r.code == 1, r.err
    line = probe_line(r.out, "tokenizer")
    assert line.split()[0] == "FAIL" and "not the tokenizer the model was trained with" in line
    assert probe_line(r.out, "eos").split()[0] == "ok", "the same special tokens"


def test_doctor_catches_folds_that_share_a_prompt(tmp_path, run_cli, monkeypatch):
    """Folds made without grouping by prompt (OpenRLHF#1089: evaluation rows overlapping training rows): the rows
    of "question 3?" validate in one fold and train the other."""
    from sklearn.model_selection import StratifiedKFold

    from prefkit.data import folds
    from prefkit.recipes import cv

    def ungrouped(table, n_splits, seed):
        out = np.zeros(len(table), dtype=np.int64)
        splits = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(table.frame["id"], table.frame["label"])
        for k, (_, val) in enumerate(splits):
            out[val] = k
        return out

    monkeypatch.setattr(cv, "assign_folds", ungrouped)
    monkeypatch.setattr(folds, "assign_folds", ungrouped)
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    r = run_cli("doctor", "--run", tmp_path / "cv")
    line = probe_line(r.out, "folds")
    assert r.code == 1 and line.split()[0] == "FAIL", r.out
    assert "0 among their fold's training rows by id" in line and "60 validation rows" in line
    shared = int(re.search(r"(\d+) more sharing a normalised prompt", line).group(1))
    assert shared == 60, "7 prompts over 60 rows: every row's prompt is in the other fold too"


def test_doctor_catches_an_oof_whose_folds_are_not_what_the_models_held_out(tmp_path, run_cli):
    """Rows moved between folds in the out-of-fold file after training (what a resumed run with another seed
    wrote): the fold now said to validate them trained on them."""
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    r = run_cli("doctor", "--run", tmp_path / "cv")
    assert r.code == 0 and "held-out rows as recorded at training (2 of 2 folds)" in r.out, r.out
    path = tmp_path / "cv" / "oof_logits.csv"
    oof = pd.read_csv(path, dtype={"id": str, "label": str})
    moved = list(oof["id"][:3])
    oof.loc[:2, "fold"] = 1 - oof.loc[:2, "fold"]
    oof.to_csv(path, index=False)
    r = run_cli("doctor", "--run", tmp_path / "cv")
    line = probe_line(r.out, "folds")
    assert r.code == 1 and line.split()[0] == "FAIL" and "3 among their fold's training rows by id" in line, r.out
    assert all(repr(i) in line for i in moved)


def test_features_run_gets_the_probes_that_apply(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    recorded = json.loads((tmp_path / "cv" / "metrics.json").read_text())["probes"]
    assert recorded["failed"] == [] and recorded["swap"]["status"] == "ok" and recorded["labels"]["status"] == "ok"
    assert all(recorded[n]["status"] == "n/a" for n in probes.FEATURES_NA)
    r = run_cli("doctor", "--run", tmp_path / "cv")
    assert r.code == 0 and "n/a   batch                 features model" in r.out, r.out
    assert re.search(r"ok    folds .* 60 validation rows: 0 among their fold's training rows by id, 0 more", r.out)


def test_train_writes_its_probes_and_doctor_reads_the_sample(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("train", FEATURES, f"data.train={data}", "features.max_iter=20", "train.probe_rows=12",
                f"output_dir={tmp_path / 'train'}")
    assert r.code == 0, r.err
    recorded = json.loads((tmp_path / "train" / "metrics.json").read_text())["probes"]
    assert recorded["model"] == "model" and recorded["rows"] == 12 and recorded["labels"]["rows"] == 12
    r = run_cli("doctor", "--run", tmp_path / "train", "--rows", "20")
    assert r.code == 0 and "20 rows" in probe_line(r.out, "labels"), r.out
    assert "n/a   folds                 no out-of-fold predictions: a train run validates no rows" in r.out


def test_a_failed_probe_at_the_end_of_cv_is_a_warning(tmp_path, run_cli, monkeypatch):
    """An A/B swap that swaps nothing (the fault planted): the run finishes, says so, and records it."""
    monkeypatch.setattr(probes, "swap_ab", lambda table: table)
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0, r.err
    assert "warning: fold0 fails the model probes swap" in r.err and "prefkit doctor --run" in r.err
    recorded = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert recorded["probes"]["failed"] == ["swap"] and recorded["probes"]["swap"]["rows"] and "logloss" in recorded


def test_probes_off_with_probe_rows_0(tmp_path, run_cli):
    data = pairs(tmp_path / "train.csv", 60)
    r = run_cli("cv", FEATURES, f"data.train={data}", "cv.n_splits=2", "features.max_iter=20", "train.probe_rows=0",
                f"output_dir={tmp_path / 'cv'}")
    assert r.code == 0 and not re.search(r"probe (ok|n/a|info|FAIL) ", r.err)
    assert "probes" not in json.loads((tmp_path / "cv" / "metrics.json").read_text())


def test_user_mistakes_exit_2_without_a_traceback(tmp_path, run_cli):
    unfinished, student = tmp_path / "unfinished", tmp_path / "student"
    save_config(load_config(FEATURES, [f"data.train={tmp_path / 'train.csv'}"]), unfinished)
    save_config(load_config(None, ["model.kind=causal_lm"]), student)
    for args, message in [((tmp_path,), "not a run folder (no config.yaml)"),
                          ((unfinished,), "no finished model folder"),
                          ((unfinished, "--rows", "0"), "--rows 0: give at least 1 row"),
                          ((student,), "a model.kind=causal_lm run; this needs features or seq_cls")]:
        r = run_cli("doctor", "--run", *args)
        assert r.code == 2 and message in r.err and "Traceback" not in r.err, (args, r.err)


def test_predict_refuses_a_tokenizer_that_is_not_the_runs(tiny_run, run_cli, tmp_path):
    """Issue 42, class 5: `template.tokenizer` may point elsewhere (a Kaggle input), but to the tokenizer the run
    was trained with: another one (37.5% of answers flipped) is refused before anything is predicted."""
    from tests.conftest import lmsys_row, write_lmsys

    test = write_lmsys(tmp_path / "test.csv", [lmsys_row(str(i), ["q"], ["a"], ["b"]) for i in range(3)])
    r = run_cli("predict", "--run", tiny_run, "--test", test, "--out", tmp_path / "s.csv", f"output_dir={tmp_path / 'p'}",
                f"template.tokenizer={swapped_ids_tokenizer(tmp_path / 't.json')}")
    assert r.code == 2, r.err
    assert "not the tokenizer the model was trained with" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "s.csv").exists()
