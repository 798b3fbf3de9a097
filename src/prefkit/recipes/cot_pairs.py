"""`prefkit cot pairs`: preference pairs for a chain-of-thought reward model (`prefkit.cot.pairs`: a right and a
wrong answer to one question), in the arena's CSV form.

Questions, not pairs, are split into train and test (`test_fraction`, seeded): no question has pairs on both
sides, so a reward model trained on train.csv is measured on questions it has not seen. `split.json` names
each side's questions; `prefkit cot rank --questions split.json` ranks systems on the test side alone.
"""

from __future__ import annotations

import random
from pathlib import Path

from prefkit.cot.datasets import DEFAULT_ROOT, load, names, teacher_file
from prefkit.cot.pairs import TEACHER, build
from prefkit.errors import PrefkitError
from prefkit.io import write_json


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
