"""Refuse anything that looks like a credential before it leaves this machine.

A bundle becomes a Kaggle dataset that other people may read: one leaked key is enough. `prefkit kaggle bundle`
checks the run and the finished bundle, `prefkit kaggle push` (its dry run too) the bundle and the kernel folder
again, as they are at the push: a file dropped into a folder after it was made is caught there. Every file is
checked three ways: by name (kaggle.json, access_token, .env, private keys, also gzipped); by text (the shapes of
Kaggle keys and tokens, Hugging Face, OpenAI and GitHub tokens, AWS access keys, PEM private keys, and a
credential-named variable assigned a quoted token in code: `os.environ["KAGGLE_KEY"] = "..."`); and by
structure: YAML, JSON(L), notebooks, TOML and INI files are parsed, and a value under a key named like a
credential (key, token, secret, password, credential, auth) that looks like one is refused however it is quoted,
escaped or nested.

Text is read as UTF-8, or as UTF-16 where a byte-order mark or the pattern of NUL bytes says so. Files up to
`MAX_SCAN_BYTES` are read whole; larger text files (a long log.jsonl) are scanned in chunks that overlap, so a
key across a chunk boundary is still seen; large binary files (weights) are not text and are skipped, as are
weight and wheel files of any size. A `.gz` file is scanned decompressed, up to `MAX_GZ_BYTES` (a larger one is
refused as unchecked). A value is never printed in full: messages name the file, the line or key path, and at
most the secret's first 4 characters.
"""

from __future__ import annotations

import codecs
import configparser
import gzip
import json
import re
import tomllib
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import yaml

from prefkit.errors import PrefkitError

BAD_NAMES = re.compile(r"^(kaggle\.json|access_token|\.env(\..*)?|credentials(\..*)?|id_rsa.*|id_ed25519.*|.*\.pem)$", re.I)
Q = r"""[rbuf]?["']"""  # the opening quote of a string literal, with Python's prefixes
# each pattern's group "v" is the secret itself (what a message masks)
PATTERNS = {
    "a Kaggle API key": re.compile(
        r"""(?<![A-Za-z])key["']?\s*\]?\s*[:=,]\s*""" + Q + r"""?(?P<v>[0-9a-f]{32})\b"""  # "key": "<32 hex>"
        r"""|KAGGLE_KEY["']\s*\]?\s*[=:,]\s*""" + Q + r"""(?P<v2>[^\s"']{8,})["']"""  # os.environ["KAGGLE_KEY"] = "..."
        r"""|KAGGLE_KEY\s*[=:]\s*["']?(?P<v3>[^\s"']{8,})""", re.I),  # KAGGLE_KEY=... (.env, shell)
    "a Kaggle API token": re.compile(
        r"""KAGGLE_API_TOKEN["']\s*\]?\s*[=:,]\s*""" + Q + r"""(?P<v>[^\s"']{8,})["']"""
        r"""|KAGGLE_API_TOKEN\s*[=:]\s*["']?(?P<v2>[^\s"']{8,})|(?P<v3>\bKGAT_[A-Za-z0-9]{16,})"""),
    "a Hugging Face token": re.compile(r"(?P<v>\bhf_[A-Za-z0-9]{30,})"),
    "an OpenAI-style API key": re.compile(r"(?P<v>\bsk-[A-Za-z0-9_-]{20,})"),
    "a GitHub token": re.compile(r"(?P<v>\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,})"),
    "an AWS access key": re.compile(r"(?P<v>\bAKIA[0-9A-Z]{16}\b)"),
    "a private key": re.compile(r"(?P<v>-----BEGIN [A-Z ]*PRIVATE KEY-----)"),
}
# what a text must hold for each pattern to match (checked first: a substring search is fast, a regex is not)
NEEDS = {"a Kaggle API key": ("key",), "a Kaggle API token": ("kaggle_api_token", "kgat_"),
         "a Hugging Face token": ("hf_",),
         "an OpenAI-style API key": ("sk-",), "a GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
         "an AWS access key": ("akia",), "a private key": ("-----begin",)}
