"""Two methods that change a fold's training rows, which `prefkit cv` alone cannot express, measured on HH-RLHF
`helpful-base.test` as methods_hh measures (its 5 grouped folds, cv.seed 42, its anchor config rm/smollm2_135m_cpu
with model.dtype=bfloat16), one student fold k at a time, each against the anchor on the same rows, paired.

    python benchmarks/trainsets_hh.py [--variants smollm2_pseudo,smollm2_length_balanced] [--folds 0]
                                      [--min-margin 0] [--work runs/trainsets_hh] [--report-only]

- `smollm2_pseudo` (pseudo-labels, transductive: as Kagglers pseudo-label the unlabelled test set and train again).
  Fold k trains on the 4 other folds (their labels) plus fold k's own pairs as pseudo-labelled rows
  (`train.pseudo_labels`), whose soft targets are the anchor's kept out-of-fold probabilities of fold k
  (results/methods_hh/smollm2.csv.gz), written by prefkit's own writer (`prefkit.toolbox.pseudo`; `--min-margin M`
  drops the pairs with |P(A) - P(B)| <= M, WSDM Cup 2nd used 0.03; a cut M > 0 is its own variant,
  `smollm2_pseudo_m<M>`). Why no fold-k label leaks: the anchor's fold-k probabilities come from the anchor's
  fold-k model, which trained on the 4 other folds and never saw fold k, and the pseudo file is built from fold k's
  texts and those probabilities alone (`write_pseudo` reads no label of fold k: its test scrambles them and gets
  the same file). What it is not: not extra unlabelled data (HH-RLHF in ../shared/data has only the two test
  splits, and `harmless-base` is another task), so it measures only what pseudo-labelling the very rows that are
  scored can give, the form it takes on Kaggle's test set: the student has seen the texts it is scored on, with
  its teacher's beliefs as targets (self-training), never their labels. A gain here is not a gain on rows that
  neither model has seen.
- `smollm2_length_balanced` (length control at training time). Fold k trains on the 4 other folds with the pairs
  where the shorter last answer won copied (new ids `<id>~dup1`, ...; the fractional part a seeded subset) until
  they are as many as the pairs where the longer won, so that length alone no longer lowers the training loss
  (`prefkit.toolbox.rules.length_balanced`, prefkit's `train.length_balance`; lengths by
  `prefkit.toolbox.rules.last_turn_lengths`; pairs of equal lengths, and ties, are counted and left once). The
  smaller of the two groups is the one copied: on helpful-base it is the shorter-won pairs (the longer answer wins
  0.600 of them). The counts are printed, logged and in the report.
- `smollm2_16layers_length_balanced`: the same training set, with adapters on the last 16 layers
  (`lora.skip_first_layers=14`, the SmolLM2 config shipped since session 21; about 1.4x a fold's cost).

Each fold is `prefkit train` on a prefkit parquet of its training rows (distill_hh.Bench.subset: the source's ids
and A/B order kept), then `prefkit predict --run ... --test <fold k parquet>`, as distill_hh trains a teacher pair;
fold k's probabilities are kept in results/methods_hh/<variant>.csv.gz (methods_hh's `keep`: id, fold, label and
the winner columns, as the anchor's; in folds.json the wall seconds of the train and predict that finished it), so methods_hh.py reports
them too (TRAINSETS), and the counts of the fold's training set in results/methods_hh/trainsets.json. A kept fold
is never trained again; a run folder with run.json resumes (`--resume`). Cost a fold: the anchor's 12-20 min on 2
cores times the rows trained on, about 1.25x for pseudo (1883 + 471 rows) and 1.2x for the balanced set (1883 +
341-380 copies: 765 shorter-won and 1106 longer-won pairs in fold 0's training rows, 12 of equal lengths).

Writes results/trainsets_hh.{json,md}: each kept variant against the anchor on the same rows (the paired
per-row difference of log loss and accuracy, `prefkit.toolbox.compare`, and its verdict), with the length view
(the accuracy where the shorter answer won), by methods_hh's `describe`. `--kept DIR` and `--set KEY=VALUE` are
for smoke runs (another folder of kept predictions; an override for every prefkit run), and `--smoke DIR` runs it
all on the first rows of the file with the tiny random model, every file under DIR:
    python benchmarks/trainsets_hh.py --smoke /tmp/trainsets_smoke     # 60 rows: 2 min of CPU (11 min wall niced
                                                                       # beside another job on 2 cores)
HH-RLHF has no ties: a coin scores log loss ln 2 = 0.693.
"""

