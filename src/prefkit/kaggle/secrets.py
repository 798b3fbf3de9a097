"""Refuse anything that looks like a credential before it leaves this machine.

A bundle becomes a Kaggle dataset that other people may read: one leaked key is enough. Files are refused
by name (kaggle.json, access_token, .env, private keys) and by content (Kaggle keys and tokens, Hugging
Face and OpenAI tokens, AWS access keys, PEM private keys).
"""

from __future__ import annotations

import re
from pathlib import Path

from prefkit.errors import PrefkitError

BAD_NAMES = re.compile(r"^(kaggle\.json|access_token|\.env(\..*)?|credentials(\..*)?|id_rsa.*|id_ed25519.*|.*\.pem)$", re.I)
PATTERNS = {
    "a Kaggle API key": re.compile(r'"key"\s*:\s*"[0-9a-f]{32}"|KAGGLE_KEY\s*[=:]\s*\S{8,}'),
    "a Kaggle API token": re.compile(r"KAGGLE_API_TOKEN\s*[=:]\s*\S{8,}|\bKGAT_[A-Za-z0-9]{16,}"),
    "a Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "an OpenAI-style API key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
MAX_SCAN_BYTES = 5_000_000  # weights and other large binaries are not text


def find_secrets(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if BAD_NAMES.match(path.name):
            found.append((path, "a credentials file by its name"))
            continue
        if path.stat().st_size > MAX_SCAN_BYTES or path.suffix in (".safetensors", ".bin", ".whl", ".npy", ".joblib"):
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for what, pattern in PATTERNS.items():
            if pattern.search(text):
                found.append((path, what))
                break
    return found


def refuse_secrets(folder: Path, shown_as: Path | None = None) -> None:
    found = find_secrets(folder)
    if found:
        lines = [f"  {shown_as / p.relative_to(folder) if shown_as else p}: {what}" for p, what in found]
        raise PrefkitError("refusing to bundle: these files look like credentials (remove them and try again):\n"
                           + "\n".join(lines))
