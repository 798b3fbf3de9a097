"""The token cache (`prefkit.rm.token_cache`): a hit gives the ids of a fresh render without tokenising; every
change of tokenizer, template setting, layout, order or text misses; a damaged shard is a miss, rewritten; a
second `prefkit cv` on the same data renders nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prefkit.config import TemplateConfig
from prefkit.core.tokenizer import load_tokenizer
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.rm import token_cache
from prefkit.rm.templates import Renderer
from tests.conftest import FAST, TINY, learnable, lmsys_row, write_lmsys


def same(a, b) -> bool:
    return len(a.input_ids) == len(b.input_ids) and all(np.array_equal(x, y) for x, y in zip(a.input_ids, b.input_ids))


def no_tokenising(monkeypatch):
    def refuse(self, texts):
        raise AssertionError(f"tokenised {len(texts)} texts: the cache should have served them")

    monkeypatch.setattr(Renderer, "encode", refuse)


def shards(root):
    return sorted(root.rglob("*.parquet"))


@pytest.mark.parametrize("layout", ["pair", "single", "judge"])
def test_a_hit_gives_the_fresh_ids_without_tokenising(tmp_path, monkeypatch, layout):
    """MiniLM on long texts (some cut in characters) and the learnable table (the same texts in several rows)."""
    tok = load_tokenizer("minilm")
    cfg = TemplateConfig(max_length=256)
    cuts = []
    for t in (make_pairs(120, seed=5, long_fraction=0.3), learnable(40)):
        sides = ["a", "b"] if layout == "single" else [False, True]  # a response each, or the pair and its swap
        draw = (lambda r, s: r.render_response(t, s)) if layout == "single" else (lambda r, s: r.render(t, swap=s))
        fresh = {s: draw(Renderer(tok, cfg, layout), s) for s in sides}
        first = Renderer(tok, cfg, layout, cache=tmp_path)
        written = {sides[0]: draw(first, sides[0])}
        assert first.counts == {"from_cache": 0, "rendered": len(t)}
        written[sides[1]] = draw(first, sides[1])
        with monkeypatch.context() as m:
            no_tokenising(m)
            again = Renderer(tok, cfg, layout, cache=tmp_path)
            for s in sides:
                hit = draw(again, s)
                assert same(hit, fresh[s]) and same(written[s], fresh[s])
                assert hit.cut_texts == written[s].cut_texts == fresh[s].cut_texts
                assert all(x.dtype == np.int32 and x.flags.writeable for x in hit.input_ids)
            assert again.counts == {"from_cache": 2 * len(t), "rendered": 0}
        cuts.append(fresh[sides[0]].cut_texts)
    assert cuts[0] > 10 and cuts[1] == 0, "long texts are cut in characters, and the cache keeps the count"


def test_each_change_of_the_key_misses(tmp_path):
    tok = load_tokenizer("bytes")
    t = make_pairs(30, seed=1)
    cfg = TemplateConfig(max_length=200)
    Renderer(tok, cfg, cache=tmp_path).render(t)

    def rendered(tokenizer=tok, layout="pair", swap=False, table=t, **changes) -> int:
        r = Renderer(tokenizer, TemplateConfig(**{"max_length": 200, **changes}), layout, cache=tmp_path)
        if layout == "single":
            r.render_response(table, "a")
        else:
            r.render(table, swap=swap)
        return r.counts["rendered"]

    assert rendered() == 0, "the same inputs: all from the cache"
    other = load_tokenizer("bytes")
    other.add_tokens(["zzz"])  # a tokenizer that renders these rows alike, but is another tokenizer
    assert rendered(tokenizer=other) == 30
    assert rendered(max_length=201) == 30
    assert rendered(prompt_share=0.3) == 30
    assert rendered(response_a_header="\n\n# First:\n") == 30
    assert rendered(swap=True) == 30
    assert rendered(layout="judge") == 30
    assert rendered(layout="single") == 30
    frame = t.frame.copy()
    frame.at[7, "response_b"] = frame.at[7, "response_b"][:-1] + [frame.at[7, "response_b"][-1] + "!"]
    assert rendered(table=PairTable(frame, "changed")) == 1, "one row's text changed: that row alone"
    moved = Renderer(tok, TemplateConfig(max_length=200, tokenizer="/elsewhere/tokenizer.json"), cache=tmp_path)
    moved.render(t)
    assert moved.counts["rendered"] == 0, "the tokenizer's JSON is the key, not where it was named from"


def test_a_damaged_shard_is_a_miss_and_is_rewritten(tmp_path, monkeypatch):
    tok = load_tokenizer("bytes")
    cfg = TemplateConfig(max_length=200)
    t = make_pairs(25, seed=4)
    fresh = Renderer(tok, cfg).render(t)
    Renderer(tok, cfg, cache=tmp_path).render(t)
    (shard,) = shards(tmp_path)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated: a killed writer that bypassed the rename, a full disk
    junk = shard.with_name("0" * 32 + ".parquet")
    junk.write_bytes(b"not parquet at all")
    logged = []
    monkeypatch.setattr(token_cache, "log", logged.append)
    r = Renderer(tok, cfg, cache=tmp_path)
    assert same(r.render(t), fresh) and r.counts == {"from_cache": 0, "rendered": 25}
    assert not junk.exists() and shards(tmp_path) == [shard] and shard.read_bytes() != data[: len(data) // 2]
    assert sum("cannot be read" in m for m in logged) == 2
    with monkeypatch.context() as m:
        no_tokenising(m)
        again = Renderer(tok, cfg, cache=tmp_path)
        assert same(again.render(t), fresh) and again.counts["from_cache"] == 25


def test_a_shard_of_other_settings_is_not_read(tmp_path):
    """A shard copied into another settings' folder carries its own key: refused, not served."""
    tok = load_tokenizer("bytes")
    t = make_pairs(10, seed=2)
    a = Renderer(tok, TemplateConfig(max_length=200), cache=tmp_path)
    a.render(t)
    b = Renderer(tok, TemplateConfig(max_length=300), cache=tmp_path)
    b.cache.folder.mkdir(parents=True)
    (src,) = shards(tmp_path)
    (b.cache.folder / src.name).write_bytes(src.read_bytes())
    b.render(t)
    assert b.counts == {"from_cache": 0, "rendered": 10}
    assert max(len(x) for x in b.render(t).input_ids) > 200, "rendered at 300 tokens, not served at 200"


