"""Probes for the model itself: what reward-model users report most is a model that runs and scores wrong
without a word, each bug found after the fact. Each probe measures one figure on a small seeded sample of rows
and holds it to a stated tolerance, naming the rows out of it (docs/doctor.md: every probe, the public report it
comes from, and the faults planted to test it):

    batch     a row scored alone and inside a batch of mixed lengths (a longer row is added to every batch, so
              each sample row is padded), with the padding side prediction uses: right for classifiers, left
              for the lm_tokens judge. Scores that change with their batch (reward-bench#137, sglang#2427); a
              model that assumes right padding padded on the left (LlamaFactory#689, transformers#35909). The
              other side is measured too and shown as information: prefkit never pads that way, a server might.
    dtype     the compute dtype (fp16, bf16) against fp32 on the same batches; n/a when it is fp32.
    overflow  every module's outputs under the compute dtype: finite, and inside fp16's range where it computes
              in fp16 (real Gemma weights overflow fp16 where random ones do not).
    swap      the swapped rows' inputs and outputs: a swap that changes nothing the model reads; for a head
              symmetric by construction (bt), exact. The position bias is shown, held to a bound only where
              swap TTA does not cancel it (`predict.swap_tta=false`).
    position  the position the head reads is each row's last real token (the first for a BERT-like pooler),
              and not a padding token; the padding id against EOS and the model's own pad_token_id; a padding id
              that is a real token of every sequence (trl#6952: pad = EOS at a turn boundary; transformers#35352).
    eos       the special tokens that start and end every sequence, the padding and EOS ids, as at training
              (trl#5813: an EOS in training and none at evaluation).
    tokenizer the tokenizer against the fingerprint training recorded (its vocabulary and how it encodes a fixed
              text), and its ids against the model's embedding: a tokenizer swapped under the model.
    head      the classification head as loaded against the weights the folder holds (ms-swift#9239: a head
              re-initialised on load), moved from its initialisation under LoRA (trl#2743: a head left
              untrained), and reading the input (outputs that differ from row to row).
    attention Gemma-2 with eager (or flex) attention: SDPA drops its attention soft-capping (reward-bench#169).
    labels    the validation score must move when the labels are shuffled, and when A and B are exchanged in
              them: a metric that does not read the labels, or predictions that do not tell A from B
              (ms-swift#9370).
    folds     (a cv run, from `prefkit doctor`) no validation row of a fold among that fold's training rows, by
              id or by normalised prompt (OpenRLHF#1089).

`prefkit doctor` runs them on a run's model (and `prefkit.rm.golden`'s probe: the scores of fixed rows as at
training, ms-swift#6704); `cv` and `train` end with them on `train.probe_rows` rows (`after_training`), their
figures in the run's metrics.json under "probes", after recording in each model folder what the later probes
compare against (`record_training`: the tokenizer's fingerprint, the sequences' special tokens, each fold's
held-out ids). A features model (the baseline) gets the probes that apply to it (swap, labels, folds); the
others say why not. The probes take what they read: a transformer's model, head, renderer and padding id (a
`Subject`), or the features model itself; never the learner that loaded them.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from prefkit.config import Config, PredictConfig
from prefkit.core.batching import collate
from prefkit.core.dist import is_main, log
from prefkit.core.modeling import HEAD_NAMES, SOFTCAPPED, compute_dtype, precision
from prefkit.core.runs import trained_folders
from prefkit.core.tokenizer import fingerprint, special_ids
from prefkit.data import swap_ab
from prefkit.data.table import PairTable, normalise_prompt
from prefkit.io import write_json
from prefkit.metrics import score, swap_probs
from prefkit.rm.heads import Head
from prefkit.rm.templates import Renderer

# the largest probability difference a batch, or the A/B swap of a symmetric head, may make: kernels choose
# other reduction orders for other shapes, which fp32 hides and fp16/bf16 do not
BATCH_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}
DTYPE_TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2}  # compute dtype against fp32
FP16_MAX = float(torch.finfo(torch.float16).max)  # 65504: beyond it fp16 holds inf
# The swap verdict of a head that is not symmetric by construction. It used to bound mean |P(A) - P'(B)| by 0.1;
# a clean tiny model trained a few steps sat at 0.091 on one fold and 0.31 on the next, because that figure is
# mostly the model's position bias (P(A) - P(B) shifted alike on every row), which differs from fold to fold of a
# barely trained model and which swap TTA cancels exactly. A swap that is broken shows otherwise, whatever the
# model learned: the swapped inputs are the plain ones, or the swapped rows score exactly as the plain rows
# mirrored (the model reads nothing the swap changes). A clean model is 1e-2 or more from that on these rows,
# five orders above MIRROR_TOLERANCE. The bias itself is held to SWAP_TOLERANCE only where swap TTA is off, since
# then it goes into every prediction.
SWAP_TOLERANCE = 0.1  # mean position bias of P(A) - P(B), with predict.swap_tta=false
MIRROR_TOLERANCE = 1e-7  # |P'(B) - P(B)| of a row whose swap the model did not see (the same numbers, computed twice)
LABELS_MIN_MOVE = 1e-6  # the log loss must change by more than this when the labels are shuffled or A<->B exchanged
# The predictions may not agree with the labels' A and B exchanged beyond both a paired t statistic of 4 and a sign
# test at 1e-3 (`_exchange_test`). A model that learned nothing sits near t = 0, and its log-probabilities have
# heavy tails: either test alone called about 1 in 1,000 samples of 10-20 random predictions, both together 1 in
# 10,000 or fewer (simulated); a model that learned the labels sits far below 0.
EXCHANGE_T, EXCHANGE_P = 4.0, 1e-3
HEAD_MIN_MOVE = 1e-6  # relative change of the head's weights from their initialisation; a training step moves ~lr
HEAD_MIN_SPREAD = 1e-6  # the head's outputs must differ from sequence to sequence by more than this (std)
FILLER = 16  # tokens by which the longer row added to each batch outgrows the sample's longest
SHOWN = 10  # row ids named in a line (all are in the record)
RECORD = "probe_record.json"  # in a model folder: what training recorded for the probes (`record_training`)


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


@dataclass(frozen=True)
class Subject:
    """What the probes read of a transformer reward model: the model, its head, the renderer that makes its
    sequences (its tokenizer is `renderer.tok`), the padding id its batches use, and the folder it was loaded
    from (the training record and the saved head are read there; None: a model not loaded from a folder)."""

    model: Any
    head: Head
    renderer: Renderer
    pad_id: int
    folder: Path | None = None


# ------------------------------------------------------------------------------------------- the sample

def sample_rows(table: PairTable, n: int, seed: int) -> PairTable:
    """A seeded sample of `n` rows (all of them when there are fewer), in table order."""
    if n >= len(table):
        return table
    keep = np.sort(np.random.default_rng(seed).choice(len(table), size=n, replace=False))
    return table.subset(keep)


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


@dataclass
class _Activations:
    """Every module's floating outputs during a pass: the largest finite |value| and the module that gave it,
    the modules that gave a non-finite value (in the order they ran: the first is where it began), and the
    sequences that met one."""

    largest: float = 0.0
    at: str = ""
    nonfinite: list[str] = field(default_factory=list)
    bad: np.ndarray | None = None


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


def _tensors(out: Any) -> Iterator[torch.Tensor]:
    """The tensors of a module's output: a tensor, or those inside tuples, lists and dicts (ModelOutput)."""
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, (tuple, list)):
        for x in out:
            yield from _tensors(x)
    elif isinstance(out, dict):
        for x in out.values():
            yield from _tensors(x)


