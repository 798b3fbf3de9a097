"""Issue 27, classes 1 and 7: credentials found wherever and however they hide, at the bundle and at the push;
and the Kaggle checks (a kernel's competition, a submitted file's form, owner names, the pushed folders).

No model is trained: the bundles here are folders made by hand as `prefkit kaggle bundle` lays them out."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from prefkit.config import load_config, save_config
from prefkit.errors import PrefkitError
from prefkit.kaggle import secrets
from prefkit.kaggle.names import dataset_title, kernel_title
from prefkit.kaggle.secrets import check_file, find_secrets

HEX = "7c1e9a04b3d25f86e0a17b9c4d3f2e58"  # the shape of a Kaggle API key (32 hex digits)
OWNER = "quill"
NAMES = [f"kaggle.dataset={OWNER}/guard-test-bundle", f"kaggle.kernel={OWNER}/guard-test-infer", "kaggle.wheels=[]"]


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch, tmp_path):
    """No Kaggle credentials anywhere: dry runs do not need them, and nothing here may reach Kaggle."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)


def make_bundle(folder: Path, competition: str = "lmsys", extra: list[str] = ()) -> Path:
    """A bundle as `prefkit kaggle bundle` lays it out: dataset-metadata.json, the run's resolved config and a
    finished model folder."""
    cfg = load_config(None, [f"competition={competition}", *NAMES, *extra])
    (folder / "run" / "fold0").mkdir(parents=True)
    (folder / "run" / "fold0" / "trained.json").write_text('{"fold": 0}')
    save_config(cfg, folder / "run")
    meta = {"title": "guard test bundle", "id": cfg.kaggle.dataset, "licenses": [{"name": "other"}]}
    (folder / "dataset-metadata.json").write_text(json.dumps(meta))
    return folder


def render(run_cli, bundle: Path, out: Path, *overrides: str):
    return run_cli("kaggle", "kernel", "infer", "--run", bundle / "run", "--bundle", bundle, "--out", out, *overrides)


# ------------------------------------------------------------------------------ class 1: credentials


def test_push_scans_the_bundle_as_it_is_now(run_cli, tmp_path):
    """Before: `kaggle push` never scanned, so a kaggle.json dropped into a bundle after `kaggle bundle` was
    planned for upload (the dry run exited 0)."""
    bundle = make_bundle(tmp_path / "bundle")
    r = run_cli("kaggle", "push", "--bundle", bundle, "--dry-run")
    assert r.code == 0, r.err
    (bundle / "run" / "kaggle.json").write_text(json.dumps({"username": OWNER, "key": HEX}))
    r = run_cli("kaggle", "push", "--bundle", bundle, "--dry-run")
    assert r.code == 2 and "refusing to push" in r.err and "kaggle.json" in r.err, r.err
    assert "dataset_create_version" not in r.err and HEX not in r.err and "Traceback" not in r.err


def test_push_scans_the_kernel_folder(run_cli, tmp_path):
    """Before: a key written into the kernel folder (a helper script beside kernel.py) was pushed with it."""
    bundle, kernel = make_bundle(tmp_path / "bundle"), tmp_path / "kernel"
    assert render(run_cli, bundle, kernel).code == 0
    (kernel / "setup_env.py").write_text(f'import os\nos.environ["KAGGLE_USERNAME"] = "{OWNER}"\n'
                                         f'os.environ["KAGGLE_KEY"] = "{HEX}"\n')
    r = run_cli("kaggle", "push", "--bundle", bundle, "--kernel", kernel, "--dry-run", "--force")
    assert r.code == 2 and "refusing to push" in r.err and "setup_env.py" in r.err and "line 3" in r.err, r.err
    assert HEX not in r.err and "kernels_push" not in r.err


def test_a_key_assigned_in_python_is_found_and_masked(tmp_path):
    """Before: `os.environ["KAGGLE_KEY"] = "<32 hex>"` matched no pattern (the `"]` after the name broke
    `key\\s*[:=]`), and a Python file has no structure to parse: the key went out."""
    (tmp_path / "train_helper.py").write_text(f"import os\n\nos.environ['KAGGLE_KEY'] = '{HEX}'\n")
    (tmp_path / "other.py").write_text('import os\nos.environ.setdefault("HF_TOKEN", "q8Zr3LmW0pXv7NcT5bY1")\n')
    found = dict((p.name, what) for p, what in find_secrets(tmp_path))
    assert "Kaggle API key" in found["train_helper.py"] and "line 3" in found["train_helper.py"]
    assert "'HF_TOKEN'" in found["other.py"]
    assert HEX not in found["train_helper.py"] and repr(HEX[:4]) in found["train_helper.py"], "masked, not shown"
    assert "q8Zr3LmW0pXv7NcT5bY1" not in found["other.py"]


