"""The winners' toolbox: distillation (loss by hand, training with a teacher and pseudo-labels), prediction files,
blending with the blender's own CV, and pseudo-labels, from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from prefkit.competition import COMPETITIONS
from prefkit.config import load_config
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import hard_targets, score
from prefkit.toolbox.blend import Blender, blender_cv
from prefkit.toolbox.distill import distill_loss
from prefkit.toolbox.predictions import lookup, read_logits, write_logits
from prefkit.toolbox.pseudo import (
    load_pseudo_rows,
    margins,
    with_pseudo_rows,
    write_pseudo_labels,
)

LMSYS = COMPETITIONS["lmsys"]


def test_distill_loss_by_hand():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]])
    teacher = torch.tensor([[1.0, 0.0, 0.2], [-0.5, 2.0, 0.1]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    T, alpha = 2.0, 0.7
    s, t, y = student.numpy(), teacher.numpy(), targets.numpy()

    def sm(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    pt, ps = sm(t / T), sm(s / T)
    kl = (pt * np.log(pt / ps)).sum(axis=1).mean()
    ce = -(y * np.log(sm(s))).sum(axis=1).mean()
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert distill_loss(student, targets, teacher, T, alpha).item() == pytest.approx(expected, rel=1e-6)

    # T = 1, alpha = 1: KL(teacher || student) = soft-label CE minus the teacher's entropy (a constant), so the
    # gradient is that of training on the teacher's probabilities as soft labels
    a = student.clone().requires_grad_(True)
    kd = distill_loss(a, targets, teacher, 1.0, 1.0)
    kd.backward()
    b = student.clone().requires_grad_(True)
    soft = torch.softmax(teacher, dim=1)
    ce_soft = torch.nn.functional.cross_entropy(b, soft)
    ce_soft.backward()
    entropy = -(soft * soft.log()).sum(dim=1).mean()
    assert kd.item() == pytest.approx((ce_soft - entropy).item(), rel=1e-6)
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_prediction_files_round_trip_and_name_what_is_wrong(tmp_path):
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    write_logits(tmp_path / "oof_logits.csv", ["x", "NA"], p, LMSYS, fold=[0, 1], label=["a", "tie"])
    frame = read_logits(tmp_path, LMSYS)  # a folder: its oof_logits.csv
    assert list(frame.index) == ["x", "NA"] and list(frame["label"]) == ["a", "tie"]
    assert np.allclose(np.exp(frame[["logit_a", "logit_b", "logit_tie"]].to_numpy()), p)
    probs_file = tmp_path / "soft.csv"
    pd.DataFrame({"id": ["y"], "winner_model_a": [0.5], "winner_model_b": [0.25], "winner_tie": [0.25]}).to_csv(probs_file, index=False)
    got = lookup([tmp_path, probs_file], ["y", "x"], LMSYS, "train.distill.teacher")
    assert np.allclose(np.exp(got), [[0.5, 0.25, 0.25], [0.7, 0.2, 0.1]])
    with pytest.raises(PrefkitError, match=r"1 training ids have no prediction \(first: 'z'\)"):
        lookup([probs_file], ["y", "z"], LMSYS, "train.distill.teacher")
    pd.DataFrame({"id": ["y"], "winner_model_a": [0.9], "winner_model_b": [0.25], "winner_tie": [0.25]}).to_csv(probs_file, index=False)
    with pytest.raises(PrefkitError, match=r"soft.csv: row 1 \(id 'y'\).*sum to 1"):
        read_logits(probs_file, LMSYS)


def test_simplex_blend_weights_the_informative_run_and_its_cv_is_out_of_fold():
    rng = np.random.default_rng(0)
    n = 600
    labels = rng.choice(["a", "b", "tie"], n, p=[0.4, 0.4, 0.2])
    y = hard_targets(labels, 3)
    good = 0.6 * y + 0.4 / 3  # right, with some slack
    noise = rng.dirichlet(np.ones(3), n)
    b = Blender("simplex").fit([good, noise], labels)
    assert b.weights.sum() == pytest.approx(1.0) and b.weights[0] > 0.9
    folds = np.arange(n) % 3
    oof = blender_cv([good, noise], labels, folds, "simplex")
    assert score(oof, labels)["logloss"] <= score(good, labels)["logloss"] + 1e-3
    # out of fold: fold 0's blend comes from weights fitted on folds 1 and 2 only
    w12 = Blender("simplex").fit([good[folds > 0], noise[folds > 0]], labels[folds > 0]).weights
    assert np.allclose(oof[folds == 0], w12[0] * good[folds == 0] + w12[1] * noise[folds == 0])
    stacked = blender_cv([good, noise], labels, folds, "stack")
    assert stacked.shape == (n, 3) and np.allclose(stacked.sum(axis=1), 1.0)


def test_pseudo_label_file_drops_unsure_rows_and_joins_training(tmp_path):
    table = make_pairs(6, seed=3)
    table = PairTable(table.frame.assign(label=None, id="u" + table.frame["id"]), table.source)
    probs = np.array([[0.5, 0.48, 0.02], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1],
                      [0.34, 0.33, 0.33], [0.6, 0.2, 0.2], [0.2, 0.2, 0.6]])
    info = write_pseudo_labels(tmp_path / "pl.csv", table, probs, LMSYS, min_margin=0.03)
    assert info == {"rows": 6, "kept": 4, "dropped": 2, "min_margin": 0.03}
    assert np.allclose(margins(probs), [0.02, 0.85, 0.7, 0.01, 0.4, 0.4]), "the gap between the top two labels"
    rows = load_pseudo_rows(tmp_path / "pl.csv")
    kept = table.frame["id"].iloc[[1, 2, 4, 5]].tolist()
    assert rows.frame["id"].tolist() == kept and rows.frame["label"].isna().all()
    assert rows.frame["prompt"].tolist() == table.frame["prompt"].iloc[[1, 2, 4, 5]].tolist(), "turns survive"
    assert np.allclose(np.exp(lookup([tmp_path / "pl.csv"], kept, LMSYS, "x")), probs[[1, 2, 4, 5]], atol=1e-7)
    train = make_pairs(5, seed=4)
    joined = with_pseudo_rows(train, str(tmp_path / "pl.csv"))
    assert len(joined) == 9 and joined.frame["label"].isna().sum() == 4
    with pytest.raises(PrefkitError, match="also a labelled training row"):
        with_pseudo_rows(PairTable(pd.concat([train.frame, rows.frame.assign(label="a")]), "t"), str(tmp_path / "pl.csv"))


def test_distillation_with_pseudo_labels_trains_the_tiny_reward_model(tmp_path):
    """Teacher logits for the labelled rows, pseudo-labels (teacher and target) for the unlabelled ones: the loss
    falls, every trainable tensor moves, and the model follows the pseudo-labels on rows it had no label for."""
    from prefkit.core.modeling import build_model
    from prefkit.core.train import trainable_state
    from prefkit.rm.reward_model import RewardModelLearner
    from tests.conftest import FAST, TINY, learnable

    labelled, unlabelled = learnable(32, seed=0), learnable(24, seed=1)
    unlabelled.frame["id"] = "u" + unlabelled.frame["id"]
    truth = hard_targets(unlabelled.frame["label"], 3)
    pseudo = PairTable(unlabelled.frame.assign(label=None), "u")
    write_pseudo_labels(tmp_path / "pl.csv", pseudo, 0.9 * truth + 0.1 / 3, LMSYS)
    teacher = 0.8 * hard_targets(labelled.frame["label"], 3) + 0.2 / 3
    write_logits(tmp_path / "teacher.csv", labelled.frame["id"], teacher, LMSYS)
    cfg = load_config(TINY, FAST + ["train.epochs=4", f"train.pseudo_labels={tmp_path / 'pl.csv'}",
                                    f"train.distill.teacher={tmp_path / 'teacher.csv'}", "train.distill.temperature=2",
                                    "train.distill.alpha=0.5"])
    learner = RewardModelLearner(cfg)
    before = trainable_state(build_model(cfg, learner.vocab, learner.head.task, outputs=learner.head.outputs))
    train = with_pseudo_rows(labelled, cfg.train.pseudo_labels)
    history = learner.fit(train, None, tmp_path / "m")
    after = trainable_state(learner.model)
    assert all(not torch.equal(before[k], after[k]) for k in before), "every trainable tensor moved"
    assert history[-1]["loss"] < 0.6 * history[0]["loss"], (history[0]["loss"], history[-1]["loss"])
    assert score(learner.predict(unlabelled)[0], unlabelled.frame["label"])["accuracy"] > 0.9


def _cv(run_cli, tmp_path, data, name, *extra):
    res = run_cli("cv", "rm/features_baseline", f"data.train={data}", "cv.n_splits=3", f"output_dir={tmp_path / name}", *extra)
    assert res.code == 0, res.err
    return tmp_path / name


@pytest.mark.slow
def test_blend_and_pseudo_label_from_the_cli(tmp_path, run_cli):
    data, test, unlabelled = tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "unlabelled.csv"
    write_lmsys_csv(make_pairs(240, seed=0), data)
    write_lmsys_csv(PairTable(make_pairs(40, seed=1).frame.assign(label=None), "t"), test)
    u = make_pairs(60, seed=2).frame
    write_lmsys_csv(PairTable(u.assign(label=None, id="u" + u["id"]), "u"), unlabelled)
    hist = _cv(run_cli, tmp_path, data, "hist")
    logreg = _cv(run_cli, tmp_path, data, "logreg", "features.estimator=logreg", "features.l2_regularization=0.1")
    preds = []
    for run in (hist, logreg):
        res = run_cli("predict", "--run", run, "--test", test, "--out", tmp_path / f"{run.name}.csv",
                      f"output_dir={tmp_path / ('pred_' + run.name)}")
        assert res.code == 0, res.err
        preds.append(tmp_path / f"pred_{run.name}")
    res = run_cli("blend", hist, logreg, "--out", tmp_path / "blend", "--test-preds", *preds)
    assert res.code == 0, res.err
    m = json.loads((tmp_path / "blend" / "metrics.json").read_text())
    members = [json.loads((r / "metrics.json").read_text())["logloss"] for r in (hist, logreg)]
    assert [round(x, 4) for x in members] == [r["logloss"] for r in m["members"][:2]], "members scored as their own cv"
    assert m["logloss"] <= min(members) + 0.005, (m["logloss"], members)
    sub = pd.read_csv(tmp_path / "blend" / "submission.csv")
    assert len(sub) == 40 and np.allclose(sub.iloc[:, 1:].sum(axis=1), 1.0)
    w = m["blender"]["weights"]
    p = [pd.read_csv(d / "probabilities.csv").iloc[:, 1:].to_numpy() for d in preds]
    blended = pd.read_csv(tmp_path / "blend" / "probabilities.csv").iloc[:, 1:].to_numpy()
    assert np.allclose(blended, w[0] * p[0] + w[1] * p[1], atol=2e-5), "the test rows get the fitted weights"
    assert "| blend (simplex, blender CV) |" in (tmp_path / "blend" / "table.md").read_text()

    res = run_cli("pseudo-label", "--run", tmp_path / "blend", "--data", unlabelled, "--out", tmp_path / "pl.csv",
                  "--min-margin", "0.05")
    assert res.code == 0, res.err
    info = json.loads((tmp_path / "pl.json").read_text())
    kept = pd.read_csv(tmp_path / "pl.csv")
    assert info["rows"] == 60 and info["kept"] + info["dropped"] == 60 and len(kept) == info["kept"]
    assert (kept["margin"] > 0.05).all() and np.allclose(kept[["winner_model_a", "winner_model_b", "winner_tie"]].sum(axis=1), 1)
    assert set(load_pseudo_rows(tmp_path / "pl.csv").frame["id"]) <= set("u" + u["id"])

    res = run_cli("cv", "rm/features_baseline", f"data.train={data}", f"train.pseudo_labels={tmp_path / 'pl.csv'}",
                  f"output_dir={tmp_path / 'refused'}")
    assert res.code == 2 and "train.pseudo_labels: trains model.kind=seq_cls" in res.err


@pytest.mark.slow
def test_blend_refuses_runs_of_other_rows(tmp_path, run_cli):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_lmsys_csv(make_pairs(90, seed=0), a)
    write_lmsys_csv(make_pairs(60, seed=5), b)
    ra, rb = _cv(run_cli, tmp_path, a, "ra"), _cv(run_cli, tmp_path, b, "rb")
    res = run_cli("blend", ra, rb, "--out", tmp_path / "blend")
    assert res.code == 2 and "cover other rows" in res.err and "Traceback" not in res.err


class FirstToken(torch.nn.Module):
    """Logits (first token / 10, 0, 0): a row's confidence is set by its first token."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, use_cache):
        x = input_ids[:, :1].float() / 10
        return type("O", (), {"logits": torch.cat([x, torch.zeros_like(x), torch.zeros_like(x)], dim=1)})()