@contextmanager
def _activations(model: Any, seen: _Activations, mask: torch.Tensor) -> Iterator[np.ndarray]:
    """Watch every module's outputs during the block (a batch whose attention mask is `mask`) into `seen`; yields
    the sequences of the batch that met a non-finite value. Padding positions of a (batch, positions, ...) tensor
    are left out: what is computed there is never read, and a query with nothing to attend to may be NaN there."""
    width, length = mask.shape
    bad = np.zeros(width, dtype=bool)

    def hook(name: str):
        def look(module: Any, args: Any, out: Any) -> None:  # returns nothing: the output stays as it is
            for t in _tensors(out):
                if not t.is_floating_point() or not t.numel():
                    continue
                t = t.detach()
                ignored = torch.zeros((), dtype=torch.bool, device=t.device)
                if t.dim() >= 2 and tuple(t.shape[:2]) == (width, length):
                    ignored = ~mask.to(t.device, torch.bool).view(width, length, *[1] * (t.dim() - 2))
                finite = torch.isfinite(t) | ignored
                top = float(t.abs().masked_fill(~finite | ignored, 0).max())
                if top > seen.largest:
                    seen.largest, seen.at = top, name
                if not bool(finite.all()):
                    if name not in seen.nonfinite:
                        seen.nonfinite.append(name)
                    if t.dim() and t.shape[0] == width:
                        np.logical_or(bad, (~finite).reshape(width, -1).any(-1).cpu().numpy(), out=bad)
        return look

    handles = [m.register_forward_hook(hook(n or type(m).__name__)) for n, m in model.named_modules()]
    try:
        yield bad
    finally:
        for h in handles:
            h.remove()


def _reads(head: Head, batch: dict, seen: dict) -> tuple[np.ndarray, str]:
    """The position the head read in each sequence of `batch` (-1: not known)."""
    mask = batch["attention_mask"]
    width, n = mask.shape[1], mask.shape[0]
    if head.task == "causal_lm":  # the judge reads the final position (logits_to_keep=1)
        return np.full(n, width - 1), "final"
    per, kept = seen.get("scores"), seen.get("kept")
    if not isinstance(per, torch.Tensor) or not isinstance(kept, torch.Tensor):
        return np.full(n, -1), "?"
    if per.dim() == 2:  # a pooler over the first token ([CLS])
        return np.zeros(n, dtype=np.int64), "first"
    # a decoder classifier scores every position and keeps one: the position whose scores are the kept ones
    gap = (per.float() - kept.float()[:, None, :]).abs().amax(-1).cpu()  # (sequences, positions)
    gap = torch.nan_to_num(gap, nan=float("inf"))  # a NaN score (at a padding position) is not the kept one
    last = width - 1 - mask.flip(-1).argmax(-1)
    at_last = gap[torch.arange(n), last] <= gap.min(-1).values  # ties: the last real token, where it is one
    return torch.where(at_last, last, gap.argmin(-1)).numpy(), "last"


def _forward(subject: Subject, seqs: list[np.ndarray], batches: list[list[int]], left: bool, dtype: torch.dtype,
             filler: np.ndarray | None = None, activations: _Activations | None = None) -> _Pass:
    """Every sequence through the head, `batches` at a time (each with `filler` appended, its output dropped),
    padded on the left or the right, under autocast to `dtype`, watching which position the head reads (and,
    given `activations`, every module's outputs)."""
    model, head = subject.model, subject.head
    device = next(model.parameters()).device
    n = len(seqs)
    outputs = np.zeros((n, head.outputs))
    read_at, last, read_pad = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    pooling, padded = "?", 0
    if activations is not None:
        activations.bad = np.zeros(n, dtype=bool)
    with torch.inference_mode():
        for b in batches:
            group = [seqs[i] for i in b] + ([filler] if filler is not None else [])
            batch = collate(group, subject.pad_id, left=left)
            on_device = {k: v.to(device) for k, v in batch.items()}
            watch = nullcontext() if activations is None else _activations(model, activations, batch["attention_mask"])
            with _watching(model) as seen, watch as bad, precision(dtype, device):
                out = head.forward(model, on_device)
            at, pooling = _reads(head, batch, seen)
            mask, ids = batch["attention_mask"].numpy(), batch["input_ids"].numpy()
            width = mask.shape[1]
            for j, i in enumerate(b):
                outputs[i] = out[j].float().cpu().numpy()
                last[i] = width - 1 - int(np.argmax(mask[j, ::-1]))
                read_at[i] = at[j]
                read_pad[i] = at[j] >= 0 and (mask[j, at[j]] == 0 or ids[j, at[j]] == subject.pad_id)
                padded += int(mask[j].sum() < width)
                if bad is not None:
                    activations.bad[i] = bad[j]
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
    """The rows out of tolerance; a NaN is out of it (a comparison with NaN is false: it would pass)."""
    return [ids[i] for i in np.flatnonzero(~(diff <= tol))]


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


