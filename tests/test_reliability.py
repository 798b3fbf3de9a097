"""User mistakes and faults, one test per class: secrets by structure, one run per output folder, config
ranges and output paths, one-class data, keys a job ignores, messages that say what is wrong, ids that
round-trip, leftovers of killed runs, token statistics of huge cells, Kaggle's naming rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefkit.competition import COMPETITIONS
from prefkit.data.arena import write_lmsys_csv, write_parquet
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.rm.heads import Classifier
from tests.conftest import lmsys_row, write_lmsys

CLS3 = Classifier(COMPETITIONS["lmsys"])  # the A/B/tie head

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ROOT / "configs" / "rm" / "features_baseline.yaml"
QUICK = ["features.max_iter=20", "cv.n_splits=2"]


@pytest.fixture
def pairs_csv(tmp_path) -> Path:
    write_lmsys_csv(make_pairs(40, seed=3), tmp_path / "pairs.csv")
    return tmp_path / "pairs.csv"


def _fake_run(folder: Path, config_text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config_text)
    (folder / "fold0").mkdir()
    (folder / "fold0" / "trained.json").write_text("{}")
    return folder


# 1. ---------------------------------------------------------------------- secrets, by structure


@pytest.mark.parametrize("name,text,where", [
    ("config.yaml", "kaggle:\n  dataset: me/some-folds\n  auth:\n    key: 0123456789abcdef0123456789abcdef\n", "kaggle.auth.key"),
    ("fold0/extra.toml", "[hub]\naccess_token = \"abcdefghijklmnopqrstuv12\"\n", "hub.access_token"),
    ("fold0/setup.ini", "[db]\npassword = hunter22\n", "db.password"),
    ("fold0/notes.json", '{"services": [{"name": "x", "apiKey": "ZXhhbXBsZS1zZWNyZXQtdmFsdWU"}]}', "services[0].apiKey"),
])
def test_a_credential_in_any_structured_file_refuses_the_bundle(run_cli, tmp_path, name, text, where):
    run = _fake_run(tmp_path / "run", "kaggle:\n  dataset: me/some-folds\n")
    (run / name).write_text(text)
    r = run_cli("kaggle", "bundle", "--run", run, "--out", tmp_path / "bundle")
    assert r.code == 2 and "refusing to bundle" in r.err and Path(name).name in r.err, r.err
    assert where in r.err or "Kaggle API key" in r.err
    for secret in ("0123456789abcdef0123", "abcdefghijklmnop", "hunter22", "ZXhhbXBsZS1zZWNyZXQ"):
        assert secret not in r.err, "the value is never printed"
    assert not (tmp_path / "bundle").exists()


def test_tokenizer_and_adapter_configs_are_not_credentials(tmp_path):
    from prefkit.kaggle.secrets import find_secrets

    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": "<end_of_turn>", "pad_token": "<pad>", "trainable_token_indices": None,
         "added_tokens_decoder": {"0": {"content": "<pad>", "special": True}}, "model_max_length": 1000000}))
    (tmp_path / "config.yaml").write_text("template:\n  tokenizer: /kaggle/input/gemma-2/tokenizer\npredict:\n"
                                          "  batch_tokens: 8192\nkaggle:\n  is_private: true\n")
    assert find_secrets(tmp_path) == []


# 2. ---------------------------------------------------------------------- one run per output folder


def test_a_second_run_in_a_busy_output_folder_is_refused_and_a_stale_lock_is_taken_over(run_cli, tmp_path, pairs_csv):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".prefkit.lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                       "command": "prefkit cv other", "since": "earlier"}))
        r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, f"output_dir={out}")
        assert r.code == 2 and f"output folder {out} is in use by `prefkit cv other` (process {holder.pid}" in r.err
        assert not (out / "config.yaml").exists(), "nothing written into the busy folder"
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed (as by kill -9): its lock is stale
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, f"output_dir={out}")
    assert r.code == 0, r.err
    assert "removed a stale lock left by `prefkit cv other`" in r.err
    assert not (out / ".prefkit.lock").exists(), "released when the command ends"


@pytest.mark.slow
def test_two_runs_at_once_in_one_folder(tmp_path, pairs_csv):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "prefkit.cli", "cv", str(FEATURES), f"data.train={pairs_csv}", *QUICK, f"output_dir={out}"]
    runs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is in use by `prefkit cv features_baseline`" in refused


@pytest.mark.parametrize("text", ["", "   ", '{"pid": "seven", "host": "x"}', "{not json"])
def test_an_unreadable_lock_left_by_a_crash_is_taken_over_once_old(tmp_path, text):
    from prefkit import lock

    (tmp_path / lock.LOCK).write_text(text)
    old = time.time() - 3600  # a crash between create and write, an hour ago
    os.utime(tmp_path / lock.LOCK, (old, old))
    said = []
    try:
        lock.acquire(tmp_path, "prefkit cv mine", said.append)
        assert json.loads((tmp_path / lock.LOCK).read_text())["pid"] == os.getpid()
        assert len(said) == 1 and "removed an unreadable lock" in said[0] and str(tmp_path) in said[0]
    finally:
        lock.release_all()
    assert not (tmp_path / lock.LOCK).exists() and not list(tmp_path.glob(".prefkit.lock*"))


def test_a_lock_being_written_is_waited_for_not_taken_over(tmp_path):
    # an empty lock a moment old may be one that a live command is writing right now
    import threading

    from prefkit import lock
    from prefkit.errors import PrefkitError

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    path = tmp_path / lock.LOCK
    path.write_text("")
    late = threading.Timer(0.6, lambda: path.write_text(json.dumps(
        {"pid": holder.pid, "host": os.uname().nodename, "command": "prefkit train slow", "since": "now"})))
    late.start()
    try:
        with pytest.raises(PrefkitError, match=rf"in use by `prefkit train slow` \(process {holder.pid} "):
            lock.acquire(tmp_path, "prefkit cv mine")
        assert json.loads(path.read_text())["pid"] == holder.pid, "the live command's lock is left alone"
    finally:
        late.join()
        holder.kill()
        holder.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_a_lock_whose_pid_now_names_another_process_is_stale(tmp_path):
    from prefkit import lock
    from prefkit.errors import PrefkitError

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    path = tmp_path / lock.LOCK
    try:
        started = lock.start_time(other.pid)
        assert started is not None
        holder = {"pid": other.pid, "host": os.uname().nodename, "command": "prefkit cv gone", "since": "earlier"}
        path.write_text(json.dumps({**holder, "start": started}))
        with pytest.raises(PrefkitError, match="in use by `prefkit cv gone`"):
            lock.acquire(tmp_path, "prefkit cv mine")  # the very process that took it: still in use
        said = []
        path.write_text(json.dumps({**holder, "start": started - 250}))  # the pid, reused by a later process
        lock.acquire(tmp_path, "prefkit cv mine", said.append)
        assert said and "removed a stale lock left by `prefkit cv gone`" in said[0] and "reused" in said[0]
        lock.release_all()
        # this very pid, written by an earlier process (a restarted container gets the same small pids)
        path.write_text(json.dumps({**holder, "pid": os.getpid(), "start": lock.start_time(os.getpid()) - 7}))
        lock.acquire(tmp_path, "prefkit cv mine", said.append)
        assert json.loads(path.read_text())["start"] == lock.start_time(os.getpid()), "taken over, not joined"
    finally:
        lock.release_all()
        other.kill()
        other.wait()
    assert not path.exists(), "released: it was this process's own"


SLOW_JOB = """
import sys, time
from pathlib import Path
import prefkit.recipes.data_convert as recipe
from prefkit import cli
from prefkit.io import atomic_path
from prefkit.core.runs import output_dir

