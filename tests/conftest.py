"""Shared fixtures: a word-level tokenizer trained offline, CLI runner, small files, the shared data folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from prefkit import cli
from prefkit.data.table import PairTable, TableBuilder

ROOT = Path(__file__).resolve().parents[1]  # the project


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module (the benchmarks are scripts, not a package: their folder goes on
    sys.path so that they import each other, as when run)."""
    import importlib.util
    import sys

    folder = ROOT / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
SHARED = ROOT.parent / "shared" / "data"
HH = SHARED / "preference" / "hh-rlhf"


# tiny configs and settings the model tests share
TINY = ROOT / "configs" / "rm" / "tiny_gemma2.yaml"
MINILM = ROOT / "configs" / "rm" / "minilm_cpu.yaml"
FAST = ["template.max_length=96", "train.batch_size=4", "train.save_every=0", "train.log_every=1",
        "train.warmup_ratio=0.0", "train.learning_rate=3e-3"]


@pytest.fixture(scope="session", autouse=True)
def token_cache_in_tmp(tmp_path_factory):
    """data.token_cache=auto (the default) writes under $PREFKIT_TOKEN_CACHE: a folder of this test session,
    never the user's ~/.cache (child processes inherit it)."""
    from prefkit.rm.token_cache import ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(tmp_path_factory.mktemp("token_cache")))
        yield


def learnable(n: int, seed: int = 0) -> PairTable:
    """A: a clearly good answer, B: a bad one (or the reverse); ties: two equal answers. Bytes suffice."""
    rng = np.random.default_rng(seed)
    b = TableBuilder("learnable")
    for i in range(1, n + 1):
        label = str(rng.choice(["a", "b", "tie"]))
        good, bad = "Yes! Here is a clear and correct answer.", "no"
        a, bb = {"a": (good, bad), "b": (bad, good), "tie": ("maybe", "maybe")}[label]
        b.add(i, None, f"r{i}", [f"question {i % 7}?"], [a], [bb], label=label)
    return b.build()


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (tests read ../shared/data beside the project)")
    return path


@pytest.fixture
def word_tokenizer(tmp_path):
    """One token per whitespace-separated word, `[CLS] ... [SEP]` around a text: counts are easy by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = ["#", "Prompt:", "Response", "A:", "B:", "---", "[...]", "(empty)"]
    for prefix in "pabqr":
        words += [prefix] + [f"{prefix}{i}" for i in range(1, 201)]
        words += [f"{prefix}{k}x{i}" for k in range(1, 10) for i in range(1, 10)]
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, **{w: i for i, w in enumerate(words, start=4)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    tok.enable_padding(length=64)  # as some shipped tokenizers do: the renderer must turn it off
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def run_cli(capsys):
    def run(*args: str) -> CliResult:
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


LMSYS_HEADER = ["id", "model_a", "model_b", "prompt", "response_a", "response_b",
                "winner_model_a", "winner_model_b", "winner_tie"]


def lmsys_row(id, prompt, a, b, winner=(1, 0, 0), model_a="m1", model_b="m2") -> list:
    enc = lambda x: x if isinstance(x, str) else json.dumps(x)
    return [id, model_a, model_b, enc(prompt), enc(a), enc(b), *winner]


def write_lmsys(path: Path, rows: list[list], header=LMSYS_HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path