def _dtype_probe(subject: Subject, seqs, batches, left: bool, dtype: torch.dtype, batched: np.ndarray, filler,
                 ids: list[str]) -> Probe:
    if dtype == torch.float32:
        return Probe("dtype", "n/a", "n/a (fp32): the model computes in fp32")
    name = str(dtype).removeprefix("torch.")
    try:
        with _in_fp32(subject.model):
            ref = subject.head.probs(_forward(subject, seqs, batches, left, torch.float32, filler).outputs)
    except torch.OutOfMemoryError:
        return Probe("dtype", "n/a", f"skipped: no memory for {name} weights upcast to fp32")
    diff = np.abs(ref - batched).max(axis=1)
    tol = DTYPE_TOLERANCE[dtype]
    rows = _over(diff, tol, ids)
    return Probe("dtype", "FAIL" if rows else "ok", f"max |dP| {diff.max():.1e}, {name} against fp32", f"{tol:.0e}",
                 rows, {"dtype": name, "max_abs_diff": float(diff.max())})


def _overflow_probe(seen: _Activations, dtype: torch.dtype, ids_of_seq: list[str]) -> Probe:
    """Every module's outputs in the plain pass under the compute dtype: finite, and inside fp16's range where
    it computes in fp16. A model computing in fp32 or bf16 is told (not failed) when fp16 would not hold it:
    a Kaggle T4 computes in fp16 where `model.dtype` is auto."""
    name = str(dtype).removeprefix("torch.")
    values = {"dtype": name, "largest": seen.largest, "largest_at": seen.at, "nonfinite_modules": seen.nonfinite}
    figure = f"largest |activation| {seen.largest:.1e} ({seen.at or '-'}) under {name}"
    if seen.nonfinite:
        figure += f"; non-finite values from {len(seen.nonfinite)} modules, first {seen.nonfinite[0]}"
    else:
        figure += "; every value finite"
    if dtype != torch.float16 and seen.largest >= FP16_MAX:
        figure += f"; beyond fp16's {FP16_MAX:.0f}: in fp16 (a T4 with model.dtype=auto) it would overflow"
    out = bool(seen.nonfinite) or (dtype == torch.float16 and seen.largest >= FP16_MAX)
    tolerance = "finite" + (f", below {FP16_MAX:.0f} (fp16's largest)" if dtype == torch.float16 else "")
    rows = list(dict.fromkeys(ids_of_seq[i] for i in np.flatnonzero(seen.bad))) if seen.bad is not None else []
    if out and not rows:
        rows = ["all rows"]
    return Probe("overflow", "FAIL" if out else "ok", figure, tolerance, rows if out else [], values)


def _swap_probe(plain: np.ndarray, swapped: np.ndarray, ids: list[str], *, symmetric: bool, tol: float,
                head_name: str, same_input: np.ndarray, texts_differ: np.ndarray, tta: bool) -> Probe:
    """P of each row against the swapped row's P, swapped back (no TTA). `same_input`: rows whose swapped input
    (token ids, features) is their plain one; `texts_differ`: rows whose responses A and B differ. See
    SWAP_TOLERANCE for why the position bias is shown and not held to a bound where swap TTA cancels it."""
    back = swap_probs(swapped)
    diff = np.abs(plain - back).max(axis=1)
    agree = float((plain.argmax(axis=1) == back.argmax(axis=1)).mean())
    s, s_back = plain[:, 0] - plain[:, 1], back[:, 0] - back[:, 1]
    shift = (s - s_back) / 2  # the position's part of P(A) - P(B) in each row: what swap TTA cancels
    bias, signal = float(shift.mean()), float(np.abs(s + s_back).mean() / 2)  # signal: what TTA keeps
    mirror = np.abs(back - swap_probs(plain)).max(axis=1)  # 0: the swapped row scored as the plain one
    values = {"mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max()), "agreement": agree,
              "symmetric": symmetric, "position_bias": bias, "answer_signal": signal, "swap_tta": tta}
    figure = f"mean |P(A) - P'(B)| {diff.mean():.4f}, max {diff.max():.4f}, same answer on {agree:.0%} of rows"
    if symmetric:
        rows = _over(diff, tol, ids)
        return Probe("swap", "FAIL" if rows else "ok", figure, f"max {tol:.0e} ({head_name} is symmetric by construction)",
                     rows, values)
    figure += f"; position bias {bias:+.4f}, the answers' own signal {signal:.4f}"
    compared = ~same_input
    exact = compared & (mirror <= MIRROR_TOLERANCE)
    values.update(rows_compared=int(compared.sum()), rows_mirrored=int(exact.sum()),
                  mirror_min=float(mirror[compared].min()) if compared.any() else None)
    problems, bad = [], np.zeros(len(ids), dtype=bool)
    if texts_differ.any() and not (compared & texts_differ).any():
        problems.append("the swapped rows are the plain rows: the swap does nothing")
        bad |= texts_differ
    elif compared.any() and 2 * exact.sum() > compared.sum():  # a majority: not the odd row whose change is unread
        problems.append(f"{exact.sum()} of {compared.sum()} swapped rows score exactly as the plain rows mirrored: "
                        "the model reads nothing the swap changes")
        bad |= exact
    if not tta and not abs(bias) <= SWAP_TOLERANCE:
        problems.append("predict.swap_tta=false: the position bias goes into every prediction (swap TTA cancels it)")
        bad |= ~(np.abs(shift) <= SWAP_TOLERANCE)
    tolerance = "the swap changes the input and the output" + (
        "; swap TTA cancels the position bias" if tta else f"; position bias within {SWAP_TOLERANCE} (no swap TTA)")
    rows = [ids[i] for i in np.flatnonzero(bad)]
    return Probe("swap", "FAIL" if problems else "ok", figure + "".join(f"; {p}" for p in problems), tolerance,
                 rows, values)