def slow(cfg, path, out):  # a job that holds its folder's lock and is half-way through writing a file
    output_dir(cfg, "convert")
    with atomic_path(Path(out)) as tmp:
        tmp.write_text("half written")
        print("ready", flush=True)
        time.sleep(120)

recipe.main = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path, pairs_csv):
    import signal

    out, folder = tmp_path / "converted.csv", tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", SLOW_JOB, "data", "convert", str(pairs_csv), "--out", str(out),
                          f"output_dir={folder}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        assert (folder / ".prefkit.lock").exists() and list(tmp_path.glob(".converted.csv.*.tmp"))
        p.send_signal(signal.SIGTERM)  # a timeout, `docker stop`, Kaggle's kill
        code = p.wait(timeout=60)
    finally:
        p.kill()
    err = p.stderr.read()
    assert code == 143 and "terminated" in err and "Traceback" not in err, (code, err)
    assert not (folder / ".prefkit.lock").exists(), "the lock is released"
    assert not list(tmp_path.glob(".converted.csv.*")) and not out.exists(), "the temporary file is removed"


def test_two_commands_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    from prefkit import lock
    from prefkit.config import Config
    from prefkit.core import runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runs.time, "strftime", lambda fmt, *a: "20270314-015926")  # one second for all
    try:
        (tmp_path / "runs" / "predict-20270314-015926").mkdir(parents=True)  # one started a moment ago
        first, second = Config(), Config()
        a, b = runs.output_dir(first, "predict"), runs.output_dir(second, "predict")
    finally:
        lock.release_all()
    assert (a, b) == (Path("runs/predict-20270314-015926-2"), Path("runs/predict-20270314-015926-3"))
    assert first.output_dir == str(a) and (b / "config.yaml").exists()