# a credential-named variable, item or argument given a quoted value in code: `api_key = "..."`,
# `os.environ["HF_TOKEN"] = "..."`, `os.environ.setdefault("PASSWORD", "...")`
ASSIGNED = re.compile(
    r"""(?:\[\s*["'](?P<item>\w+)["']\s*\]|(?P<name>\b[A-Za-z_]\w*))\s*(?::\s*str\s*)?=\s*"""
    + Q + r"""(?P<v>[^"'\n]+)["']"""
    r"""|(?:setdefault|putenv)\(\s*["'](?P<arg>\w+)["']\s*,\s*""" + Q + r"""(?P<v2>[^"'\n]+)["']"""
    r'|"(?P<jkey>\w+)"\s*:\s*"(?P<v3>[^"\n]+)"')  # "api_key": "..." in a JSON(L) too large to parse
MAX_SCAN_BYTES = 5_000_000  # read whole (and parsed); larger text files are scanned in chunks
MAX_GZ_BYTES = 256_000_000  # decompressed: a .gz that inflates past this is refused unchecked (a zip bomb, or too big)
CHUNK = 1 << 20
OVERLAP = 4096  # characters each chunk repeats of the one before: longer than any pattern's match
SKIP_SUFFIXES = (".safetensors", ".bin", ".whl", ".npy", ".joblib")  # weights and wheels: never text


SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials", "auth"}
SHORT_SECRET_WORDS = {"secret", "password", "passwd", "pwd"}  # a password may be short and hold any character
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-.+/=:]{16,}")  # keys and tokens: long, no spaces, no <markup>


def mask(secret: str) -> str:
    """What a message may show of a secret: its first 4 characters and its length."""
    return f"{secret[:4]!r}... ({len(secret)} characters)" if len(secret) > 8 else f"({len(secret)} characters)"


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


def _strings(obj: Any) -> Iterator[str]:
    """Every string of a parsed document, keys too: a notebook's code cells, unescaped."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _documents(path: Path, text: str) -> list[Any]:
    """The file parsed by its kind (nothing where it does not parse)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if suffix in (".json", ".ipynb"):
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


def _line(text: str, pos: int, first_line: int | None) -> str:
    return f" on line {first_line + text.count(chr(10), 0, pos)}" if first_line is not None else ""


def _shape_hit(text: str, first_line: int | None) -> str | None:
    """The first credential of a known shape in the text, with its line (when known), masked."""
    lower = text.lower()
    for what, pattern in PATTERNS.items():
        m = pattern.search(text) if any(n in lower for n in NEEDS[what]) else None
        if m:
            secret = next(v for v in m.groupdict().values() if v)
            return f"{what} {mask(secret)}{_line(text, m.start(), first_line)}"
    return None


def _assigned_hit(text: str, first_line: int | None) -> str | None:
    """The first credential-named variable or item given a value that looks like a credential, masked."""
    lower = text.lower()
    if not any(w in lower for w in SECRET_WORDS):
        return None
    for m in ASSIGNED.finditer(text):
        name = m.group("item") or m.group("name") or m.group("arg") or m.group("jkey")
        secret = m.group("v") or m.group("v2") or m.group("v3")
        if _looks_secret(name, secret):
            return f"a credential assigned to {name!r} {mask(secret)}{_line(text, m.start(), first_line)}"
    return None


def _check_text(text: str, kind: Path) -> str | None:
    """A whole (small) file: its text, its parsed structure (key paths), then the strings in it, unescaped."""
    hit = _shape_hit(text, 1)
    if hit:
        return hit
    docs = _documents(kind, text)
    keys = [k for doc in docs for k in _walk(doc)]
    if keys:
        return f"a credential under {', '.join(repr(k) for k in keys[:3])}"
    strings = "\n".join(s for doc in docs for s in _strings(doc))
    hit = _shape_hit(strings, None) or _assigned_hit(strings, None)
    if hit:
        return f"{hit} (in a string of the file)"
    return _assigned_hit(text, 1)


