"""Refuse anything that looks like a credential before it leaves this machine.

A bundle becomes a Kaggle dataset that other people may read: one leaked key is enough. Every file is checked
three ways: by name (kaggle.json, access_token, .env, private keys); by text (the shapes of Kaggle keys and
tokens, Hugging Face and OpenAI tokens, AWS access keys, PEM private keys); and by structure: YAML, JSON(L),
TOML and INI files are parsed, and a value under a key named like a credential (key, token, secret, password,
credential, auth) that looks like one is refused however it is quoted or nested. Only file names and key
paths are ever printed, never a value.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from prefkit.errors import PrefkitError

BAD_NAMES = re.compile(r"^(kaggle\.json|access_token|\.env(\..*)?|credentials(\..*)?|id_rsa.*|id_ed25519.*|.*\.pem)$", re.I)
PATTERNS = {
    "a Kaggle API key": re.compile(r'(?<![A-Za-z])key["\']?\s*[:=]\s*["\']?[0-9a-f]{32}\b|KAGGLE_KEY\s*[=:]\s*\S{8,}', re.I),
    "a Kaggle API token": re.compile(r"KAGGLE_API_TOKEN\s*[=:]\s*\S{8,}|\bKGAT_[A-Za-z0-9]{16,}"),
    "a Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "an OpenAI-style API key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
MAX_SCAN_BYTES = 5_000_000  # weights and other large binaries are not text


SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials", "auth"}
SHORT_SECRET_WORDS = {"secret", "password", "passwd", "pwd"}  # a password may be short and hold any character
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-.+/=:]{16,}")  # keys and tokens: long, no spaces, no <markup>


def _words(key: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()))


def _looks_secret(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    words = _words(str(key))
    if not words & SECRET_WORDS:
        return False
    text = str(value).strip()
    if words & SHORT_SECRET_WORDS:
        return len(text) >= 6
    return bool(TOKEN_SHAPE.fullmatch(text)) and not text.startswith(("/", "./", "~"))


def _walk(obj: Any, path: str = "") -> list[str]:
    """Key paths whose value looks like a credential, anywhere in a parsed document."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            where = f"{path}.{k}" if path else str(k)
            if _looks_secret(str(k), v):
                found.append(where)
            found += _walk(v, where)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _walk(v, f"{path}[{i}]")
    return found


def _documents(path: Path, text: str) -> list[Any]:
    """The file parsed by its kind (nothing where it does not parse)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if suffix == ".json":
            return [json.loads(text)]
        if suffix == ".toml":
            return [tomllib.loads(text)]
        if suffix in (".ini", ".cfg", ".conf"):
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(text)
            return [{name: dict(parser[name]) for name in parser.sections()}]
        return list(yaml.safe_load_all(text))  # YAML, and JSON, which YAML reads too
    except Exception:  # not that kind of file after all: the text scan still covers it
        return []


def find_secrets(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if BAD_NAMES.match(path.name):
            found.append((path, "a credentials file by its name"))
            continue
        if path.stat().st_size > MAX_SCAN_BYTES or path.suffix in (".safetensors", ".bin", ".whl", ".npy", ".joblib"):
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        what = next((what for what, pattern in PATTERNS.items() if pattern.search(text)), None)
        if what is None:
            keys = [k for doc in _documents(path, text) for k in _walk(doc)]
            if keys:
                what = f"a credential under {', '.join(repr(k) for k in keys[:3])}"
        if what:
            found.append((path, what))
    return found


def refuse_secrets(folder: Path, shown_as: Path | None = None) -> None:
    found = find_secrets(folder)
    if found:
        lines = [f"  {shown_as / p.relative_to(folder) if shown_as else p}: {what}" for p, what in found]
        raise PrefkitError("refusing to bundle: these files look like credentials (remove them and try again):\n"
                           + "\n".join(lines))
