"""Probes for the model itself: what reward-model users report most is a model that runs and scores wrong
without a word. Each probe measures one figure on a small seeded sample of rows and holds it to a stated
tolerance, naming the rows out of it:

    batch     a row scored alone and inside a batch of mixed lengths (a longer row is added to every batch, so
              each sample row is padded), with the padding side prediction uses: right for classifiers, left
              for the lm_tokens judge. Scores that change with their batch (reward-bench#137); a classifier that
              assumes right padding under a tokenizer that pads left (transformers#35909, #30004). The other
              side is measured too and shown as information: prefkit never pads that way, a server might.
    dtype     the compute dtype (fp16, bf16) against fp32 on the same batches; n/a when it is fp32.
    swap      P(A) of a row against P(B) of the swapped row, without TTA: exact for a head symmetric by
              construction (bt), a mean bound otherwise (a model that learned where an answer is, not what).
    position  the position the head reads is each row's last real token (the first for a BERT-like pooler),
              and not a padding token; the padding id against EOS and the model's own pad_token_id. With
              pad = EOS the classifier skips or stops at an EOS and both sides score alike (transformers#35352).
    attention Gemma-2 with eager (or flex) attention: SDPA drops its attention soft-capping (reward-bench#169).
    labels    the validation score with the labels shuffled must move: a metric that does not read the labels,
              or predictions that are the same for every row, do not (ms-swift#9370).

`prefkit doctor` runs them on a run's model; `cv` and `train` end with them on `train.probe_rows` rows
(`after_training`), their figures in the run's metrics.json under "probes". A features model (the baseline)
gets the probes that apply to it (swap, labels); the others say why not.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from prefkit.config import Config
from prefkit.core.batching import collate
from prefkit.core.dist import is_main, log
from prefkit.core.modeling import HEAD_NAMES, SOFTCAPPED, compute_dtype, precision
from prefkit.core.runs import trained_folders
from prefkit.core.tokenizer import special_ids
from prefkit.data import swap_ab
from prefkit.data.table import PairTable
from prefkit.metrics import score, swap_probs

# the largest probability difference a batch, or the A/B swap of a symmetric head, may make: kernels choose
# other reduction orders for other shapes, which fp32 hides and fp16/bf16 do not
BATCH_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}
DTYPE_TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2}  # compute dtype against fp32
SWAP_TOLERANCE = 0.1  # mean |P(A) - P'(B)| of a head that is not symmetric by construction
LABELS_MIN_MOVE = 1e-6  # the log loss must change by more than this when the labels are shuffled
FILLER = 16  # tokens by which the longer row added to each batch outgrows the sample's longest
SHOWN = 10  # row ids named in a line (all are in the record)


@dataclass
class Probe:
    """One probe's outcome: `status` ok, FAIL, info (measured, held to nothing) or n/a (with the reason)."""

    name: str
    status: str
    figure: str
    tolerance: str = ""
    rows: list[str] = field(default_factory=list)  # ids of the rows out of tolerance
    values: dict = field(default_factory=dict)  # the numbers, for metrics.json

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<21} {self.figure}"
        if self.tolerance:
            text += f"  [tolerance: {self.tolerance}]"
        if self.rows:
            more = f", ... ({len(self.rows)} rows)" if len(self.rows) > SHOWN else ""
            text += f"; rows {', '.join(map(repr, self.rows[:SHOWN]))}{more}"
        return text

    def record(self) -> dict:
        return {"status": self.status, "figure": self.figure, "tolerance": self.tolerance, "rows": self.rows,
                **self.values}


# ------------------------------------------------------------------------------------------- the sample

def sample_rows(table: PairTable, n: int, seed: int) -> PairTable:
    """A seeded sample of `n` rows (all of them when there are fewer), in table order."""
    if n >= len(table):
        return table
    keep = np.sort(np.random.default_rng(seed).choice(len(table), size=n, replace=False))
    return PairTable(table.frame.iloc[keep].reset_index(drop=True), table.source)


