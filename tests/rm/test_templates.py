"""Token budgets, by hand. With the word-level test tokenizer, one whitespace word is one token; the fixed
parts cost [CLS] [SEP] (2) + "# Prompt:" (2) + "# Response A:" (3) + "# Response B:" (3) = 10 tokens, the
separator "---", the ellipsis "[...]" and "(empty)" one token each."""

from __future__ import annotations

import numpy as np
import pytest

from prefkit.config import DataConfig, TemplateConfig
from prefkit.core.tokenizer import load_tokenizer
from prefkit.data import load_pairs, swap_ab
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import TableBuilder
from prefkit.rm import templates
from prefkit.rm.templates import Renderer, allocate
from tests.conftest import HH, need_shared

FIXED = 10


def words(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(1, n + 1))


def table(*rows):
    b = TableBuilder("mem")
    for i, (p, a, bb) in enumerate(rows, 1):
        b.add(i, None, str(i), p, a, bb, label="a")
    return b.build()


def render(word_tokenizer, row, **cfg):
    r = Renderer(load_tokenizer(str(word_tokenizer)), TemplateConfig(**cfg))
    out = r.render(table(row))
    return r, out


@pytest.mark.parametrize("needs,budget,weights,expected", [
    ([10, 50, 50], 20, [0.2, 0.4, 0.4], [4, 8, 8]),      # nobody satisfied: split by weight
    ([2, 50, 3], 20, [0.2, 0.4, 0.4], [2, 15, 3]),       # short parts give their unused share away
    ([1, 1, 1], 20, [0.2, 0.4, 0.4], [1, 1, 1]),         # under budget: everything
    ([10, 10, 10], 7, [1, 1, 1], [3, 2, 2]),             # 7/3 each: the odd token to the first
    ([0, 30, 30], 11, [0.2, 0.4, 0.4], [0, 6, 5]),
])
def test_allocate(needs, budget, weights, expected):
    assert allocate(needs, budget, weights) == expected
    assert sum(expected) == min(budget, sum(needs))


def test_row_under_budget_is_exact_and_unpadded(word_tokenizer):
    r, out = render(word_tokenizer, (["p1 p2 p3"], [words("a", 5)], [words("b", 4)]), max_length=512)
    assert out.lengths.tolist() == [FIXED + 3 + 5 + 4]  # the tokenizer file pads to 64: turned off
    assert r.decode(out.input_ids[0]) == ("[CLS] # Prompt: p1 p2 p3 # Response A: a1 a2 a3 a4 a5 "
                                         "# Response B: b1 b2 b3 b4 [SEP]")


def test_single_turn_over_budget_fills_it_exactly(word_tokenizer):
    r, out = render(word_tokenizer, ([words("p", 10)], [words("a", 50)], [words("b", 50)]), max_length=30)
    assert out.lengths.tolist() == [30]
    # text budget 20 split 4/8/8; each part keeps its head and tail around [...] (head gets the odd token)
    assert r.decode(out.input_ids[0]) == ("[CLS] # Prompt: p1 p2 [...] p10 # Response A: a1 a2 a3 a4 [...] a48 a49 a50 "
                                         "# Response B: b1 b2 b3 b4 [...] b48 b49 b50 [SEP]")


def test_unused_share_moves_to_the_long_part(word_tokenizer):
    r, out = render(word_tokenizer, (["p1 p2"], [words("a", 50)], ["b1 b2 b3"]), max_length=30)
    assert out.lengths.tolist() == [30]
    text = r.decode(out.input_ids[0])
    assert "a1 a2 a3 a4 a5 a6 a7 [...] a44 a45 a46 a47 a48 a49 a50" in text  # 15 tokens: 7 + [...] + 7


def test_head_fraction(word_tokenizer):
    r, out = render(word_tokenizer, (["p"], [words("a", 50)], ["b"]), max_length=FIXED + 2 + 11, head_fraction=1.0)
    assert "a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 [...] # Response B" in r.decode(out.input_ids[0])


