"""One prefkit command per output folder: a lock file that names its holder.

Two runs writing into one folder leave a config from one and models from the other, with both exiting 0.
`acquire` writes who holds the lock into a temporary file and hard-links it to `.prefkit.lock`: the link fails
when a lock exists, and a lock is never seen empty or half-written. A second command is refused with the
holder named. A lock is stale, removed with a note and taken over, when on the same host its process is gone
(kill -9, a crash), when its pid now belongs to another process (the start time differs: pids are reused, and
a restarted container gets the same small pids), or when it is unreadable (empty, not JSON, no numeric pid:
an older prefkit crashed between create and write) and older than a few seconds. Locks are released when the
command ends (`release_all`, also at exit).
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import socket
import time
from pathlib import Path

from prefkit.errors import PrefkitError

LOCK = ".prefkit.lock"
# An unreadable lock younger than this may be being written right now (by an older prefkit, or on a file system
# without hard links, where the lock is created empty and then written): wait for it rather than remove it.
UNREADABLE_GRACE_S = 5.0
_WAIT_S = 0.1
_held: list[Path] = []


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot (/proc/<pid>/stat field 22); None without /proc or
    without that process. With the pid it names one process: a reused pid has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:  # field 2, the command name in parentheses, may hold spaces and ")": count from the last ")"
        return int(stat.rsplit(")", 1)[1].split()[22 - 3])
    except (IndexError, ValueError):
        return None


def _read(path: Path) -> tuple[str | None, dict | None]:
    """The lock's text (None when there is no lock) and its holder (None when the text is not a prefkit lock:
    empty, not JSON, or without a numeric pid). A lock that cannot be read (another user's) raises OSError:
    unreadable is not stale."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, None
    try:
        holder = json.loads(text)
    except ValueError:
        return text, None
    pid = holder.get("pid") if isinstance(holder, dict) else None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return text, None
    return text, holder


def _age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


def _is_mine(holder: dict, me: dict) -> bool:
    """This process holds it already (a recipe inside another). A lock of an earlier process that had this pid
    has another start time."""
    return (holder.get("pid") == me["pid"] and holder.get("host") == me["host"]
            and holder.get("start") in (None, me["start"]))


def _stale(holder: dict, me: dict) -> str | None:
    """Why the holder can no longer hold the lock, or None while it may. Another host's process cannot be seen."""
    if holder.get("host") != me["host"]:
        return None
    pid = holder["pid"]
    if not pid_alive(pid):
        return f"process {pid}, no longer running"
    now = start_time(pid)
    if holder.get("start") is not None and now is not None and now != holder["start"]:
        return f"process {pid}, a number now reused by another process"
    return None


def _remove_if_unchanged(path: Path, text: str) -> bool:
    """Remove the lock judged stale, unless another command replaced it meanwhile (two commands that both found
    it stale: the second must not remove the first's new lock)."""
    now, _ = _read(path)
    if now != text:
        return False
    path.unlink(missing_ok=True)
    return True


def _clean_temps(folder: Path) -> None:
    """Temporary lock files (`.prefkit.lock.<pid>.tmp`) of writers killed between write and link."""
    for p in folder.glob(f"{LOCK}.*.tmp"):
        pid = p.name[len(LOCK) + 1:].split(".", 1)[0]
        if not (pid.isdigit() and pid_alive(int(pid))):
            p.unlink(missing_ok=True)


def _create(path: Path, me: dict) -> bool:
    """Put the lock in place whole; False when a lock is there already."""
    tmp = path.with_name(f"{LOCK}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(me), encoding="utf-8")
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
        # no hard links here (some network and FUSE file systems): create exclusively, then write; a reader
        # that finds it empty waits UNREADABLE_GRACE_S before calling it stale
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def acquire(folder: Path, command: str, say=None) -> None:
    folder = Path(folder)
    path = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start": start_time(os.getpid()), "command": command,
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    deadline = time.monotonic() + UNREADABLE_GRACE_S + 5
    while time.monotonic() < deadline:
        try:
            _clean_temps(folder)
            if _create(path, me):
                _held.append(path)
                return
            text, holder = _read(path)
        except OSError as e:
            raise PrefkitError(f"output folder {folder}: cannot take its lock ({e.strerror or e})") from None
        if text is None:
            continue  # released between our attempt and the read: try again
        if holder is None:
            age = _age(path)
            if age is not None and age < UNREADABLE_GRACE_S:
                time.sleep(_WAIT_S)  # perhaps being written this instant
                continue
            if _remove_if_unchanged(path, text) and say:
                say(f"{folder}: removed an unreadable lock ({'empty' if not text.strip() else 'not a prefkit lock'}, "
                    f"{age or 0:.0f} s old: a command that crashed while taking it)")
            continue
        if _is_mine(holder, me):
            return
        reason = _stale(holder, me)
        if reason:
            if _remove_if_unchanged(path, text) and say:
                say(f"{folder}: removed a stale lock left by `{holder.get('command')}` ({reason})")
            continue
        raise PrefkitError(
            f"output folder {folder} is in use by `{holder.get('command')}` (process {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('since')}): wait for it to end or give another output_dir. "
            f"If that process is gone, delete {path}")
    raise PrefkitError(f"{path}: could not take the lock")


def release_all() -> None:
    """Remove the locks this process holds."""
    while _held:
        path = _held.pop()
        try:
            _, holder = _read(path)
            if holder and holder.get("pid") == os.getpid():
                path.unlink(missing_ok=True)
        except OSError:
            pass  # the folder went away or became unreadable: nothing of ours to remove


atexit.register(release_all)
