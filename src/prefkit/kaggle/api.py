"""Calls to Kaggle through the `kaggle` package, planned first so that `--dry-run` can print them exactly.

A plan is a list of `Call(method, kwargs)` on `kaggle.api` (KaggleApi). Credentials are looked for where the
client looks (KAGGLE_API_TOKEN, ~/.kaggle/access_token, KAGGLE_USERNAME + KAGGLE_KEY, ~/.kaggle/kaggle.json);
their values are never read into prefkit, printed or logged. `import kaggle` authenticates at import time,
so it happens only when a plan is run for real.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prefkit.errors import PrefkitError

DONE_STATES = {"complete", "error", "cancelacknowledged", "cancel_acknowledged"}


@dataclass
class Call:
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"kaggle.api.{self.method}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


def credentials_source() -> str:
    """Where the client will find credentials (a description, never a value); an error when nowhere."""
    home = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if (home / "access_token").is_file():
        return str(home / "access_token")
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME and KAGGLE_KEY"
    if (home / "kaggle.json").is_file():
        return str(home / "kaggle.json")
    raise PrefkitError(
        "no Kaggle credentials: set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY), or put the token from "
        f"kaggle.com/settings in {home / 'access_token'} (or the legacy {home / 'kaggle.json'})"
    )


def client() -> Any:
    credentials_source()
    try:
        import kaggle  # noqa: F401  (authenticates on import)
        from kaggle import api
    except ImportError:
        raise PrefkitError("the kaggle package is not installed: pip install 'prefkit[kaggle]'") from None
    except (OSError, ValueError) as e:
        raise PrefkitError(f"kaggle client: {e}") from None
    return api


def run_plan(plan: list[Call], dry_run: bool, say: Callable[[str], None] = print) -> list[Any]:
    if dry_run:
        for call in plan:
            say(f"dry run: {call}")
        return []
    api = client()
    results = []
    for call in plan:
        say(f"calling {call}")
        try:
            results.append(getattr(api, call.method)(**call.kwargs))
        except Exception as e:  # the client raises requests/HTTP errors of many kinds: report, do not trace
            raise PrefkitError(f"{call.method} failed: {e}") from None
    return results


def push_plan(bundle: Path | None, kernel: Path | None, new_dataset: bool, message: str) -> list[Call]:
    plan = []
    if bundle is not None:
        if new_dataset:
            plan.append(Call("dataset_create_new", {"folder": str(bundle), "public": False, "dir_mode": "zip"}))
        else:
            plan.append(Call("dataset_create_version", {"folder": str(bundle), "version_notes": message, "dir_mode": "zip"}))
    if kernel is not None:
        plan.append(Call("kernels_push", {"folder": str(kernel)}))
    return plan


def submit_plan(competition: str, message: str, file: str | None, kernel: str | None, version: int | None) -> list[Call]:
    if kernel:
        if version is None:
            raise PrefkitError("--kernel needs --version (the kernel version whose output to submit)")
        return [Call("competition_submit_code", {"file_name": file or "submission.csv", "message": message,
                                                 "competition": competition, "kernel": kernel, "kernel_version": version})]
    if not file:
        raise PrefkitError("give --file SUBMISSION.csv, or --kernel OWNER/SLUG --version N for a code competition")
    if not Path(file).is_file():
        raise PrefkitError(f"{file}: no such file")
    return [Call("competition_submit", {"file_name": file, "message": message, "competition": competition})]


def wait_for_kernel(kernel: str, say: Callable[[str], None] = print, first: float = 15.0, longest: float = 300.0,
                    sleep: Callable[[float], None] = time.sleep, api: Any = None) -> str:
    """Poll the kernel's status with backoff (15 s, growing 1.5x to 5 min) until it ends; returns the state."""
    api = api or client()
    delay = first
    while True:
        status = api.kernels_status(kernel)
        state = str(getattr(status, "status", status)).split(".")[-1].lower()
        say(f"{kernel}: {state}")
        if state in DONE_STATES:
            return state
        sleep(delay)
        delay = min(delay * 1.5, longest)
