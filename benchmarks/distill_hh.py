"""Distillation (LMSYS 1st: big teachers into the submitted model) measured on HH-RLHF `helpful-base.test`, on
methods_hh's grouped folds (cv.seed 42, 5 splits), with teachers that never saw a student's validation rows.

    python benchmarks/distill_hh.py [--variants smollm2_distill_gemma3,minilm,...] [--teachers gemma3,...]
                                    [--folds 0,1,2,3,4] [--work runs/distill_hh] [--report-only]

Why not the teacher's own CV: `prefkit cv ... train.distill.teacher=TEACHER_RUN` gives every student fold the
teacher's out-of-fold predictions, and the prediction of a training row in fold j came from the teacher model
trained on the folds other than j, among them the student's validation fold k: fold k's labels reach the student
through its soft targets (a leak, small but of the size of the gains measured here).

The nested scheme, cheap: for each unordered pair of folds {j, k} (10 pairs for 5 folds), one teacher model is
trained on the 3 other folds and predicts the rows of folds j and k. Student fold k trains on the 4 folds j != k,
and its soft target for a training row of fold j comes from teacher {j, k}, trained on neither fold k (the
student's validation rows) nor fold j (the row itself): no row's target depends on a validation label, and no
teacher scores a row it trained on. Each student fold then trains with its own teacher file, as one fold of
`prefkit cv`: `prefkit cv CONFIG data.train=DATA cv.folds=[k] train.distill.teacher=[WORK/teachers/T/fold{k}.csv]`
in its own output folder. A teacher pair is `prefkit train` on a prefkit parquet of its 3 folds' rows (the ids and
A/B order of the source file kept) and `prefkit predict` on a parquet of folds j and k. A teacher that is the plain
average of several teachers' probabilities, pair by pair, fits no weight on any label, so it leaks nothing either.
The loss: train.distill's defaults, alpha 0.5 of KL to the teacher at T = 1 plus 0.5 of the label's cross-entropy.

Cost (estimates, 2 cores): a teacher config is 10 trainings on 3/5 of the rows plus predictions of 2/5, about 0.9 of
a cv fold each, so 2 cv runs in all: SmolLM2 in bf16 (12-20 min a fold; a pair about 11 min) about 1.8 h, Gemma 3
in fp32 (23 min a fold in rm_helpful) about 3.5 h, MiniLM (17 min a fold) about 2.5 h, the features under half an
hour (two process starts a pair). A student costs a cv run: SmolLM2 bf16 about 1 h, MiniLM about 1.4 h (the
teacher's logits are a lookup). A student on fewer folds needs fewer pairs: fold k alone needs the 4 pairs {j, k}.

Kept (committed, so the work goes on across sessions; --kept DIR elsewhere for smoke runs):
- results/methods_hh/teachers/<teacher>/pair{j}{k}.csv.gz: a trained teacher pair's logits of folds j and k, and
  its wall seconds in results/methods_hh/teachers/times.json;
- results/methods_hh/<variant>.csv.gz: a student's out-of-fold predictions, fold by fold (methods_hh's `keep`),
  reported by methods_hh.py beside the anchor (paired per row) as well as here against the same student without
  a teacher (the anchor `smollm2` for SmolLM2 students, trained by methods_hh.py; `minilm`, trained here).

The runs the issue asks for (38 item 2: the best decoder, Gemma 3, and the blend of the decoders, as teachers of
SmolLM2 and of MiniLM), one timed job at a time, each resuming where it stopped:
    python benchmarks/distill_hh.py --teachers smollm2,gemma3            # 20 trainings, about 5.3 h
    python benchmarks/distill_hh.py --variants smollm2_distill_gemma3,smollm2_distill_decoders    # about 2 h
    python benchmarks/distill_hh.py --variants minilm,minilm_distill_gemma3,minilm_distill_decoders  # about 4.2 h
    python benchmarks/methods_hh.py --analyse-only                       # the anchor's report, students included

Writes results/distill_hh.{json,md}: each teacher (every row scored by the mean of its 4 teacher models that never
saw it), each student against its student without a teacher. HH-RLHF has no ties: a coin scores log loss 0.693.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import methods_hh as mh  # noqa: E402
from harness import HERE, HH, write_results  # noqa: E402
from rm_helpful import VARIANTS as RM_HELPFUL  # noqa: E402
from rm_helpful import _prefkit, fold_seconds, scores  # noqa: E402

N_FOLDS = 5  # methods_hh's grouped folds (cv.seed 42)
LOGITS = ["logit_a", "logit_b", "logit_tie"]  # the lmsys competition's, which HH-RLHF is read as
# a teacher: (config, overrides) trained pair by pair, or the names of teachers whose probabilities are averaged
TEACHERS: dict[str, tuple[str, list[str]] | list[str]] = {
    "features": ("rm/features_baseline", []),
    "smollm2": mh._DECODER,  # the anchor's config: bf16
    "gemma3": tuple(RM_HELPFUL["gemma3_cpu"][:2]),  # as rm_helpful measured it (fp32): 0.6228 log loss
    "minilm": tuple(RM_HELPFUL["minilm_bt_128"][:2]),
    "decoders": ["smollm2", "gemma3"],
    "all": ["smollm2", "gemma3", "minilm", "features"],
}
# a student: (config, overrides, its variant without a teacher: what each of its distilled variants is compared with)
STUDENTS: dict[str, tuple[str, list[str], str]] = {
    "smollm2": (*mh._DECODER, mh.ANCHOR),
    "minilm": (*RM_HELPFUL["minilm_bt_128"][:2], "minilm"),
}


def _what(student: str, teacher: str) -> str:
    spec = TEACHERS[teacher]
    mean = f" (the mean of {', '.join(spec)})" if isinstance(spec, list) else ""
    return f"{student} distilled from {teacher}{mean}, nested teachers"


# variant: (student, teacher or None, what it is)
VARIANTS: dict[str, tuple[str, str | None, str]] = {
    "minilm": ("minilm", None, "MiniLM-L6 bt, 128 tokens a response, 2 epochs (rm/minilm_cpu): the MiniLM students' "
                               "baseline, no teacher"),
    **{f"{s}_distill_{t}": (s, t, _what(s, t)) for s in STUDENTS for t in TEACHERS},
}
DISTILLED = {name: what + "; trained by distill_hh.py" for name, (_, _, what) in VARIANTS.items()}  # methods_hh reports them


def pairs(n: int = N_FOLDS) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def trained_on(pair: tuple[int, int], n: int = N_FOLDS) -> list[int]:
    """The folds teacher `pair` trains on: all but the two it predicts."""
    return [f for f in range(n) if f not in pair]


def pair_of(k: int, j: int) -> tuple[int, int]:
    """The teacher pair whose prediction student fold k takes for its training rows of fold j (j != k)."""
    if j == k:
        raise ValueError(f"fold {k} is student fold {k}'s validation fold, not one of its training folds")
    return (min(j, k), max(j, k))


def teacher_of_fold(k: int, fold: pd.Series, pair_logits: dict[tuple[int, int], pd.DataFrame]) -> pd.DataFrame:
    """Student fold k's teacher: the logits of every row outside fold k (`fold`: id -> fold), each row of fold j
    from teacher pair {j, k}, which trained on neither j nor k."""
    parts = []
    for j in sorted({int(f) for f in fold.unique()} - {k}):
        ids = fold.index[fold == j]
        frame = pair_logits[pair_of(k, j)]
        lacking = ids.difference(frame.index)
        if len(lacking):
            raise SystemExit(f"teacher pair {pair_of(k, j)} lacks {len(lacking)} rows of fold {j} "
                             f"(first: {lacking[0]!r})")
        parts.append(frame.loc[ids, LOGITS])
    return pd.concat(parts)


def average(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Teachers' logits of the same rows as the log of their mean probabilities (no fitted weight)."""
    from prefkit.metrics import probabilities

    ids = frames[0].index
    p = np.mean([probabilities(f.loc[ids, LOGITS].to_numpy()) for f in frames], axis=0)
    return pd.DataFrame(np.log(np.clip(p, 1e-12, 1.0)), index=ids, columns=LOGITS)


