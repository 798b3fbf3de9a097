"""Prediction of the reward model: length-sorted, token-budgeted batches of sequences shared out over processes
(one per GPU) and gathered back in order, under autocast, with the lost/doubled-row and non-finite checks; the
head turns each row's outputs into probabilities; swap TTA averages in the prediction of the swapped row,
swapped back. Statistics are returned."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from prefkit.console import keep_bars
from prefkit.core.batching import collate, padding_ratio, predict_batches, shard
from prefkit.core.modeling import precision
from prefkit.errors import PrefkitError
from prefkit.metrics import margins, swap_probs
from prefkit.rm.heads import Head


class NonFiniteLogits(PrefkitError):
    pass


@dataclass(frozen=True)
class PredictSettings:
    """How a model's rows are predicted: padding id, token budget a batch, length sorting, compute dtype, the
    progress label, and swap TTA on a share of the rows (`tta_fraction`) or within seconds (`tta_budget_s`)."""

    pad_id: int
    batch_tokens: int
    sort: bool = True
    dtype: torch.dtype = torch.float32
    desc: str = "predict"
    tta_fraction: float = 1.0
    tta_budget_s: float | None = None

    @property
    def full_tta(self) -> bool:
        return self.tta_fraction >= 1.0 and self.tta_budget_s is None

    def swapped(self) -> "PredictSettings":
        """The same settings for the swap pass (its progress label says so)."""
        return replace(self, desc=f"{self.desc} (swapped)")


@torch.inference_mode()
def predict_logits(model: Any, head: Head, seqs: list[np.ndarray], settings: PredictSettings,
                   names: list[str] | None = None) -> tuple[np.ndarray, dict]:
    """The head's outputs for every sequence, in order: batches of `settings.batch_tokens` padded with
    `settings.pad_id` (length-sorted where `settings.sort`) computed under autocast to `settings.dtype` (its TTA
    fields are `predict_pairs`'). Identical sequences are computed once (a Bradley-Terry verifier puts every
    sample of a question against the same anchor sequence; duplicated rows): `unique_sequences` in the
    statistics says how many ran. Batches are shared out over processes and gathered back; a check makes sure
    that no sequence is lost or predicted twice, and sequences whose outputs are not finite stop prediction with
    their rows' ids (`names`, one per sequence)."""
    from prefkit.core.dist import state as dist_state

    state = dist_state()
    if not seqs:
        return np.zeros((0, head.outputs)), {"rows": 0, "seconds": 0.0, "rows_per_s": 0.0, "padding_ratio": 0.0,
                                  "processes": state.num_processes, "unique_sequences": 0}
    first: dict[bytes, int] = {}
    inverse = np.array([first.setdefault(np.asarray(x, dtype=np.int64).tobytes(), i) for i, x in enumerate(seqs)])
    keep = np.array(sorted(first.values()))
    if len(keep) < len(seqs):
        position = np.zeros(len(seqs), dtype=np.int64)
        position[keep] = np.arange(len(keep))
        out, stats = _predict_unique(model, head, [seqs[i] for i in keep], settings,
                                     None if names is None else [names[i] for i in keep], state)
        out = out[position[inverse]]
    else:
        out, stats = _predict_unique(model, head, seqs, settings, names, state)
    rows = len(seqs) // head.per_row
    stats.update(rows=rows, rows_per_s=round(rows / max(stats["seconds"], 1e-9), 2), unique_sequences=len(keep))
    return out, stats