def test_budgeted_tta_swaps_the_least_sure_rows_first():
    from dataclasses import replace

    from prefkit.rm.heads import Classifier
    from prefkit.rm.predictor import PredictSettings, predict_pairs

    head = Classifier(LMSYS)
    ids = [np.array([v, 1]) for v in (40, 0, 30, 5, 20, 10)]  # sure ... unsure; row 1 is the least sure
    swapped = [np.array([1, 1]) for _ in ids]  # the swapped row says (0.1, 0, 0): swapped back, B a little ahead
    settings = PredictSettings(pad_id=0, batch_tokens=64)
    plain, stats = predict_pairs(FirstToken(), head, (ids, None), settings)
    full, stats_full = predict_pairs(FirstToken(), head, (ids, swapped), settings)
    assert stats["tta_rows"] == 0 and stats_full["tta_rows"] == 6
    half, stats_half = predict_pairs(FirstToken(), head, (ids, swapped), replace(settings, tta_fraction=0.5))
    assert stats_half["tta_rows"] == 3
    got = [i for i in range(6) if not np.allclose(half[i], plain[i])]
    assert got == [1, 3, 5], "the three least sure rows (first tokens 0, 5, 10) got the swap pass"
    assert np.allclose(half[[1, 3, 5]], full[[1, 3, 5]]) and np.allclose(half[[0, 2, 4]], plain[[0, 2, 4]])
    none, stats_none = predict_pairs(FirstToken(), head, (ids, swapped), replace(settings, tta_budget_s=0.0))
    assert stats_none["tta_rows"] == 0 and np.allclose(none, plain), "no seconds left: no swap pass"


