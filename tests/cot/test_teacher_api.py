"""The API teacher against a small OpenAI-compatible server on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from prefkit.cot.teacher_api import Teacher, TeacherConfig
from prefkit.errors import PrefkitError


class Server:
    def __init__(self, fail_first: list[int] = (), die_after: int | None = None):
        self.calls, self.answered, self.keys = 0, 0, []
        self.fail_first, self.die_after = list(fail_first), die_after
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.calls += 1
                    outer.keys.append(self.headers.get("Authorization"))
                    if outer.fail_first:
                        code = outer.fail_first.pop(0)
                        self.send_response(code)
                        self.send_header("Retry-After", "0")
                        self.end_headers()
                        return
                    if outer.die_after is not None and outer.answered >= outer.die_after:
                        self.send_response(401)
                        self.end_headers()
                        return
                    outer.answered += 1
                q = body["messages"][0]["content"]
                text = f"{q[:12]} ... Therefore, the answer is {len(q)}. (t={body['temperature']})"
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        servers.append(Server(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def teacher(url, cache, **kw):
    return Teacher(TeacherConfig(url, "m", "sk-test-key", concurrency=3, backoff=0.0, **kw), cache, sleep=lambda s: None)


def test_retries_429_and_5xx_then_caches(server, tmp_path):
    srv = server(fail_first=[429, 503])
    t = teacher(srv.url, tmp_path / "cache.jsonl")
    prompts = [f"question {i}?" for i in range(5)]
    out = t.ask(prompts, samples=2, temperature=0.7)
    assert [len(x) for x in out] == [2] * 5 and "Therefore, the answer is" in out[0][0]
    assert srv.answered == 10 and srv.calls == 12 and t.requests == 12, "two retried requests"
    assert set(srv.keys) == {"Bearer sk-test-key"}
    again = teacher(srv.url, tmp_path / "cache.jsonl")
    assert again.ask(prompts, samples=2, temperature=0.7) == out and again.requests == 0, "a re-run pays for nothing"
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 10


def test_crash_loses_no_paid_call(server, tmp_path):
    dying = server(die_after=4)
    prompts = [f"q{i}" for i in range(8)]
    with pytest.raises(PrefkitError, match="401"):
        teacher(dying.url, tmp_path / "cache.jsonl").ask(prompts)
    cached = len((tmp_path / "cache.jsonl").read_text().splitlines())
    assert cached == dying.answered == 4, "every answer paid for is on disk"
    healthy = server()
    t = teacher(healthy.url, tmp_path / "cache.jsonl")
    assert len(t.ask(prompts)) == 8 and healthy.answered == 4, "the re-run asks only for the 4 missing"


def test_gives_up_after_retries(server, tmp_path):
    srv = server(fail_first=[500] * 10)
    with pytest.raises(PrefkitError, match="500"):
        teacher(srv.url, tmp_path / "c.jsonl", max_retries=2).ask(["q"])
    assert srv.calls == 3


def test_teacher_command_writes_the_papers_format(server, tmp_path, run_cli, monkeypatch):
    from tests.conftest import SHARED, need_shared

    need_shared(SHARED / "reasoning")
    srv = server()
    monkeypatch.setenv("PREFKIT_TEACHER_BASE_URL", srv.url)
    monkeypatch.setenv("PREFKIT_TEACHER_MODEL", "m")
    monkeypatch.setenv("PREFKIT_TEACHER_API_KEY", "sk-never-printed-123456789")
    out = tmp_path / "teacher.json"
    r = run_cli("cot", "teacher", "--dataset", "addsub", "--limit", "3", "--samples", "2", "--temperature", "0.7",
                "--out", out, "--data-root", SHARED)
    assert r.code == 0, r.err
    assert "sk-never" not in r.out + r.err and "sk-never" not in out.read_text()
    info = json.loads(r.out)
    assert info["questions"] == 3 and info["rationales"] == 6 and info["requests"] == 12  # 6 rationales + 6 answers
    doc = json.loads(out.read_text())
    first = next(iter(doc["data"].values()))
    assert len(first) == 2 and first[0]["reasoning_prompt"].endswith("Let's think step by step.")
    assert first[1]["completion_index"] == 1 and "arabic numerals" in first[0]["prompt"]
    ev = run_cli("cot", "eval", "--dataset", "addsub", "--predictions", out, "--data-root", SHARED)
    assert ev.code == 0 and json.loads(ev.out)["completions"] == 6