# ------------------------------------------------------------------------------- forward passes, watched

@dataclass
class _Pass:
    """The head's outputs for every sequence of a sample, batched one way, and, per sequence, the position the
    head read, the last real position, and whether the token read is padding."""

    outputs: np.ndarray
    read_at: np.ndarray
    last: np.ndarray
    read_pad: np.ndarray
    pooling: str  # "last" (a decoder classifier's pick), "first" (a BERT-like pooler), "final" (lm_tokens), "?"
    padded: int  # sequences that got padding in this pass


def _head_module(model: Any) -> torch.nn.Module | None:
    """The classification head module (its wrapper under peft): the first module named score or classifier."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in HEAD_NAMES:
            return module
    return None


@contextmanager
def _watching(model: Any) -> Iterator[dict]:
    """What the classifier computed during the block: "scores", its head module's output (per position, (batch,
    positions, outputs), for a decoder classifier, which then keeps one position; (batch, outputs) for a pooler
    over the first token), and "kept", the model's own output logits (the kept position's scores)."""
    seen: dict = {}

    def keep(key: str, value: Any) -> None:  # a hook that returns something would replace the output
        seen[key] = value

    module = _head_module(model)
    handles = [model.register_forward_hook(lambda m, args, out: keep("kept", getattr(out, "logits", None)))]
    if module is not None:
        handles.append(module.register_forward_hook(lambda m, args, out: keep("scores", out)))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def _reads(learner: Any, batch: dict, seen: dict) -> tuple[np.ndarray, str]:
    """The position the head read in each sequence of `batch` (-1: not known)."""
    mask = batch["attention_mask"]
    width, n = mask.shape[1], mask.shape[0]
    if learner.head.task == "causal_lm":  # the judge reads the final position (logits_to_keep=1)
        return np.full(n, width - 1), "final"
    per, kept = seen.get("scores"), seen.get("kept")
    if not isinstance(per, torch.Tensor) or not isinstance(kept, torch.Tensor):
        return np.full(n, -1), "?"
    if per.dim() == 2:  # a pooler over the first token ([CLS])
        return np.zeros(n, dtype=np.int64), "first"
    # a decoder classifier scores every position and keeps one: the position whose scores are the kept ones
    gap = (per.float() - kept.float()[:, None, :]).abs().amax(-1).cpu()  # (sequences, positions)
    last = width - 1 - mask.flip(-1).argmax(-1)
    at_last = gap[torch.arange(n), last] <= gap.min(-1).values  # ties: the last real token, where it is one
    return torch.where(at_last, last, gap.argmin(-1)).numpy(), "last"


def _forward(learner: Any, seqs: list[np.ndarray], batches: list[list[int]], left: bool, dtype: torch.dtype,
             filler: np.ndarray | None = None) -> _Pass:
    """Every sequence through the head, `batches` at a time (each with `filler` appended, its output dropped),
    padded on the left or the right, under autocast to `dtype`, watching which position the head reads."""
    model, head = learner.model, learner.head
    device = next(model.parameters()).device
    n = len(seqs)
    outputs = np.zeros((n, head.outputs))
    read_at, last, read_pad = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    pooling, padded = "?", 0
    with torch.inference_mode():
        for b in batches:
            group = [seqs[i] for i in b] + ([filler] if filler is not None else [])
            batch = collate(group, learner.pad_id, left=left)
            on_device = {k: v.to(device) for k, v in batch.items()}
            with _watching(model) as seen, precision(dtype, device):
                out = head.forward(model, on_device)
            at, pooling = _reads(learner, batch, seen)
            mask, ids = batch["attention_mask"].numpy(), batch["input_ids"].numpy()
            width = mask.shape[1]
            for j, i in enumerate(b):
                outputs[i] = out[j].float().cpu().numpy()
                last[i] = width - 1 - int(np.argmax(mask[j, ::-1]))
                read_at[i] = at[j]
                read_pad[i] = at[j] >= 0 and (mask[j, at[j]] == 0 or ids[j, at[j]] == learner.pad_id)
                padded += int(mask[j].sum() < width)
    return _Pass(outputs, read_at, last, read_pad, pooling, padded)


@contextmanager
def _in_fp32(model: Any) -> Iterator[None]:
    """The model computing in fp32 for the block: every floating tensor upcast in place (4-bit weights stay 4-bit
    and compute in fp32), then put back as it was. Memory: the frozen weights once more, in fp32."""
    saved = []
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point() and t.dtype != torch.float32:
            saved.append((t, t.dtype))
            t.data = t.data.float()
    computes = [(m, m.compute_dtype) for m in _four_bit(model)]
    for m, _ in computes:
        m.compute_dtype = torch.float32
    try:
        yield
    finally:
        for m, dt in computes:
            m.compute_dtype = dt
        for t, dt in saved:
            t.data = t.data.to(dt)


def _four_bit(model: Any) -> list:
    """bitsandbytes' 4-bit layers (they compute in their own `compute_dtype`, whatever autocast says)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