@pytest.mark.slow
def test_repredict_with_a_cascade_stays_out_of_fold(tmp_path, run_cli):
    data = tmp_path / "train.csv"
    write_lmsys_csv(make_pairs(150, seed=0), data)
    hist = _cv(run_cli, tmp_path, data, "hist")
    logreg = _cv(run_cli, tmp_path, data, "logreg", "features.estimator=logreg")
    res = run_cli("repredict", "--run", hist, f"predict.cascade.run={logreg}", "predict.cascade.fraction=0.2",
                  "predict.cascade.weight=1.0", f"output_dir={tmp_path / 'again'}")
    assert res.code == 0, res.err
    m = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert m["cascade"]["rows"] == 30 and m["tta_rows"] == 150
    a = read_logits(hist, LMSYS)
    b = read_logits(logreg, LMSYS)
    c = read_logits(tmp_path / "again", LMSYS).loc[a.index]
    cols = ["logit_a", "logit_b", "logit_tie"]
    changed = ~np.isclose(c[cols], a[cols]).all(axis=1)
    assert changed.sum() == 30 and np.allclose(c.loc[changed, cols], b.loc[c.index[changed], cols]), \
        "weight 1: the least sure rows take the second run's own out-of-fold predictions"
    from prefkit.toolbox.pseudo import margins as gap

    sure = gap(np.exp(a[cols].to_numpy()))
    assert sure[changed].max() <= sure[~changed].min() + 1e-9