def _predict_unique(model: Any, head: Head, seqs: list[np.ndarray], settings: PredictSettings,
                    names: list[str] | None, state: Any) -> tuple[np.ndarray, dict]:
    from accelerate.utils import gather_object

    st = settings

    lengths = np.array([len(s) for s in seqs])
    batches = predict_batches(lengths, st.batch_tokens, st.sort)
    mine = shard(batches, state.process_index, state.num_processes)
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    results = []
    with tqdm(total=sum(len(b) for b in mine), desc=st.desc, unit="row", disable=not state.is_main_process,
              mininterval=1.0, leave=keep_bars()) as bar:
        for b in mine:
            t = collate([seqs[i] for i in b], st.pad_id, left=head.left_pad)
            with precision(st.dtype, device):
                logits = head.forward(model, {k: v.to(device) for k, v in t.items()})
            results.append((b.tolist(), logits.float().cpu().numpy()))
            bar.update(len(b))
    if state.num_processes > 1:
        results = gather_object(results)
    index = np.array([i for b, _ in results for i in b], dtype=np.int64)
    if len(index) != len(seqs) or not np.array_equal(np.sort(index), np.arange(len(seqs))):
        raise RuntimeError(f"prediction lost or doubled sequences: {len(index)} predictions for {len(seqs)}")
    out = np.zeros((len(seqs), results[0][1].shape[1]), dtype=np.float64)
    out[index] = np.concatenate([l for _, l in results])
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if len(bad):
        shown = ", ".join(repr(names[i]) if names is not None else f"#{i}" for i in bad[:10])
        unit = "rows" if head.per_row == 1 else "sequences"
        raise NonFiniteLogits(f"{st.desc}: {len(bad)} of {len(seqs)} {unit} have non-finite logits (ids {shown}"
                              f"{', ...' if len(bad) > 10 else ''}). In fp16 this is usually an activation overflow: "
                              "try model.dtype=bfloat16 where the GPU has it, or float32")
    seconds = time.perf_counter() - t0
    stats = {"seconds": round(seconds, 3), "padding_ratio": round(padding_ratio(batches, lengths), 4),
             "processes": state.num_processes}
    return out, stats


def predict_pairs(model: Any, head: Head, rendered: tuple[list[np.ndarray], list[np.ndarray] | None],
                  settings: PredictSettings, names: list[str] | None = None) -> tuple[np.ndarray, dict]:
    """Label probabilities of rendered rows, with the prediction statistics. Where swapped renderings are given,
    their prediction, swapped back, is averaged in: for every row, or (`tta_fraction` < 1 or `tta_budget_s`) for
    the least sure rows first, as many as the share and the seconds allow (`tta_rows` says how many)."""
    ids, swapped = rendered
    st = settings
    per = head.per_row
    if names is not None and per > 1:
        names = [n for n in names for _ in range(per)]
    logits, stats = predict_logits(model, head, ids, st, names)
    probs = head.probs(logits)
    rows = len(probs)
    stats["tta_rows"] = 0
    if swapped is None or rows == 0:
        return probs, stats
    if st.full_tta:
        logits_s, stats_s = predict_logits(model, head, swapped, st.swapped(), names)
        probs = (probs + swap_probs(head.probs(logits_s))) / 2
        stats["seconds"] = round(stats["seconds"] + stats_s["seconds"], 3)
        stats["tta_rows"] = rows
        return probs, stats
    return _budgeted_tta(model, head, probs, swapped, st, names, stats)


def _budgeted_tta(model, head, probs, swapped, st: PredictSettings, names, stats) -> tuple[np.ndarray, dict]:
    """The swap pass on the least sure rows first (WSDM Cup 4th place), in chunks of about a twentieth of them,
    until the share is done or the seconds are spent. With several processes the main one decides when to stop
    (each process times its own shard) and tells the others, so that all run the same chunks."""
    from prefkit.core.dist import state as dist_state

    per = head.per_row
    budget = st.tta_budget_s
    order = np.argsort(margins(probs), kind="stable")[: int(np.ceil(st.tta_fraction * len(probs)))]
    step = max(16, len(order) // 20)
    probs = probs.copy()
    t0, done = time.perf_counter(), 0
    many = dist_state().num_processes > 1
    while done < len(order):
        stop = budget is not None and time.perf_counter() - t0 >= budget
        if many:
            from accelerate.utils import broadcast_object_list

            stop = broadcast_object_list([stop])[0]
        if stop:
            break
        chunk = order[done: done + step]
        seqs = [swapped[r * per + j] for r in chunk for j in range(per)]
        chunk_names = None if names is None else [names[r * per + j] for r in chunk for j in range(per)]
        logits_s, _ = predict_logits(model, head, seqs, st.swapped(), chunk_names)
        probs[chunk] = (probs[chunk] + swap_probs(head.probs(logits_s))) / 2
        done += len(chunk)
    stats["seconds"] = round(stats["seconds"] + time.perf_counter() - t0, 3)
    stats["tta_rows"] = int(done)
    return probs, stats