def test_multi_turn_keeps_first_and_last_turns_first(word_tokenizer):
    prompt = [words(f"p{k}x", 3) for k in range(1, 6)]  # 5 turns of 3 words: 15 + 4 separators = 19
    resp = [words(f"r{k}x", 3) for k in range(1, 6)]
    # text budget 30 split 6/12/12. Prompt: first and last turn around "--- [...] ---" (3), 3 tokens left for
    # the two turns (2 + 1): "p1x1 [...]" and "p5x1".
    r, out = render(word_tokenizer, (prompt, resp, resp), max_length=FIXED + 30)
    text = r.decode(out.input_ids[0])
    assert out.lengths.tolist() == [FIXED + 30]
    prompt_text = text.split("# Response A:")[0]
    assert prompt_text.split() == ["[CLS]", "#", "Prompt:", "p1x1", "[...]", "---", "[...]", "---", "p5x1"]
    resp_a = text.split("# Response A:")[1].split("# Response B:")[0]
    # 12 tokens for 5 turns of 3: first (3) + --- + [...] + --- + a middle turn cut + --- + last (3)
    # the most recent middle turn that does not fit whole gets what is left (2 tokens: "r4x1 [...]")
    assert resp_a.split() == ["r1x1", "r1x2", "r1x3", "---", "[...]", "---", "r4x1", "[...]", "---",
                              "r5x1", "r5x2", "r5x3"]


def test_multi_turn_under_budget_keeps_everything(word_tokenizer):
    r, out = render(word_tokenizer, (["q1", "q2"], ["a1", None], ["b1", ""]), max_length=64)
    assert r.decode(out.input_ids[0]) == ("[CLS] # Prompt: q1 --- q2 # Response A: a1 --- (empty) "
                                         "# Response B: b1 --- (empty) [SEP]")
    assert out.lengths.tolist() == [FIXED + 3 + 3 + 3]


def test_budget_too_small_is_a_clear_error(word_tokenizer):
    from prefkit.errors import PrefkitError

    with pytest.raises(PrefkitError, match="max_length=12"):
        Renderer(load_tokenizer(str(word_tokenizer)), TemplateConfig(max_length=12))


def test_swap_renders_b_first(word_tokenizer):
    t = table((["q"], ["a1 a2"], ["b1"]))
    r = Renderer(load_tokenizer(str(word_tokenizer)), TemplateConfig())
    swapped = r.render(t, swap=True).input_ids[0]
    assert np.array_equal(swapped, r.render(swap_ab(t)).input_ids[0])
    assert "# Response A: b1 # Response B: a1 a2" in r.decode(swapped)


@pytest.mark.parametrize("max_length", [64, 256, 512])
def test_no_row_exceeds_budget_minilm(max_length):
    t = make_pairs(300, seed=3, long_fraction=0.2, multi_turn_fraction=0.4)
    r = Renderer(load_tokenizer("minilm"), TemplateConfig(max_length=max_length))
    lengths = r.render(t).lengths
    assert lengths.max() <= max_length
    assert (lengths == max_length).sum() > 0


def test_character_cut_changes_no_token(monkeypatch):
    """Long texts are cut in characters before tokenising; the rendered ids must be the same as without."""
    t = make_pairs(200, seed=5, long_fraction=0.3)
    cfg = TemplateConfig(max_length=256)
    fast = Renderer(load_tokenizer("minilm"), cfg).render(t)
    assert fast.cut_texts > 20
    monkeypatch.setattr(templates, "CHARS_PER_TOKEN_CAP", 10**9)
    slow = Renderer(load_tokenizer("minilm"), cfg).render(t)
    assert slow.cut_texts == 0
    assert all(np.array_equal(x, y) for x, y in zip(fast.input_ids, slow.input_ids))


def test_hh_rlhf_rows_within_budget():
    t = load_pairs(need_shared(HH / "harmless-base.test.jsonl.gz"), DataConfig())
    r = Renderer(load_tokenizer("minilm"), TemplateConfig(max_length=256))
    lengths = r.render(t).lengths
    assert len(lengths) == len(t) and lengths.max() == 256
    single = t.frame["prompt"].map(len).to_numpy() == 1
    # one-turn rows over budget fill it to the token
    from prefkit.data.check import token_counts

    need = sum(token_counts(r.tok, t, 10**9)[0].values())
    over = single & (need > r.text_budget)
    assert over.sum() > 10 and (lengths[over] == 256).all()


def test_single_and_judge_layouts_keep_the_budget():
    """bt renders each response alone; lm_tokens ends every row with the question, no closing specials."""
    tok = load_tokenizer("bytes")
    table = make_pairs(60, seed=2)
    cfg = TemplateConfig(max_length=200)
    single = Renderer(tok, cfg, "single")
    for side in "ab":
        ids = single.render_response(table, side).input_ids
        assert max(len(x) for x in ids) <= 200 and min(len(x) for x in ids) > 20
    assert "# Response:" in single.decode(single.render_response(table, "a").input_ids[0])
    judge = Renderer(tok, cfg, "judge")
    question = tok.encode(cfg.question, add_special_tokens=False).ids
    for row in judge.render(table).input_ids:
        assert len(row) <= 200 and list(row[-len(question):]) == question
    with pytest.raises(ValueError, match="render_response"):
        single.render(table)