def _token(tok: Any, i: int | None, names: dict | None = None) -> str:
    """An id and its token (in `names`, a record's, else the tokenizer `tok`'s)."""
    if i is None:
        return "none"
    return f"{i} {(names.get(str(i)) if names is not None else tok.id_to_token(i))!r}"


def _position_probe(subject: Subject, passed: _Pass, seqs: list[np.ndarray], ids_of_seq: list[str], side: str) -> Probe:
    """Where the head read each sequence of the padded pass; the padding id against EOS, the model's own, and the
    rows' real tokens."""
    pad, tok = subject.pad_id, subject.renderer.tok
    _, eos = special_ids(tok)
    config_pad = getattr(_config(subject.model), "pad_token_id", None)
    ids_text = f"pad {_token(tok, pad)}, EOS {_token(tok, eos)}, model pad_token_id {config_pad}"
    values = {"pad_id": pad, "eos_id": eos, "model_pad_token_id": config_pad, "pooling": passed.pooling}
    if passed.pooling == "?":
        return Probe("position", "n/a", f"no head module named {' or '.join(HEAD_NAMES)} to watch; {ids_text}",
                     values=values)
    where = "the first token (a BERT-like pooler)" if passed.pooling == "first" else "the last real token"
    wrong = passed.read_pad if passed.pooling == "first" else (passed.read_at != passed.last) | passed.read_pad
    holding = [i for i, s in enumerate(seqs) if (s == pad).any()]  # real tokens that look like padding
    read = 0 if passed.pooling == "first" else -1
    at_read = [i for i, s in enumerate(seqs) if len(s) and s[read] == pad]  # the token the head reads is "padding"
    everywhere = bool(seqs) and len(holding) == len(seqs)
    problems = []
    if pad == eos:
        problems.append("pad = EOS")
    if everywhere:  # a template or special token: a reader that ends a sequence at its first padding id (older
        # transformers classifiers) or a mask made from the ids (trl#6952: pad = EOS at a turn boundary) loses
        # what follows it in every row, where prefkit's own masks do not
        problems.append("the padding id is a real token of every sequence")
    elif holding:
        problems.append(f"{len(holding)} sequences hold the padding id among their tokens")
    mismatch = passed.pooling == "last" and config_pad is not None and config_pad != pad
    if mismatch:
        problems.append(f"batches are padded with {pad}, the model takes {config_pad} for padding")
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        problems.append(f"{ids_of_seq[i]!r}: read position {passed.read_at[i]}, its last real token is at {passed.last[i]}")
    bad = wrong.copy()
    bad[at_read] = True
    if pad == eos or everywhere:  # an EOS in a row is taken for padding: where the classifier stops depends on transformers
        bad[holding] = True
    rows = list(dict.fromkeys(ids_of_seq[i] for i in np.flatnonzero(bad)))  # a row once (bt: two sequences)
    values.update(misread_sequences=int(wrong.sum()), sequences_holding_pad=len(holding))
    figure = (f"reads {where} of {len(wrong) - int(wrong.sum())}/{len(wrong)} sequences ({side} padding); {ids_text}"
              + "".join(f"; {p}" for p in problems))
    ok = not rows and not mismatch
    return Probe("position", "ok" if ok else "FAIL", figure,
                 "every sequence; the padding id not EOS, not the token read, not in every sequence", rows, values)


def _config(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "config", None)


def attention_probe(model: Any) -> Probe:
    """The model's attention implementation: a soft-capped model (Gemma-2) must run eager or flex attention.
    Public for inspection: tests ask it of a model whose implementation they changed."""
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
    """The score on the labels against the score on the labels shuffled (seeded), and on the labels with A and B
    exchanged: both must differ. Where the shuffle leaves most labels in place (one class), every label moves
    to the next class instead. A metric that reads whether a row is a tie and not which side won, or predictions
    with P(A) = P(B), pass the shuffle and not the exchange (ms-swift#9370: accuracy unchanged under swapped labels)."""
    labels = np.asarray(labels, dtype=object)
    k = probs.shape[1]
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():  # no score to compare (the overflow probe says where they came from)
        return Probe("labels", "FAIL", f"{int(bad.sum())} of {len(probs)} rows have non-finite probabilities",
                     f"moves by > {LABELS_MIN_MOVE:.0e}", ["all rows"], {"rows": len(labels), "nonfinite": int(bad.sum())})
    shuffled, how = labels[np.random.default_rng(seed).permutation(len(labels))], "shuffled"
    if len(labels) and (shuffled == labels).mean() > 0.5:
        order = ["a", "b", "tie"][:k]
        shuffled, how = np.array([order[(order.index(x) + 1) % k] for x in labels], dtype=object), "moved a class"
    exchanged = np.array([{"a": "b", "b": "a"}.get(x, x) for x in labels], dtype=object)
    real, fake = metric(probs, labels), metric(probs, shuffled)
    move = abs(real["logloss"] - fake["logloss"])
    values = {"logloss": real["logloss"], "logloss_shuffled": fake["logloss"], "accuracy": real["accuracy"],
              "accuracy_shuffled": fake["accuracy"], "rows": len(labels), "how": how}
    figure = (f"log loss {real['logloss']:.4f} on the labels, {fake['logloss']:.4f} {how} (moved {move:.1e})")
    why = []
    if not move > LABELS_MIN_MOVE:
        why.append("every row has the same prediction" if np.ptp(probs, axis=0).max() < 1e-9
                   else "the metric does not read the labels")
    if (exchanged != labels).any():
        ex = metric(probs, exchanged)
        ex_move = abs(real["logloss"] - ex["logloss"])
        t, sign = _exchange_test(probs, labels)
        values.update(logloss_exchanged=ex["logloss"], accuracy_exchanged=ex["accuracy"], exchange_t=t, exchange_p=sign)
        figure += f", {ex['logloss']:.4f} with A and B exchanged (moved {ex_move:.1e}, t {t:+.1f})"
        if not ex_move > LABELS_MIN_MOVE and not why:
            why.append("A and B exchanged in the labels score the same: the predictions or the metric do not tell "
                       "A from B")
        if t > EXCHANGE_T and sign < EXCHANGE_P and not why:
            why.append("the predictions agree with the labels' A and B exchanged: labels swapped since the model "
                       "learned them (or it learned them swapped)")
    figure += f"; accuracy {real['accuracy']:.3f} -> {fake['accuracy']:.3f}, {len(labels)} rows"
    tolerance = f"moves by > {LABELS_MIN_MOVE:.0e}; not agreeing with A<->B exchanged (t > {EXCHANGE_T:.0f}, p < {EXCHANGE_P:.0e})"
    if not why:
        return Probe("labels", "ok", figure, tolerance, values=values)
    return Probe("labels", "FAIL", f"{figure}: {why[0]}", tolerance, ["all rows"], values)