# 3. ---------------------------------------------------------------------- ranges and output paths


@pytest.mark.parametrize("override,message", [
    ("features.max_iter=0", "key 'features.max_iter' must be >= 1; got 0"),
    ("features.learning_rate=-1", "key 'features.learning_rate' must be > 0; got -1.0"),
    ("train.batch_size=0", "key 'train.batch_size' must be >= 1; got 0"),
    ("predict.clip=0.5", "key 'predict.clip' must be >= 0 and < 0.333333; got 0.5"),
    ("template.prompt_share=1.5", "key 'template.prompt_share' must be >= 0 and < 1"),
])
def test_config_values_out_of_range_are_refused_at_load(run_cli, tmp_path, pairs_csv, override, message):
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", override, f"output_dir={tmp_path / 'run'}")
    assert r.code == 2 and message in r.err and "Traceback" not in r.err, r.err
    assert not (tmp_path / "run").exists(), "refused before anything ran"


def test_output_paths_that_cannot_be_written_are_user_errors(run_cli, tmp_path, pairs_csv):
    (tmp_path / "sub.csv").mkdir()
    r = run_cli("data", "convert", pairs_csv, "--out", tmp_path / "sub.csv")
    assert r.code == 2 and f"{tmp_path / 'sub.csv'}: is a folder" in r.err
    (tmp_path / "file").write_text("x")
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, f"output_dir={tmp_path / 'file' / 'run'}")
    assert r.code == 2 and str(tmp_path / "file") in r.err and "Traceback" not in r.err, r.err


# 4. ---------------------------------------------------------------------- one class only


@pytest.mark.parametrize("label,swap,ok", [("tie", "both", False), ("a", "none", False), ("a", "both", True)])
def test_one_class_training_sets(run_cli, tmp_path, label, swap, ok):
    t = make_pairs(30, seed=1)
    write_lmsys_csv(PairTable(t.frame.assign(label=label), "t"), tmp_path / "one.csv")
    r = run_cli("train", FEATURES, f"data.train={tmp_path / 'one.csv'}", "features.max_iter=20",
                f"train.swap_augment={swap}", f"output_dir={tmp_path / 'run'}")
    if ok:
        assert r.code == 0, r.err
    else:
        assert r.code == 2 and f"every one of the 30 training rows is labelled {label!r}" in r.err, r.err
        assert "Traceback" not in r.err