# ----------------------------------------------------------------------------------------------- probes

def _over(diff: np.ndarray, tol: float, ids: list[str]) -> list[str]:
    return [ids[i] for i in np.flatnonzero(diff > tol)]


def _batch_probe(side: str, used: bool, alone: np.ndarray, batched: np.ndarray, passed: _Pass, tol: float,
                 ids: list[str]) -> Probe:
    name = f"batch ({side} padding)"
    diff = np.abs(alone - batched).max(axis=1)
    values = {"max_abs_diff": float(diff.max()), "padded_sequences": passed.padded, "used": used}
    if passed.padded == 0:
        return Probe(name, "n/a", "no sequence got padding (one row a batch: raise predict.batch_tokens)", values=values)
    figure = f"max |dP| {diff.max():.1e}, a row alone against in a batch of mixed lengths"
    if not used:
        return Probe(name, "info", figure + " (prefkit does not pad this head on this side)", values=values)
    rows = _over(diff, tol, ids)
    return Probe(name, "FAIL" if rows else "ok", figure, f"{tol:.0e}", rows, values)


def _dtype_probe(learner: Any, seqs, batches, left: bool, dtype: torch.dtype, batched: np.ndarray, filler,
                 ids: list[str]) -> Probe:
    if dtype == torch.float32:
        return Probe("dtype", "n/a", "n/a (fp32): the model computes in fp32")
    name = str(dtype).removeprefix("torch.")
    try:
        with _in_fp32(learner.model):
            ref = learner.head.probs(_forward(learner, seqs, batches, left, torch.float32, filler).outputs)
    except torch.OutOfMemoryError:
        return Probe("dtype", "n/a", f"skipped: no memory for {name} weights upcast to fp32")
    diff = np.abs(ref - batched).max(axis=1)
    tol = DTYPE_TOLERANCE[dtype]
    rows = _over(diff, tol, ids)
    return Probe("dtype", "FAIL" if rows else "ok", f"max |dP| {diff.max():.1e}, {name} against fp32", f"{tol:.0e}",
                 rows, {"dtype": name, "max_abs_diff": float(diff.max())})


def _swap_probe(plain: np.ndarray, swapped: np.ndarray, symmetric: bool, tol: float, ids: list[str],
                head_name: str) -> Probe:
    """P of each row against the swapped row's P, swapped back (no TTA)."""
    back = swap_probs(swapped)
    diff = np.abs(plain - back).max(axis=1)
    agree = float((plain.argmax(axis=1) == back.argmax(axis=1)).mean())
    values = {"mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max()), "agreement": agree,
              "symmetric": symmetric}
    figure = f"mean |P(A) - P'(B)| {diff.mean():.4f}, max {diff.max():.4f}, same answer on {agree:.0%} of rows"
    if symmetric:
        rows = _over(diff, tol, ids)
        return Probe("swap", "FAIL" if rows else "ok", figure, f"max {tol:.0e} ({head_name} is symmetric by construction)",
                     rows, values)
    rows = _over(diff, SWAP_TOLERANCE, ids) if diff.mean() > SWAP_TOLERANCE else []
    return Probe("swap", "FAIL" if rows else "ok", figure, f"mean {SWAP_TOLERANCE} (swap TTA averages what remains)",
                 rows, values)