def test_a_cache_that_cannot_be_written_is_said_and_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    logged = []
    monkeypatch.setattr(token_cache, "log", logged.append)
    tok = load_tokenizer("bytes")
    t = make_pairs(10, seed=3)
    r = Renderer(tok, TemplateConfig(max_length=200), cache=blocker / "tokens")
    assert same(r.render(t), Renderer(tok, TemplateConfig(max_length=200)).render(t))
    r.render(t, swap=True)
    assert r.counts == {"from_cache": 0, "rendered": 20}
    assert len(logged) == 1 and "cannot write" in logged[0], "said once"


def test_the_config_setting_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(token_cache.ENV, str(tmp_path / "env"))
    assert token_cache.folder_for("auto") == tmp_path / "env"
    monkeypatch.delenv(token_cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert token_cache.folder_for("auto") == tmp_path / "xdg" / "prefkit" / "tokens"
    assert token_cache.folder_for(None) is None and token_cache.folder_for("off") is None
    assert token_cache.folder_for(str(tmp_path / "mine")) == tmp_path / "mine"


def test_a_second_cv_renders_nothing(run_cli, tmp_path):
    rows = []
    for i in range(24):
        good, bad = "Yes! Here is a clear and correct answer." + " More." * (i % 5), "no" + " no" * (i % 4)
        a, b, winner = [(good, bad, (1, 0, 0)), (bad, good, (0, 1, 0)), ("maybe", "perhaps", (0, 0, 1))][i % 3]
        rows.append(lmsys_row(f"r{i}", [f"question {i}?"], [a], [b], winner))
    data = write_lmsys(tmp_path / "train.csv", rows)
    args = [TINY, f"data.train={data}", f"data.token_cache={tmp_path / 'tokens'}", "cv.n_splits=2", *FAST,
            "train.probe_rows=0", "train.swap_augment=both", "quantization.mode=none"]
    first = run_cli("cv", *args, f"output_dir={tmp_path / 'one'}")
    assert first.code == 0, first.err
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())["tokens"]
    # fold 0 renders every row and its swap (training rows, then validation rows); fold 1 finds them all
    assert m1["rendered"] == 2 * 24 and m1["from_cache"] > 0
    second = run_cli("cv", *args, f"output_dir={tmp_path / 'two'}")
    assert second.code == 0, second.err
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())["tokens"]
    assert m2 == {"from_cache": m1["from_cache"] + m1["rendered"], "rendered": 0}
    assert f"tokens: {m2['from_cache']} sequences from cache, 0 rendered" in second.err
    off = run_cli("cv", *args, "data.token_cache=null", f"output_dir={tmp_path / 'off'}")
    assert off.code == 0, off.err
    m3 = json.loads((tmp_path / "off" / "metrics.json").read_text())["tokens"]
    assert m3 == {"from_cache": 0, "rendered": m2["from_cache"]} and "data.token_cache is off" in off.err
