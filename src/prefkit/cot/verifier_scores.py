"""Each sampled rationale's score by a verifier run (`prefkit cv` / `prefkit train`), and the scores kept in the
run's folder so that reranking the same samples again reads them.

Scoring a lone answer with a pairwise model: each sample is put against one fixed opponent, the empty answer
`ANCHOR`, and its score is log P(A wins) - log P(B wins). For a Bradley-Terry head that is exactly the
sample's own score minus the anchor's, a constant for the question, so the order of a question's samples is
the head's own; for the other heads it is the judged log-odds over a fixed reference. For the one-token judge
(`lm_tokens`, both answers in one sequence) that reference is outside its training pairs and its place in the
sequence matters: swap TTA (`predict.swap_tta`, on by default) averages both places, so the score does not
depend on which one the sample took; the order it gives is each sample against the same anchor, not the judge's
direct comparison of two samples (tests/cot/test_judge_verifier.py: right samples first on a learnable case).
`averaged`: every fold model of the run, averaged (test samples); `held_out`: only models that never saw the
sample's question (training samples, which calibration is fitted on).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from prefkit.core import runs
from prefkit.cot.pairs import response_text
from prefkit.cot.verifier_pairs import answer_text, question_key
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path
from prefkit.rm.run import Run

ANCHOR = response_text("", None)  # "Answer: (none)": the fixed opponent of every sample when it is scored
MADE_BY = "`prefkit cv` or `prefkit train` (the verifier)"


def averaged(rm_run: str | Path, rows: list[dict], say=None) -> np.ndarray:
    """Each sample's verifier score: log P(sample wins) - log P(anchor wins), fold models averaged."""
    return _averaged(Run.open(rm_run, made_by=MADE_BY), rows, say)


def _averaged(run: Run, rows: list[dict], say=None) -> np.ndarray:
    def compute() -> np.ndarray:  # the models' own probabilities: calibration is fitted on these scores afterwards
        probs, _ = run.predict(_against_anchor(rows, f"<samples of {run.path.name}>"), say, calibrated=False)
        return _log_odds_over_anchor(probs)

    return _kept(run.path, run.models, rows, compute)


def held_out(rm_run: str | Path, rows: list[dict]) -> np.ndarray:
    """Each training sample's score from models that never saw its question, NaN where every model did.

    A question absent from the verifier's data (`verifier-pairs` held it out, or it has no right-and-wrong pair)
    is scored by every model of the run, averaged; a question the run cross-validated on (a `cv` run's oof.csv
    names its fold) by the one fold model that held it out; a question a `train` run trained on gets NaN. So a
    `cv` verifier scores every training sample, a `train` one the samples of questions outside its data: those
    are what calibration, the blend of verifiers and the choice between them may be fitted on."""
    import pandas as pd

    run = Run.open(rm_run, made_by=MADE_BY)
    rm_run = run.path
    oof = rm_run / "oof.csv"
    data = oof if oof.exists() else Path(run.config.data.train)
    try:
        seen = pd.read_csv(data, usecols=["id", "fold"] if oof.exists() else ["id"])
    except (OSError, ValueError) as e:
        raise PrefkitError(f"{data}: cannot read the ids of the verifier's training pairs ({e})") from None
    fold_of = {question_key(i): (int(f) if oof.exists() else None)
               for i, f in zip(seen["id"], seen["fold"] if oof.exists() else [None] * len(seen))}
    out = np.full(len(rows), np.nan)
    keys = [question_key(r) for r in rows]
    idx = [i for i, k in enumerate(keys) if k not in fold_of]
    if idx:
        out[idx] = _averaged(run, [rows[i] for i in idx])
    for fold in sorted({f for f in fold_of.values() if f is not None}):
        idx = [i for i, k in enumerate(keys) if fold_of.get(k, -1) == fold]
        folder = rm_run / f"fold{fold}"
        if not idx or not runs.is_trained(folder):
            continue
        mine = [rows[i] for i in idx]

        def compute(fold=fold, folder=folder, mine=mine) -> np.ndarray:
            probs, _ = run.predict_fold(fold, _against_anchor(mine, f"<samples of {rm_run.name}/{folder.name}>"))
            return _log_odds_over_anchor(probs)

        out[idx] = _kept(rm_run, [folder], mine, compute)
    return out


def _against_anchor(rows: list[dict], source: str):
    from prefkit.data.table import TableBuilder

    b = TableBuilder(source)
    for n, r in enumerate(rows, start=1):
        b.add(n, None, f"{r['dataset']}:{r['index']}:{r['sample']}", [r["question"]], [answer_text(r)], [ANCHOR], None)
    return b.build()


def _log_odds_over_anchor(probs: np.ndarray) -> np.ndarray:
    """log P(sample wins) - log P(anchor wins); not `metrics.margins`, the gap between the top two labels."""
    p = np.clip(probs, 1e-12, 1.0)
    return np.log(p[:, 0]) - np.log(p[:, 1])


def _kept(rm_run: Path, folders: list[Path], rows: list[dict], compute) -> np.ndarray:
    """Scores kept in the verifier's run folder (`scores/<key>.npy`), keyed by the models that scored (each
    folder's trained.json) and the texts scored: reranking the same samples again (another calibration, a blend
    with another verifier) reads them instead of running every fold model over every sample again."""
    h = hashlib.sha256()
    for f in folders:
        h.update(f.name.encode() + b"\0" + (f / runs.MARKER).read_bytes())
    for r in rows:
        h.update(f"{r['question']}\0{answer_text(r)}\0".encode("utf-8", "surrogatepass"))
    path = rm_run / "scores" / f"{h.hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            got = np.load(path)
            if got.shape == (len(rows),):
                return got
        except (OSError, ValueError):
            pass  # a damaged file: scored again and rewritten
    out = compute()
    try:
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, out)
    except OSError:
        pass  # a read-only run folder: nothing kept, nothing lost
    return out
