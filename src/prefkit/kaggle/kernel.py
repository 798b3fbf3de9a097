"""`prefkit kaggle kernel {train,infer} --run RUN_DIR --bundle DIR --out KERNEL_DIR`.

Renders `kernels/common.py` followed by `kernels/<kind>.py` (templates shipped in the package) into one
self-contained kernel.py, and `kernel-metadata.json`, with every
field the `kaggle` client reads set explicitly: its `enable_internet` defaults to true, which a code
competition's submission kernel must not have.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from prefkit import __version__
from prefkit.competition import kaggle_data_path, kaggle_slug
from prefkit.core import runs
from prefkit.errors import PrefkitError
from prefkit.io import write_json, write_text
from prefkit.kaggle.names import kernel_title
from prefkit.shipped import kernel_template

KINDS = ("train", "infer")
# torch is pinned in prefkit's own requirements for the CPU build; on Kaggle any torch from this one on works
# (torch.amp.GradScaler(device), fused AdamW on CUDA, CPU fp16 autocast)
KERNEL_TORCH = "2.4"


def kernel_minimums() -> dict[str, str]:
    """Lowest versions of the image's packages that the kernel accepts: torch's, and the lower bounds prefkit
    declares for transformers, peft and accelerate (read from its installed metadata)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    least = {"torch": KERNEL_TORCH}
    for text in requires("prefkit") or []:
        req = Requirement(text)
        if req.name in ("transformers", "peft", "accelerate") and not req.marker:
            bounds = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
            if bounds:
                least[req.name] = bounds[0]
    return least


def kernel_metadata(cfg, kind: str, dataset: str) -> dict:
    kc = cfg.kaggle
    title = kernel_title(kc.kernel, kc.title)
    return {
        "id": kc.kernel,
        "title": title,
        "code_file": "kernel.py",
        "language": "python",
        "kernel_type": "script",
        "is_private": kc.is_private,
        "enable_gpu": kc.gpus > 0,
        "enable_tpu": False,
        "enable_internet": False,  # installs come from the bundle; code competitions refuse internet anyway
        "machine_shape": kc.machine_shape,
        "dataset_sources": [dataset, *kc.dataset_sources],
        "competition_sources": [kaggle_slug(cfg)],
        "kernel_sources": [],
        "model_sources": list(kc.model_sources),
    }


def bundle_dataset(bundle: Path) -> str:
    """The Kaggle dataset ("owner/slug") a bundle folder becomes; refused where the folder is not a bundle as
    `prefkit kaggle bundle` makes it: dataset-metadata.json with an id, and run/ with its config and at least
    one finished model (a kernel of a bundle without one would fail on Kaggle, after the upload)."""
    meta_file = bundle / "dataset-metadata.json"
    if not meta_file.is_file():
        what = "no such folder" if not bundle.exists() else "not a bundle (no dataset-metadata.json)"
        raise PrefkitError(f"{bundle}: {what}; make one with `prefkit kaggle bundle`")
    try:
        dataset = json.loads(meta_file.read_text(encoding="utf-8")).get("id")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        dataset = None
    if not isinstance(dataset, str) or not dataset:
        raise PrefkitError(f"{meta_file}: no dataset id in it; make the bundle again with `prefkit kaggle bundle`")
    run = bundle / "run"
    if not runs.is_run(run):
        raise PrefkitError(f"{bundle}: no run/{runs.CONFIG} in it (not a whole bundle); make it again with "
                           "`prefkit kaggle bundle`")
    if not runs.trained_folders(run):
        raise PrefkitError(f"{bundle}: no model in it ({run} has no finished model folder, fold*/ or model/ with "
                           f"{runs.MARKER}): an inference kernel would have nothing to predict with, and "
                           "`prefkit kaggle bundle` makes no such bundle; make it again with `prefkit kaggle bundle "
                           "--run RUN_DIR` from a run with finished models")
    return dataset


def check_competition(bundle: Path, slug: str, competition: str | None, kernel: str) -> None:
    """A kernel predicts (or trains) with its bundle's run, so it must be for that run's competition: the same
    `competition` (what the kernel reads and writes) and the same Kaggle competition (what it mounts and is
    submitted to). `slug`, `competition`: the kernel's (`competition` None where only the slug is known)."""
    run = bundle / "run"
    run_cfg = runs.open_config(run, made_by="`prefkit kaggle bundle` (the bundle's run/)")
    want_slug = kaggle_slug(run_cfg)
    if slug != want_slug or competition not in (None, run_cfg.competition):
        this = f"{competition} ({slug!r})" if competition else repr(slug)
        raise PrefkitError(f"{kernel}: a kernel for {this}, but the run it uses, {run}, is for {run_cfg.competition} "
                           f"({want_slug!r}); render the kernel from that run without changing its competition "
                           f"(prefkit kaggle kernel KIND --run {run} --bundle {bundle} ...)")


def render_kernel(kind: str, run_dir: str | Path, bundle: str | Path, out: str | Path, overrides: list[str] = ()) -> Path:
    if kind not in KINDS:
        raise PrefkitError(f"kernel kind must be one of {', '.join(KINDS)}")
    run_dir, bundle, out = Path(run_dir), Path(bundle), Path(out)
    dataset = bundle_dataset(bundle)
    cfg = runs.open_config(run_dir, overrides)
    metadata = kernel_metadata(cfg, kind, dataset)  # Kaggle's naming rules checked before anything is written
    check_competition(bundle, metadata["competition_sources"][0], cfg.competition, str(out))
    template = kernel_template("common") + kernel_template(kind)
    slug = dataset.split("/", 1)[1]
    script = string.Template(template).substitute(
        kind=kind, bundle_mount=f"/kaggle/input/{slug}", test_path=kaggle_data_path(cfg, "test"), version=__version__,
        train_path=kaggle_data_path(cfg, "train"), minimum=repr(kernel_minimums()),
    )
    write_text(out / "kernel.py", script)
    write_json(out / "kernel-metadata.json", metadata)
    return out
