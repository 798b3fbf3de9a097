"""One prefkit command per output folder: a lock file that names its holder.

Two runs writing into one folder leave a config from one and models from the other, with both exiting 0.
`acquire` creates `.prefkit.lock` with O_EXCL and writes who holds it; a second command is refused with the
holder named. A lock whose process is gone (kill -9, a crash) is stale: on the same host it is removed, with a
note, and taken over. Locks are released when the command ends (`release_all`, also at exit).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from pathlib import Path

from prefkit.errors import PrefkitError

LOCK = ".prefkit.lock"
_held: list[Path] = []


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def acquire(folder: Path, command: str, say=None) -> None:
    path = Path(folder) / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:  # written this instant, or a crash between create and write
                time.sleep(0.2)
                holder = _read(path) or {"pid": -1, "host": me["host"], "command": "?", "since": "?"}
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return  # this process holds it already (a recipe inside another)
            if holder.get("host") == me["host"] and not pid_alive(int(holder.get("pid", -1))):
                path.unlink(missing_ok=True)
                if say:
                    say(f"{folder}: removed a stale lock left by `{holder.get('command')}` "
                        f"(process {holder.get('pid')}, no longer running)")
                continue
            raise PrefkitError(
                f"output folder {folder} is in use by `{holder.get('command')}` (process {holder.get('pid')} on "
                f"{holder.get('host')}, since {holder.get('since')}): wait for it to end or give another output_dir. "
                f"If that process is gone, delete {path}")
        except OSError as e:
            raise PrefkitError(f"output folder {folder}: cannot write there ({e.strerror or e})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        _held.append(path)
        return
    raise PrefkitError(f"{path}: could not take the lock")


def release_all() -> None:
    """Remove the locks this process holds."""
    while _held:
        path = _held.pop()
        holder = _read(path)
        if holder and holder.get("pid") == os.getpid():
            path.unlink(missing_ok=True)


atexit.register(release_all)