def _rule_rows() -> PairTable:
    from prefkit.data.table import TableBuilder

    b = TableBuilder("rules")
    rows = [  # (a, b, label)
        ("good", "", "a"), ("good", None, "a"), ("", "good", "b"), ("", "good", "tie"),  # one side empty
        ("same", "same", "tie"), ("same", "same", "a"),  # identical
        ("x", "y", "a"), ("y", "x", "b"),  # neither
    ]
    for i, (a, bb, label) in enumerate(rows, start=1):
        b.add(i, None, f"r{i}", ["q"], [a], [bb], label=label)
    return b.build()


def test_rules_fitted_and_applied_by_hand():
    from prefkit.toolbox import rules

    table = _rule_rows()
    empty = rules.fitted_rule(table, LMSYS, "empty")
    # oriented to (non-empty wins, empty wins, tie): 3, 0, 1, plus one count each -> 4, 1, 2 over 7
    assert empty["rows"] == 4 and np.allclose(empty["probs"], [4 / 7, 1 / 7, 2 / 7], atol=1e-6)
    same = rules.fitted_rule(table, LMSYS, "identical")
    # a, b, tie = 1, 0, 1, plus one each -> 2, 1, 2; A and B exchangeable -> 1.5, 1.5, 2 over 5
    assert same["rows"] == 2 and np.allclose(same["probs"], [0.3, 0.3, 0.4], atol=1e-6)
    probs = np.full((8, 3), 1 / 3)
    out, counts = rules.apply(table, probs, {"empty": empty, "identical": same}, ["empty", "identical"])
    assert counts == {"empty": 4, "identical": 2}
    assert np.allclose(out[0], [4 / 7, 1 / 7, 2 / 7]) and np.allclose(out[2], [1 / 7, 4 / 7, 2 / 7]), "B is the non-empty side"
    assert np.allclose(out[4], [0.3, 0.3, 0.4]) and np.allclose(out[6:], 1 / 3)
    m = rules.measure(table, probs, np.array([0, 1, 0, 1, 0, 1, 0, 1]), LMSYS)
    assert m["empty"]["rows"] == 4 and m["empty"]["logloss_model"] == pytest.approx(np.log(3), abs=1e-4)
    with pytest.raises(PrefkitError, match="unknown rule 'lenght'"):
        rules.check(["lenght"])


