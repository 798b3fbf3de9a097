"""A teacher behind any OpenAI-compatible chat-completions endpoint, with a cache that loses no paid call.

Base URL, model and key come from the environment (PREFKIT_TEACHER_BASE_URL, PREFKIT_TEACHER_MODEL,
PREFKIT_TEACHER_API_KEY or OPENAI_API_KEY); the key is sent in a header and never printed or written.
Requests run concurrently; 429 and 5xx answers are retried with exponential backoff (honouring
Retry-After). Every answer is appended to a JSONL cache and flushed as soon as it arrives, keyed by model,
prompt, temperature and sample number: after a crash, or on a re-run, only what is missing is asked for.

The HTTP call is one POST with the standard library: no client package is needed for it, and the
per-sample cache and retry policy are what this module is for.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prefkit.errors import PrefkitError

RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass
class TeacherConfig:
    base_url: str
    model: str
    api_key: str | None
    temperature: float = 0.0
    max_tokens: int = 256
    concurrency: int = 4
    max_retries: int = 6
    backoff: float = 1.0  # seconds before the first retry, doubling

    @classmethod
    def from_env(cls, **kw) -> "TeacherConfig":
        base, model = os.environ.get("PREFKIT_TEACHER_BASE_URL"), os.environ.get("PREFKIT_TEACHER_MODEL")
        if not base or not model:
            raise PrefkitError("set PREFKIT_TEACHER_BASE_URL (e.g. https://api.openai.com/v1) and PREFKIT_TEACHER_MODEL")
        key = os.environ.get("PREFKIT_TEACHER_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return cls(base.rstrip("/"), model, key, **kw)


def cache_key(model: str, prompt: str, temperature: float, sample: int) -> str:
    return hashlib.sha256(json.dumps([model, prompt, temperature, sample]).encode()).hexdigest()


class Cache:
    """Append-only JSONL; a torn last line (a crash mid-write) is ignored on reading."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.items: dict[str, str] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.items[row["key"]] = row["text"]
                except (json.JSONDecodeError, KeyError):
                    continue
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, text: str) -> None:
        with self.lock:
            self.items[key] = text
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())


class Teacher:
    def __init__(self, cfg: TeacherConfig, cache: Path, sleep=time.sleep):
        self.cfg, self.cache, self.sleep = cfg, Cache(cache), sleep
        self.requests = 0  # HTTP requests made (retries included)

    def _post(self, prompt: str, temperature: float) -> str:
        body = json.dumps({"model": self.cfg.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": temperature, "max_tokens": self.cfg.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.cfg.api_key:
            headers["Authorization"] = f"Bearer {self.cfg.api_key}"
        delay = self.cfg.backoff
        for attempt in range(self.cfg.max_retries + 1):
            self.requests += 1
            req = urllib.request.Request(f"{self.cfg.base_url}/chat/completions", body, headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    return json.loads(resp.read())["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as e:
                if e.code not in RETRY_STATUS or attempt == self.cfg.max_retries:
                    raise PrefkitError(f"teacher endpoint answered {e.code} {e.reason}") from None
                wait = float(e.headers.get("Retry-After") or delay)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.cfg.max_retries:
                    raise PrefkitError(f"teacher endpoint unreachable: {e}") from None
                wait = delay
            self.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    def ask(self, prompts: list[str], samples: int = 1, temperature: float | None = None) -> list[list[str]]:
        """`samples` completions of each prompt (diverse reasoning: samples > 1 at a temperature > 0)."""
        t = self.cfg.temperature if temperature is None else temperature
        jobs = [(i, s, p, cache_key(self.cfg.model, p, t, s)) for i, p in enumerate(prompts) for s in range(samples)]
        todo = [j for j in jobs if j[3] not in self.cache.items]

        def run(job):
            _, _, prompt, key = job
            self.cache.put(key, self._post(prompt, t))

        pool = ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency))
        try:
            for future in [pool.submit(run, j) for j in todo]:
                future.result()
        except BaseException:  # the first failure stops the run: queued requests are dropped, finished ones are cached
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        out: list[list[str]] = [[] for _ in prompts]
        for i, _, _, key in jobs:
            out[i].append(self.cache.items[key])
        return out
