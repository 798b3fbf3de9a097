"""Render preference pairs into token ids for a sequence classifier, within a token budget.

Layout (headers and separators come from `TemplateConfig`):

    [specials] # Prompt: p1 --- p2  # Response A: a1 --- a2  # Response B: b1 --- b2 [specials]

Each text piece is tokenised on its own and the ids are concatenated, so every count is exact: a row never
exceeds `max_length`, and a row over budget is filled to it (to the token for one-turn rows; for
multi-turn rows up to a separator's length short).

Budget, in three steps:
1. The text budget (`max_length` minus specials and headers) is split between the prompt and the two
   responses by `prompt_share` (the responses share the rest equally); what a short part does not use goes
   to the others (water-filling).
2. Inside a part with several turns, the first and the last turn are kept before the middle ones, which are
   added from the most recent backwards while they fit; dropped turns leave one `ellipsis` marker, and the
   first middle turn that does not fit whole is kept truncated when room is left.
3. A turn over its allocation keeps its head and its tail (`head_fraction`) around an `ellipsis` marker.

Texts far longer than any budget are cut in characters before tokenising (see `encode`), which keeps
preparation time proportional to the budget rather than to the longest response in the data.

Given a cache folder (`data.token_cache`), rendered rows are kept on disk and read back by any later table
holding the same texts (`prefkit.rm.token_cache`): the folds of `cv`, `train`, `predict` and a rerun tokenise
each row once. `Renderer.counts` says how many sequences came from the cache and how many were rendered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from prefkit.config import TemplateConfig
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.rm.token_cache import TokenCache, row_keys

# A text is cut in characters only when it is longer than this many characters per budget token on each
# side; `encode` checks that the cut text still yields more tokens than the budget (else it tokenises all).
CHARS_PER_TOKEN_CAP = 8
_ROWS_PER_CHUNK = 1024  # rows tokenised at once: bounds memory on 57k-row LMSYS files


def allocate(needs: Sequence[int], budget: int, weights: Sequence[float]) -> list[int]:
    """Split `budget` integer tokens among parts: a part never gets more than it needs, the rest is shared
    by weight (water-filling). The result sums to min(budget, sum(needs))."""
    if sum(needs) <= budget:
        return list(needs)
    alloc = [0] * len(needs)
    active = [i for i in range(len(needs)) if needs[i] > 0]
    remaining = budget
    while active:
        wsum = sum(weights[i] for i in active)
        satisfied = [i for i in active if needs[i] <= remaining * weights[i] / wsum]
        if not satisfied:
            exact = [remaining * weights[i] / wsum for i in active]
            floors = [math.floor(x) for x in exact]
            left = remaining - sum(floors)
            by_fraction = sorted(range(len(active)), key=lambda k: (floors[k] - exact[k], k))
            for k in by_fraction[:left]:
                floors[k] += 1
            for k, i in enumerate(active):
                alloc[i] = floors[k]
            break
        for i in satisfied:
            alloc[i] = needs[i]
            remaining -= needs[i]
        active = [i for i in active if i not in satisfied]
    return alloc


@dataclass
class Rendered:
    """Token ids of rendered rows, in table order."""

    input_ids: list[np.ndarray]
    cut_texts: int = 0  # texts that were cut in characters before tokenising (all longer than any budget)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


LAYOUTS = ("pair", "single", "judge")


class Renderer:
    """Rows into token ids. Layouts (chosen by the head, `prefkit.rm.heads`):
    pair    prompt, response A, response B (a sequence classifier reads the pair);
    single  prompt and one response (`render_response`: a Bradley-Terry head scores each response alone);
    judge   the pair, then `question`, and no closing special tokens: the next token is the answer."""

    def __init__(self, tokenizer: Any, cfg: TemplateConfig, layout: str = "pair", cache: Path | None = None):
        """`cache`: the root of the token cache (`prefkit.rm.token_cache`; `data.token_cache`), None for none."""
        from tokenizers import Tokenizer

        # A private copy with padding and truncation off: some shipped tokenizer.json files turn both on
        # (MiniLM's pads every text to 128), which would corrupt every count below.
        self.tok = Tokenizer.from_str(tokenizer.to_str())
        self.tok.no_padding()
        self.tok.no_truncation()
        self.cfg = cfg
        if not 0.0 < cfg.prompt_share < 1.0:
            raise PrefkitError(f"template.prompt_share must be between 0 and 1, got {cfg.prompt_share}")
        if not 0.0 <= cfg.head_fraction <= 1.0:
            raise PrefkitError(f"template.head_fraction must be between 0 and 1, got {cfg.head_fraction}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r}")
        self.layout = layout
        self.prefix, self.suffix = self.specials()
        enc = self._ids
        if layout == "single":
            self.headers = [enc(cfg.prompt_header), enc(cfg.response_header)]
        else:
            self.headers = [enc(cfg.prompt_header), enc(cfg.response_a_header), enc(cfg.response_b_header)]
        self.tail = enc(cfg.question) if layout == "judge" else []
        if layout == "judge":
            self.suffix = []  # the answer token comes right after the question
        self.sep, self.ellipsis, self.empty = enc(cfg.turn_separator), enc(cfg.ellipsis), enc(cfg.empty_turn)
        fixed = len(self.prefix) + len(self.suffix) + sum(map(len, self.headers)) + len(self.tail)
        self.text_budget = cfg.max_length - fixed
        self.char_cap = self.text_budget * CHARS_PER_TOKEN_CAP  # characters of a text that can matter to its tokens
        if self.text_budget < len(self.headers) * (len(self.ellipsis) + 1):
            raise PrefkitError(
                f"template.max_length={cfg.max_length} leaves {self.text_budget} tokens for text after "
                f"{fixed} tokens of special tokens, headers{' and the question' if self.tail else ''}; raise it"
            )
        r = (1.0 - cfg.prompt_share) / (len(self.headers) - 1)
        self.weights = (cfg.prompt_share, *[r] * (len(self.headers) - 1))
        self.cache = None if cache is None else TokenCache(cache, self._settings())
        self.counts = {"from_cache": 0, "rendered": 0}  # sequences, over this renderer's life

    def _settings(self) -> dict[str, Any]:
        """Everything besides a row's text that changes its ids: the token cache's folder is keyed by it."""
        import tokenizers

        fields = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "tokenizer"}  # the JSON stands for it
        return {"tokenizer_sha256": hashlib.sha256(self.tok.to_str().encode()).hexdigest(),
                "tokenizers": tokenizers.__version__, "layout": self.layout, "template": fields,
                "char_cap": self.char_cap, "code_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}

    # -- tokenising -----------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def specials(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after a text (its special tokens), found by encoding a probe
        text with and without them. Public for inspection: tests change the end-of-sequence policy through it."""
        probe = "prefkit probe"
        plain = self._ids(probe)
        full = self.tok.encode(probe, add_special_tokens=True).ids
        for i in range(len(full) - len(plain) + 1):
            if full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
        raise PrefkitError("the tokenizer's special tokens wrap text in a way prefkit cannot locate")

    def encode(self, texts: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids of each text, without special tokens, and the indices of the texts cut. A text longer than
        2 * cap characters is tokenised as its first and last `cap` characters: its first and last `text_budget`
        tokens are the same as the whole text's (tokenisers work on local word pieces), and more than that is
        never used. One batch call: the `tokenizers` library encodes the list in Rust on every core it is given
        (TOKENIZERS_PARALLELISM; RAYON_NUM_THREADS caps it), so no process pool is added here. Public for
        inspection: every text the renderer tokenises goes through it (tests refuse it to show a cache hit)."""
        budget, cap = self.text_budget, self.char_cap
        long = [i for i, t in enumerate(texts) if len(t) > 2 * cap]
        work = list(texts)
        for i in long:
            work[i] = texts[i][:cap]
        tails = [texts[i][-cap:] for i in long]
        out = [e.ids for e in self.tok.encode_batch_fast(work + tails, add_special_tokens=False)]
        ids, tail_ids = out[: len(texts)], out[len(texts) :]
        cut = []
        for k, i in enumerate(long):
            head, tail = ids[i], tail_ids[k]
            # One token more than the budget on each side, so the token split by the cut is never used.
            if len(head) > budget + 1 and len(tail) > budget + 1:
                ids[i] = head[:budget] + tail[-budget:]
                cut.append(i)
            else:  # unusually many characters per token: tokenise the whole text
                ids[i] = self._ids(texts[i])
        return ids, cut

    # -- fitting --------------------------------------------------------------------------------------
    def _head_tail(self, ids: list[int], budget: int) -> list[int]:
        if len(ids) <= budget:
            return ids
        if budget <= len(self.ellipsis):
            return ids[:budget]
        keep = budget - len(self.ellipsis)
        head = math.ceil(keep * self.cfg.head_fraction)
        tail = keep - head
        return ids[:head] + self.ellipsis + (ids[len(ids) - tail :] if tail else [])

    def _layout(self, kept: list[int]) -> tuple[list[int | None], int]:
        """Pieces in order (turn index, or None for an omission marker) and their fixed token cost."""
        pieces: list[int | None] = []
        for i in kept:
            if pieces and i != pieces[-1] + 1:
                pieces.append(None)
            pieces.append(i)
        gaps = pieces.count(None)
        return pieces, (len(pieces) - 1) * len(self.sep) + gaps * len(self.ellipsis)

    def _fit_turns(self, turns: list[list[int]], budget: int) -> list[int]:
        n = len(turns)
        lengths = [len(t) for t in turns]
        if sum(lengths) + (n - 1) * len(self.sep) <= budget:
            out: list[int] = []
            for i, t in enumerate(turns):
                out += (self.sep + t) if i else t
            return out
        if n == 1:
            return self._head_tail(turns[0], budget)
        kept, partial = [0, n - 1], None
        for i in range(n - 2, 0, -1):
            trial = sorted(kept + [i])
            _, fixed = self._layout(trial)
            room = budget - fixed - sum(lengths[j] for j in kept)
            if room >= lengths[i]:
                kept = trial
                continue
            if room > len(self.ellipsis):  # keep this turn too, truncated to the room that is left
                kept, partial = trial, i
            break
        pieces, fixed = self._layout(kept)
        if fixed >= budget:  # not even one token per turn: keep the last turn only
            return self._head_tail(turns[-1], budget)
        if partial is None:  # all kept turns whole, or only first and last, sharing the budget equally
            alloc = dict(zip(kept, allocate([lengths[i] for i in kept], budget - fixed, [1.0] * len(kept))))
        else:  # the others fit whole by construction; the partial turn gets what is left
            alloc = {i: lengths[i] for i in kept}
            alloc[partial] = budget - fixed - sum(lengths[i] for i in kept if i != partial)
        out = []
        for k, piece in enumerate(pieces):
            if k:
                out += self.sep
            out += self.ellipsis if piece is None else self._head_tail(turns[piece], alloc[piece])
        return out

    def render_ids(self, parts: Sequence[list[list[int]]]) -> list[int]:
        """One row from its parts (prompt, response A, response B; or prompt, response), each a list of turns'
        token ids."""
        needs = [sum(map(len, p)) + (len(p) - 1) * len(self.sep) for p in parts]
        alloc = allocate(needs, self.text_budget, self.weights)
        out = list(self.prefix)
        for header, part, budget in zip(self.headers, parts, alloc):
            out += header
            out += self._fit_turns(part, budget)
        out += self.tail
        out += self.suffix
        return out

    # -- tables ---------------------------------------------------------------------------------------
    def _render_rows(self, rows: list[tuple]) -> tuple[list[np.ndarray], list[int]]:
        """Each row's ids, and how many of its texts were cut in characters (see `encode`)."""
        out: list[np.ndarray] = []
        cuts: list[int] = []
        with tqdm(total=len(rows), desc="render", unit="row", leave=False, mininterval=1.0) as bar:
            for start in range(0, len(rows), _ROWS_PER_CHUNK):
                chunk = rows[start : start + _ROWS_PER_CHUNK]
                texts: list[str] = []
                owner: list[int] = []  # the row (in this chunk) of each text
                shape: list[list[list[int | None]]] = []  # row -> part -> index into texts (None: empty turn)
                for r, row in enumerate(chunk):
                    row_shape = []
                    for turns in row:
                        idx = []
                        for t in turns:
                            if t is None or not t.strip():
                                idx.append(None)
                            else:
                                idx.append(len(texts))
                                texts.append(t)
                                owner.append(r)
                        row_shape.append(idx or [None])  # a part with no turns renders as one empty turn
                    shape.append(row_shape)
                ids, cut = self.encode(texts)
                row_cuts = np.bincount(np.asarray([owner[i] for i in cut], dtype=np.int64), minlength=len(chunk))
                cuts += row_cuts.tolist()
                for row_shape in shape:
                    parts = [[self.empty if j is None else ids[j] for j in part] for part in row_shape]
                    out.append(np.asarray(self.render_ids(parts), dtype=np.int32))
                bar.update(len(chunk))
        return out, cuts

    def _rows(self, *columns: Iterable) -> Rendered:
        """Rows whose parts are `columns`, read from the token cache where it has them; the others are rendered
        (each distinct row once) and written to it."""
        rows = list(zip(*columns))
        if self.cache is None:
            ids, cuts = self._render_rows(rows)
            self.counts["rendered"] += len(rows)
            return Rendered(input_ids=ids, cut_texts=sum(cuts))
        keys = row_keys(rows)
        found = self.cache.get(set(keys))
        first: dict[bytes, int] = {}  # each missing row once (a table may hold the same texts twice)
        for i, k in enumerate(keys):
            if k not in found:
                first.setdefault(k, i)
        if first:
            new_keys = list(first)
            ids, cuts = self._render_rows([rows[first[k]] for k in new_keys])
            self.cache.put(new_keys, ids, cuts)
            found.update(zip(new_keys, zip(ids, cuts)))
        missed = sum(k in first for k in keys)
        self.counts["from_cache"] += len(keys) - missed
        self.counts["rendered"] += missed
        return Rendered(input_ids=[found[k][0] for k in keys], cut_texts=sum(found[k][1] for k in keys))

    def render(self, table: PairTable, swap: bool = False) -> Rendered:
        """Render every row of `table`; with `swap`, response B is placed first (labels swap with it)."""
        if self.layout == "single":
            raise ValueError("the single layout renders one response at a time: render_response")
        f = table.frame
        a, b = (f["response_b"], f["response_a"]) if swap else (f["response_a"], f["response_b"])
        return self._rows(f["prompt"], a, b)

    def render_response(self, table: PairTable, side: str) -> Rendered:
        """The single layout: every row's prompt with its response `side` ("a" or "b")."""
        if self.layout != "single":
            raise ValueError("render_response needs the single layout")
        return self._rows(table.frame["prompt"], table.frame[f"response_{side}"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(map(int, ids)), skip_special_tokens=False)
