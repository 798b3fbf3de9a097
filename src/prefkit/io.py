"""Atomic file writes: nothing half-written is ever left at the final path. A job's several outputs as one unit
(`staged_folder`), and no output written over one of the command's inputs (`refuse_overwrite`)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


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


def new_figure(figsize: tuple[float, float], ncols: int = 1) -> tuple[Any, Any]:
    """A matplotlib figure and its axes (`ncols` of them side by side) on the Agg backend (files only, no display
    needed): every figure prefkit and its benchmarks draw starts here and ends in `save_figure`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """A matplotlib figure as PNG, written atomically (its folder made), and the figure closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def same_path(a: Path, b: Path) -> bool:
    """One file (or folder) under two names: os.path.samefile where both exist (a hard link, a symbolic link,
    another spelling of the path), the resolved paths otherwise."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def refuse_overwrite(out: str | os.PathLike, inputs: dict[str, Any], flag: str = "--out") -> None:
    """Refuse an output path that would replace one of the command's inputs: `out` is an input itself (the same
    file, see `same_path`), or lies inside an input folder (a run folder is written only by the job that made
    it). `inputs`: the flag (or config key) that named each input -> its path, or a list of paths; empty ones are
    skipped. Called by every command that writes an output named by the user, before it writes anything."""
    from prefkit.errors import PrefkitError

    out_p = Path(out)
    for name, value in inputs.items():
        for given in value if isinstance(value, (list, tuple)) else [value]:
            if given is None or str(given) == "":
                continue
            p = Path(given)
            if same_path(out_p, p):
                raise PrefkitError(f"{flag} {out}: is {name} {given}, an input of this command, and would be "
                                   "replaced; give another path")
            if p.is_dir() and p.resolve() in out_p.resolve().parents:
                raise PrefkitError(f"{flag} {out}: is inside {name} {given}, an input folder of this command; "
                                   "write outside it")


def check_writable(out: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before any work, an output path that cannot be written: a read-only folder or file, a folder where a
    file is asked for. (A job would otherwise find it out after its predictions.) Nothing is left behind."""
    from prefkit.errors import PrefkitError

    final = Path(out)
    if final.is_dir():
        raise PrefkitError(f"{flag} {out}: is a folder; give the path of a file to write")
    parent = final.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folders to be made: the first that exists must take them
    if final.exists() and not os.access(final, os.W_OK):
        raise PrefkitError(f"{flag} {out}: cannot write there (the file is read-only for this user); give another path")
    # a file made and removed at once: permission bits, read-only mounts and pseudo file systems alike
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "read-only for this user"
    else:
        try:
            fd, probe = tempfile.mkstemp(prefix=".prefkit-write-check.", dir=parent)
            os.close(fd)
            os.unlink(probe)
            return
        except OSError as e:
            why = e.strerror or str(e)
    raise PrefkitError(f"{flag} {out}: cannot write there ({parent}: {why}); give another path")


def _stale_stages(final: Path) -> list[Path]:
    """Stage folders of `final` (".<name>.<pid>.<random>.stage") whose writer is no longer running."""
    from prefkit.lock import pid_alive

    stale = []
    for p in final.parent.glob(f".{glob.escape(final.name)}.*.stage"):
        pid = p.name[len(final.name) + 2 :].split(".", 1)[0]
        if p.is_dir() and not (pid.isdigit() and pid_alive(int(pid))):
            stale.append(p)
    return stale


def _is_relative_name(name: str) -> bool:
    p = Path(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts


@contextmanager
def staged_folder(folder: str | os.PathLike, marker: str, owned: Iterable[str] = ()) -> Iterator[Path]:
    """The outputs of one job as one unit: yield an empty temporary folder beside `folder`, into which the job
    writes every output (`marker`, the file that says a job's outputs are here, among them). On success they
    replace the previous job's in `folder`: a new or empty `folder` is the staged folder renamed; otherwise the
    old `marker` is removed first, then the files of `owned` (the names the previous job may have written) that
    this job did not write, the new files are moved in, and `marker` last, so `folder` never holds one job's
    marker with another's files. Files of `folder` that no job of this kind writes are kept. On error nothing
    in `folder` changes and the staged folder is removed. Stage folders that a killed writer left are removed."""
    from prefkit.errors import PrefkitError

    final = Path(folder)
    if final.exists() and not final.is_dir():
        raise PrefkitError(f"{final}: is a file; give a folder")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        for old in _stale_stages(final):
            shutil.rmtree(old, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".stage", dir=final.parent))
    except OSError as e:
        raise PrefkitError(f"{final}: cannot write there ({e.strerror or e})") from None
    try:
        yield stage
        written = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
        if marker not in written:
            raise RuntimeError(f"staged outputs of {final} lack their marker {marker}")
        if not final.exists() or not any(final.iterdir()):
            if final.exists():
                final.rmdir()
            os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
            os.rename(stage, final)
            return
        (final / marker).unlink(missing_ok=True)  # from here until the new marker, no job's outputs are whole
        for name in set(owned) - set(written):
            old = final / name
            if _is_relative_name(name) and old.is_file() and final.resolve() in old.resolve().parents:
                old.unlink()
        for name in written:
            if name != marker:
                (final / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / name, final / name)
        os.replace(stage / marker, final / marker)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
