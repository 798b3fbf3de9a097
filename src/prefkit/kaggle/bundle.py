"""`prefkit kaggle bundle --run RUN_DIR --out DIR`: a Kaggle dataset folder for an offline kernel.

    DIR/dataset-metadata.json   title, id, licenses
    DIR/wheels/                 the prefkit wheel, and the wheels Kaggle's image lacks (`kaggle.wheels`)
    DIR/run/                    the run's resolved config, metrics and every finished model folder
                                (LoRA adapter + head, or the fine-tuned model), without checkpoints
    DIR/tokenizer/              the tokenizer files, when the config names a tokenizer folder or file

Built in a folder of its own (a temporary one beside DIR, renamed to DIR at the end, and the wheel from a copy
of the source), so two bundles built at once share nothing; refused, with the files named, when anything in it
looks like a credential. Symbolic links in the run are never followed: a link may point anywhere (a data
folder, a system file), and a bundle holds only the run's own files; each link left out is named, as is each
model folder the run started and did not finish.
"""

from __future__ import annotations

import json
import os
import re
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


def _wheel_source(folder: Path) -> Path:
    """A copy of what the prefkit wheel is built from (the checkout's top-level files and src/), in `folder`:
    setuptools writes build/ and an egg-info folder into the tree it builds, so two bundles built from the
    checkout itself at once would share one build folder, and a module left in build/ by an older build (since
    removed or renamed) would go into the wheel."""
    root, copy = source_root(), folder / "prefkit-source"
    copy.mkdir()
    for p in root.iterdir():
        if p.is_file() and not p.is_symlink():
            shutil.copy2(p, copy / p.name)
    shutil.copytree(root / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return copy


def build_wheels(out: Path, extra: list[str]) -> list[str]:
    """prefkit's wheel, then each extra distribution at the version installed here (for Linux x86-64)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefkit-wheel-") as work:
        source = _wheel_source(Path(work))
        _pip(["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)], "building the prefkit wheel")
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




def _link(path: Path, run_dir: Path) -> str:
    return f"{path.relative_to(run_dir)} -> {os.readlink(path)}"


def _copy_run(run_dir: Path, dest: Path, cfg) -> tuple[list[str], list[str], list[str]]:
    """The run's metrics and finished model folders into `dest`, without checkpoints and training logs and
    without following any symbolic link. Returns the model folders copied, the links left out ("path -> where it
    points") and the unfinished model folders."""
    links: list[str] = []

    def leave_out(folder: str, names: list[str]) -> list[str]:
        linked = [n for n in names if os.path.islink(os.path.join(folder, n))]
        links.extend(_link(Path(folder, n), run_dir) for n in linked if n not in SKIP_IN_MODEL)
        return [n for n in names if n in SKIP_IN_MODEL] + linked

    finished = trained_folders(run_dir)
    folders = [f for f in finished if not f.is_symlink()]
    links += [_link(f, run_dir) for f in finished if f.is_symlink()]  # a model folder that is a link, `model -> ...`
    unfinished = runs.unfinished_models(run_dir, cfg, {f.name for f in finished})
    if not folders:
        raise PrefkitError(f"{run_dir}: no finished model folder to bundle (fold*/ or model/ with {runs.MARKER})"
                           + (f"; unfinished: {', '.join(unfinished)}" if unfinished else "")
                           + (f"; symbolic links, not followed: {', '.join(links)}" if links else ""))
    dest.mkdir(parents=True)
    metrics = run_dir / "metrics.json"  # config.yaml is written afresh from the resolved config
    if metrics.is_symlink():
        links.append(_link(metrics, run_dir))
    elif metrics.is_file():
        shutil.copy2(metrics, dest / metrics.name)
    for folder in folders:
        shutil.copytree(folder, dest / folder.name, ignore=leave_out)
    return [f.name for f in folders], links, unfinished


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
        models, links, unfinished = _copy_run(run_dir, tmp / "run", cfg)
        tok = cfg.template.tokenizer
        if tok not in ("minilm", "bytes", "model"):  # a local tokenizer: it travels; the kernel points at it
            # (links in it are followed: the config names this folder, and a hub cache's files are links)
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
        try:
            tmp.rename(out)
        except OSError:  # made meanwhile: another command's folder is never merged with or replaced by this one
            if not out.exists():
                raise
            raise PrefkitError(f"{out}: made by another command while this bundle was built (two `prefkit kaggle "
                               "bundle` into one --out?); nothing of this bundle was written there: give a new "
                               "folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notes = []
    if unfinished:
        notes.append(f"left out {len(unfinished)} unfinished model folder(s) of a stopped job: {', '.join(unfinished)}; "
                     f"the bundle has {len(models)} model(s); finish the run (--resume) and bundle it again for all")
    if links:
        notes.append(f"left out {len(links)} symbolic link(s), not followed (a bundle holds only the run's own "
                     f"files): {', '.join(links)}; put a copy of the file in the run if the kernel needs it")
    return {"bundle": str(out), "models": models, "wheels": wheels, "prefkit": __version__, "dataset": kc.dataset,
            "notes": notes}