from __future__ import annotations

import argparse
import gzip
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
from distill_hh import N_FOLDS, Bench  # noqa: E402
from harness import HERE, HH, write_results  # noqa: E402
from rm_helpful import _prefkit  # noqa: E402

PSEUDO, BALANCED = "smollm2_pseudo", "smollm2_length_balanced"
BALANCED_16 = "smollm2_16layers_length_balanced"
SEED = 42  # the seeded subset of the last copies of the length-balanced set
WSDM_MARGIN = 0.03  # WSDM Cup 2nd place's pseudo-label cut
VARIANTS = {
    PSEUDO: "pseudo-labels (transductive): the anchor's config trained on the 4 other folds plus fold k's pairs with "
            "the anchor's out-of-fold probabilities of fold k as soft targets (no fold-k label)",
    BALANCED: "length control at training time: the anchor's config trained on the 4 other folds with the pairs where "
              "the shorter last answer won copied until as many as those where the longer won",
    BALANCED_16: "length-balanced training (as smollm2_length_balanced) with adapters on the last 16 layers, the "
                 "SmolLM2 config shipped since session 21 (the methods_hh variant smollm2_16layers)",
}
# a variant's overrides after the anchor's (the last override of a key wins)
OVERRIDES = {BALANCED_16: ["lora.skip_first_layers=14"]}


def pseudo_name(min_margin: float) -> str:
    return PSEUDO if min_margin <= 0 else f"{PSEUDO}_m{min_margin:g}"


def _what(name: str) -> str:
    if name in VARIANTS:
        return VARIANTS[name]
    return f"{VARIANTS[PSEUDO]}, pairs with |P(A) - P(B)| <= {name.removeprefix(PSEUDO + '_m')} dropped"


# methods_hh reports them beside its own variants, from their kept predictions
TRAINSETS = {name: _what(name) + "; trained by trainsets_hh.py" for name in [*VARIANTS, pseudo_name(WSDM_MARGIN)]}
SMOKE_ROWS = 60
SMOKE = (str(HERE.parent / "configs" / "rm" / "tiny_gemma2.yaml"),
         ["model.head=bt", "quantization.mode=none", "cv.n_splits=5", "template.max_length=96", "train.batch_size=4",
          "train.swap_augment=none", "train.save_every=0", "train.probe_rows=4"])
COLUMNS = [*mh.COLUMNS[:-1], "training rows", "wall a fold"]
COUNTS = "trainsets.json"  # in the kept folder, beside folds.json


def write_pseudo(path: Path, table, fold: pd.Series, k: int, anchor: pd.DataFrame, comp,
                 min_margin: float = 0.0) -> dict:
    """Fold k's pairs as a pseudo-label file (`prefkit.toolbox.pseudo.write_pseudo_labels`): the texts of the rows
    of `table` in fold k (`fold`: id -> fold) and, as targets, the anchor's kept probabilities of them (`anchor`:
    id -> fold and the competition's columns). No label of fold k is read: only ids, texts and the anchor's
    probabilities reach the file."""
    from prefkit.toolbox.pseudo import write_pseudo_labels

    ids = table.frame["id"].astype(str)
    mask = (fold.loc[ids] == k).to_numpy()
    rows = table.subset(mask)
    wanted = pd.Index(ids[mask])
    theirs = anchor.index[anchor["fold"] == k]
    if len(wanted.difference(theirs)) or len(theirs.difference(wanted)):
        extra, lacking = theirs.difference(wanted), wanted.difference(theirs)
        raise SystemExit(f"the anchor's kept fold {k} is not this checkout's fold {k}: {len(lacking)} rows lacking "
                         f"(first: {next(iter(lacking), None)!r}), {len(extra)} others (first: "
                         f"{next(iter(extra), None)!r})")
    probs = anchor.loc[wanted, list(comp.columns)].to_numpy(dtype=np.float64)
    return write_pseudo_labels(path, rows, probs, comp, min_margin)