class Bench:
    """The work folder, the source's rows and folds, and what every prefkit run is given."""

    def __init__(self, work: Path, data: Path, extra: list[str]):
        from prefkit.config import load_config
        from prefkit.data.folds import assign_folds
        from prefkit.recipes.common import load_labelled

        self.work, self.data, self.extra = work, data, extra
        self.table = load_labelled(str(data), load_config(None))
        ids = self.table.frame["id"].astype(str)
        self.fold = pd.Series(assign_folds(self.table, N_FOLDS, 42), index=pd.Index(ids, name="id"))
        self.label = pd.Series(self.table.frame["label"].to_numpy(), index=self.fold.index)

    def subset(self, folds: list[int]) -> Path:
        """A prefkit parquet of the rows of `folds`: the source's ids and A/B order kept."""
        from prefkit.data.arena import write_parquet

        path = self.work / "data" / f"{self.data.name.split('.')[0]}_folds{''.join(map(str, folds))}.parquet"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(self.table.subset(self.fold.isin(folds).to_numpy()), path)
        return path

    def teacher_pair(self, teacher: str, pair: tuple[int, int]) -> pd.DataFrame:
        """Teacher `pair`'s logits of the rows of its two folds: kept, averaged from its members', or trained now."""
        spec = TEACHERS[teacher]
        if isinstance(spec, list):
            return average([self.teacher_pair(t, pair) for t in spec])
        rows = self.fold.index[self.fold.isin(pair)]
        path = mh.KEPT / "teachers" / teacher / f"pair{pair[0]}{pair[1]}.csv.gz"
        if not path.exists():
            self.train_pair(teacher, pair, path)
        frame = pd.read_csv(path, dtype={"id": str}).set_index("id")
        if set(frame.index) != set(rows) or not (frame["fold"] == self.fold.loc[frame.index]).all():
            raise SystemExit(f"{path}: other rows or folds than this checkout's data; delete it to train it again")
        return frame[LOGITS]

    def train_pair(self, teacher: str, pair: tuple[int, int], path: Path) -> None:
        from prefkit.competition import competition_of
        from prefkit.config import load_config
        from prefkit.toolbox.predictions import read_logits

        config, overrides = TEACHERS[teacher]
        name = f"pair{pair[0]}{pair[1]}"
        run, pred = self.work / "teachers" / teacher / name, self.work / "teachers" / teacher / f"{name}.predict"
        log = self.work / "teachers" / f"{teacher}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        args = ["train", config, f"data.train={self.subset(trained_on(pair))}", f"output_dir={run}", *overrides,
                *self.extra]
        if (run / "run.json").exists():
            args.insert(1, "--resume")
        _prefkit(args, log)
        shutil.rmtree(pred, ignore_errors=True)  # an interrupted prediction starts again
        (pred.parent / f"{name}.submission.csv").unlink(missing_ok=True)
        _prefkit(["predict", "--run", str(run), "--test", str(self.subset(list(pair))),
                  "--out", str(pred.parent / f"{name}.submission.csv"), f"output_dir={pred}"], log)
        logits = read_logits(pred, competition_of(load_config(run / "config.yaml")))
        logits.insert(0, "fold", self.fold.loc[logits.index].to_numpy())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        logits.round(6).to_csv(tmp, compression="gzip")
        os.replace(tmp, path)
        book_path = mh.KEPT / "teachers" / "times.json"
        book = json.loads(book_path.read_text()) if book_path.exists() else {}
        book.setdefault(teacher, {})[name] = {"seconds": round(time.perf_counter() - t0, 1),
                                              "resumed": args[1] == "--resume", "date": time.strftime("%Y-%m-%d")}
        book_path.write_text(json.dumps(book, indent=1, sort_keys=True) + "\n")

    def teacher_file(self, teacher: str, k: int) -> Path:
        """Student fold k's teacher file (id + logits of every row outside fold k), from the pairs {j, k}."""
        path = self.work / "teachers" / teacher / f"fold{k}.csv"
        frame = teacher_of_fold(k, self.fold, {pair_of(k, j): self.teacher_pair(teacher, pair_of(k, j))
                                               for j in range(N_FOLDS) if j != k})
        text = frame.to_csv(float_format="%.10g")
        if not path.exists() or path.read_text() != text:  # unchanged: a resumed student fold sees the same file
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, path)
        return path

    def student_fold(self, name: str, k: int) -> None:
        """Train student variant `name` on fold k (one fold of `prefkit cv`, its own folder) and keep its predictions."""
        student, teacher, _ = VARIANTS[name]
        config, overrides, _ = STUDENTS[student]
        out = self.work / "students" / name / f"fold{k}"
        distill = [f"train.distill.teacher=[{self.teacher_file(teacher, k)}]"] if teacher else []
        args = ["cv", config, f"data.train={self.data}", f"output_dir={out}", *overrides, *distill, *self.extra,
                f"cv.folds=[{k}]"]
        if (out / "run.json").exists():
            args.insert(1, "--resume")
        out.parent.mkdir(parents=True, exist_ok=True)
        _prefkit(args, self.work / "students" / f"{name}.log")
        oof = pd.read_csv(out / "oof.csv", dtype={"id": str}).set_index("id")
        if set(oof.index) != set(self.fold.index[self.fold == k]) or (oof["fold"] != k).any():
            raise SystemExit(f"{out}: its fold {k} is not distill_hh's (other rows): the folds of cv and of this "
                             "benchmark differ")
        secs = fold_seconds(out)
        dtype = next((o.split("=")[1] for o in overrides if o.startswith("model.dtype=")), "float32")
        mh.keep(name, oof, {k: secs[-1]} if secs else {}, dtype)


