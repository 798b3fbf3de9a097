"""Preference pairs for a chain-of-thought reward model: a right and a wrong answer to one question.

For every question, the answers of every system (the teacher's file, students' JSONL predictions) are read and
marked right or wrong against the reference answer; each right answer is paired with each wrong one for the
same question (at most `per_question` pairs a question, drawn with the seed), the right one the winner, A and
B in a seeded random order, the system names in model_a / model_b (the reward model never reads them).
`prefkit cot pairs` (recipes/cot_pairs.py) writes them in the arena's CSV form, split by question.

What the reward model reads of an answer (`response_text`) is the same for every system and in `cot rank`:
the rationale, then "Answer: X" with the answer as extracted; a student's "-->" marker and the teacher's
"Therefore, the answer is" step are not shown, so the format of a source is not a give-away.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from prefkit.cot.answers import MARKER, extract, is_correct
from prefkit.cot.datasets import Example
from prefkit.errors import PrefkitError

REFERENCE = "reference"  # the system whose file is None: the reference answers
TEACHER = "@teacher"  # a system's file: the paper's teacher file of each dataset


@dataclass(frozen=True)
class Answer:
    system: str
    text: str  # what the reward model reads
    correct: bool


def response_text(rationale: str, answer: str | None) -> str:
    rationale = rationale.strip()
    tail = f"Answer: {answer}" if answer is not None else "Answer: (none)"
    return f"{rationale}\n\n{tail}" if rationale else tail


def read_answers(dataset: str, path: str | Path | None, examples: list[Example], system: str) -> dict[int, Answer]:
    """index -> the system's (first) answer to each question it answered. `path` None: the reference answers."""
    from prefkit.cot.evaluate import TEACHER_STEP, read_predictions

    if path is None:
        return {e.index: Answer(system, response_text("", e.answer), True) for e in examples}
    scored, marker = read_predictions(Path(path))
    full, _ = read_predictions(Path(path), full_text=True)
    out = {}
    for e in examples:
        if not scored.get(e.index):
            continue
        got = extract(dataset, scored[e.index][0], marker, e.question)
        text = full[e.index][0]
        rationale = text.split(TEACHER_STEP)[0] if marker is None else text.split(MARKER)[0]
        out[e.index] = Answer(system, response_text(rationale, got), is_correct(dataset, got, e.answer))
    return out


def build(dataset: str, examples: list[Example], systems: dict[str, str | None], per_question: int,
          rng: random.Random) -> tuple[list[dict], dict]:
    """Pairs (dicts of the arena columns plus the question's index) and counts by pair of systems."""
    answers = {name: read_answers(dataset, path, examples, name) for name, path in systems.items()}
    pairs, by_systems = [], {}
    for e in examples:
        got = [answers[n][e.index] for n in systems if e.index in answers[n]]
        right, wrong = [a for a in got if a.correct], [a for a in got if not a.correct]
        combos = list(itertools.product(right, wrong))
        for good, bad in rng.sample(combos, min(per_question, len(combos))):
            a, b, label = (good, bad, "a") if rng.random() < 0.5 else (bad, good, "b")
            pairs.append({"id": f"{dataset}:{e.index}:{a.system}:{b.system}", "index": e.index, "prompt": e.question,
                          "a": a, "b": b, "label": label})
            key = " vs ".join(sorted((good.system + " (right)", bad.system + " (wrong)")))
            by_systems[key] = by_systems.get(key, 0) + 1
    return pairs, by_systems


def held_out(split_file: str | Path, dataset: str) -> set[int]:
    """The test-side question indices of `dataset` in a split.json written by `prefkit cot pairs`."""
    try:
        doc = json.loads(Path(split_file).read_text(encoding="utf-8"))
        return set(doc["questions"][dataset]["test"])
    except FileNotFoundError:
        raise PrefkitError(f"{split_file}: no such file") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise PrefkitError(f"{split_file}: no test questions of {dataset} (write it with `prefkit cot pairs`)") from None
