"""`make check-latest`'s report: which packages moved between the lock and a fresh environment."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_latest", ROOT / "tools" / "check_latest.py")
check_latest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_latest)


def test_pins_read_the_lock_and_pip_freeze_alike():
    lock = ["torch==2.13.0+cpu \\", "    --hash=sha256:abc", "Typing_Extensions==4.16.0 \\", "# via x",
            "uvicorn[standard]==0.54.0 \\"]
    assert check_latest.pins(lock) == {"torch": "2.13.0+cpu", "typing-extensions": "4.16.0", "uvicorn": "0.54.0"}


def test_moved_names_every_change_once():
    locked = {"transformers": "5.24.0", "peft": "0.21.2", "gone": "1.0"}
    latest = {"transformers": "5.25.0", "peft": "0.21.2", "new": "2.0"}
    assert check_latest.moved(locked, latest) == ["  gone: 1.0 -> (not installed)", "  new: (not in the lock) -> 2.0",
                                                  "  transformers: 5.24.0 -> 5.25.0"]


def test_the_lock_pins_every_package_with_a_hash_and_the_cpu_torch():
    text = (ROOT / "requirements.lock").read_text()
    pinned = check_latest.pins(text.splitlines())
    assert pinned["torch"] == "2.13.0+cpu" and {"transformers", "peft", "bitsandbytes", "accelerate"} <= set(pinned)
    entries = [e for e in text.split("\n") if check_latest.PIN.match(e)]
    assert all(e.rstrip().endswith("\\") for e in entries), "each pin is followed by its hashes"
    assert text.count("--hash=sha256:") >= len(pinned)