# 5. ---------------------------------------------------------------------- keys a job ignores


def test_keys_the_job_does_not_read_are_reported(run_cli, tmp_path, pairs_csv):
    r = run_cli("cv", FEATURES, f"data.train={pairs_csv}", *QUICK, "train.batch_size=4", "lora.r=8",
                f"output_dir={tmp_path / 'run'}")
    assert r.code == 0, r.err
    assert "note: `cv` with model.kind=features does not read train.batch_size, lora.r: they have no effect" in r.err


# 6. ---------------------------------------------------------------------- messages that say what is wrong


def test_empty_and_wrongly_delimited_files(run_cli, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    r = run_cli("data", "check", tmp_path / "empty.csv", "--no-tokens")
    assert r.code == 2 and "empty.csv: is empty (0 bytes)" in r.err
    (tmp_path / "semi.csv").write_text("id;prompt;response_a;response_b\n1;a;b;c\n")
    for args in ([], ["--format", "lmsys"], ["--format", "generic"]):
        r = run_cli("data", "check", tmp_path / "semi.csv", "--no-tokens", *args)
        assert r.code == 2 and "separated by semicolons" in r.err and "'id;prompt;response_a;response_b'" in r.err, r.err


# 7. ---------------------------------------------------------------------- ids round-trip


def test_ids_round_trip_through_every_loader_and_the_submission(run_cli, tmp_path):
    from prefkit.config import DataConfig
    from prefkit.data import load_pairs

    t = make_pairs(30, seed=2)
    frame = t.frame.assign(id=[f"00{i}" for i in range(30)])
    write_lmsys_csv(PairTable(frame, "t"), tmp_path / "text_ids.csv")
    assert list(load_pairs(tmp_path / "text_ids.csv", DataConfig()).frame["id"]) == [f"00{i}" for i in range(30)]
    write_parquet(t, tmp_path / "p.parquet")
    table = pd.read_parquet(tmp_path / "p.parquet")
    table["id"] = np.arange(30, dtype=np.float64) + 1000  # an integer id column stored as float
    table.to_parquet(tmp_path / "float_ids.parquet")
    ids = list(load_pairs(tmp_path / "float_ids.parquet", DataConfig()).frame["id"])
    assert ids == [str(1000 + i) for i in range(30)], ids[:3]
    r = run_cli("train", FEATURES, f"data.train={tmp_path / 'text_ids.csv'}", "features.max_iter=20",
                f"output_dir={tmp_path / 'run'}")
    assert r.code == 0, r.err
    test = PairTable(frame.assign(label=None), "t")
    write_lmsys_csv(test, tmp_path / "test.csv")
    r = run_cli("predict", "--run", tmp_path / "run", "--test", tmp_path / "test.csv", "--out", tmp_path / "sub.csv",
                f"output_dir={tmp_path / 'p'}")
    assert r.code == 0, r.err
    assert list(pd.read_csv(tmp_path / "sub.csv", dtype={"id": str})["id"]) == [f"00{i}" for i in range(30)]


# 8. ---------------------------------------------------------------------- leftovers


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    from prefkit.io import write_text

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".sub.csv.{dead.pid}.abc123.tmp").write_text("")  # what kill -9 mid-write leaves
    (tmp_path / ".sub.csv.k2j3h4.tmp").write_text("")  # the same, from an older prefkit (no pid)
    (tmp_path / f".sub.csv.{os.getpid()}.live.tmp").write_text("")  # a writer still running: kept
    write_text(tmp_path / "sub.csv", "id\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".sub.csv.{os.getpid()}.live.tmp", "sub.csv"]


def test_a_resumed_run_logs_each_step_once(tmp_path):
    from prefkit.config import load_config
    from prefkit.core.modeling import build_model
    from prefkit.core.tokenizer import Vocab, byte_tokenizer
    from prefkit.core.train import fit
    from prefkit.rm.pair_data import PairTrainData
    from tests.conftest import FAST, TINY

    cfg = load_config(TINY, FAST + ["quantization.mode=none", "train.epochs=2", "train.save_every=3"])
    seqs = [np.arange(3, 3 + n) for n in range(5, 21)]
    data = PairTrainData(CLS3, seqs, None, np.eye(3, dtype=np.float32)[np.arange(16) % 3], "none", 4, 0, 0)
    bytes_vocab = Vocab.of(byte_tokenizer())
    fit(build_model(cfg, bytes_vocab, "seq_cls", outputs=3), data, cfg, tmp_path)  # 8 steps; the last checkpoint is at step 6
    fit(build_model(cfg, bytes_vocab, "seq_cls", outputs=3), data, cfg, tmp_path, resume=True)
    steps = [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9)), steps


