"""Issue 42, classes 6, 8 and 9 for the Kaggle commands: what a bundle holds (never what a link points to outside
the run, every file of a finished model, and a note for each model a killed run did not finish), bundles
without a model refused by `kaggle kernel` and `kaggle push`, and two bundles built at once sharing nothing.

The runs are folders made by hand as `prefkit cv` lays them out; the wheel build is replaced by a stand-in
(but in the wheel tests, which build real wheels of a small package)."""

from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path

import pytest

from prefkit.config import load_config, save_config
from prefkit.errors import PrefkitError
from prefkit.kaggle import bundle as bundle_mod

REAL_BUILD_WHEELS = bundle_mod.build_wheels
NAMES = ["kaggle.dataset=quill/link-test-bundle", "kaggle.kernel=quill/link-test-infer", "kaggle.wheels=[]"]


@pytest.fixture(autouse=True)
def no_wheel_build(monkeypatch):
    """A one-file stand-in for the prefkit wheel: these tests are about the run's files, not the wheel."""
    def fake(out: Path, extra: list[str]) -> list[str]:
        out.mkdir(parents=True, exist_ok=True)
        (out / "prefkit-0.1.0-py3-none-any.whl").write_bytes(b"stand-in")
        return ["prefkit-0.1.0-py3-none-any.whl"]

    monkeypatch.setattr(bundle_mod, "build_wheels", fake)