def _position_probe(learner: Any, passed: _Pass, seqs: list[np.ndarray], ids_of_seq: list[str], side: str) -> Probe:
    """Where the head read each sequence of the padded pass; the padding id against EOS and the model's own."""
    pad = learner.pad_id
    _, eos = special_ids(learner.tokenizer)
    config_pad = getattr(_config(learner.model), "pad_token_id", None)
    name = learner.tokenizer.id_to_token
    ids_text = (f"pad {pad} {name(pad)!r}, EOS {eos} {None if eos is None else name(eos)!r}, "
                f"model pad_token_id {config_pad}")
    values = {"pad_id": pad, "eos_id": eos, "model_pad_token_id": config_pad, "pooling": passed.pooling}
    if passed.pooling == "?":
        return Probe("position", "n/a", f"no head module named {' or '.join(HEAD_NAMES)} to watch; {ids_text}",
                     values=values)
    where = "the first token (a BERT-like pooler)" if passed.pooling == "first" else "the last real token"
    wrong = passed.read_pad if passed.pooling == "first" else (passed.read_at != passed.last) | passed.read_pad
    holding = [i for i, s in enumerate(seqs) if (s == pad).any()]  # real tokens that look like padding
    problems = []
    if len(holding):
        problems.append(f"{len(holding)} sequences hold the padding id among their tokens")
    if pad == eos:
        problems.append("pad = EOS")
    mismatch = passed.pooling == "last" and config_pad is not None and config_pad != pad
    if mismatch:
        problems.append(f"batches are padded with {pad}, the model takes {config_pad} for padding")
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        problems.append(f"{ids_of_seq[i]!r}: read position {passed.read_at[i]}, its last real token is at {passed.last[i]}")
    bad = wrong.copy()
    if pad == eos:  # an EOS in a row is taken for padding: where the classifier stops depends on transformers
        bad[holding] = True
    rows = list(dict.fromkeys(ids_of_seq[i] for i in np.flatnonzero(bad)))  # a row once (bt: two sequences)
    values.update(misread_sequences=int(wrong.sum()), sequences_holding_pad=len(holding))
    figure = (f"reads {where} of {len(wrong) - int(wrong.sum())}/{len(wrong)} sequences ({side} padding); {ids_text}"
              + "".join(f"; {p}" for p in problems))
    ok = not rows and not mismatch
    return Probe("position", "ok" if ok else "FAIL", figure, "every sequence; pad != EOS in the rows", rows, values)


def _config(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "config", None)


def _attention_probe(model: Any) -> Probe:
    config = _config(model)
    kind = getattr(config, "model_type", "?")
    attn = getattr(config, "_attn_implementation", None) or "?"
    values = {"model_type": kind, "attn_implementation": attn}
    if kind not in SOFTCAPPED:
        return Probe("attention", "info", f"{kind} with {attn} attention", values=values)
    ok = attn in ("eager", "flex_attention")
    return Probe("attention", "ok" if ok else "FAIL", f"{kind} with {attn} attention",
                 "eager or flex_attention (SDPA drops Gemma-2's soft-capping)", values=values)


