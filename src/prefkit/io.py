"""Atomic file writes: nothing half-written is ever left at the final path."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stale_temps(final: Path) -> list[Path]:
    """Temporary files of `final` (".<name>.<pid>.<random>.tmp") whose writer is no longer running: what a
    kill -9 during a write leaves. Names without a pid (older prefkit) count as stale too."""
    from prefkit.lock import pid_alive

    stale = []
    for p in final.parent.glob(f".{glob.escape(final.name)}.*.tmp"):
        pid = p.name[len(final.name) + 2 :].split(".", 1)[0]
        if not (pid.isdigit() and pid_alive(int(pid))):
            stale.append(p)
    return stale


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed. Temporary
    files that a killed writer left beside `path` are removed first. A path that cannot be written (a folder,
    no permission) is a user error naming it."""
    from prefkit.errors import PrefkitError

    final = Path(path)
    if final.is_dir():
        raise PrefkitError(f"{final}: is a folder; give the path of a file to write")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        for old in _stale_temps(final):
            old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
    except OSError as e:
        raise PrefkitError(f"{final}: cannot write there ({e.strerror or e})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """A matplotlib figure as PNG, written atomically, and the figure closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