def report(bench: Bench, out: Path, t0: float) -> None:
    """Each teacher whose pairs are all there, and each kept student against its student without a teacher."""
    from prefkit.metrics import probabilities
    from prefkit.toolbox.compare import paired, verdict

    rows = []
    for teacher, spec in TEACHERS.items():
        members = spec if isinstance(spec, list) else [teacher]
        if not all((mh.KEPT / "teachers" / t / f"pair{a}{b}.csv.gz").exists() for t in members for a, b in pairs()):
            continue
        # each row: the mean probabilities of the 4 teacher models that never saw it (pairs {j, k}, k != j)
        probs = np.zeros((len(bench.fold), len(LOGITS)))
        for pair in pairs():
            p = bench.teacher_pair(teacher, pair)
            probs[bench.fold.index.get_indexer(p.index)] += probabilities(p.to_numpy()) / (N_FOLDS - 1)
        rows.append({"variant": f"teacher {teacher}", "what": "the mean of the 4 teacher models that never saw a row",
                     "folds": "all", "rows": len(probs), **scores(probs, bench.label.to_numpy())})
    for name, (student, teacher, what) in VARIANTS.items():
        frame = mh.kept(name)
        if frame is None:
            continue
        prob_cols = [c for c in frame.columns if c.startswith("winner_")]
        row = {"variant": name, "what": what, "folds": ",".join(map(str, sorted(frame["fold"].unique()))),
               "rows": len(frame), **scores(frame[prob_cols].to_numpy(), frame["label"].to_numpy())}
        base_name = STUDENTS[student][2]
        base = mh.kept(base_name)
        if teacher and base is not None:
            both = frame.index.intersection(base.index)
            diff = paired(base.loc[both, prob_cols].to_numpy(), frame.loc[both, prob_cols].to_numpy(),
                          frame.loc[both, "label"].to_numpy(), frame.loc[both, "fold"].to_numpy())
            ll, acc = diff["logloss"], diff["accuracy"]
            row |= {"baseline": base_name, "vs baseline: log loss": f"{ll['mean']:+.4f} ± {ll['se']:.4f}",
                    "vs baseline: accuracy": f"{acc['mean']:+.4f} ± {acc['se']:.4f}",
                    "verdict": verdict(name, base_name, diff).split(": ", 1)[-1], "paired": diff}
        rows.append(row)
    columns = ["variant", "folds", "rows", "log loss", "accuracy", "ECE", "baseline", "vs baseline: log loss",
               "vs baseline: accuracy", "verdict"]
    intro = (__doc__.split("\n\n")[0] + "\n\nTeachers: each row scored by the mean probabilities of the 4 teacher "
             "models that never saw it. Students: the mean per-row difference against the same student without a "
             "teacher (variant minus baseline; a negative log loss is better) ± its standard error, on the rows both "
             f"predicted. Kept predictions in {mh.KEPT}; this run took {time.perf_counter() - t0:.0f} s.")
    write_results("distill_hh", out, {"data": bench.data.name, "cv": "5 grouped folds, seed 42"}, columns, rows, intro)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/distill_hh")
    ap.add_argument("--data", default=str(HH / "helpful-base.test.jsonl.gz"))
    ap.add_argument("--variants", default="", help=f"student variants to train (known: {', '.join(VARIANTS)})")
    ap.add_argument("--teachers", default="", help=f"teachers whose pairs to train (known: {', '.join(TEACHERS)})")
    ap.add_argument("--folds", default="0,1,2,3,4", help="student folds to train (their teacher pairs first)")
    ap.add_argument("--report-only", action="store_true", help="train nothing: report what is kept")
    ap.add_argument("--kept", default=str(mh.KEPT), help="folder of kept predictions (smoke runs: a scratch one)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for distill_hh.{json,md}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every prefkit run (smoke runs only: needs --kept elsewhere)")
    args = ap.parse_args()

    mh.KEPT = Path(args.kept)
    if args.set and mh.KEPT.resolve() == (HERE / "results" / "methods_hh").resolve():
        raise SystemExit("--set changes the configs: give --kept a scratch folder, not the committed results")
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark reads HH-RLHF from ../shared/data")
    variants = [v for v in args.variants.split(",") if v]
    teachers = [t for t in args.teachers.split(",") if t]
    unknown = sorted(set(variants) - set(VARIANTS)) + sorted(set(teachers) - set(TEACHERS))
    if unknown:
        raise SystemExit(f"unknown variants or teachers {unknown}; variants: {sorted(VARIANTS)}, teachers: "
                         f"{sorted(TEACHERS)}")
    t0 = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(work, data, args.set)
    folds = [int(f) for f in args.folds.split(",")]
    if not args.report_only:
        for teacher in teachers:  # every pair: what the students of all folds need
            for pair in pairs():
                bench.teacher_pair(teacher, pair)
        for name in variants:
            have = mh.kept(name)
            for k in folds:
                if have is None or k not in set(have["fold"]):
                    bench.student_fold(name, k)
    report(bench, Path(args.out), t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