# 9. ---------------------------------------------------------------------- token statistics of huge cells


def test_token_statistics_cap_huge_cells(run_cli, tmp_path):
    huge = "word " * 1_000_000  # 5 MB in one cell
    write_lmsys(tmp_path / "huge.csv", [lmsys_row("1", ["hi"], [huge], ["short"]), lmsys_row("2", ["x"], ["y"], ["z"])])
    r = run_cli("data", "check", tmp_path / "huge.csv", "--json", "template.max_length=256")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["tokens_capped_texts"] == 1 and s["tokens_cap_chars"] < 10_000
    assert 256 < s["tokens"]["response_a"]["max"] <= s["tokens_cap_chars"], "a lower bound, far above the budget"
    assert "read their head and tail only" in run_cli("data", "check", tmp_path / "huge.csv", "template.max_length=256").out


# 10. --------------------------------------------------------------------- Kaggle's naming rules


@pytest.mark.parametrize("override,message", [
    ("kaggle.dataset=me/folds", "6 to 50 lowercase letters"),
    ("kaggle.dataset=me/" + "x" * 51, "6 to 50 lowercase letters"),
    ("kaggle.dataset=me/My_Folds", "not a clean slug"),
    ("kaggle.dataset=me/prefkit-folds kaggle.title=Folds", "dataset title 'Folds': Kaggle wants 6 to 50 characters"),
])
def test_dataset_names_are_checked_before_the_bundle_is_built(run_cli, tmp_path, override, message):
    run = _fake_run(tmp_path / "run", "kaggle:\n  wheels: []\n")
    r = run_cli("kaggle", "bundle", "--run", run, "--out", tmp_path / "bundle", *override.split())
    assert r.code == 2 and message in r.err, r.err
    assert not (tmp_path / "bundle").exists() and not list(tmp_path.glob(".bundle.*"))


def test_kernel_title_must_resolve_to_its_id():
    from prefkit.errors import PrefkitError
    from prefkit.kaggle.names import kernel_title

    assert kernel_title("me/prefkit-infer-v2", None) == "prefkit infer v2"
    assert kernel_title("me/prefkit-infer-v2", "Prefkit: infer (v2)") == "Prefkit: infer (v2)"
    with pytest.raises(PrefkitError, match="resolves to the slug 'my-great-kernel', not 'prefkit-infer'"):
        kernel_title("me/prefkit-infer", "My great kernel")


def test_a_config_of_another_kind_is_refused_up_front(run_cli, tmp_path, pairs_csv):
    r = run_cli("cv", "sft/tiny_gemma2", f"data.train={pairs_csv}", f"output_dir={tmp_path / 'run'}")
    assert r.code == 2 and "this config has model.kind=causal_lm" in r.err and "prefkit cot sft" in r.err
    assert not (tmp_path / "run").exists()
