"""One training loop for both heads (3-class reward model, completion-only causal LM).

The head-specific parts come in a `TrainData`: which micro-batches an epoch has, how a micro-batch becomes
tensors, and its loss. The loop owns everything else: AdamW (a separate rate for the classification head),
warmup + cosine schedule, gradient accumulation, clipping, accelerate for one process per GPU, evaluation
every N steps, a JSONL log (and TensorBoard if asked), progress, and checkpoints.

Precision: the frozen weights are stored in the compute dtype and every trainable weight in fp32 (see
`modeling.build_model`); forwards run under autocast to the compute dtype, and fp16 adds a grad scaler. The
same path runs on CPU whenever `model.dtype` asks for fp16 or bf16, so CI exercises it (accelerate turns
mixed precision off without CUDA, so prefkit does the autocast and scaling itself; accelerate keeps the
process group and DDP). Every micro-batch's loss is checked for non-finite values, once per step, and a bad
one stops training with the rows named, rather than hours later.

Checkpoints hold only what training changes (trainable weights: LoRA adapters and the head, or everything in
full fine-tuning), the optimizer, the schedule, the grad scaler, each process's random generators and the
position in the data. Batches depend on (seed, epoch) alone, so `resume=True` after a crash (kill -9 included) continues
from the last checkpoint and ends with the same weights as a run that never stopped. A checkpoint is written
to a temporary folder and renamed: a crash while writing leaves the previous one intact.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from prefkit.config import Config, to_dict
from prefkit.console import keep_bars
from prefkit.core.batching import shard
from prefkit.core.dist import log
from prefkit.core.modeling import HEAD_NAMES, compute_dtype, precision
from prefkit.errors import PrefkitError

CHECKPOINT = "checkpoint"


class TrainData(Protocol):
    def batches(self, epoch: int, world: int = 1) -> list[Any]:
        """All micro-batches of an epoch, in order (the same on every process); batches i*world ... run at the
        same step on the `world` processes, so they should be of similar length."""

    def collate(self, batch: Any, epoch: int) -> dict[str, torch.Tensor]:
        """Tensors of one micro-batch."""

    def loss(self, model: Any, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Mean loss of a micro-batch, and its number of rows."""

    def describe(self, batch: Any, epoch: int) -> str:
        """The rows of a micro-batch, for error messages (ids where known)."""


def make_accelerator():
    """Processes and DDP from accelerate; mixed precision is prefkit's (`precision`, `grad_scaler`), because
    accelerate turns it off on CPU and CI must run the GPU path."""
    from accelerate import Accelerator

    return Accelerator(mixed_precision="no", cpu=not torch.cuda.is_available())


def grad_scaler(cfg: Config, device: torch.device):
    """A grad scaler for fp16 compute (its range is too narrow for small gradients), none otherwise."""
    if compute_dtype(cfg.model.dtype) != torch.float16:
        return None
    return torch.amp.GradScaler(device.type)


def _param_groups(model: Any, cfg: Config) -> list[dict]:
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if any(f".{h}." in f".{name}." for h in HEAD_NAMES) else body).append(p)
    if not head and not body:
        raise PrefkitError("nothing to train: no parameter requires a gradient")
    tc = cfg.train
    groups = [{"params": body, "lr": tc.learning_rate}]
    if head:
        groups.append({"params": head, "lr": tc.head_learning_rate or tc.learning_rate})
    return [g for g in groups if g["params"]]


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@dataclass
class Position:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    micro: int = 0  # micro-batches done in `epoch`


def save_checkpoint(out: Path, acc, model, opt, sched, scaler, pos: Position) -> None:
    """The resumable state (trainable weights, optimizer, scheduler, grad scaler, each process's RNG, the position)
    in `out/CHECKPOINT`, swapped in whole. Public for inspection: tests round-trip a checkpoint through it."""
    final, tmp = out / CHECKPOINT, out / f".{CHECKPOINT}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save(trainable_state(acc.unwrap_model(model)), tmp / "trainable.pt")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None}, tmp / "optimizer.pt")
        (tmp / "position.json").write_text(json.dumps(pos.__dict__))
    acc.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_{acc.process_index}.pt")
    acc.wait_for_everyone()
    if acc.is_main_process:
        old = out / f".{CHECKPOINT}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def load_checkpoint(out: Path, acc, model, opt, sched, scaler) -> Position:
    """What `save_checkpoint` wrote, put back into the objects given; the position to go on from. Public for
    inspection, as `save_checkpoint`."""
    ck = out / CHECKPOINT
    state = torch.load(ck / "trainable.pt", map_location="cpu")
    unwrapped = acc.unwrap_model(model)
    expected = {n for n, p in unwrapped.named_parameters() if p.requires_grad}
    if set(state) != expected:
        raise PrefkitError(f"{ck}: was written by a different model or LoRA setting; delete it or drop --resume")
    unwrapped.load_state_dict(state, strict=False)
    both = torch.load(ck / "optimizer.pt", map_location="cpu", weights_only=False)
    opt.load_state_dict(both["optimizer"])
    sched.load_state_dict(both["scheduler"])
    if scaler is not None and both.get("scaler"):
        scaler.load_state_dict(both["scaler"])  # the scale it had learnt, not the 65,536 it starts from
    rng = ck / f"rng_{acc.process_index}.pt"
    _set_rng_state(torch.load(rng if rng.exists() else ck / "rng_0.pt", weights_only=False))
    return Position(**json.loads((ck / "position.json").read_text()))