def counts_line(counts: dict) -> str:
    """A fold's training set in a line: the length-balanced set's counts (prefkit's `balance_line`), or the pseudo
    set's."""
    from prefkit.toolbox.rules import balance_line

    if "duplicated" in counts:
        return balance_line(counts)
    return (f"{counts['labelled']} labelled rows + {counts['kept']} of fold {counts['fold']}'s {counts['rows']} pairs "
            f"pseudo-labelled ({counts['dropped']} dropped at margin <= {counts['min_margin']:g})")


class Trainsets(Bench):
    """distill_hh's Bench (rows, folds, subsets), the config a fold trains with, and this benchmark's files."""

    def __init__(self, work: Path, data: Path, extra: list[str], config: tuple[str, list[str]]):
        super().__init__(work, data, extra)
        self.config, self.overrides = config

    def check_fold(self, anchor: pd.DataFrame | None, k: int) -> None:
        """The anchor's kept fold k is this checkout's fold k (its rows, folds and labels)."""
        if anchor is None or not (anchor["fold"] == k).any():
            raise SystemExit(f"the anchor's fold {k} is not kept in {mh.KEPT}; train it first: python "
                             f"benchmarks/methods_hh.py --variants features,{mh.ANCHOR} --folds {k}")
        mine = self.fold.index[self.fold == k]
        theirs = anchor[anchor["fold"] == k]
        if set(theirs.index) != set(mine) or not (theirs["label"] == self.label.loc[theirs.index]).all():
            raise SystemExit(f"{mh.KEPT / (mh.ANCHOR + '.csv.gz')}: its fold {k} has other rows or labels than this "
                             "checkout's data")

    def training_set(self, name: str, k: int, anchor: pd.DataFrame, min_margin: float) -> tuple[Path, list[str], dict]:
        """Fold k's training file, the overrides that go with it, and its counts (printed and logged)."""
        from prefkit.competition import COMPETITIONS
        from prefkit.data.arena import write_parquet
        from prefkit.toolbox.rules import length_balanced

        base = self.subset([f for f in range(N_FOLDS) if f != k])
        if name.startswith(PSEUDO):
            path = self.work / name / f"fold{k}.pseudo.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            info = write_pseudo(path, self.table, self.fold, k, anchor, COMPETITIONS["lmsys"], min_margin)
            counts = {"labelled": int((self.fold != k).sum()), "fold": k, **info}
            sets = [f"train.pseudo_labels={path}"]
        else:
            path = base.with_name(base.stem + "_balanced.parquet")
            table, counts = length_balanced(self.table.subset((self.fold != k).to_numpy()), SEED)
            if not path.exists():
                write_parquet(table, path)
            base, sets = path, []
        line = f"{name} fold {k}: {counts_line(counts)}"
        print(line, flush=True)
        with open(self.work / f"{name}.log", "a") as f:
            f.write(line + "\n")
        return base, sets, counts

    def train_fold(self, name: str, k: int, min_margin: float) -> None:
        """Variant `name`'s fold k: trained (or resumed) on its training set, fold k predicted, its predictions kept."""
        from prefkit.io import write_json

        anchor = mh.kept(mh.ANCHOR)
        self.check_fold(anchor, k)
        train_file, sets, counts = self.training_set(name, k, anchor, min_margin)
        run, pred = self.work / name / f"fold{k}", self.work / name / f"fold{k}.predict"
        log = self.work / f"{name}.log"
        t0 = time.perf_counter()
        args = ["train", self.config, f"data.train={train_file}", f"output_dir={run}", *self.overrides,
                *OVERRIDES.get(name, []), *sets, *self.extra]
        if (run / "run.json").exists():
            args.insert(1, "--resume")
        _prefkit(args, log)
        shutil.rmtree(pred, ignore_errors=True)  # an interrupted prediction starts again
        (pred.parent / f"fold{k}.submission.csv").unlink(missing_ok=True)
        _prefkit(["predict", "--run", str(run), "--test", str(self.subset([k])),
                  "--out", str(pred.parent / f"fold{k}.submission.csv"), f"output_dir={pred}"], log)
        probs = pd.read_csv(pred / "probabilities.csv", dtype={"id": str}).set_index("id")
        ids = self.fold.index[self.fold == k]
        if set(probs.index) != set(ids):
            raise SystemExit(f"{pred}: predicts {len(probs)} rows, not the {len(ids)} of fold {k}")
        cols = [c for c in probs.columns if c.startswith("winner_")]
        frame = pd.DataFrame({"fold": k, "label": self.label.loc[ids]}, index=ids).join(probs[cols])
        dtype = next((o.split("=")[1] for o in [*self.overrides, *self.extra] if o.startswith("model.dtype=")),
                     "float32")
        mh.keep(name, frame, {k: round(time.perf_counter() - t0, 1)}, dtype)
        book = read_counts()
        book.setdefault(name, {})[str(k)] = counts
        write_json(mh.KEPT / COUNTS, book)