def _exchange_test(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Over the rows labelled a or b, whether the predictions make the other side likelier than the label: the
    paired t statistic of log P(other) - log P(label) (positive: they agree with A and B exchanged), and the
    sign test's one-sided p-value of the rows where they do (1.0: no evidence)."""
    from scipy.stats import binom

    side = {"a": 0, "b": 1}
    rows = [i for i, x in enumerate(labels) if x in side]
    if len(rows) < 2:
        return 0.0, 1.0
    p = np.clip(probs[rows], 1e-15, 1.0)
    label = np.array([side[labels[i]] for i in rows])
    d = np.log(p[np.arange(len(rows)), 1 - label]) - np.log(p[np.arange(len(rows)), label])
    sign = float(binom.sf(int((d > 0).sum()) - 1, len(d), 0.5))
    sd = d.std(ddof=1)
    if sd == 0:
        return (0.0 if d.mean() == 0 else float(np.sign(d.mean()) * np.inf)), sign
    return float(d.mean() / (sd / np.sqrt(len(d)))), sign


# ----------------------------------------------------------------------- what training recorded, and now

def tokens_record(tokenizer: Any, renderer: Any, pad_id: int) -> dict:
    """What a model was trained to read: the tokenizer's fingerprint (the renderer's private copy, padding and
    truncation off), the special tokens that start and end every sequence, and the padding and EOS ids."""
    _, eos = special_ids(tokenizer)
    record = {"tokenizer": fingerprint(renderer.tok), "prefix": list(map(int, renderer.prefix)),
              "suffix": list(map(int, renderer.suffix)), "pad": int(pad_id), "eos": eos}
    named = [*record["prefix"], *record["suffix"], record["pad"], *([] if eos is None else [eos])]
    record["names"] = {str(i): tokenizer.id_to_token(i) for i in named}  # the ids' tokens, as this tokenizer has them
    return record


def record_training(cfg: Config, folder: Path, held_out=None) -> None:
    """Write RECORD into a model folder that was just trained: what the tokenizer, eos and folds probes compare
    against later. Cheap (no model): the tokenizer and template of `cfg`, and `held_out`, the ids of the fold's
    validation rows (None for a train run). The recipes call it before `mark_trained`; `after_training` writes
    it for folders without one."""
    record: dict[str, Any] = {}
    if cfg.model.kind == "seq_cls":
        from prefkit.core.tokenizer import config_tokenizer, pad_token_id
        from prefkit.rm.heads import make_head
        from prefkit.rm.templates import Renderer

        tokenizer = config_tokenizer(cfg)
        renderer = Renderer(tokenizer, cfg.template, make_head(cfg, tokenizer).layout)
        record["tokens"] = tokens_record(tokenizer, renderer, pad_token_id(tokenizer))
    if held_out is not None:
        record["held_out"] = [str(x) for x in held_out]
    if is_main():
        write_json(Path(folder) / RECORD, record)


def read_record(folder: Path | None) -> dict | None:
    """A model folder's RECORD; None where there is none (a run of an older prefkit) or it cannot be read."""
    path = None if folder is None else Path(folder) / RECORD
    if path is None or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _shown(tok: Any, value: Any, names: dict | None = None) -> str:
    """A record's ids (a list: "nothing" when empty) or id, with their tokens."""
    if not isinstance(value, list):
        return _token(tok, value, names)
    return "[" + ", ".join(_token(tok, i, names) for i in value) + "]" if value else "nothing"


def _eos_probe(subject: Subject, recorded: dict | None) -> Probe:
    """The special tokens around every sequence, and the padding and EOS ids, against training's."""
    tok = subject.renderer.tok
    now = tokens_record(tok, subject.renderer, subject.pad_id)
    figure = (f"sequences start with {_shown(tok, now['prefix'])} and end with {_shown(tok, now['suffix'])}; "
              f"pad {_shown(tok, now['pad'])}, EOS {_shown(tok, now['eos'])}")
    values = {k: now[k] for k in ("prefix", "suffix", "pad", "eos")}
    if recorded is None:
        return Probe("eos", "n/a", f"{figure}; nothing recorded at training to compare with", values=values)
    what = {"prefix": "start with", "suffix": "end with", "pad": "pad with", "eos": "take for EOS"}
    changed = [k for k in what if recorded.get(k) != now[k]]
    values["at_training"] = {k: recorded.get(k) for k in what}
    if not changed:
        return Probe("eos", "ok", f"{figure}, as at training", "as at training", values=values)
    names = recorded.get("names", {})
    said = "; ".join(f"sequences {what[k]} {_shown(tok, recorded.get(k), names)} at training, "
                     f"{_shown(tok, now[k])} now" for k in changed)
    return Probe("eos", "FAIL", f"{figure}; {said}", "as at training", ["all rows"], values)


def _tokenizer_probe(subject: Subject, recorded: dict | None) -> Probe:
    """The tokenizer against training's fingerprint, and its ids against the model's embedding table."""
    now = fingerprint(subject.renderer.tok)
    embedding = subject.model.get_input_embeddings()
    rows = getattr(embedding, "num_embeddings", None)
    values = {"sha256": now["sha256"], "vocab_size": now["vocab_size"], "embedding_rows": rows}
    figure = f"fingerprint {now['sha256']}, {now['vocab_size']} tokens (largest id {now['largest_id']})"
    if rows is not None:
        figure += f", the model's embedding {rows} rows"
    problems = []
    if rows is not None and now["largest_id"] >= rows:
        problems.append(f"ids up to {now['largest_id']} index an embedding of {rows} rows")
    if recorded is not None:
        was = recorded["tokenizer"]
        values["at_training"] = {k: was.get(k) for k in ("sha256", "vocab_size")}
        if was.get("sha256") != now["sha256"]:
            a, b = was.get("encodes", []), now["encodes"]
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(f"not the tokenizer the model was trained with (fingerprint {was.get('sha256')}, "
                            f"{was.get('vocab_size')} tokens); a fixed text encodes to {len(a)} ids at training, "
                            f"{len(b)} now, first differing at id {first} (template.tokenizer: the run's, or overridden?)")
    elif not problems:
        return Probe("tokenizer", "n/a", f"{figure}; nothing recorded at training to compare with", values=values)
    if problems:
        return Probe("tokenizer", "FAIL", figure + "".join(f"; {p}" for p in problems), "the one recorded at training",
                     ["all rows"], values)
    return Probe("tokenizer", "ok", f"{figure}, as at training", "the one recorded at training", values=values)


def _head_key(name: str) -> str | None:
    """A head weight's name from its first head component on, without peft's wrappers (score.weight,
    classifier.out_proj.bias); None for a weight outside the head."""
    parts = [p for p in name.split(".") if p != "original_module"]
    if "modules_to_save" in parts:
        i = parts.index("modules_to_save")
        del parts[i : i + 2]  # modules_to_save.<adapter>
    heads = [i for i, p in enumerate(parts) if p in HEAD_NAMES]
    return ".".join(parts[heads[0]:]) if heads else None


def _loaded_head(model: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The head's weights as the model computes with them, and (under peft's modules_to_save) the copy of them
    at their initialisation that peft keeps beside the trained one (`original_module`)."""
    active, init = {}, {}
    for name, p in model.named_parameters():
        key = _head_key(name)
        if key is not None:
            (init if ".original_module." in f".{name}." else active)[key] = p.detach()
    return active, init


def _saved_head(folder: Path) -> dict[str, torch.Tensor]:
    """The head's weights as training saved them in `folder` (the adapter file, or the whole model's files)."""
    from safetensors import safe_open

    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                key = _head_key(name)
                if key is not None:
                    out[key] = f.get_tensor(name)
    return out


def _head_probe(subject: Subject, outputs: np.ndarray) -> Probe:
    """The head as loaded against the folder's saved weights, moved from its initialisation (LoRA), and reading
    its input: outputs that differ from sequence to sequence."""
    finite = outputs[np.isfinite(outputs).all(axis=1)]  # (non-finite ones are the overflow probe's)
    spread = float(finite.std(axis=0).max()) if len(finite) > 1 else float("nan")
    values: dict[str, Any] = {"output_spread": spread}
    problems, parts = [], [f"outputs spread {spread:.1e} over {len(finite)} sequences with finite outputs"]
    if len(finite) > 1 and not spread > HEAD_MIN_SPREAD:
        problems.append("the same outputs for every sequence: the head does not read the input")
    folder = subject.folder
    if subject.head.task == "seq_cls":
        active, init = _loaded_head(subject.model)
        if init:
            moved = max(float((active[k].float() - w.float()).norm() / max(float(w.float().norm()), 1e-12))
                        for k, w in init.items() if k in active)
            values["moved_from_init"] = moved
            parts.append(f"moved {moved:.1e} from its initialisation (relative)")
            if not moved > HEAD_MIN_MOVE:
                problems.append("the head never moved from its initialisation: it did not train (trl#2743)")
        if folder is not None:
            saved = _saved_head(folder)
            if not saved:
                problems.append(f"{Path(folder).name} holds no {' or '.join(HEAD_NAMES)} weights: the head was not "
                                "saved (under LoRA: not in modules_to_save), so it is a fresh one on every load (trl#2743)")
            else:
                missing = sorted(set(saved) - set(active))
                gap = max((float((saved[k].to(active[k].dtype).float() - active[k].float()).abs().max())
                           for k in saved if k in active), default=0.0)
                values.update(loaded_vs_saved=gap, missing=missing)
                parts.append(f"as loaded against as saved: max |dw| {gap:.1e}")
                if missing or not gap <= 0.0:
                    problems.append("the loaded head is not the saved one: re-initialised on load (ms-swift#9239)"
                                    + (f"; {', '.join(missing)} not loaded" if missing else ""))
    figure = ", ".join(parts) + "".join(f"; {p}" for p in problems)
    tolerance = (f"as saved (exactly); moved > {HEAD_MIN_MOVE:.0e} from init under LoRA; spread > "
                 f"{HEAD_MIN_SPREAD:.0e}")
    return Probe("head", "FAIL" if problems else "ok", figure, tolerance, ["all rows"] if problems else [], values)


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


def _texts_differ(rows: PairTable) -> np.ndarray:
    f = rows.frame
    return np.array([list(a) != list(b) for a, b in zip(f["response_a"], f["response_b"])], dtype=bool)


def model_probes(subject: Subject, rows: PairTable, predict: PredictConfig,
                 dtype: torch.dtype) -> tuple[list[Probe], np.ndarray]:
    """The probes of a transformer reward model on `rows`, batched and swap-TTA'd as `predict` says and computing
    in `dtype`, and the rows' predictions."""
    head = subject.head
    tol = BATCH_TOLERANCE.get(dtype, 2e-2)
    ids = list(rows.frame["id"])
    seqs = head.sequences(subject.renderer, rows)
    ids_of_seq = [x for x in ids for _ in range(head.per_row)]
    filler = _filler(seqs, subject.model)
    width = max(map(len, seqs)) + (FILLER if filler is not None else 0)
    batches = _plain_batches([len(s) for s in seqs], width, predict.batch_tokens)
    alone = head.probs(_forward(subject, seqs, [[i] for i in range(len(seqs))], head.left_pad, dtype).outputs)
    probes, plain, used, seen = [], None, None, _Activations()
    for left in (head.left_pad, not head.left_pad):  # the side prediction uses first
        passed = _forward(subject, seqs, batches, left, dtype, filler, seen if plain is None else None)
        batched = head.probs(passed.outputs)
        probes.append(_batch_probe(_side(left), left == head.left_pad, alone, batched, passed, tol, ids))
        if plain is None:
            plain, used = batched, passed
    probes.append(_dtype_probe(subject, seqs, batches, head.left_pad, dtype, plain, filler, ids))
    probes.append(_overflow_probe(seen, dtype, ids_of_seq))
    swapped_seqs = head.sequences(subject.renderer, rows, swap=True)
    swapped = head.probs(_forward(subject, swapped_seqs, batches, head.left_pad, dtype, filler).outputs)
    k = head.per_row
    same = np.array([all(np.array_equal(a, b) for a, b in zip(seqs[i * k:(i + 1) * k], swapped_seqs[i * k:(i + 1) * k]))
                     for i in range(len(ids))], dtype=bool)
    probes.append(_swap_probe(plain, swapped, ids, symmetric=head.symmetric, tol=tol, head_name=head.name,
                              same_input=same, texts_differ=_texts_differ(rows), tta=predict.swap_tta))
    probes.append(_position_probe(subject, used, seqs, ids_of_seq, _side(head.left_pad)))
    record = read_record(subject.folder)
    tokens = None if record is None else record.get("tokens")
    probes.append(_eos_probe(subject, tokens))
    probes.append(_tokenizer_probe(subject, tokens))
    probes.append(_head_probe(subject, used.outputs))
    probes.append(attention_probe(subject.model))
    return probes, _as_predicted(plain, swapped, predict.swap_tta and not head.symmetric)


