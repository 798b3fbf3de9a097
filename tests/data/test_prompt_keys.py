"""A prompt's grouping key (`normalise_prompt`): copies that differ by invisible format characters, full-width
letters (NFKC), case or whitespace are one prompt, in the folds and in `data check`'s count of distinct prompts."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import polars as pl

from prefkit.data.check import (
    NFKC_STABLE,
    changed_by_nfkc,
    compatible_prompts,
    distinct_prompts,
    normalised_prompts,
    summarise,
)
from prefkit.data.folds import assign_folds
from prefkit.data.table import FORMAT_CHARS, PairTable, TableBuilder, normalise_prompt

CHARS = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF]
FULL_WIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


def variants(text: str) -> list[str]:
    """20 copies of `text` as users paste them: zero-width characters, byte-order marks, full-width forms, case
    and whitespace."""
    words = text.split()

    def inside(mark: str) -> str:  # within every word
        return " ".join(w[:1] + mark + w[1:] for w in words)

    return [
        text, text.upper(), f"\ufeff{text}", f"{text}\u200b", inside("\u200b"), inside("\u200c"), inside("\u200d"),
        inside("\u2060"), text.translate(FULL_WIDTH), text.upper().translate(FULL_WIDTH),
        f"\ufeff{text.translate(FULL_WIDTH)}\u200b", "  ".join(words), f"\t{text}\n", "\u3000".join(words),
        "\u00a0".join(words), text.title(), f"\u00ad{text}", text.replace("?", "\uff1f"),
        " \u200b ".join(words), f"\ufeff\ufeff{text.swapcase()}\u2060",
    ]


def test_format_chars_are_unicodes_format_characters():
    cf = [c for c in CHARS if unicodedata.category(c) == "Cf"]
    assert [c for c in CHARS if re.fullmatch(FORMAT_CHARS, c)] == cf
    assert pl.Series(CHARS).filter(pl.Series(CHARS).str.contains(f"^{FORMAT_CHARS}$")).to_list() == cf


def test_copies_of_a_prompt_normalise_alike():
    copies = variants("What is the capital of France?")
    assert len(copies) == 20 and len(set(copies)) == 20
    assert {normalise_prompt([c]) for c in copies} == {"what is the capital of france?"}
    assert normalise_prompt(["\u200b", "  Hi\u200d ", None, ""]) == "hi", "a turn made empty is dropped"
    assert normalise_prompt(["e\u200b\u0301"]) == normalise_prompt(["\u00e9"]), "format characters go before NFKC"


def test_twenty_copies_land_in_one_fold():
    b = TableBuilder("mem")
    rng = np.random.default_rng(7)
    others = [f"Tell me about topic {k}, please." for k in range(40)]
    texts = variants("How do I sort a list in Python?") + [o for o in others for _ in range(2)]
    order = rng.permutation(len(texts))
    for row, i in enumerate(order, start=1):
        b.add(row, None, f"r{row}", [texts[i]], ["x"], ["y"], label=str(rng.choice(["a", "b", "tie"])))
    table = b.build()
    copies = [i < 20 for i in order]
    for seed in (0, 1, 2):
        folds = assign_folds(table, 5, seed)
        assert len(set(folds[copies])) == 1, f"seed {seed}: the copies in folds {sorted(set(folds[copies]))}"


def test_nfkc_stable_characters_are_left_alone_by_nfkc():
    """A text of `NFKC_STABLE` characters only is its own NFKC form (the quick check: no character that NFKC
    changes, none that composes with the one before it, none with a combining class), and has no format character."""
    seconds = {int(d.split()[1], 16) for c in CHARS if len((d := unicodedata.decomposition(c)).split()) == 2
               and not d.startswith("<")}
    seconds |= set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # Hangul vowels and final consonants
    stable = [c for c in CHARS if re.fullmatch(f"[{NFKC_STABLE}]", c)]
    assert len(stable) > 80_000
    bad = [c for c in stable if unicodedata.normalize("NFKC", c) != c or unicodedata.combining(c) or ord(c) in seconds
           or unicodedata.category(c) == "Cf"]
    assert bad == []
    assert pl.Series(CHARS).str.contains(f"^[{NFKC_STABLE}]$").sum() == len(stable), "polars reads the class alike"


def polars_normalised(prompts: list[list]) -> list[str]:
    f = pl.DataFrame({"prompt": prompts}, schema={"prompt": pl.List(pl.String)})
    changed = f.select(changed_by_nfkc()).to_series()
    made = f.with_columns(pl.when(changed).then(compatible_prompts()).otherwise(pl.col("prompt")))
    return made.select(normalised_prompts()).to_series().to_list()


def test_polars_normalises_every_character_as_python():
    """`data check` counts distinct prompts in polars: the same key as the folds' for every character Python's
    Unicode knows, alone and after a letter it may compose with."""
    known = [c for c in CHARS if unicodedata.category(c) != "Cn"]
    for turn in (lambda c: c, lambda c: f"E{c}\u0301 X"):
        prompts = [[turn(c) for c in known[i:i + 64]] for i in range(0, len(known), 64)]  # 64 turns a prompt
        got = polars_normalised(prompts)
        wrong = [(p, g) for p, g in zip(prompts, got) if g != normalise_prompt(p)]
        assert wrong == [], wrong[:2]


def test_distinct_prompts_counts_the_copies_once():
    b = TableBuilder("t")
    texts = variants("Is 0.1 + 0.2 == 0.3?") + variants("Don't panic: why?") + ["Unique one.", "Another, unique?"]
    for row, text in enumerate(texts, start=1):
        turns = [text, "And, then?"] if row % 2 else ["and, then\uff1f", text]
        b.add(row, None, str(row), turns, ["x", "z"], ["y", "z"], "a")
    by_rows = b.build()
    frame = by_rows.polars()
    assert distinct_prompts(frame) == len({normalise_prompt(p) for p in by_rows.frame["prompt"]}) == 4 + 2
    assert summarise(PairTable(source="t", polars=frame)) == summarise(by_rows)