def read_counts() -> dict:
    """The counts of each kept fold's training set: {variant: {fold: counts}} in the kept folder's COUNTS."""
    path = mh.KEPT / COUNTS
    return json.loads(path.read_text()) if path.exists() else {}


def report(bench: Trainsets, out: Path, folds: list[int], min_margin: float, t0: float) -> None:
    """Each kept variant against the anchor on its rows (methods_hh's `describe`: paired, length view), with the
    counts of its training sets."""
    anchor = mh.kept(mh.ANCHOR)
    if anchor is None:
        raise SystemExit(f"the anchor's predictions are not kept in {mh.KEPT}: nothing to compare with")
    names = list(dict.fromkeys([*VARIANTS, pseudo_name(min_margin),
                                *sorted(p.name.split(".")[0] for p in mh.KEPT.glob(f"{PSEUDO}_m*.csv.gz"))]))
    frames = {n: f for n in names if (f := mh.kept(n)) is not None}
    book = json.loads((mh.KEPT / "folds.json").read_text()) if (mh.KEPT / "folds.json").exists() else {}
    shown = sorted({int(f) for frame in frames.values() for f in frame["fold"].unique()}) or folds
    prob_cols = [c for c in anchor.columns if c.startswith("winner_")]
    base = anchor[anchor["fold"].isin(shown)]
    secs = [v["seconds"] for f, v in book.get(mh.ANCHOR, {}).items() if int(f) in shown and v.get("seconds")]
    rows = [mh.describe(mh.ANCHOR, base[prob_cols].to_numpy(), base, bench.table, anchor,
                        mh.VARIANTS[mh.ANCHOR][2] if mh.ANCHOR in mh.VARIANTS else "the anchor", secs)]
    for name, frame in frames.items():
        counts = read_counts().get(name, {})
        secs = [v["seconds"] for v in book.get(name, {}).values() if v.get("seconds")]
        row = mh.describe(name, frame[prob_cols].to_numpy(), frame, bench.table, anchor, _what(name), secs)
        row |= {"training rows": "; ".join(f"fold {k}: {counts_line(c)}" for k, c in sorted(counts.items())),
                "training sets": counts}
        rows.append(row)
    intro = (__doc__.split("\n\n")[0] + "\n\n`vs anchor`: the mean per-row difference (variant minus anchor; a "
             "negative log loss is better) ± its standard error, on the rows the variant predicted; the anchor's row "
             f"is on the folds shown. Kept predictions in {mh.KEPT}; this report took "
             f"{time.perf_counter() - t0:.0f} s.")
    write_results("trainsets_hh", out, {"data": bench.data.name, "cv": "5 grouped folds, seed 42",
                                        "anchor": mh.ANCHOR, "config": [bench.config, *bench.overrides, *bench.extra]},
                  COLUMNS, rows, intro)