def labels_probe(probs: np.ndarray, labels, seed: int = 0, metric: Callable = score) -> Probe:
    """The score on the labels against the score on the labels shuffled (seeded), which must differ. Where the
    shuffle leaves most labels in place (one class), every label moves to the next class instead."""
    labels = np.asarray(labels, dtype=object)
    k = probs.shape[1]
    shuffled, how = labels[np.random.default_rng(seed).permutation(len(labels))], "shuffled"
    if len(labels) and (shuffled == labels).mean() > 0.5:
        order = ["a", "b", "tie"][:k]
        shuffled, how = np.array([order[(order.index(x) + 1) % k] for x in labels], dtype=object), "moved a class"
    real, fake = metric(probs, labels), metric(probs, shuffled)
    move = abs(real["logloss"] - fake["logloss"])
    values = {"logloss": real["logloss"], "logloss_shuffled": fake["logloss"], "accuracy": real["accuracy"],
              "accuracy_shuffled": fake["accuracy"], "rows": len(labels), "how": how}
    figure = (f"log loss {real['logloss']:.4f} on the labels, {fake['logloss']:.4f} {how} (moved {move:.1e}); "
              f"accuracy {real['accuracy']:.3f} -> {fake['accuracy']:.3f}, {len(labels)} rows")
    if move > LABELS_MIN_MOVE:
        return Probe("labels", "ok", figure, f"moves by > {LABELS_MIN_MOVE:.0e}", values=values)
    why = ("every row has the same prediction" if np.ptp(probs, axis=0).max() < 1e-9
           else "the metric does not read the labels")
    return Probe("labels", "FAIL", f"{figure}: {why}", f"moves by > {LABELS_MIN_MOVE:.0e}", ["all rows"], values)


# -------------------------------------------------------------------------------------- the two kinds

def _plain_batches(lengths: list[int], width: int, batch_tokens: int) -> list[list[int]]:
    """Sequences in sample order, as many a batch as `batch_tokens` holds at `width` (one being the filler)."""
    per = max(1, batch_tokens // width - 1)
    return [list(range(i, min(i + per, len(lengths)))) for i in range(0, len(lengths), per)]


def _filler(seqs: list[np.ndarray], model: Any) -> np.ndarray | None:
    """A sequence FILLER tokens longer than the sample's longest (its head repeated), so that every sample row is
    padded in its batch; None where the model's positions would not hold it."""
    longest = max(seqs, key=len)
    limit = getattr(_config(model), "max_position_embeddings", None)
    if limit is not None and len(longest) + FILLER > limit:
        return None
    return np.concatenate([longest, np.resize(longest, FILLER)]).astype(longest.dtype)


def _side(left: bool) -> str:
    return "left" if left else "right"


def model_probes(learner: Any, rows: PairTable) -> tuple[list[Probe], np.ndarray]:
    """The probes of a transformer reward model on `rows`, and the rows' plain predictions (no TTA)."""
    head, cfg = learner.head, learner.cfg
    dtype = compute_dtype(cfg.model.dtype)
    tol = BATCH_TOLERANCE.get(dtype, 2e-2)
    ids = list(rows.frame["id"])
    seqs = head.sequences(learner.renderer, rows)
    ids_of_seq = [x for x in ids for _ in range(head.per_row)]
    filler = _filler(seqs, learner.model)
    width = max(map(len, seqs)) + (FILLER if filler is not None else 0)
    batches = _plain_batches([len(s) for s in seqs], width, cfg.predict.batch_tokens)
    alone = head.probs(_forward(learner, seqs, [[i] for i in range(len(seqs))], head.left_pad, dtype).outputs)
    probes, plain, used = [], None, None
    for left in (head.left_pad, not head.left_pad):  # the side prediction uses first
        passed = _forward(learner, seqs, batches, left, dtype, filler)
        batched = head.probs(passed.outputs)
        probes.append(_batch_probe(_side(left), left == head.left_pad, alone, batched, passed, tol, ids))
        if plain is None:
            plain, used = batched, passed
    probes.append(_dtype_probe(learner, seqs, batches, head.left_pad, dtype, plain, filler, ids))
    swapped_seqs = head.sequences(learner.renderer, rows, swap=True)
    swapped = head.probs(_forward(learner, swapped_seqs, batches, head.left_pad, dtype, filler).outputs)
    probes.append(_swap_probe(plain, swapped, head.symmetric, tol, ids, head.name))
    probes.append(_position_probe(learner, used, seqs, ids_of_seq, _side(head.left_pad)))
    probes.append(_attention_probe(learner.model))
    return probes, plain


def feature_probes(learner: Any, rows: PairTable) -> tuple[list[Probe], np.ndarray]:
    """A features model has no batches, padding, dtype or positions: the swap probe alone applies (then labels)."""
    from prefkit.rm.features import table_features

    arithmetic = learner.cfg.features.arithmetic
    plain = learner.model.predict_proba(table_features(rows, arithmetic), False)
    swapped = learner.model.predict_proba(table_features(swap_ab(rows), arithmetic), False)
    why = "features model: a row's features do not depend on other rows, padding or a dtype"
    probes = [Probe("batch", "n/a", why), Probe("dtype", "n/a", why), Probe("position", "n/a", why)]
    probes.append(_swap_probe(plain, swapped, False, 0.0, list(rows.frame["id"]), "features"))
    return probes, plain


def probe(learner: Any, rows: PairTable, scored: tuple[np.ndarray, Any] | None = None, seed: int = 0,
          metric: Callable = score) -> list[Probe]:
    """Every probe that applies to the learner's model, on `rows` (a small sample). The labels probe reads
    `scored` (validation probabilities and their labels: a cv run's OOF), else the sample's plain predictions
    and labels."""
    run = feature_probes if learner.kind == "features" else model_probes
    probes, plain = run(learner, rows)
    probs, labels = scored if scored is not None else (plain, rows.frame["label"].to_numpy())
    probes.append(labels_probe(np.asarray(probs), labels, seed, metric))
    return probes


# ----------------------------------------------------------------------------------------- on a run

def probe_config(cfg: Config) -> Config:
    """The run's config for probing: the transformers backend (vLLM serves no watched forward passes)."""
    return dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, backend="transformers"))


