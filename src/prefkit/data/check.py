"""`prefkit data check`: what is in a preference file, before anything trains on it."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from prefkit.data.table import (
    FORMAT_CHARS,
    LABELS,
    PY_WHITESPACE,
    SWAPPED_LABEL,
    TURN_COLUMNS,
    PairTable,
    normalise_prompt,
)
from prefkit.errors import PrefkitError

if TYPE_CHECKING:
    import pandas as pd

PERCENTILES = (50, 90, 99)


def _stats(lengths: dict[str, Any]) -> dict[str, dict[str, float]]:
    """p50, p90, p99 (interpolated linearly, as numpy's percentile), max and mean of each column of per-row
    lengths (polars Series or numpy arrays); {} for a column of no rows."""
    import polars as pl

    f, out = pl.DataFrame(lengths), {}
    for c in f.columns:
        v = pl.col(c)
        row = f.select(*(v.quantile(q / 100, "linear").alias(f"p{q}") for q in PERCENTILES),
                       v.max().cast(pl.Float64).alias("max"), v.mean().alias("mean")).row(0, named=True)
        out[c] = {k: float(x) for k, x in row.items()} if f.height else {}
    return out


def _class(chars: str) -> str:
    return "[" + "".join(f"\\u{ord(c):04x}" for c in chars) + "]"


_WS_RUN = _class(PY_WHITESPACE) + "+"
# What `str.split()` + " ".join() changes: a run of two or more, or one whitespace that is not a space. A lone
# space, most of the whitespace in text, is then no match: replacing each with itself took 4 times as long.
_WS_TO_SPACE = f"{_class(PY_WHITESPACE)}{{2,}}|{_class(PY_WHITESPACE.replace(' ', ''))}"


# Text that NFKC leaves as it is whatever surrounds it, and no format character: ASCII and the letters, punctuation
# and ideographs of the common scripts (Latin, Greek, Cyrillic, Hebrew, Arabic, Devanagari, Thai, kana, CJK,
# Hangul), and emoji (`tests/data/test_prompt_keys.py` asks unicodedata of each character). A regex class.
NFKC_STABLE = (r"\x00-\x7f\u00bf-\u0131\u0134-\u013e\u0141-\u0148\u014a-\u017e\u0388-\u03cf\u0400-\u0482"
               r"\u05d0-\u05ea\u0621-\u064a\u0900-\u093b\u0e01-\u0e32\u1ea0-\u1ef9\u2012-\u2016\u2018-\u2023"
               r"\u3001-\u3029\u3041-\u3096\u30a0-\u30fe\u3400-\ua66e\uac00-\ud7a3\U0001f252-\U0001fbef"
               r"\U00020000-\U0002f7ff")


# The passes of the distinct-prompt count (`distinct_prompts`), public on purpose: tests hold each to
# `table.normalise_prompt`, Python's, on awkward prompts.


def changed_by_nfkc():
    """Whether a prompt has a character outside `NFKC_STABLE`: one that NFKC or the removal of format characters
    may change. (An ASCII turn, most of them, is not searched: the length test is 10 times as fast.)"""
    import polars as pl

    e = pl.element()
    return pl.col("prompt").list.eval(e.filter(e.str.len_bytes() != e.str.len_chars())
                                      .str.contains(f"[^{NFKC_STABLE}]")).list.any()


def compatible_prompts():
    """`table.normalise_prompt`'s first steps: each turn without its format characters, in NFKC form. Polars' NFKC
    took 0.5 s a 100k prompts of 350 characters (Python's, which looks before it changes anything, 0.05 s): it is
    given only the prompts `changed_by_nfkc`."""
    import polars as pl

    e = pl.element()
    return pl.col("prompt").list.eval(e.str.replace_all(FORMAT_CHARS, "").str.normalize("NFKC"))


def normalised_prompts():
    """`table.normalise_prompt`'s last steps, on prompts that NFKC leaves as they are: each turn lower-cased, its
    whitespace runs made one space (Python's whitespace, as `str.split()` sees it), the turns not then empty
    joined by a space."""
    import polars as pl

    e = pl.element()
    turns = pl.col("prompt").list.eval(e.filter(e.is_not_null()).str.to_lowercase().str.replace_all(_WS_TO_SPACE, " ")
                                       .str.strip_chars(" "))
    return turns.list.eval(e.filter(e != "")).list.join(" ")


# Characters a prompt's normalisation keeps as many of as its NFKC form holds: none is whitespace or a format
# character, and no character lower-cases to one of them (`tests/data/test_fast.py` asks Python and polars of
# every character).
KEPT_BY_NORMALISING = ".,?:'"


def _kept_counts():
    import polars as pl

    e = pl.element()
    return [pl.col("prompt").list.eval(e.str.count_matches(ch, literal=True)).list.sum().alias(ch)
            for ch in KEPT_BY_NORMALISING]


def distinct_prompts(f) -> int:
    """The number of distinct `table.normalise_prompt` of the prompts. Exact copies (the same turns, nulls where
    nulls are) normalise alike, so each prompt is looked at once: on benchmarks/data_scale.py's HH-RLHF rows
    repeated to 150,000 (`--hh`), 4,664 prompts in 0.05 s of CPU, against 0.4 s for looking at every row.
    Of those, only the ones that could share a normalised prompt are normalised: two prompts whose NFKC forms
    hold different numbers of a character in `KEPT_BY_NORMALISING` cannot normalise alike. How many that spares
    depends on the text: on the synthetic 100k rows, whose prompts are cut from a small phrase bank, only 12%
    (0.13 s against 0.18 s for normalising every prompt)."""
    import polars as pl

    f = f.select(pl.col("prompt").unique())
    prompts = f.lazy()
    # The prompts that NFKC may change, made NFKC apart from the others: a filter of every row copies its text
    changed = prompts.select(changed_by_nfkc().alias("changed")).collect(engine="streaming").to_series()
    rows = changed.arg_true()
    compatible = prompts.with_columns(changed).filter(pl.col("changed")).select(compatible_prompts()).collect()
    counts = prompts.select(_kept_counts()).collect(engine="streaming")
    if len(rows):
        theirs = compatible.select(_kept_counts())
        counts = counts.with_columns(counts[c].scatter(rows, theirs[c]) for c in counts.columns)
    shared = counts.select(pl.struct(pl.all()).is_duplicated().alias("shared")).to_series()
    # In the streaming engine every core normalises its own chunks of rows; an eager select of one expression on
    # one column runs on one core (with the counts below also streamed, the summary of a million rows on 2 cores
    # took 3.1 s against 4.8 s: benchmarks/data_scale.py).
    normalised = pl.concat([
        prompts.with_columns(shared & ~changed).filter(pl.col("shared")).select(normalised_prompts()),
        compatible.lazy().with_columns(shared.gather(rows)).filter(pl.col("shared")).select(normalised_prompts()),
    ]).collect(engine="streaming").to_series()
    return f.height - int(shared.sum()) + normalised.n_unique()


def _empty(column: str):
    """Every turn null or whitespace (none at all counts as empty, as Python's all([]) does)."""
    import polars as pl

    e = pl.element()
    return pl.col(column).list.eval(e.is_null() | e.str.contains(f"^{_WS_RUN[:-1]}*$")).list.all()


def _chars(column: str):
    import polars as pl

    return pl.col(column).list.eval(pl.element().str.len_chars()).list.sum().fill_null(0)


def token_counts(tokenizer: Any, table: PairTable, cap_chars: int, chunk_rows: int = 2048) -> tuple[dict[str, np.ndarray], int]:
    """Tokens of each part (all its turns), without special tokens, counted in chunks to bound memory. A text
    longer than `cap_chars` is counted on its first and last `cap_chars / 2` characters only, as rendering cuts
    it (a 50 MB cell would otherwise take GBs in the tokenizer): its count is a lower bound, and far above any
    budget. Python strings are made a chunk at a time (`PairTable.turns`). Returns the counts and how many
    texts were capped."""
    from tqdm.auto import tqdm

    n = len(table)
    counts = {c: np.zeros(n, dtype=np.int64) for c in TURN_COLUMNS}
    half, capped = cap_chars // 2, 0
    with tqdm(total=n, desc="count tokens", unit="row", leave=False, mininterval=1.0) as bar:
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            for c in TURN_COLUMNS:
                texts, owner = [], []
                for k, turns in enumerate(table.turns(c, start, stop)):
                    for t in turns:
                        if t:
                            if len(t) > cap_chars:
                                t, capped = t[:half] + t[-half:], capped + 1
                            texts.append(t)
                            owner.append(start + k)
                enc = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
                np.add.at(counts[c], np.array(owner, dtype=np.int64), [len(e.ids) for e in enc])
            bar.update(stop - start)
    return counts, capped


def _by_columns(f) -> dict[str, Any]:
    """The counts of a table held by polars, a column at a time (no Python string of a turn is made)."""
    import polars as pl

    col = f.lazy().select(  # (streaming: each core counts its own chunks of rows; the lengths' percentiles after)
        label=pl.col("label").fill_null("none"),
        turns=pl.col("prompt").list.len(),
        null_turns=pl.sum_horizontal(pl.col(c).list.eval(pl.element().is_null()).list.sum() for c in TURN_COLUMNS),
        empty_a=_empty("response_a"),
        empty_b=_empty("response_b"),
        identical=pl.col("response_a").eq_missing(pl.col("response_b")),
        **{f"chars_{c}": _chars(c) for c in TURN_COLUMNS},
    ).collect(engine="streaming")
    return {"labels": dict(zip(*col["label"].value_counts().to_dict(as_series=False).values())),
            "turns": dict(zip(*col["turns"].value_counts().to_dict(as_series=False).values())),
            "null_turns": col["null_turns"].sum(), "empty_a": col["empty_a"].sum(), "empty_b": col["empty_b"].sum(),
            "identical": col["identical"].sum(), "ids": f["id"].n_unique(), "prompts": distinct_prompts(f),
            "chars": {c: col[f"chars_{c}"] for c in TURN_COLUMNS}}


def _is_empty(turns: list) -> bool:
    return all(t is None or not t.strip() for t in turns)


def _by_rows(f: pd.DataFrame) -> dict[str, Any]:
    """The same counts of a table held by pandas (read by rows, or built by hand), row by row in Python: faster
    than copying its text into Arrow first. Each distinct prompt is normalised once, as in `distinct_prompts`."""
    prompts = {normalise_prompt(p) for p in {tuple(p) for p in f["prompt"]}}
    return {"labels": Counter(f["label"].fillna("none")), "turns": Counter(f["prompt"].map(len)),
            "null_turns": sum(t is None for c in TURN_COLUMNS for turns in f[c] for t in turns),
            "empty_a": f["response_a"].map(_is_empty).sum(), "empty_b": f["response_b"].map(_is_empty).sum(),
            "identical": (f["response_a"] == f["response_b"]).sum(), "ids": f["id"].nunique(), "prompts": len(prompts),
            "chars": {c: f[c].map(lambda ts: sum(len(t) for t in ts if t)).to_numpy() for c in TURN_COLUMNS}}


def summarise(table: PairTable, renderer: Any | None = None) -> dict:
    """Counts and length percentiles (by columns in polars when polars holds the table, else by rows); token
    lengths too when given a renderer (`prefkit.rm.templates.Renderer`, duck-typed: data sits below the reward
    model)."""
    n = len(table)
    k = _by_columns(table.columnar) if table.columnar is not None else _by_rows(table.frame)
    labels, turns = k["labels"], k["turns"]
    summary: dict[str, Any] = {
        "file": table.source,
        "rows": n,
        "skipped_rows": len(table.skipped),
        "skipped_ids": [p.id for p in table.skipped],
        "repaired_surrogate_cells": table.repaired_cells,
        "labels": {x: int(labels.get(x, 0)) for x in (*LABELS, "none")},
        "label_share": {x: round(labels.get(x, 0) / n, 4) if n else 0.0 for x in LABELS},
        "turns_per_row": {str(x): int(v) for x, v in sorted(turns.items())},
        "null_turns": int(k["null_turns"]),
        "empty_response_a": int(k["empty_a"]),
        "empty_response_b": int(k["empty_b"]),
        "identical_a_b": int(k["identical"]),
        "duplicate_ids": n - int(k["ids"]),
        "distinct_prompts": int(k["prompts"]),
        "duplicate_prompt_rows": n - int(k["prompts"]),
        "chars": _stats(k["chars"]),
    }
    if renderer is not None:
        cap = 2 * renderer.char_cap
        counts, capped = token_counts(renderer.tok, table, cap)
        summary["tokens"] = _stats({**counts, "row_total": sum(counts.values())})
        summary["tokens_capped_texts"] = capped
        summary["tokens_cap_chars"] = cap
        summary["max_length"] = renderer.cfg.max_length
        summary["text_budget"] = renderer.text_budget
        # a row's sequences: the pair in one (pair, judge), or prompt + one response each (single: the bt head)
        sequences = ([("prompt", "response_a"), ("prompt", "response_b")] if renderer.layout == "single"
                     else [("prompt", "response_a", "response_b")])
        over = np.zeros(n, dtype=bool)
        for parts in sequences:
            over |= sum(counts[c] for c in parts) > renderer.text_budget
        summary["sequences_per_row"] = len(sequences)
        summary["rows_over_budget"] = int(over.sum())
    return summary


def format_summary(s: dict) -> str:
    lines = [f"{s['file']}: {s['rows']} rows"]
    if s["skipped_rows"]:
        lines.append(f"  skipped bad rows: {s['skipped_rows']}")
    lab = s["labels"]
    lines.append("  labels: " + "  ".join(f"{k} {lab[k]} ({s['label_share'].get(k, 0):.1%})" for k in LABELS)
                 + (f"  unlabelled {lab['none']}" if lab["none"] else ""))
    lines.append("  turns per row: " + "  ".join(f"{k}: {v}" for k, v in s["turns_per_row"].items()))
    lines.append(f"  empty responses: A {s['empty_response_a']}  B {s['empty_response_b']}   null turns: {s['null_turns']}"
                 f"   identical A/B: {s['identical_a_b']}")
    lines.append(f"  distinct prompts: {s['distinct_prompts']}   rows repeating a prompt: {s['duplicate_prompt_rows']}"
                 f"   duplicate ids: {s['duplicate_ids']}")
    if s["repaired_surrogate_cells"]:
        lines.append(f"  cells with lone UTF-16 surrogates (replaced by U+FFFD): {s['repaired_surrogate_cells']}")
    for unit in ("chars", "tokens"):
        if unit not in s:
            continue
        lines.append(f"  length in {unit}:" + "".join(f"{'':>3}{k:>8}" for k in ("p50", "p90", "p99", "max")))
        for part, st in s[unit].items():
            lines.append(f"    {part:<12}" + "".join(f"{st.get(k, 0):>11.0f}" for k in ("p50", "p90", "p99", "max")))
    if s.get("tokens_capped_texts"):
        lines.append(f"  token counts of {s['tokens_capped_texts']} texts longer than {s['tokens_cap_chars']} characters "
                     "read their head and tail only, as rendering does: lower bounds")
    if "rows_over_budget" in s:
        per = " a sequence, prompt + one response" if s.get("sequences_per_row", 1) > 1 else ""
        lines.append(f"  rows truncated at template.max_length={s['max_length']} ({s['text_budget']} text tokens{per}): "
                     f"{s['rows_over_budget']}")
    return "\n".join(lines)


def check_classes(train: PairTable, swap_augment: str) -> None:
    """Refuse a training set with one class (after A/B swap augmentation, which turns every A into a B too):
    a classifier would learn to give one answer, and scikit-learn's cannot even be fitted on it."""
    seen = set(train.frame["label"].dropna())  # pseudo-labelled rows have none
    if swap_augment != "none":
        seen |= {SWAPPED_LABEL[x] for x in seen}
    if len(seen) < 2:
        only = next(iter(seen), "none")
        hint = " (train.swap_augment=random or both would add the mirrored class)" if only in ("a", "b") else ""
        raise PrefkitError(f"{train.source}: every one of the {len(train)} training rows is labelled {only!r}"
                           f"{' after swap augmentation' if swap_augment != 'none' else ''}: a model needs at least "
                           f"two of a, b and tie to learn anything{hint}")
