"""Bundle, kernel, dry-run pushes and submissions, the time budget and the ledger; no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from prefkit.config import load_config
from prefkit.data.arena import write_lmsys_csv
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.kaggle import api, ledger
from prefkit.kaggle.budget import estimate

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "rm" / "tiny_gemma2.yaml"
NAMES = ["kaggle.dataset=me/prefkit-test-bundle", "kaggle.kernel=me/prefkit-test-infer", "kaggle.wheels=[]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Gemma-2 QLoRA run (2 folds) and an unlabelled test file."""
    d = tmp_path_factory.mktemp("kaggle")
    write_lmsys_csv(make_pairs(40, seed=1), d / "train.csv")
    t = make_pairs(23, seed=2)
    write_lmsys_csv(PairTable(t.frame.assign(label=None), "t"), d / "test.csv")
    r = subprocess.run([sys.executable, "-m", "prefkit.cli", "cv", str(TINY), f"data.train={d / 'train.csv'}",
                        "cv.n_splits=2", "template.max_length=96", "train.batch_size=8", f"output_dir={d / 'run'}", *NAMES],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def test_bundle_kernel_and_kernel_script_make_a_submission(run_cli, trained, tmp_path):
    bundle, kernel, out = tmp_path / "bundle", tmp_path / "kernel", tmp_path / "kaggle-working"
    r = run_cli("kaggle", "bundle", "--run", trained / "run", "--out", bundle)
    assert r.code == 0, r.err
    meta = json.loads((bundle / "dataset-metadata.json").read_text())
    assert meta["id"] == "me/prefkit-test-bundle" and meta["title"] and meta["licenses"]
    assert [p.name for p in (bundle / "wheels").iterdir()][0].startswith("prefkit-0.1.0-")
    assert (bundle / "run" / "fold0" / "adapter_model.safetensors").exists() and (bundle / "run" / "config.yaml").exists()
    assert not list(bundle.rglob("checkpoint")) and not list(bundle.rglob("valid_predictions.npy"))

    r = run_cli("kaggle", "kernel", "infer", "--run", bundle / "run", "--bundle", bundle, "--out", kernel)
    assert r.code == 0, r.err
    km = json.loads((kernel / "kernel-metadata.json").read_text())
    assert km["enable_internet"] is False and km["machine_shape"] == "NvidiaTeslaT4" and km["enable_gpu"] is True
    assert km["dataset_sources"] == ["me/prefkit-test-bundle"] and km["competition_sources"] == ["lmsys-chatbot-arena"]
    assert km["code_file"] == "kernel.py" and (kernel / "kernel.py").exists()
    assert '"/kaggle/input/prefkit-test-bundle"' in (kernel / "kernel.py").read_text()

    env = {**os.environ, "PREFKIT_BUNDLE": str(bundle), "PREFKIT_TEST": str(trained / "test.csv"),
           "PREFKIT_OUT": str(out / "submission.csv"), "PREFKIT_WORK": str(out / "work")}
    run = subprocess.run([sys.executable, str(kernel / "kernel.py")], env=env, capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "nvidia-smi not found" in run.stdout and "already installed" in run.stdout
    sub = pd.read_csv(out / "submission.csv", dtype={"id": str})
    test_ids = pd.read_csv(trained / "test.csv", dtype={"id": str})["id"]
    assert list(sub["id"]) == list(test_ids)
    assert ((sub.iloc[:, 1:].sum(axis=1) - 1).abs() < 1e-6).all()


@pytest.mark.parametrize("name,content", [
    ("kaggle.json", '{"username": "me", "key": "0123456789abcdef0123456789abcdef"}'),
    ("notes.txt", "token for later: hf_" + "A" * 34),
    ("fold0/.env", "KAGGLE_KEY=abcdef0123456789"),
])
def test_planted_credential_refuses_the_bundle(run_cli, trained, tmp_path, name, content):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(trained / "run", run)
    (run / name).write_text(content)
    out = tmp_path / "bundle"
    r = run_cli("kaggle", "bundle", "--run", run, "--out", out)
    assert r.code == 2 and "refusing to bundle" in r.err and name.split("/")[-1] in r.err
    assert "0123456789abcdef0123" not in r.err and "A" * 30 not in r.err, "the secret itself is never printed"
    assert not out.exists() and not list(tmp_path.glob(".bundle.*"))


def test_push_and_submit_dry_run_print_the_calls(run_cli, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no credentials anywhere: a dry run does not need them
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    bundle, kernel = tmp_path / "bundle", tmp_path / "kernel"
    assert run_cli("kaggle", "bundle", "--run", trained / "run", "--out", bundle).code == 0
    assert run_cli("kaggle", "kernel", "infer", "--run", bundle / "run", "--bundle", bundle, "--out", kernel).code == 0
    r = run_cli("kaggle", "push", "--bundle", bundle, "--kernel", kernel, "--dry-run")
    assert r.code == 2 and "--force" in r.err, "no throughput is known for a random model: refused without --force"
    r = run_cli("kaggle", "push", "--bundle", bundle, "--kernel", kernel, "--dry-run", "--force")
    assert r.code == 0, r.err
    assert f"dry run: kaggle.api.dataset_create_version(folder='{bundle}', version_notes='prefkit 0.1.0', dir_mode='zip')" in r.err
    assert f"dry run: kaggle.api.kernels_push(folder='{kernel}')" in r.err
    r = run_cli("kaggle", "submit", "--run", trained / "run", "--kernel", "me/prefkit-test-infer", "--version", "2",
                "--message", "first", "--ledger", tmp_path / "ledger.csv", "--dry-run")
    assert r.code == 0 and "competition_submit_code(file_name='submission.csv', message='first [" in r.err
    assert not (tmp_path / "ledger.csv").exists()
    r = run_cli("kaggle", "push", "--bundle", bundle, "--force")
    assert r.code == 2 and "no Kaggle credentials" in r.err


def test_credentials_are_found_but_never_shown(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-value-123456")
    where = api.credentials_source()
    assert where == "KAGGLE_USERNAME and KAGGLE_KEY" and "s3cr3t" not in where


def test_time_budget_by_hand():
    cfg = load_config(ROOT / "configs" / "rm" / "gemma2_9b_qlora_t4x2.yaml")
    est = estimate(cfg, n_models=1)
    per_token = 18_056_500_224  # forward FLOPs per token of Gemma-2 9B at 2,048 tokens, counted (t4_estimate.py)
    tps = 0.15 * 65e12 / per_token  # 540 tokens/s per T4, an estimate
    hours = (120 + 25_000 * 2 * 1024 / (tps * 2)) / 3600
    assert est["hours"] == pytest.approx(hours, abs=0.01) and est["fits"] is False and "not measured" in est["throughput"]
    assert estimate(cfg, n_models=1, tokens_per_row=600)["fits"] is True


def test_wait_for_kernel_backs_off():
    states = iter(["queued", "running", "running", "complete"])

    class Fake:
        def kernels_status(self, kernel):
            return type("S", (), {"status": f"KernelWorkerStatus.{next(states).upper()}"})()

    sleeps = []
    assert api.wait_for_kernel("me/k", say=lambda m: None, sleep=sleeps.append, api=Fake()) == "complete"
    assert sleeps == [15.0, 22.5, 33.75]


def test_ledger_scores_and_plot(tmp_path):
    path = tmp_path / "ledger.csv"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("a: 1\n")
    (run / "metrics.json").write_text('{"logloss": 0.95}')
    row = ledger.new_row("lmsys-chatbot-arena", run, "m", "sub.csv", None, None)
    ledger.append({**row, "message": f"m [{row['id']}]"}, path)
    subs = [type("S", (), {"description": f"m [{row['id']}]", "public_score": "0.961"})(),
            type("S", (), {"description": "someone else's", "public_score": "0.9"})()]
    assert ledger.fill_scores(path, subs) == 1
    frame = ledger.read(path)
    assert frame.loc[0, "lb_score"] == "0.961" and frame.loc[0, "cv_logloss"] == "0.95"
    assert len(frame.loc[0, "config_hash"]) == 12
    text = ledger.show(path, tmp_path / "ledger.png")
    assert row["id"] in text and (tmp_path / "ledger.png").read_bytes()[:4] == b"\x89PNG"


def test_train_kernel_runs_cv_from_the_bundle(run_cli, trained, tmp_path):
    bundle, kernel = tmp_path / "bundle", tmp_path / "kernel"
    assert run_cli("kaggle", "bundle", "--run", trained / "run", "--out", bundle).code == 0
    r = run_cli("kaggle", "kernel", "train", "--run", bundle / "run", "--bundle", bundle, "--out", kernel)
    assert r.code == 0, r.err
    assert '"/kaggle/input/lmsys-chatbot-arena/train.csv"' in (kernel / "kernel.py").read_text()
    env = {**os.environ, "PREFKIT_BUNDLE": str(bundle), "PREFKIT_TRAIN": str(trained / "train.csv"),
           "PREFKIT_WORK": str(tmp_path / "work")}
    run = subprocess.run([sys.executable, str(kernel / "kernel.py")], env=env, capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    m = json.loads((tmp_path / "work" / "metrics.json").read_text())
    assert m["n"] == 40 and (tmp_path / "work" / "fold1" / "trained.json").exists()


def test_kernel_checks_the_image_versions_and_installs_bundled_wheels_by_file(run_cli, trained, tmp_path):
    from prefkit.kaggle.kernel import kernel_minimums

    assert kernel_minimums() == {"torch": "2.4", "transformers": "5.0", "peft": "0.17", "accelerate": "1.0"}
    bundle, kernel = tmp_path / "bundle", tmp_path / "kernel"
    assert run_cli("kaggle", "bundle", "--run", trained / "run", "--out", bundle).code == 0
    assert run_cli("kaggle", "kernel", "infer", "--run", bundle / "run", "--bundle", bundle, "--out", kernel).code == 0
    script = (kernel / "kernel.py").read_text()
    assert "MINIMUM = {'torch': '2.4', 'transformers': '5.0'" in script and '"--force-reinstall", *files' in script
    # the helpers run as the kernel runs them: a bundled wheel that did not win over the image's copy is refused
    helpers = script[script.index("def version_key"):script.index("try:\n    import prefkit")]
    space = {"MINIMUM": {"transformers": "5.0"}, "sys": sys}
    exec(helpers, space)
    assert space["version_key"]("2.13.0+cpu") == (2, 13, 0) and space["version_key"]("5.0.0rc1") == (5, 0, 0)
    with pytest.raises(SystemExit) as stop:
        space["check_versions"](["pytest-0.0.1-py3-none-any.whl"])
    assert stop.value.code == 3
    # an image older than prefkit needs: a clear message and exit 3, no traceback
    old = kernel / "old.py"
    old.write_text(script.replace(script[script.index("MINIMUM = "):script.index("\n", script.index("MINIMUM = "))],
                                  "MINIMUM = {'transformers': '99.0'}"))
    env = {**os.environ, "PREFKIT_BUNDLE": str(bundle), "PREFKIT_TEST": str(trained / "test.csv"),
           "PREFKIT_OUT": str(tmp_path / "sub.csv")}
    r = subprocess.run([sys.executable, str(old)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 3 and "prefkit needs transformers >= 99.0" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "sub.csv").exists()


@pytest.mark.parametrize("overrides,ok", [
    (["kaggle.model_sources=[google/gemma-2/transformers/gemma-2-9b-it/2]"], True),
    (["kaggle.dataset_sources=[me/gemma-2]"], True),
    (["kaggle.model_sources=[google/gemma-2/transformers/gemma-2-9b-it/20]"], False),
    ([], False),
    (["model.path=/home/me/gemma-2-9b-it", "kaggle.model_sources=[google/gemma-2/transformers/gemma-2-9b-it/2]"], False),
])
def test_bundle_checks_that_the_kernel_mounts_the_model(overrides, ok):
    from prefkit.errors import PrefkitError
    from prefkit.kaggle.bundle import check_mounts

    cfg = load_config(ROOT / "configs" / "rm" / "gemma2_9b_qlora_t4x2.yaml", overrides)
    if ok:
        check_mounts(cfg)
    else:
        with pytest.raises(PrefkitError, match="model.path"):
            check_mounts(cfg)


def test_training_kernel_time_by_hand_and_refused_over_the_limit(tmp_path, run_cli):
    from prefkit.config import save_config
    from prefkit.kaggle.budget import estimate_training

    cfg = load_config(ROOT / "configs" / "rm" / "gemma2_2b_qlora_t4x2.yaml")
    tps = 0.15 * 65e12 / 4_484_773_376  # forward tokens/s on one T4, an estimate from counted FLOPs
    train, valid = 57_477 * 4 / 5, 57_477 / 5
    training = train * 1024 * 3 / (tps * 2)  # forward + LoRA backward + recompute (checkpointing)
    evals = int(train / (4 * 2) // 500) * 1000 * 1024 / (tps * 2)  # 1,000-row samples, no TTA
    oof = valid * 2 * 1024 / (tps * 2)
    est = estimate_training(cfg)
    assert est["hours"] == pytest.approx((40 + training + evals + oof) / 3600, abs=0.01) and not est["fits"]
    full_eval = estimate_training(load_config(ROOT / "configs" / "rm" / "gemma2_2b_qlora_t4x2.yaml",
                                              ["train.eval_rows=0", "train.eval_tta=true"]))
    assert full_eval["hours_per_fold"]["evaluation"] > 20 * est["hours_per_fold"]["evaluation"]
    assert estimate_training(load_config(ROOT / "configs" / "rm" / "gemma2_2b_qlora_t4x2.yaml", ["data.limit=30000"]))["fits"]

    bundle, kernel = tmp_path / "bundle", tmp_path / "kernel"
    (bundle / "run" / "fold0").mkdir(parents=True)
    (bundle / "run" / "fold0" / "trained.json").write_text('{"fold": 0}')
    save_config(cfg, bundle / "run")
    (bundle / "dataset-metadata.json").write_text('{"id": "me/prefkit-folds"}')  # a bundle, as push checks
    kernel.mkdir()
    (kernel / "kernel.py").write_text("# prefkit train kernel: rendered by `prefkit kaggle kernel train`\n")
    (kernel / "kernel-metadata.json").write_text("{}")
    r = run_cli("kaggle", "push", "--bundle", bundle, "--kernel", kernel, "--dry-run")
    assert r.code == 2 and "exceeds the 9.0 h limit" in r.err and "evaluations of 1000 rows" in r.err