def test_a_key_in_a_notebook_is_found(tmp_path):
    """Before: a notebook is JSON, so its code is escaped (`os.environ[\\"KAGGLE_KEY\\"] = \\"...\\"`): no
    text pattern matched, and its parsed structure holds the code only as strings under `source`."""
    nb = {"cells": [{"cell_type": "markdown", "source": ["# setup"]},
                    {"cell_type": "code", "source": ["import os\n", f'os.environ["KAGGLE_KEY"] = "{HEX}"\n']}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "explore.ipynb").write_text(json.dumps(nb, indent=1))
    ((path, what),) = find_secrets(tmp_path)
    assert path.name == "explore.ipynb" and "Kaggle API key" in what and HEX not in what


def test_a_large_text_file_is_scanned_in_overlapping_chunks(tmp_path):
    """Before: every file over 5 MB was skipped whole, so a token late in a long log.jsonl went out. Here the
    file is over 5 MB and the token sits across a chunk boundary (scanned from both sides by the overlap)."""
    token = "hf_" + "Kd8sPq2Lx" * 4
    path = tmp_path / "log.jsonl"
    line = json.dumps({"step": 0, "loss": 0.6931, "note": "w" * 80}) + "\n"
    boundary = 3 * secrets.CHUNK
    n_before = (boundary - 20) // len(line)
    pad = boundary - 20 - n_before * len(line)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(line * n_before + " " * pad + token + "\n")  # the token starts 20 bytes before the boundary
        fh.write(line * ((secrets.MAX_SCAN_BYTES + 1_000_000 - boundary) // len(line)))
    assert path.stat().st_size > secrets.MAX_SCAN_BYTES
    what = check_file(path)
    assert what and "Hugging Face token" in what and f"line {n_before + 1}" in what and token not in what
    clean = tmp_path / "clean.jsonl"
    clean.write_text(line * (secrets.MAX_SCAN_BYTES // len(line) + 10))
    assert check_file(clean) is None


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_is_decoded(tmp_path, encoding):
    """Before: UTF-16 text was read as UTF-8, its NUL bytes between letters broke every pattern."""
    path = tmp_path / "notes.txt"
    path.write_bytes(f"run notes\nKAGGLE_KEY={HEX}\n".encode(encoding))  # utf-16: with a byte-order mark
    what = check_file(path)
    assert what and "Kaggle API key" in what and "line 2" in what and HEX not in what


def test_gzipped_files_are_scanned_decompressed(tmp_path, monkeypatch):
    """Before: a .gz file was scanned as its compressed bytes, so nothing in it was ever seen, nor its name."""
    with gzip.open(tmp_path / "train_log.txt.gz", "wt") as fh:
        fh.write("epoch 1\n" * 50 + f"export KAGGLE_KEY={HEX}\n")
    (tmp_path / "kaggle.json.gz").write_bytes(gzip.compress(json.dumps({"username": OWNER, "key": HEX}).encode()))
    with gzip.open(tmp_path / "metrics.csv.gz", "wt") as fh:
        fh.write("step,loss\n" + "".join(f"{i},0.5\n" for i in range(100)))
    found = dict((p.name, what) for p, what in find_secrets(tmp_path))
    assert set(found) == {"train_log.txt.gz", "kaggle.json.gz"}
    assert "line 51" in found["train_log.txt.gz"] and "by its name" in found["kaggle.json.gz"]
    monkeypatch.setattr(secrets, "MAX_GZ_BYTES", 200)  # bounded: what inflates past the bound is refused unchecked
    assert "too large to check" in check_file(tmp_path / "metrics.csv.gz")


def test_github_tokens_are_found(tmp_path):
    """Before: no pattern knew GitHub's tokens (`ghp_...`, fine-grained `github_pat_...`)."""
    classic = "ghp_" + "R2d2C3po" * 4 + "Bb8x"
    fine = "github_pat_" + "11ABCDEFG0" * 2 + "xy_" + "Zq7" * 19 + "aa"
    (tmp_path / "deploy.sh").write_text(f"git clone https://{classic}@github.com/someone/private.git\n")
    (tmp_path / "README.md").write_text(f"# notes\n\nthe fine-grained one: {fine}\n")
    found = dict((p.name, what) for p, what in find_secrets(tmp_path))
    assert "GitHub token" in found["deploy.sh"] and "GitHub token" in found["README.md"]
    assert classic not in found["deploy.sh"] and fine not in found["README.md"]


# ------------------------------------------------------------------------------ class 7: Kaggle checks


def test_a_kernel_is_rendered_only_for_its_runs_competition(run_cli, tmp_path):
    """Before: `kaggle kernel infer ... competition=wsdm` around an LMSYS run rendered a WSDM kernel (WSDM's
    test file and Kaggle competition) that would run the LMSYS run; kaggle.competition set to WSDM's slug too."""
    bundle = make_bundle(tmp_path / "bundle")
    r = render(run_cli, bundle, tmp_path / "k1", "competition=wsdm")
    assert r.code == 2 and "a kernel for wsdm" in r.err and "is for lmsys" in r.err, r.err
    assert not (tmp_path / "k1").exists()
    r = render(run_cli, bundle, tmp_path / "k2", "kaggle.competition=wsdm-cup-multilingual-chatbot-arena")
    assert r.code == 2 and "is the wsdm competition" in r.err, r.err
    assert render(run_cli, bundle, tmp_path / "k3").code == 0


def test_push_refuses_a_kernel_of_another_competition(run_cli, tmp_path):
    """Before: a kernel rendered for a WSDM bundle pushed beside an LMSYS bundle was planned as is."""
    lmsys, wsdm = make_bundle(tmp_path / "lmsys"), make_bundle(tmp_path / "wsdm", "wsdm")
    kernel = tmp_path / "kernel"
    assert render(run_cli, wsdm, kernel).code == 0
    r = run_cli("kaggle", "push", "--bundle", lmsys, "--kernel", kernel, "--dry-run", "--force")
    assert r.code == 2 and "'wsdm-cup-multilingual-chatbot-arena'" in r.err and "is for lmsys" in r.err, r.err
    assert "kernels_push" not in r.err


def make_run(folder: Path, competition: str) -> Path:
    folder.mkdir(parents=True)
    save_config(load_config(None, [f"competition={competition}", *NAMES]), folder)
    return folder


@pytest.mark.parametrize("competition,text,expect", [
    ("lmsys", "id,winner\n101,model_b\n102,model_a\n", "that is a wsdm submission"),
    ("lmsys", "id,foo\n101,0.2\n", "header 'id,foo' is not the lmsys submission's"),
    ("lmsys", "id,winner_model_a,winner_model_b,winner_tie\n101,0.2,1.7,0.1\n101,0.3,0.3,0.4\n",
     "column 'winner_model_b': '1.7' is not a probability"),
    ("lmsys", "id,winner_model_a,winner_model_b,winner_tie\n", "the header and no rows"),
    ("wsdm", "id,winner_model_a,winner_model_b,winner_tie\n101,0.2,0.7,0.1\n", "that is a lmsys submission"),
    ("wsdm", "id,winner\n101,model_b\n102,tie\n", "'tie' is not model_a or model_b"),
])
def test_submit_checks_the_file_against_the_runs_competition(run_cli, tmp_path, competition, text, expect):
    """Before: `kaggle submit --file` uploaded any file, another competition's or `id,foo`, unchecked."""
    run = make_run(tmp_path / "run", competition)
    sub = tmp_path / "submission.csv"
    sub.write_text(text)
    r = run_cli("kaggle", "submit", "--run", run, "--file", sub, "--message", "m", "--ledger", tmp_path / "l.csv",
                "--dry-run")
    assert r.code == 2 and expect in r.err and "submission.csv" in r.err, r.err
    assert "competition_submit" not in r.err


def test_submit_takes_a_file_of_the_runs_form(run_cli, tmp_path):
    run = make_run(tmp_path / "run", "wsdm")
    sub = tmp_path / "submission.csv"
    sub.write_text("id,winner\n7,model_a\n8,model_b\n9,model_a\n")
    r = run_cli("kaggle", "submit", "--run", run, "--file", sub, "--message", "m", "--ledger", tmp_path / "l.csv",
                "--dry-run")
    assert r.code == 0 and "a wsdm submission of 3 rows" in r.err and "competition_submit(" in r.err, r.err


@pytest.mark.parametrize("owner", ["Jo Ann", "jo.ann", "jo_ann!", "-joann", "jo--ann"])
def test_owner_names_follow_kaggles_username_rules(owner):
    """Before: only the slug was checked: an owner with spaces or punctuation passed until the upload failed."""
    with pytest.raises(PrefkitError, match="is not a Kaggle username"):
        dataset_title(f"{owner}/guard-test-bundle", None)
    with pytest.raises(PrefkitError, match="is not a Kaggle username"):
        kernel_title(f"{owner}/guard-test-infer", None)


@pytest.mark.parametrize("owner", ["joann", "JoAnn42", "qwen-lm"])
def test_good_owner_names_pass(owner):
    assert dataset_title(f"{owner}/guard-test-bundle", None) == "guard test bundle"


def test_push_refuses_a_bundle_that_is_not_there(run_cli, tmp_path):
    """Before: `push --bundle` of a missing folder passed the dry run (exit 0), a plan for nothing."""
    r = run_cli("kaggle", "push", "--bundle", tmp_path / "no-such-bundle", "--dry-run")
    assert r.code == 2 and "no-such-bundle: no such folder" in r.err and "dataset_create" not in r.err, r.err
    (tmp_path / "empty").mkdir()
    r = run_cli("kaggle", "push", "--bundle", tmp_path / "empty", "--dry-run")
    assert r.code == 2 and "not a bundle" in r.err, r.err