def test_predict_applies_the_rules_the_run_fitted(tmp_path, run_cli):
    data, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train = make_pairs(120, seed=0)
    write_lmsys_csv(PairTable(pd.concat([train.frame, _rule_rows().frame], ignore_index=True), "t"), data)
    write_lmsys_csv(PairTable(_rule_rows().frame.assign(label=None), "t"), test)
    run = _cv(run_cli, tmp_path, data, "run")
    m = json.loads((run / "metrics.json").read_text())
    assert m["rules"]["empty"]["rows"] >= 4 and "logloss_rule" in m["rules"]["empty"]
    fitted = json.loads((run / "rules.json").read_text())
    res = run_cli("predict", "--run", run, "--test", test, "--out", tmp_path / "sub.csv", "predict.rules=[empty]",
                  f"output_dir={tmp_path / 'p'}")
    assert res.code == 0, res.err
    sub = pd.read_csv(tmp_path / "sub.csv").set_index("id")
    assert np.allclose(sub.loc["r1"], fitted["empty"]["probs"], atol=1e-6)
    assert np.allclose(sub.loc["r3"], np.array(fitted["empty"]["probs"])[[1, 0, 2]], atol=1e-6)
    res = run_cli("predict", "--run", run, "--test", test, "--out", tmp_path / "sub2.csv", "predict.rules=[short]",
                  f"output_dir={tmp_path / 'p2'}")
    assert res.code == 2 and "unknown rule 'short'" in res.err


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory):
    """A 2-fold cv run of the tiny Gemma-2 (LoRA, unquantised) and an unlabelled test file, made once."""
    from prefkit import cli
    from tests.conftest import FAST, TINY, learnable

    root = tmp_path_factory.mktemp("tiny_cv")
    data, test = root / "train.csv", root / "test.csv"
    write_lmsys_csv(learnable(24), data)
    write_lmsys_csv(PairTable(learnable(8, seed=3).frame.assign(label=None), "t"), test)
    code = cli.main(["cv", str(TINY), f"data.train={data}", "cv.n_splits=2", *FAST, "train.epochs=2",
                     "quantization.mode=none", f"output_dir={root / 'cv'}"])
    assert code == 0
    return root / "cv", test