def probe_folder(cfg: Config, folder: Path, table: PairTable, n: int, scored=None,
                 metric: Callable = score) -> list[Probe]:
    """Load the model in `folder`, probe it on `n` seeded rows of `table`, give its memory back."""
    from prefkit.rm.learners import load_learner

    learner = load_learner(probe_config(cfg), folder)
    try:
        return probe(learner, sample_rows(table, n, cfg.train.seed), scored, cfg.train.seed, metric)
    finally:
        learner.release()


def record(probes: list[Probe], folder: Path, n: int) -> dict:
    """What metrics.json keeps of the probes (under "probes")."""
    return {"model": folder.name, "rows": n, "failed": [p.name for p in probes if p.failed],
            **{p.name.replace(" ", "_").replace("(", "").replace(")", ""): p.record() for p in probes}}


def after_training(cfg: Config, run_dir: Path, table: PairTable, scored=None) -> dict | None:
    """The probes at the end of `cv` and `train`, on `train.probe_rows` rows of the run's first finished model:
    each figure logged, a failure said as a warning (the run stands). A probe that cannot run is said and
    recorded, never the end of a run that trained."""
    n = cfg.train.probe_rows
    folders = trained_folders(run_dir)
    if not n or not folders or not is_main():
        return None
    try:
        probes = probe_folder(cfg, folders[0], table, n, scored)
    except Exception as e:  # noqa: BLE001 - the model trained and was scored: a probe's crash must not lose that
        log(f"warning: the model probes could not run ({type(e).__name__}: {e})", summary=True)
        return {"model": folders[0].name, "error": f"{type(e).__name__}: {e}"}
    for p in probes:
        log(f"probe {p.line()}", summary=p.failed)
    failed = [p.name for p in probes if p.failed]
    if failed:
        log(f"warning: {folders[0].name} fails the model probes {', '.join(failed)} (above; "
            f"`prefkit doctor --run {run_dir}` runs them again)", summary=True)
    return record(probes, folders[0], min(n, len(table)))