def _as_predicted(plain: np.ndarray, swapped: np.ndarray, tta: bool) -> np.ndarray:
    """The rows' probabilities as prediction gives them: with swap TTA, averaged with the swapped rows' swapped back."""
    return (plain + swap_probs(swapped)) / 2 if tta else plain


FEATURES_NA = ("batch", "dtype", "overflow", "position", "eos", "tokenizer", "head")


def feature_probes(model: Any, rows: PairTable, checks: list[str], swap_tta: bool) -> tuple[list[Probe], np.ndarray]:
    """A features model (a `prefkit.rm.features.FeatureModel` of the step `checks`) has no batches, padding,
    dtype, positions, tokens or head: the swap probe alone applies (then labels)."""
    from prefkit.rm.features import table_features

    feats, feats_swapped = table_features(rows, checks), table_features(swap_ab(rows), checks)
    plain = model.predict_proba(feats, False)
    swapped = model.predict_proba(feats_swapped, False)
    same = np.all([np.all(np.asarray(a).reshape(len(rows), -1) == np.asarray(b).reshape(len(rows), -1), axis=1)
                   for a, b in zip(feats, feats_swapped)], axis=0)
    why = "features model: no batches, padding, dtype, positions, tokens or head to probe"
    probes = [Probe(name, "n/a", why) for name in FEATURES_NA]
    probes.append(_swap_probe(plain, swapped, list(rows.frame["id"]), symmetric=False, tol=0.0, head_name="features",
                              same_input=same, texts_differ=_texts_differ(rows), tta=swap_tta))
    return probes, _as_predicted(plain, swapped, swap_tta)