@pytest.mark.parametrize("into_base", [False, True])
def test_merge_averages_fold_models_into_a_run_predict_uses(tmp_path, run_cli, tiny_cv, into_base):
    """Averaged tensors are the folds' means; two identical folds merge back to that model's predictions (the
    LoRA, the trained head and, into the base, the merged weights all survive)."""
    import shutil

    from safetensors.torch import load_file

    source, test = tiny_cv
    run = tmp_path / "cv"
    shutil.copytree(source, run)
    flag = ["--into-base"] if into_base else []
    weights = [load_file(str(run / f"fold{k}" / "adapter_model.safetensors")) for k in (0, 1)]
    res = run_cli("merge", "--run", run, "--out", tmp_path / "avg", *flag)
    assert res.code == 0, res.err
    if not into_base:
        avg = load_file(str(tmp_path / "avg" / "model" / "adapter_model.safetensors"))
        assert set(avg) == set(weights[0]) and all(torch.allclose(avg[k], (weights[0][k] + weights[1][k]) / 2) for k in avg)
    else:
        assert (tmp_path / "avg" / "model" / "config.json").is_file() and not (tmp_path / "avg" / "model" / "adapter_config.json").exists()
    res = run_cli("predict", "--run", tmp_path / "avg", "--test", test, "--out", tmp_path / "avg.csv",
                  f"output_dir={tmp_path / 'pa'}")
    assert res.code == 0, res.err

    shutil.rmtree(run / "fold1")
    shutil.copytree(run / "fold0", run / "fold1")  # two identical folds: their average is that model
    res = run_cli("merge", "--run", run, "--out", tmp_path / "same", *flag)
    assert res.code == 0, res.err
    shutil.rmtree(run / "fold1")  # the run is now fold0 alone
    for name, r in (("fold0", run), ("same", tmp_path / "same")):
        res = run_cli("predict", "--run", r, "--test", test, "--out", tmp_path / f"{name}.csv", f"output_dir={tmp_path / ('p' + name)}")
        assert res.code == 0, res.err
    a, b = pd.read_csv(tmp_path / "fold0.csv"), pd.read_csv(tmp_path / "same.csv")
    assert np.allclose(a.iloc[:, 1:], b.iloc[:, 1:], atol=1e-5)
    res = run_cli("merge", "--run", run, "--out", tmp_path / "one")
    assert res.code == 2 and "1 finished fold models" in res.err



