"""Anthropic HH-RLHF: `{"chosen": dialogue, "rejected": dialogue}` per JSONL line.

A dialogue is `"\n\nHuman: ...\n\nAssistant: ...\n\nHuman: ..."`. The two dialogues share everything up to
their last assistant turn. That shared part is split into turns: human turns become the prompt, the shared
assistant turns become the earlier turns of both responses, and the two final assistant turns are the
responses that differ. Chosen/rejected are placed as A/B in a seeded random order; there are no ties.

The split point is found from the common prefix of the two dialogues, backed off to the last
`"\n\nAssistant:"` in it. Splitting each dialogue on its markers alone is wrong for a few real rows whose
final response itself contains "Human:" or "Assistant:" text.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

from prefkit.data.readers import jsonl_records
from prefkit.data.table import PairTable, TableBuilder

ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")


def split_dialogue(chosen: str, rejected: str) -> tuple[list, list, list]:
    """-> (prompt turns, chosen response turns, rejected response turns), aligned. Raises ValueError."""
    n = len(os.path.commonprefix([chosen, rejected]))
    cut = chosen.rfind(ASSISTANT, 0, n + 1)
    if cut < 0:
        raise ValueError("the two dialogues share no assistant turn to compare")
    shared, last_c, last_r = chosen[:cut], chosen[cut + len(ASSISTANT):], rejected[cut + len(ASSISTANT):]
    exchanges: list[list] = []  # [prompt turn, shared assistant answer]
    parts = _TURN.split(shared)  # [lead, speaker, text, speaker, text, ...]
    if parts[0].strip():
        exchanges.append([parts[0].strip(), None])
    for speaker, text in zip(parts[1::2], parts[2::2]):
        text = text.strip()
        if speaker == "Human":
            exchanges.append([text, None])
        elif exchanges and exchanges[-1][1] is None:
            exchanges[-1][1] = text
        else:  # an assistant turn with no human turn before it: a null prompt turn
            exchanges.append([None, text])
    if not exchanges or exchanges[-1][1] is not None:
        exchanges.append([None, None])  # the final assistant turns answer no human turn
    prompt = [p for p, _ in exchanges]
    shared_answers = [a for _, a in exchanges[:-1]]
    return prompt, shared_answers + [last_c.strip()], shared_answers + [last_r.strip()]


def load_hh_rlhf(path: Path, skip_bad_rows: bool, limit: int | None, seed: int) -> PairTable:
    b = TableBuilder(str(path), skip_bad_rows)
    stem = path.name.split(".")[0]
    for row, line, v in jsonl_records(path, b):
        if limit is not None and row > limit:
            break
        chosen_first = zlib.crc32(f"{seed}:{row}".encode()) & 1 == 1  # depends on (seed, row) alone
        rid = f"{stem}-{row:06d}"
        missing = next((c for c in ("chosen", "rejected") if not isinstance(v.get(c), str)), None)
        if missing:
            got = "missing" if missing not in v else f"a {type(v[missing]).__name__}"
            b.problem(row, line, rid, missing, f"must be a dialogue string, got {got}")
            continue
        try:
            prompt, chosen, rejected = split_dialogue(v["chosen"], v["rejected"])
        except ValueError as e:
            b.problem(row, line, rid, "chosen", str(e))
            continue
        if chosen_first:
            b.add(row, line, rid, prompt, chosen, rejected, label="a")
        else:
            b.add(row, line, rid, prompt, rejected, chosen, label="b")
    return b.build()