def _encoding(head: bytes) -> str | None:
    """How the file's text is encoded, from its first bytes: a byte-order mark, or UTF-16's NUL bytes in every
    other place (ASCII text as UTF-16); None for binary data (NUL bytes without that pattern)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" not in head:
        return "utf-8"
    even, odd = head[0::2], head[1::2]
    if odd and odd.count(0) >= 0.4 * len(odd) and even.count(0) <= 0.05 * len(even):
        return "utf-16-le"
    if even and even.count(0) >= 0.4 * len(even) and odd.count(0) <= 0.05 * len(odd):
        return "utf-16-be"
    return None


class _TooLarge(Exception):
    pass


def _reads(fh: IO[bytes], limit: int | None) -> Iterator[bytes]:
    total = 0
    while data := fh.read(CHUNK):
        total += len(data)
        if limit is not None and total > limit:
            raise _TooLarge
        yield data


def _check_stream(open_file: Callable[[], IO[bytes]], kind: Path, limit: int | None) -> str | None:
    with open_file() as fh:
        head = fh.read(MAX_SCAN_BYTES + 1)
        if limit is not None and len(head) > limit:
            raise _TooLarge
        encoding = _encoding(head[:8192])
        if len(head) <= MAX_SCAN_BYTES:  # whole: text and structure
            return _check_text(head.decode(encoding or "utf-8", errors="ignore"), kind)
        if encoding is None:  # large and binary: weights or data, not text
            return None
        decoder = codecs.getincrementaldecoder(encoding)(errors="ignore")
        carry, line = "", 1  # carry: the end of the text before, scanned again with what follows it
        for data in _chain(head, _reads(fh, None if limit is None else limit - len(head))):
            text = carry + decoder.decode(data)
            hit = _shape_hit(text, line) or _assigned_hit(text, line)
            if hit:
                return hit
            cut = max(0, len(text) - OVERLAP)
            line += text.count("\n", 0, cut)
            carry = text[cut:]
        text = carry + decoder.decode(b"", final=True)
        return _shape_hit(text, line) or _assigned_hit(text, line)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    for i in range(0, len(first), CHUNK):
        yield first[i:i + CHUNK]
    yield from rest


def check_file(path: Path) -> str | None:
    """What in the file looks like a credential (a description, the secret masked), or None."""
    name = path.name
    gz = name.lower().endswith(".gz")
    if BAD_NAMES.match(name) or (gz and BAD_NAMES.match(name[:-3])):
        return "a credentials file by its name"
    if path.suffix in SKIP_SUFFIXES:
        return None
    if gz:
        try:
            return _check_stream(lambda: gzip.open(path, "rb"), Path(name[:-3]), MAX_GZ_BYTES)
        except _TooLarge:
            return f"a compressed file over {MAX_GZ_BYTES / 1e6:g} MB decompressed, too large to check; leave it out"
        except (OSError, EOFError, zlib.error):  # not gzip after all (or damaged): read as it is
            pass
    return _check_stream(lambda: open(path, "rb"), path, None)


def find_secrets(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        what = check_file(path)
        if what:
            found.append((path, what))
    return found


def refuse_secrets(folder: Path, shown_as: Path | None = None, action: str = "bundle") -> None:
    """Refuse (naming every file) when anything in `folder` looks like a credential; `action`: what is refused."""
    found = find_secrets(folder)
    if found:
        lines = [f"  {shown_as / p.relative_to(folder) if shown_as else p}: {what}" for p, what in found]
        raise PrefkitError(f"refusing to {action}: these files look like credentials (remove them and try again):\n"
                           + "\n".join(lines))