class _Log:
    """log.jsonl, and the same scalars to the trackers of `train.report_to` (prefkit.core.trackers)."""

    def __init__(self, out: Path, enabled: bool, report_to: list[str], config: dict):
        from prefkit.core import trackers

        self.path, self.enabled = out / "log.jsonl", enabled
        self.trackers = trackers.start(report_to, out, config) if enabled else []

    def keep_until(self, step: int) -> None:
        """On resume: drop the records written after the checkpoint's step (they are about to be written
        again), so the log holds each step once."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [x for x in lines if x.strip() and json.loads(x).get("step", 0) <= step]
        if len(kept) != len(lines):
            from prefkit.io import write_text

            write_text(self.path, "".join(x + "\n" for x in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        for tracker in self.trackers:
            tracker.log(scalars, step=record["step"])

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()


class NonFiniteLoss(PrefkitError):
    pass


def fit(model: Any, data: TrainData, cfg: Config, out: Path, evaluate: Callable[[], dict] | None = None,
        resume: bool = False, acc: Any = None) -> list[dict]:
    """Train `model` in place. Returns the log records (also in out/log.jsonl)."""
    from transformers import get_cosine_schedule_with_warmup

    tc = cfg.train
    if tc.epochs <= 0 or tc.batch_size < 1 or tc.grad_accum < 1:
        raise PrefkitError("train.epochs, train.batch_size and train.grad_accum must be positive")
    acc = acc or make_accelerator()
    out.mkdir(parents=True, exist_ok=True)
    world, rank = acc.num_processes, acc.process_index

    def my_batches(epoch: int) -> list:
        all_batches = data.batches(epoch, world)
        per_rank = math.ceil(len(all_batches) / world)
        padded = all_batches + all_batches[: per_rank * world - len(all_batches)]  # even out the processes
        return shard(padded, rank, world)

    extra = -len(data.batches(0, world)) % world
    if extra:
        log(f"{extra} batches an epoch are repeated so that each of {world} processes gets as many")
    per_epoch = len(my_batches(0))
    total_micro = max(1, round(tc.epochs * per_epoch))
    n_epochs = math.ceil(total_micro / per_epoch)
    micro_in = [min(per_epoch, total_micro - e * per_epoch) for e in range(n_epochs)]
    total_steps = sum(math.ceil(m / tc.grad_accum) for m in micro_in)

    # fused AdamW: one kernel over all parameters, no per-parameter temporaries (what Trainer uses by default)
    opt = torch.optim.AdamW(_param_groups(model, cfg), weight_decay=tc.weight_decay, fused=True)
    sched = get_cosine_schedule_with_warmup(opt, round(tc.warmup_ratio * total_steps), total_steps)
    model = acc.prepare(model)  # DDP where there are several processes; the optimizer stays a plain one
    dtype = compute_dtype(cfg.model.dtype)
    scaler = grad_scaler(cfg, acc.device)
    pos = Position()
    if resume and (out / CHECKPOINT / "position.json").exists():
        pos = load_checkpoint(out, acc, model, opt, sched, scaler)
        log(f"resumed from {out / CHECKPOINT} at step {pos.step}/{total_steps}")
    metrics_log = _Log(out, acc.is_main_process, tc.report_to, to_dict(cfg))
    metrics_log.keep_until(pos.step)  # a fresh run (step 0) starts a fresh log
    records: list[dict] = []
    bar = tqdm(total=total_steps, initial=pos.step, desc="train", unit="step", disable=not acc.is_main_process,
               mininterval=1.0, leave=keep_bars())
    # the loss is summed on the device and read back only once a step (the finite check) and when logged: a
    # float() every micro-batch would make the host wait for the GPU at each one
    window_loss, window_rows, t_window = torch.zeros((), device=acc.device), 0, time.perf_counter()
    finite: list[tuple[torch.Tensor, Any]] = []  # (is the loss finite, micro-batch) since the last step
    model.train()
    for epoch in range(pos.epoch, n_epochs):
        batches = my_batches(epoch)[: micro_in[epoch]]
        start = pos.micro if epoch == pos.epoch else 0
        for j in range(start, len(batches)):
            group_start = (j // tc.grad_accum) * tc.grad_accum
            group_size = min(tc.grad_accum, len(batches) - group_start)
            is_step = j + 1 == group_start + group_size
            tensors = {k: v.to(acc.device) for k, v in data.collate(batches[j], epoch).items()}
            with nullcontext() if is_step else acc.no_sync(model):
                with precision(dtype, acc.device):
                    loss, rows = data.loss(model, tensors)
                scaled = loss / group_size
                acc.backward(scaler.scale(scaled) if scaler is not None else scaled)
            finite.append((torch.isfinite(loss.detach()), batches[j]))
            window_loss += loss.detach().float() * rows
            window_rows += rows
            if not is_step:
                continue
            _check_finite(finite, acc, data, epoch, pos.step + 1)
            finite = []
            if scaler is not None:
                scaler.unscale_(opt)  # clipping works on true gradients
            if tc.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            if scaler is not None:
                scaler.step(opt)  # skipped when a gradient overflowed; the scale then halves
                scaler.update()
            else:
                opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            pos = Position(pos.step + 1, epoch, j + 1) if j + 1 < len(batches) else Position(pos.step + 1, epoch + 1, 0)
            bar.update(1)
            done = pos.step == total_steps
            record: dict = {"step": pos.step, "epoch": round(epoch + (j + 1) / len(batches), 3)}
            if pos.step % max(1, tc.log_every) == 0 or done:
                stats = acc.reduce(torch.stack([window_loss, torch.tensor(float(window_rows), device=acc.device)]), "sum")
                elapsed = time.perf_counter() - t_window
                record.update(loss=float(stats[0] / max(stats[1], 1)), lr=sched.get_last_lr()[0],
                              rows_per_s=float(stats[1]) / max(elapsed, 1e-9))
                if scaler is not None:
                    record["grad_scale"] = float(scaler.get_scale())
                bar.set_postfix(loss=f"{record['loss']:.4f}", rows_s=f"{record['rows_per_s']:.1f}")
                window_loss, window_rows, t_window = torch.zeros((), device=acc.device), 0, time.perf_counter()
            # (no evaluation forced at the end: callers predict their validation rows right after)
            if evaluate is not None and tc.eval_every and pos.step % tc.eval_every == 0:
                model.eval()
                record.update(evaluate())
                model.train()
            if len(record) > 2:
                metrics_log.write(record)
                records.append(record)
            if tc.save_every and pos.step % tc.save_every == 0 and not done:
                save_checkpoint(out, acc, model, opt, sched, scaler, pos)
    bar.close()
    metrics_log.close()
    model.eval()
    return records


def _check_finite(finite: list, acc, data: TrainData, epoch: int, step: int) -> None:
    """Stop at the first step with a non-finite loss on any process (all processes stop together), naming
    the rows. One host sync a step, where the optimizer step (and the grad scaler) needs one anyway."""
    flags = torch.stack([f for f, _ in finite])
    bad_here = int((~flags).sum())
    bad_anywhere = int(acc.reduce(torch.tensor(float(bad_here), device=flags.device), "sum")) if acc.num_processes > 1 else bad_here
    if not bad_anywhere:
        return
    where = "; ".join(data.describe(b, epoch) for (f, b) in finite if not bool(f)) or "on another process"
    raise NonFiniteLoss(
        f"training step {step} (epoch {epoch}): the loss is not finite for micro-batch rows {where}. In fp16 this is "
        "usually an overflow in the activations (Gemma's are large): try model.dtype=bfloat16 on GPUs that have it, "
        "model.dtype=float32, or a lower train.learning_rate"
    )


def clear_checkpoint(out: Path) -> None:
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)


def save_and_clear(acc: Any, model: Any, out: Path) -> None:
    """After `fit`: the trained weights into `out` (the main process), the checkpoint gone, every process past."""
    from prefkit.core.modeling import save_trained

    if acc.is_main_process:
        save_trained(acc.unwrap_model(model), out)
        clear_checkpoint(out)
    acc.wait_for_everyone()
