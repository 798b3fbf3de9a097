"""`prefkit cot pairs`: preference pairs for a chain-of-thought reward model, in the arena's CSV form.

For every question, the answers of every system (the teacher's file, students' JSONL predictions) are read and
marked right or wrong against the reference answer; each right answer is paired with each wrong one for the
same question (at most `per_question` pairs a question, drawn with the seed), the right one the winner, A and
B in a seeded random order, the system names in model_a / model_b (the reward model never reads them).

Questions, not pairs, are split into train and test (`test_fraction`, seeded): no question has pairs on both
sides, so a reward model trained on train.csv is measured on questions it has not seen. `split.json` names
each side's questions; `prefkit cot rank --questions split.json` ranks systems on the test side alone.

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
from prefkit.cot.datasets import DEFAULT_ROOT, Example, load, names, teacher_file
from prefkit.errors import PrefkitError
from prefkit.io import write_json

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


def main(datasets: str, systems: dict[str, str | None], out: str | Path, split: str = "test",
         test_fraction: float = 0.3, per_question: int = 2, seed: int = 0, root: Path = DEFAULT_ROOT,
         limit: int | None = None) -> dict:
    """`systems`: name -> prediction file (JSONL or the paper's teacher file); a `{dataset}` in a path is filled
    in with each dataset's name; TEACHER stands for each dataset's teacher file. `limit`: the first N questions
    of each dataset's split."""
    from prefkit.data.arena import write_lmsys_csv
    from prefkit.data.table import TableBuilder

    if not 0 < test_fraction < 1:
        raise PrefkitError(f"--test-fraction must lie between 0 and 1, got {test_fraction}")
    if len(systems) < 2:
        raise PrefkitError("pairs need at least two systems (--system NAME=FILE, and/or --reference)")
    out, rng = Path(out), random.Random(seed)
    tables = {"train": TableBuilder("<cot pairs train>"), "test": TableBuilder("<cot pairs test>")}
    written = {"train": 0, "test": 0}
    questions: dict[str, dict[str, list[int]]] = {}
    summary = {"datasets": {}, "seed": seed, "test_fraction": test_fraction, "per_question": per_question}
    for dataset in names(datasets):
        examples = load(dataset, split, root)[:limit]
        paths = {n: (str(teacher_file(dataset, root)) if p == TEACHER else p.replace("{dataset}", dataset) if p else None)
                 for n, p in systems.items()}
        for n, p in paths.items():
            if p is not None and not Path(p).is_file():
                raise PrefkitError(f"--system {n}: {p}: no such file")
        order = [e.index for e in examples]
        rng.shuffle(order)
        held = set(order[: round(len(order) * test_fraction)])
        questions[dataset] = {"train": sorted(set(order) - held), "test": sorted(held)}
        pairs, by_systems = build(dataset, examples, paths, per_question, rng)
        counts = {"questions": len(examples), "train": 0, "test": 0, "by_systems": by_systems,
                  "questions_with_pairs": len({p["index"] for p in pairs})}
        for p in pairs:
            side = "test" if p["index"] in held else "train"
            written[side] += 1
            tables[side].add(written[side], None, p["id"], [p["prompt"]], [p["a"].text], [p["b"].text], p["label"],
                             model_a=p["a"].system, model_b=p["b"].system)
            counts[side] += 1
        summary["datasets"][dataset] = counts
    for side, b in tables.items():
        table = b.build()
        if not len(table):
            raise PrefkitError(f"no {side} pairs: no question has a right and a wrong answer among the systems")
        write_lmsys_csv(table, out / f"{side}.csv")
        summary[side] = len(table)
    write_json(out / "split.json", {"split": split, "seed": seed, "questions": questions})
    write_json(out / "summary.json", summary)
    return summary


def held_out(split_file: str | Path, dataset: str) -> set[int]:
    """The test-side question indices of `dataset` in a split.json written by `main`."""
    try:
        doc = json.loads(Path(split_file).read_text(encoding="utf-8"))
        return set(doc["questions"][dataset]["test"])
    except FileNotFoundError:
        raise PrefkitError(f"{split_file}: no such file") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise PrefkitError(f"{split_file}: no test questions of {dataset} (write it with `prefkit cot pairs`)") from None
