"""`make check-latest`: would prefkit still pass with the newest versions its ranges allow?

Builds a throwaway virtual environment (default `.latest/`) from pyproject.toml's ranges, not from the lock,
runs the fast tests in it, and prints which packages moved from requirements.lock and which tests failed.
Green means the lock can be re-resolved (`make lock`) and committed on its own; red names what to fix first.
The CPU torch build stays pinned by requirements.constraints either way (any other release is a CUDA build).

Exit status: 0 when the fast tests pass with the newest versions, 1 when they fail, 2 when the set-up fails.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\;]+)")


def pins(lines: list[str]) -> dict[str, str]:
    """name -> version of every `name==version` line (lock or `pip freeze`), names normalised as PEP 503 does."""
    found = {}
    for line in lines:
        m = PIN.match(line.strip())
        if m:
            found[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return found


def moved(locked: dict[str, str], latest: dict[str, str]) -> list[str]:
    """One line a package whose version differs between the lock and the fresh environment."""
    lines = []
    for name in sorted(set(locked) | set(latest)):
        old, new = locked.get(name), latest.get(name)
        if old != new:
            lines.append(f"  {name}: {old or '(not in the lock)'} -> {new or '(not installed)'}")
    return lines


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default=".latest", help="the throwaway environment (removed and rebuilt)")
    ap.add_argument("--extras", default="", help="the lock's extras, as `--extra a --extra b`")
    ap.add_argument("--tests", default="not slow", help="the pytest -m expression (default: the fast tests)")
    ap.add_argument("--find-links", default="/opt/wheels", help="where the CPU torch build lies")
    args = ap.parse_args(argv)

    extras = ",".join(re.findall(r"--extra\s+(\S+)", args.extras))
    env_dir = ROOT / args.venv
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.create(env_dir, with_pip=True)  # as `make setup`'s venv: `prefkit kaggle bundle` builds its wheel with pip
    py = str(env_dir / "bin" / "python")
    uv = [str(Path(sys.executable).parent / "uv"), "pip", "install", "-q", "-p", py]
    spec = f".[{extras}]" if extras else "."
    steps = [
        uv + ["--upgrade", "-c", "requirements.constraints", "--find-links", args.find_links, "-e", spec],
        uv + ["--no-deps", "--require-hashes", "-r", "requirements-nodeps.lock"],
    ]
    for step in steps:
        if run(step).returncode != 0:
            print("check-latest: the set-up with the newest versions failed (above)", file=sys.stderr)
            return 2

    freeze = run([uv[0], "pip", "freeze", "-p", py, "--exclude-editable"], capture_output=True, text=True).stdout
    locked = {**pins((ROOT / "requirements.lock").read_text().splitlines()),
              **pins((ROOT / "requirements-nodeps.lock").read_text().splitlines())}
    changes = moved(locked, pins(freeze.splitlines()))

    report = env_dir / "pytest.txt"
    with report.open("w") as out:
        tests = run([py, "-m", "pytest", "tests", "-m", args.tests, "-rfE", "-p", "no:cacheprovider"],
                    stdout=out, stderr=subprocess.STDOUT)
    lines = report.read_text().splitlines()
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]

    print(f"\ncheck-latest: {len(changes)} package(s) differ from requirements.lock")
    print("\n".join(changes) if changes else "  (none)")
    summary = next((ln for ln in reversed(lines) if " passed" in ln or " failed" in ln or " error" in ln), "")
    print(f"\ncheck-latest: fast tests {'passed' if tests.returncode == 0 else 'FAILED'}: {summary.strip('= ')}")
    for ln in failed:
        print("  " + ln)
    print(f"(whole output: {report.relative_to(ROOT)})")
    if tests.returncode == 0 and changes:
        print("\ngreen: `make lock`, run `make test`, and commit requirements.lock on its own")
    return 0 if tests.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