def make_run(folder: Path, finished=("fold0", "fold1"), started=(), extra: list[str] = ()) -> Path:
    """A run (2-fold cv, unless `extra` says otherwise): config.yaml, metrics.json and model folders with an adapter
    file; `finished` ones with trained.json."""
    folder.mkdir(parents=True)
    save_config(load_config(None, [*NAMES, "cv.n_splits=2", *extra]), folder)
    (folder / "metrics.json").write_text('{"logloss": 0.97}')
    for name in (*finished, *started):
        (folder / name).mkdir()
        (folder / name / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    for name in finished:
        (folder / name / "trained.json").write_text('{"fold": 0}')
    return folder


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


# ------------------------------------------------------------------------------ class 6: links out of the run


def test_links_out_of_the_run_are_not_followed_and_are_named(run_cli, tmp_path):
    """Before: fold0/data -> a folder of 7 CSV files outside the run and fold0/notes.txt -> a file outside were
    copied into the bundle as what they point to, exit 0, no note."""
    outside = tmp_path / "elsewhere"
    (outside / "data").mkdir(parents=True)
    for i in range(7):
        (outside / "data" / f"part{i}.csv").write_text("id,prompt\n1,hello\n")
    (outside / "hosts").write_text("127.0.0.1 localhost\n")
    run = make_run(tmp_path / "run")
    (run / "fold0" / "data").symlink_to(outside / "data", target_is_directory=True)
    (run / "fold0" / "notes.txt").symlink_to(outside / "hosts")
    (run / "fold1" / "sub").mkdir()
    (run / "fold1" / "sub" / "again").symlink_to(outside / "hosts")  # a link deeper down
    out = tmp_path / "bundle"
    r = run_cli("kaggle", "bundle", "--run", run, "--out", out)
    assert r.code == 0, r.err
    got = files(out / "run")
    assert not any(n.startswith(("fold0/data", "fold0/notes.txt", "fold1/sub/again")) for n in got), got
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert "left out 3 symbolic link(s)" in r.err
    assert f"fold0/data -> {outside / 'data'}" in r.err and f"fold0/notes.txt -> {outside / 'hosts'}" in r.err
    assert f"fold1/sub/again -> {outside / 'hosts'}" in r.err
    assert {"fold0/adapter_model.safetensors", "fold1/adapter_model.safetensors"} <= got


def test_a_model_folder_or_metrics_that_is_a_link_is_left_out(run_cli, tmp_path):
    """Before: `model -> a finished model elsewhere` counted as one of the run's models (trained_folders follows
    the link), and a linked metrics.json was copied from wherever it pointed."""
    other = make_run(tmp_path / "other", finished=("fold0",))
    run = make_run(tmp_path / "run", finished=("fold0",))
    (run / "model").symlink_to(other / "fold0", target_is_directory=True)
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(other / "metrics.json")
    out = tmp_path / "bundle"
    r = run_cli("kaggle", "bundle", "--run", run, "--out", out)
    assert r.code == 0, r.err
    assert sorted(p.name for p in (out / "run").iterdir()) == ["config.yaml", "fold0"]
    assert "models fold0;" in r.err and f"model -> {other / 'fold0'}" in r.err
    assert f"metrics.json -> {other / 'metrics.json'}" in r.err

    only_link = make_run(tmp_path / "linked-only", finished=())
    (only_link / "model").symlink_to(other / "fold0", target_is_directory=True)
    r = run_cli("kaggle", "bundle", "--run", only_link, "--out", tmp_path / "b2")
    assert r.code == 2 and "no finished model folder" in r.err and "model -> " in r.err, r.err
    assert not (tmp_path / "b2").exists()


def test_a_link_loop_is_left_out_not_copied_without_end(run_cli, tmp_path):
    run = make_run(tmp_path / "run", finished=("model",))
    (run / "model" / "loop").symlink_to(run / "model", target_is_directory=True)
    r = run_cli("kaggle", "bundle", "--run", run, "--out", tmp_path / "bundle")
    assert r.code == 0 and f"model/loop -> {run / 'model'}" in r.err, r.err
    assert files(tmp_path / "bundle" / "run" / "model") == {"adapter_model.safetensors", "trained.json"}


def test_every_file_of_a_finished_model_travels(run_cli, tmp_path):
    """All a finished model folder holds goes into the bundle (golden.json, the golden scores recorded at training
    and checked in the kernel, among them), but checkpoints and saved validation predictions."""
    run = make_run(tmp_path / "run", finished=("model",))
    fold = run / "model"
    (fold / "golden.json").write_text('{"scores": [0.1, 0.2]}')
    (fold / "head" / "nested").mkdir(parents=True)
    (fold / "head" / "nested" / "w.bin").write_bytes(b"\x01\x02")
    (fold / "checkpoint").mkdir()
    (fold / "checkpoint" / "optimizer.pt").write_bytes(b"\x00")
    (fold / "valid_predictions.npy").write_bytes(b"\x00")
    r = run_cli("kaggle", "bundle", "--run", run, "--out", tmp_path / "bundle")
    assert r.code == 0, r.err
    assert files(tmp_path / "bundle" / "run" / "model") == {"adapter_model.safetensors", "trained.json",
                                                             "golden.json", "head/nested/w.bin"}
    assert "note:" not in r.err


# ------------------------------------------------------------------------------ class 8: hollow and killed runs


def test_unfinished_model_folders_of_a_killed_run_are_named(run_cli, tmp_path):
    """Before: a 4-fold run killed in fold2 (fold2 without trained.json, fold3 never begun) was bundled with
    fold0 and fold1, exit 0, no note: the kernel averaged half the folds."""
    run = make_run(tmp_path / "run", finished=("fold0", "fold1"), started=("fold2",), extra=["cv.n_splits=4"])
    out = tmp_path / "bundle"
    r = run_cli("kaggle", "bundle", "--run", run, "--out", out)
    assert r.code == 0, r.err
    assert "left out 2 unfinished model folder(s)" in r.err and "fold2 (no trained.json)" in r.err, r.err
    assert "fold3 (never begun)" in r.err and "the bundle has 2 model(s)" in r.err
    assert sorted(p.name for p in (out / "run").iterdir() if p.is_dir()) == ["fold0", "fold1"]

    part = make_run(tmp_path / "part", finished=("fold1",), extra=["cv.n_splits=4", "cv.folds=[1]"])
    r = run_cli("kaggle", "bundle", "--run", part, "--out", tmp_path / "b-part")
    assert r.code == 0 and "note:" not in r.err, "a run of chosen folds (cv.folds) is whole"


def test_a_run_with_no_finished_model_is_refused_naming_the_unfinished(run_cli, tmp_path):
    run = make_run(tmp_path / "run", finished=(), started=("fold0",), extra=["cv.n_splits=3"])
    r = run_cli("kaggle", "bundle", "--run", run, "--out", tmp_path / "bundle")
    assert r.code == 2 and "no finished model folder to bundle" in r.err, r.err
    assert "fold0 (no trained.json), fold1 (never begun), fold2 (never begun)" in r.err
    assert not (tmp_path / "bundle").exists() and not list(tmp_path.glob(".bundle.*"))


def hollow_bundle(folder: Path, with_run: bool = True) -> Path:
    """A bundle folder as `prefkit kaggle bundle` lays it out, but with no finished model (fold0 unfinished)."""
    folder.mkdir()
    (folder / "dataset-metadata.json").write_text(json.dumps({"title": "link test bundle", "id": "quill/link-test-bundle"}))
    if with_run:
        make_run(folder / "run", finished=(), started=("fold0",))
    return folder


@pytest.mark.parametrize("command", ["kernel", "push", "push-train"])
def test_kernel_and_push_refuse_a_bundle_without_a_model(run_cli, tmp_path, monkeypatch, command):
    """Before: `kaggle kernel infer` rendered a kernel, and `kaggle push --dry-run` planned the upload, of a bundle
    whose run/ held no finished model: the kernel would fail on Kaggle after the upload."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    bundle = hollow_bundle(tmp_path / "bundle")
    if command == "kernel":
        r = run_cli("kaggle", "kernel", "infer", "--run", bundle / "run", "--bundle", bundle, "--out", tmp_path / "k")
        assert not (tmp_path / "k").exists()
    else:
        kernel = tmp_path / "kernel"
        kernel.mkdir()
        (kernel / "kernel.py").write_text("# prefkit train kernel\n")
        (kernel / "kernel-metadata.json").write_text("{}")
        args = ["--kernel", kernel] if command == "push-train" else []
        r = run_cli("kaggle", "push", "--bundle", bundle, *args, "--dry-run", "--force")
    assert r.code == 2 and f"{bundle}: no model in it" in r.err and "no finished model folder" in r.err, r.err
    assert "Traceback" not in r.err and "dry run" not in r.err

    no_run = hollow_bundle(tmp_path / "no-run", with_run=False)
    r = run_cli("kaggle", "push", "--bundle", no_run, "--dry-run")
    assert r.code == 2 and f"{no_run}: no run/config.yaml in it" in r.err, r.err


# ------------------------------------------------------------------------------ class 9: two bundles at once


def test_two_bundles_built_at_once_share_nothing(tmp_path, monkeypatch):
    """Both bundles build at the same time (a barrier holds each in its wheel step until the other is there).
    Into two outputs: each is whole. Into one output: one is written, the other is refused clearly (before: an
    OSError "Directory not empty" naming the other's temporary folder)."""
    run = make_run(tmp_path / "run")
    barrier = threading.Barrier(2, timeout=30)

    def fake(out: Path, extra: list[str]) -> list[str]:
        out.mkdir(parents=True)
        name = f"prefkit-0.1.0-{threading.current_thread().name}-py3-none-any.whl"
        (out / name).write_bytes(b"stand-in")
        barrier.wait()
        return [name]

    monkeypatch.setattr(bundle_mod, "build_wheels", fake)

    def build_both(outs: list[Path]) -> dict:
        results: dict = {}

        def one(name, out):
            try:
                results[name] = bundle_mod.build_bundle(run, out)
            except PrefkitError as e:
                results[name] = e

        threads = [threading.Thread(target=one, args=(f"t{i}", out), name=f"t{i}") for i, out in enumerate(outs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    results = build_both([tmp_path / "a", tmp_path / "b"])
    for name, out in (("t0", tmp_path / "a"), ("t1", tmp_path / "b")):
        assert isinstance(results[name], dict), results[name]
        assert [p.name for p in (out / "wheels").iterdir()] == [f"prefkit-0.1.0-{name}-py3-none-any.whl"]
        assert files(out / "run") == files(tmp_path / "a" / "run")

    barrier.reset()
    same = tmp_path / "same"
    results = build_both([same, same])
    won = [n for n, r in results.items() if isinstance(r, dict)]
    lost = [r for r in results.values() if isinstance(r, PrefkitError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert f"{same}: made by another command while this bundle was built" in str(lost[0])
    assert [p.name for p in (same / "wheels").iterdir()] == [f"prefkit-0.1.0-{won[0]}-py3-none-any.whl"]
    assert not list(tmp_path.glob(".same.*")), "the refused bundle's temporary folder is removed"


def write_package(root: Path, stale: bool) -> Path:
    """A tiny checkout in the layout prefkit's wheel is built from: pyproject.toml, README.md, src/prefkit."""
    (root / "src" / "prefkit").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = '
                                         '"setuptools.build_meta"\n\n[project]\nname = "prefkit"\nversion = "0.1.0"\n'
                                         'readme = "README.md"\n\n[tool.setuptools.packages.find]\nwhere = ["src"]\n')
    (root / "README.md").write_text("# a stand-in\n")
    (root / "src" / "prefkit" / "__init__.py").write_text("__version__ = '0.1.0'\n")
    if stale:  # what an older build left in the checkout's build folder: a module since removed
        (root / "build" / "lib" / "prefkit").mkdir(parents=True)
        (root / "build" / "lib" / "prefkit" / "removed_module.py").write_text("x = 1\n")
    return root


@pytest.mark.slow
def test_the_wheel_is_built_outside_the_checkout(tmp_path, monkeypatch):
    """Before: `pip wheel` built in the checkout itself: setuptools' build/ and egg-info folders there were shared
    by every bundle built at once, and a module an older build left in build/ went into the wheel."""
    from concurrent.futures import ThreadPoolExecutor

    src = write_package(tmp_path / "checkout", stale=True)
    monkeypatch.setattr(bundle_mod, "source_root", lambda: src)
    outs = [tmp_path / "w1", tmp_path / "w2"]
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda out: REAL_BUILD_WHEELS(out, []), outs))
    assert built == [["prefkit-0.1.0-py3-none-any.whl"]] * 2
    for out in outs:
        names = zipfile.ZipFile(out / "prefkit-0.1.0-py3-none-any.whl").namelist()
        assert "prefkit/__init__.py" in names and "prefkit/removed_module.py" not in names, names
    assert sorted(p.name for p in src.iterdir()) == ["README.md", "build", "pyproject.toml", "src"]
    assert sorted(p.name for p in (src / "src").iterdir()) == ["prefkit"], "no egg-info written into the checkout"
    assert [p.name for p in (src / "build" / "lib" / "prefkit").iterdir()] == ["removed_module.py"]