@pytest.fixture(scope="module")
def tiny_seeds(tmp_path_factory):
    """Two `prefkit train` runs (LoRA, unquantised) of one tiny Gemma-2 backbone with seeds 0 and 1, and an
    unlabelled test file, made once. The backbone is a saved folder: with model.random_init each seed would draw
    another base model."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from prefkit import cli
    from tests.conftest import FAST, TINY, learnable

    root = tmp_path_factory.mktemp("tiny_seeds")
    data, test = root / "train.csv", root / "test.csv"
    write_lmsys_csv(learnable(16), data)
    write_lmsys_csv(PairTable(learnable(6, seed=3).frame.assign(label=None), "t"), test)
    torch.manual_seed(0)
    lm = AutoConfig.for_model(vocab_size=259, pad_token_id=0, **load_config(TINY).model.random_init)
    AutoModelForCausalLM.from_config(lm).save_pretrained(root / "base")
    for seed in (0, 1):
        code = cli.main(["train", str(TINY), f"data.train={data}", *FAST, "quantization.mode=none",
                         f"model.path={root / 'base'}", "model.random_init={}", f"train.seed={seed}",
                         f"output_dir={root / f'seed{seed}'}"])
        assert code == 0
    return root / "seed0", root / "seed1", root / "base", test


def test_merge_averages_train_runs_of_other_seeds(tmp_path, run_cli, tiny_seeds):
    """Two full-data models of other seeds, two --run flags: each tensor (LoRA A and B, the head) is the mean of
    the two, trained.json names both sources, and the merged run predicts."""
    from safetensors.torch import load_file

    s0, s1, _, test = tiny_seeds
    weights = [load_file(str(s / "model" / "adapter_model.safetensors")) for s in (s0, s1)]
    res = run_cli("merge", "--run", s0, "--run", s1, "--out", tmp_path / "avg")
    assert res.code == 0, res.err
    assert "train.seed differ" in res.err  # A and B averaged apart, from other starting A's: said so
    avg = load_file(str(tmp_path / "avg" / "model" / "adapter_model.safetensors"))
    lora_a = next(k for k in avg if "q_proj.lora_A" in k)
    assert not torch.allclose(weights[0][lora_a], weights[1][lora_a])  # other seeds, other adapters
    assert torch.allclose(avg[lora_a], (weights[0][lora_a] + weights[1][lora_a]) / 2)
    assert set(avg) == set(weights[0]) and all(torch.allclose(avg[k], (weights[0][k] + weights[1][k]) / 2) for k in avg)
    info = json.loads((tmp_path / "avg" / "model" / "trained.json").read_text())
    assert info["merged_from"] == [str(s0 / "model"), str(s1 / "model")] and info["config_from"] == str(s0)
    res = run_cli("predict", "--run", tmp_path / "avg", "--test", test, "--out", tmp_path / "avg.csv",
                  f"output_dir={tmp_path / 'pa'}")
    assert res.code == 0, res.err
    assert len(pd.read_csv(tmp_path / "avg.csv")) == 6


def test_merge_into_base_of_two_train_runs_is_base_plus_the_mean_update(tmp_path, run_cli, tiny_seeds):
    """--into-base over two runs: a LoRA-adapted weight of the merged model is W + (alpha / r) mean_k(B_k A_k)."""
    from safetensors.torch import load_file

    s0, s1, base, _ = tiny_seeds
    res = run_cli("merge", "--run", s0, "--run", s1, "--out", tmp_path / "merged", "--into-base")
    assert res.code == 0, res.err
    name = "model.layers.1.self_attn.v_proj.weight"
    w = load_file(str(base / "model.safetensors"))[name]
    update = 0
    for s in (s0, s1):
        adapter = load_file(str(s / "model" / "adapter_model.safetensors"))
        a, b = (next(t for k, t in adapter.items() if "layers.1.self_attn.v_proj" in k and f"lora_{x}" in k) for x in "AB")
        update = update + (16 / 8) * (b @ a) / 2  # tiny_gemma2: lora.alpha 16, r 8
    merged = load_file(str(tmp_path / "merged" / "model" / "model.safetensors"))[name]
    assert update.abs().max() > 1e-4 and torch.allclose(merged, w + update, atol=1e-6)


def _edited_copy(run, out, changes: dict):
    """A copy of the run folder whose config.yaml has `changes` (dotted keys) applied."""
    import shutil

    import yaml

    shutil.copytree(run, out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        section = cfg
        for part in parents:
            section = section[part]
        section[leaf] = value
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    return out


@pytest.mark.parametrize("changes, said", [
    ({"lora.r": 4}, "lora.r differs (8 and 4): their models differ in the LoRA settings"),
    ({"lora.target_modules": ["q_proj"]}, "lora.target_modules differs"),
    ({"model.path": "minilm"}, "differ in the base model"),
    ({"competition": "wsdm"}, "competition differs ('lmsys' and 'wsdm')"),
    ({"model.head": "bt"}, "model.head differs ('cls3' and 'bt'): their models differ in the head"),
    ({"template.max_length": 64}, "template.max_length differs (96 and 64): their models differ in the template"),
])
def test_merge_refuses_runs_whose_models_cannot_be_averaged(tmp_path, run_cli, tiny_seeds, changes, said):
    s0 = tiny_seeds[0]
    other = _edited_copy(s0, tmp_path / "other", changes)
    res = run_cli("merge", "--run", s0, "--run", other, "--out", tmp_path / "avg")
    assert res.code == 2 and f"--run {s0} and --run {other}: " in res.err and said in res.err, res.err
    assert not (tmp_path / "avg").exists()


def test_merge_refuses_random_bases_of_other_seeds_and_a_run_given_twice(tmp_path, run_cli, tiny_seeds):
    """model.random_init draws the base weights from train.seed: runs of two seeds hold two base models."""
    from tests.conftest import TINY

    s0 = tiny_seeds[0]
    random_init = load_config(TINY).model.random_init
    a = _edited_copy(s0, tmp_path / "a", {"model.path": None, "model.random_init": random_init})
    b = _edited_copy(a, tmp_path / "b", {"train.seed": 1})
    res = run_cli("merge", "--run", a, "--run", b, "--out", tmp_path / "avg")
    assert res.code == 2 and "train.seed differs (0 and 1), and with model.random_init it draws the base weights" in res.err
    res = run_cli("merge", "--run", s0, "--run", str(s0) + "/", "--out", tmp_path / "avg")
    assert res.code == 2 and "given twice" in res.err
    res = run_cli("merge", "--run", s0, "--out", tmp_path / "avg")
    assert res.code == 2 and "1 finished models; merge needs at least two" in res.err

def test_row_targets_from_labels_soft_labels_and_pseudo_labels(tmp_path):
    from prefkit.toolbox.distill import row_targets

    train = make_pairs(4, seed=0)
    pseudo = make_pairs(2, seed=1).frame
    pseudo = PairTable(pseudo.assign(label=None, id="u" + pseudo["id"]), "u")
    write_pseudo_labels(tmp_path / "pl.csv", pseudo, np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]), LMSYS)
    joined = with_pseudo_rows(train, str(tmp_path / "pl.csv"))
    cfg = load_config(None, ["model.kind=seq_cls", f"train.pseudo_labels={tmp_path / 'pl.csv'}"])
    t = row_targets(cfg, joined, LMSYS)
    assert np.allclose(t[:4], hard_targets(train.frame["label"], 3)) and np.allclose(t[4:], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    soft = np.array([[0.5, 0.25, 0.25]] * 4)
    write_logits(tmp_path / "soft.csv", train.frame["id"], soft, LMSYS)
    cfg = load_config(None, ["model.kind=seq_cls", f"train.pseudo_labels={tmp_path / 'pl.csv'}", f"train.soft_labels={tmp_path / 'soft.csv'}"])
    t = row_targets(cfg, joined, LMSYS)
    assert np.allclose(t[:4], soft, atol=1e-6) and np.allclose(t[4:], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]], atol=1e-6)
