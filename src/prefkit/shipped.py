"""Configs and kernel templates shipped inside the package, so that a pip-installed prefkit runs what a
checkout does (`prefkit configs list|copy`, as torchtune's `tune ls|cp`). In a checkout, `configs/` and
`kernels/` at the root are links to these folders.

A config argument is a path to a YAML file, or the name of a shipped config: `rm/minilm_cpu`, or just
`minilm_cpu` when that stem is unique.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from prefkit.errors import PrefkitError


def _root() -> Path:
    return Path(str(resources.files("prefkit")))


def config_names() -> list[str]:
    folder = _root() / "configs"
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def config_path(arg: str | Path) -> Path:
    """A config file: the path given, or the shipped config of that name."""
    path = Path(arg)
    if path.is_file():
        return path
    name = str(arg).removesuffix(".yaml")
    names = config_names()
    matches = [n for n in names if n == name or n.rsplit("/", 1)[-1] == name]
    if len(matches) == 1:
        return _root() / "configs" / f"{matches[0]}.yaml"
    if len(matches) > 1:
        raise PrefkitError(f"config {arg!r} is ambiguous: {', '.join(matches)}")
    raise PrefkitError(f"config {arg!r}: no such file, and no shipped config of that name (shipped: {', '.join(names)}; "
                       "`prefkit configs list`)")


def copy_config(name: str, dest: str | Path) -> Path:
    """Copy a shipped config into `dest` (a folder, or a file name) to edit it; never overwrites."""
    source = config_path(name)
    into_folder = Path(dest).is_dir() or str(dest).endswith(("/", "\\")) or not str(dest).endswith(".yaml")
    target = Path(dest) / source.name if into_folder else Path(dest)
    if target.exists():
        raise PrefkitError(f"{target} exists; give another destination")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def kernel_template(name: str) -> str:
    return (_root() / "kernels" / f"{name}.py").read_text(encoding="utf-8")