def probe(cfg: Config, subject: Subject | Any, rows: PairTable, scored: tuple[np.ndarray, Any] | None = None,
          seed: int = 0, metric: Callable = score) -> list[Probe]:
    """Every probe that applies to `subject` (a transformer's `Subject`, or a features model), on `rows` (a small
    sample), as the run's config `cfg` predicts (`predict`, `model.dtype`; `features.checks`). The labels probe
    reads `scored` (validation probabilities and their labels: a cv run's OOF), else the sample's predictions
    (swap TTA as `predict.swap_tta` says, which cancels a position bias as prediction does) and labels."""
    if isinstance(subject, Subject):
        probes, predicted = model_probes(subject, rows, cfg.predict, compute_dtype(cfg.model.dtype))
    else:
        from prefkit.rm.features import enabled_checks

        probes, predicted = feature_probes(subject, rows, enabled_checks(cfg.features), cfg.predict.swap_tta)
    probs, labels = scored if scored is not None else (predicted, rows.frame["label"].to_numpy())
    probes.append(labels_probe(np.asarray(probs), labels, seed, metric))
    return probes


# ----------------------------------------------------------------------------------------- on a run

def folds_probe(run_dir: Path, table: PairTable, fold_of: dict[str, int] | None) -> Probe:
    """A cv run's folds against the data: no validation row of a fold among that fold's training rows, by id or
    by normalised prompt (OpenRLHF#1089: evaluation rows overlapping training rows). `fold_of`: each validated
    id's fold, from the run's out-of-fold predictions (None: a train run). A fold trained on the rows outside its
    held-out ids as `record_training` recorded them, else (a run of an older prefkit) outside its rows in the OOF."""
    if fold_of is None:
        return Probe("folds", "n/a", "no out-of-fold predictions: a train run validates no rows")
    ids = np.asarray(table.frame["id"].astype(str))
    prompts = np.array([normalise_prompt(p) for p in table.frame["prompt"]], dtype=object)
    at = {x: i for i, x in enumerate(ids)}
    known = {x: k for x, k in fold_of.items() if x in at}
    if not known:
        return Probe("folds", "n/a", f"the data ({table.source}) holds none of the run's {len(fold_of)} validated ids: "
                     "not the data it was trained on")
    by_id, by_prompt, recorded = [], [], 0
    folds = sorted(set(known.values()))
    for k in folds:
        valid = [x for x, f in known.items() if f == k]
        record = read_record(Path(run_dir) / f"fold{k}")
        held = set(valid)
        if record is not None and "held_out" in record:
            held, recorded = set(record["held_out"]), recorded + 1
        trained = np.array([x not in held for x in ids], dtype=bool)
        trained_ids, trained_prompts = set(ids[trained]), set(prompts[trained])
        by_id += [x for x in valid if x in trained_ids]
        by_prompt += [x for x in valid if x not in trained_ids and prompts[at[x]] in trained_prompts]
    values = {"folds": folds, "validated_rows": len(known), "by_id": by_id, "by_prompt": by_prompt,
              "folds_recorded": recorded, "unknown_ids": len(fold_of) - len(known)}
    figure = (f"{len(folds)} folds, {len(known)} validation rows: {len(by_id)} among their fold's training rows by id, "
              f"{len(by_prompt)} more sharing a normalised prompt with them; held-out rows "
              + (f"as recorded at training ({recorded} of {len(folds)} folds)" if recorded else "taken from the OOF"))
    if len(known) < len(fold_of):
        figure += f"; {len(fold_of) - len(known)} validated ids are not in the data"
    rows = by_id + by_prompt
    return Probe("folds", "FAIL" if rows else "ok", figure, "no validation row among its fold's training rows",
                 rows, values)


