"""A pip-installed prefkit works outside the checkout: the wheel is built here, installed into a fresh venv
(prefkit's dependencies come from this environment's site-packages; prefkit itself only from the wheel), and
run from a folder that holds no checkout: shipped configs by name, kernel templates, the demo."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("installed")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp / "dist"), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next((tmp / "dist").glob("prefkit-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies, as a plain path: .pth files there (the editable checkout's among them) are not read
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib, str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp / "elsewhere"
    work.mkdir()
    return python, work


def _prefkit(installed, *args, timeout=600):
    python, work = installed
    return subprocess.run([str(python), "-m", "prefkit.cli", *map(str, args)], cwd=work, capture_output=True,
                          text=True, timeout=timeout)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    python, work = installed
    where = subprocess.run([str(python), "-c", "import prefkit; print(prefkit.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert str(ROOT) not in where and "site-packages" in where, where


def test_shipped_configs_by_name(installed):
    r = _prefkit(installed, "configs", "list")
    assert r.returncode == 0 and "rm/minilm_cpu" in r.stdout.split() and "sft/tiny_gemma2" in r.stdout.split()
    r = _prefkit(installed, "configs", "copy", "features_baseline", "mine/")
    assert r.returncode == 0 and (installed[1] / "mine" / "features_baseline.yaml").is_file()


def test_demo_runs_from_the_installed_wheel(installed):
    r = _prefkit(installed, "demo", "--config", "features_baseline", "--rows", "300", "output_dir=demo")
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((installed[1] / "demo" / "metrics.json").read_text())
    assert metrics["n"] == 300 and metrics["logloss"] < metrics["uniform_logloss"]
    assert (installed[1] / "demo" / "submission.csv").is_file()