def smoke(root: Path, data: Path, folds: list[int], extra: list[str]) -> Path:
    """A smoke run's inputs under `root`: the first SMOKE_ROWS rows of the file (named as it is, so the ids are the
    same) and the tiny model's anchor, `prefkit cv` of the folds, kept in root/kept."""
    from prefkit.io import write_text

    small = root / data.name.removesuffix(".gz")
    if not small.exists():
        with gzip.open(data, "rt", encoding="utf-8", newline="\n") as src:
            write_text(small, "".join(line for _, line in zip(range(SMOKE_ROWS), src)))
    have = mh.kept(mh.ANCHOR)
    missing = [k for k in folds if have is None or not (have["fold"] == k).any()]
    if missing:
        out = root / "anchor"
        args = ["cv", SMOKE[0], f"data.train={small}", f"output_dir={out}", *SMOKE[1], *extra,
                f"cv.folds=[{','.join(map(str, missing))}]"]
        if (out / "run.json").exists():
            args.insert(1, "--resume")
        _prefkit(args, root / "anchor.log")
        oof = pd.read_csv(out / "oof.csv", dtype={"id": str}).set_index("id")
        mh.keep(mh.ANCHOR, oof[oof["fold"].isin(missing)], {}, "float32")
    return small


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/trainsets_hh")
    ap.add_argument("--data", default=str(HH / "helpful-base.test.jsonl.gz"))
    ap.add_argument("--variants", default=f"{PSEUDO},{BALANCED}", help=f"known: {', '.join(VARIANTS)}")
    ap.add_argument("--folds", default="0", help="folds to train (each 15-25 min of SmolLM2 a variant)")
    ap.add_argument("--min-margin", type=float, default=0.0,
                    help=f"pseudo-labels: drop pairs with |P(A) - P(B)| <= this (WSDM Cup 2nd: {WSDM_MARGIN}); "
                         f"kept as {pseudo_name(WSDM_MARGIN)} for {WSDM_MARGIN}")
    ap.add_argument("--report-only", action="store_true", help="train nothing: report what is kept")
    ap.add_argument("--kept", default=str(mh.KEPT), help="folder of kept predictions (smoke runs: a scratch one)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for trainsets_hh.{json,md}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every prefkit run (smoke runs only: needs --kept elsewhere)")
    ap.add_argument("--smoke", metavar="DIR", help=f"the tiny model on {SMOKE_ROWS} rows, every file under DIR")
    args = ap.parse_args()

    from prefkit.rm.token_cache import ENV as TOKEN_CACHE

    t0 = time.perf_counter()
    data, work, out = Path(args.data), Path(args.work), Path(args.out)
    mh.KEPT = Path(args.kept)
    if not data.exists():
        raise SystemExit(f"{data} not found: this benchmark reads HH-RLHF from ../shared/data")
    folds = [int(f) for f in args.folds.split(",")]
    config = mh._DECODER
    if args.smoke:
        root = Path(args.smoke)
        os.environ.setdefault(TOKEN_CACHE, str(root / "token_cache"))  # the commands' token cache: here too
        mh.KEPT, work, out, config = root / "kept", root / "work", root / "results", SMOKE
        data = smoke(root, data, folds, args.set)
    if args.set and mh.KEPT.resolve() == (HERE / "results" / "methods_hh").resolve():
        raise SystemExit("--set changes the configs: give --kept a scratch folder, not the committed results")
    if args.min_margin < 0:
        raise SystemExit(f"--min-margin {args.min_margin}: a margin is at least 0")
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    bad = [k for k in folds if not 0 <= k < N_FOLDS]
    if bad:
        raise SystemExit(f"--folds: fold {bad[0]} does not exist (folds 0-{N_FOLDS - 1})")
    work.mkdir(parents=True, exist_ok=True)
    bench = Trainsets(work, data, args.set, config)
    if not args.report_only:
        for name in (pseudo_name(args.min_margin) if v == PSEUDO else v for v in variants):
            have = mh.kept(name)
            for k in folds:
                if have is None or k not in set(have["fold"]):
                    bench.train_fold(name, k, args.min_margin)
    report(bench, out, folds, args.min_margin, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