def probe_config(cfg: Config) -> Config:
    """The run's config for probing: the transformers backend (vLLM serves no watched forward passes)."""
    return dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, backend="transformers"))


def _golden(cfg: Config, folder: Path, learner: Any) -> list[Probe]:
    """`prefkit.rm.golden`'s probe (the scores of fixed rows as at training, ms-swift#6704), where that module is
    there: its `probe` (a Probe) or `compare` (a Probe's fields; golden lies below this module)."""
    import importlib.util

    from prefkit.errors import PrefkitError

    if importlib.util.find_spec("prefkit.rm.golden") is None:
        return []
    golden = importlib.import_module("prefkit.rm.golden")
    try:
        if hasattr(golden, "probe"):
            return [golden.probe(cfg, folder, learner)]
        if hasattr(golden, "compare"):
            return [Probe(**golden.compare(cfg, folder, learner))]
    except PrefkitError as e:  # an unreadable golden.json: said on the probe's line, the other probes stand
        return [Probe("golden", "FAIL", str(e), "the scores recorded at training", ["all rows"])]
    return []


def probe_folder(cfg: Config, folder: Path, table: PairTable, n: int, scored=None,
                 metric: Callable = score, golden: bool = False) -> list[Probe]:
    """Load the model in `folder`, probe it on `n` seeded rows of `table` (and with `golden`, re-score its golden
    rows), give its memory back."""
    from prefkit.rm.learners import load_learner

    cfg = probe_config(cfg)
    learner = load_learner(cfg, folder)
    subject = (learner.model if learner.kind == "features"  # what the probes read of it, and no more
               else Subject(learner.model, learner.head, learner.renderer, learner.pad_id, Path(folder)))
    try:
        found = probe(cfg, subject, sample_rows(table, n, cfg.train.seed), scored, cfg.train.seed, metric)
        return found + (_golden(cfg, Path(folder), learner) if golden else [])
    finally:
        learner.release()


def record(probes: list[Probe], folder: Path, n: int) -> dict:
    """What metrics.json keeps of the probes (under "probes")."""
    return {"model": folder.name, "rows": n, "failed": [p.name for p in probes if p.failed],
            **{p.name.replace(" ", "_").replace("(", "").replace(")", ""): p.record() for p in probes}}


def _record_missing(cfg: Config, run_dir: Path, table: PairTable) -> None:
    """RECORD in every finished model folder of the run that has none: the folds as `cv` assigned them (the same
    seeded assignment of the same rows)."""
    from prefkit.data.folds import assign_folds

    folds = None
    for folder in trained_folders(run_dir):
        if (folder / RECORD).is_file():
            continue
        held_out = None
        if folder.name.startswith("fold") and folder.name[4:].isdigit():
            folds = assign_folds(table, cfg.cv.n_splits, cfg.cv.seed) if folds is None else folds
            held_out = table.frame["id"][folds == int(folder.name[4:])]
        record_training(cfg, folder, held_out)


def after_training(cfg: Config, run_dir: Path, table: PairTable, scored=None) -> dict | None:
    """The probes at the end of `cv` and `train`, on `train.probe_rows` rows of the run's first finished model:
    each figure logged, a failure said as a warning (the run stands). First, RECORD in each model folder without
    one. A probe that cannot run is said and recorded, never the end of a run that trained."""
    if is_main():
        try:
            _record_missing(cfg, run_dir, table)
        except Exception as e:  # noqa: BLE001 - the models trained: a record that cannot be written is a warning
            log(f"warning: the probes' training record could not be written ({type(e).__name__}: {e})", summary=True)
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
