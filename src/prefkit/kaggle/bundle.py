"""`prefkit kaggle bundle --run RUN_DIR --out DIR`: a Kaggle dataset folder for an offline kernel.

    DIR/dataset-metadata.json   title, id, licenses
    DIR/wheels/                 the prefkit wheel, and the wheels Kaggle's image lacks (`kaggle.wheels`)
    DIR/run/                    the run's resolved config, metrics and every finished model folder
                                (LoRA adapter + head, or the fine-tuned model), without checkpoints
    DIR/tokenizer/              the tokenizer files, when the config names a tokenizer folder or file

Built in a temporary folder and renamed at the end; refused, with the files named, when anything in it
looks like a credential.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from prefkit import __version__
from prefkit.competition import kaggle_slug
from prefkit.config import save_config
from prefkit.core import runs
from prefkit.core.runs import trained_folders
from prefkit.errors import PrefkitError
from prefkit.kaggle.names import dataset_title
from prefkit.kaggle.secrets import refuse_secrets

SKIP_IN_MODEL = {"checkpoint", ".checkpoint.tmp", ".checkpoint.old", "valid_predictions.npy", "tensorboard", "wandb"}
WHEEL_PLATFORMS = ["manylinux_2_24_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64", "any"]


def _pip(args: list[str], what: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise PrefkitError(f"{what} failed:\n{r.stderr.strip()[-2000:]}")


def source_root() -> Path:
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file():
        raise PrefkitError("the prefkit wheel is built from its source checkout, and none was found beside this install")
    return root


def build_wheels(out: Path, extra: list[str]) -> list[str]:
    """prefkit's wheel, then each extra distribution at the version installed here (for Linux x86-64)."""
    out.mkdir(parents=True, exist_ok=True)
    _pip(["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source_root())], "building the prefkit wheel")
    for name in extra:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise PrefkitError(f"kaggle.wheels: {name} is not installed here; install it or drop it from the list") from None
        args = ["download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(out), f"{name}=={version}"]
        for platform in WHEEL_PLATFORMS:
            args += ["--platform", platform]
        _pip(args, f"downloading the {name}=={version} wheel")
    return sorted(p.name for p in out.glob("*.whl"))


def _refuse_link_loops(folder: Path) -> None:
    """A symbolic link to a folder that holds it would be copied without end (a model folder's links to files,
    such as a cache's, are copied as the files they point to)."""
    for root, dirs, _ in os.walk(folder):
        for name in dirs:
            link = Path(root) / name
            if not link.is_symlink():
                continue
            try:
                target = link.resolve(strict=True)
            except (OSError, RuntimeError):
                raise PrefkitError(f"{link}: a symbolic link that cannot be resolved (a loop, or its target is "
                                   "gone): remove it before bundling") from None
            if link.parent.resolve() == target or target in link.parent.resolve().parents:
                raise PrefkitError(f"{link}: a symbolic link to {target}, a folder that holds it: the copy would "
                                   "never end; remove the link before bundling")


def _copy_run(run_dir: Path, dest: Path) -> list[str]:
    folders = trained_folders(run_dir)
    if not folders:
        raise PrefkitError(f"{run_dir}: no finished model folder to bundle (fold*/ or model/ with trained.json)")
    dest.mkdir(parents=True)
    for name in (runs.CONFIG, "metrics.json"):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, dest / name)
    for folder in folders:
        _refuse_link_loops(folder)
    for folder in folders:
        shutil.copytree(folder, dest / folder.name, ignore=lambda d, names: [n for n in names if n in SKIP_IN_MODEL])
    return [f.name for f in folders]


KAGGLE_INPUT = "/kaggle/input/"


def check_mounts(cfg) -> None:
    """The kernel reads `model.path` (and a tokenizer there) from /kaggle/input: some source the kernel mounts
    must put it there. Kaggle mounts a model "owner/model/framework/variation/version" at
    /kaggle/input/model/framework/variation/version, a dataset "owner/slug" at /kaggle/input/slug, and the
    competition's data at /kaggle/input/<competition>."""
    from prefkit.core import pretrained

    path = cfg.model.path
    if path is None or pretrained.is_named(path):  # random weights, or weights inside installed wheels
        return
    kc = cfg.kaggle
    if not path.startswith(KAGGLE_INPUT):
        raise PrefkitError(f"model.path {path!r}: a Kaggle kernel reads its weights from {KAGGLE_INPUT}...; attach them as "
                           "a Kaggle model (kaggle.model_sources) or dataset (kaggle.dataset_sources) and set model.path "
                           "to where it is mounted (override it for the bundle: model.path=/kaggle/input/...)")
    parts = path[len(KAGGLE_INPUT):].strip("/").split("/")
    mounts = [m.split("/")[1:5] for m in kc.model_sources]  # owner/model/framework/variation/version
    mounts += [[d.split("/")[-1]] for d in kc.dataset_sources] + [[kaggle_slug(cfg)]]
    if any(parts[: len(m)] == m for m in mounts):
        return
    raise PrefkitError(
        f"model.path {path!r}: no source of the kernel mounts it (mounted: "
        f"{', '.join(KAGGLE_INPUT + '/'.join(m) for m in mounts)}). "
        f"Add the model to kaggle.model_sources as OWNER/{'/'.join(parts[:4])}, or the dataset holding it to "
        f"kaggle.dataset_sources as OWNER/{parts[0]}"
    )


def build_bundle(run_dir: str | Path, out: str | Path, overrides: list[str] = ()) -> dict:
    run_dir, out = Path(run_dir), Path(out)
    refuse_secrets(run_dir)
    cfg = runs.open_config(run_dir, overrides)
    kc = cfg.kaggle
    title = dataset_title(kc.dataset, kc.title)  # Kaggle's rules, before anything is built
    check_mounts(cfg)
    if out.exists():
        raise PrefkitError(f"{out} exists; give a new folder (a bundle is never merged into an old one)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        models = _copy_run(run_dir, tmp / "run")
        tok = cfg.template.tokenizer
        if tok not in ("minilm", "bytes", "model"):  # a local tokenizer: it travels; the kernel points at it
            src = Path(tok)
            if src.is_dir():
                shutil.copytree(src, tmp / "tokenizer")
            else:
                (tmp / "tokenizer").mkdir()
                shutil.copy2(src, tmp / "tokenizer" / "tokenizer.json")
        cfg.output_dir = None
        save_config(cfg, tmp / "run")
        wheels = build_wheels(tmp / "wheels", kc.wheels)
        meta = {"title": title, "id": kc.dataset, "licenses": [{"name": "other"}]}
        (tmp / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        refuse_secrets(tmp, shown_as=out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"bundle": str(out), "models": models, "wheels": wheels, "prefkit": __version__, "dataset": kc.dataset}
