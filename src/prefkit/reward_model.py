"""The reward model: a transformer sequence classifier over rendered pairs (3 labels: A, B, tie).

Training data come from `templates.Renderer` (both A/B orders rendered once), with swap augmentation and
optional soft labels (teacher probabilities, for distillation). Prediction is length-sorted and
token-budgeted, sharded over processes (one per GPU) and gathered back in row order, with swap TTA: the
prediction of the swapped row, swapped back, is averaged in.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import softmax
from tqdm.auto import tqdm

from prefkit.batching import collate, padding_ratio, predict_batches, shard, train_batches
from prefkit.config import Config
from prefkit.data.table import WINNER_COLUMNS, PairTable
from prefkit.errors import PrefkitError
from prefkit.learners import check_classes
from prefkit.metrics import LABEL_INDEX, score, swap_probs
from prefkit.modeling import build_model, compute_dtype, load_trained, precision, release
from prefkit.templates import Renderer, config_tokenizer, pad_token_id
from prefkit.train import fit, make_accelerator, save_and_clear

def hard_targets(labels) -> np.ndarray:
    t = np.zeros((len(labels), 3), dtype=np.float32)
    t[np.arange(len(labels)), [LABEL_INDEX[x] for x in labels]] = 1.0
    return t


def soft_targets(path: str, table: PairTable) -> np.ndarray:
    """Teacher probabilities from a CSV (id, winner_model_a, winner_model_b, winner_tie) for every row."""
    try:
        frame = pd.read_csv(path, dtype={"id": str})
    except (OSError, ValueError) as e:
        raise PrefkitError(f"train.soft_labels {path}: cannot read ({e})") from None
    cols = list(WINNER_COLUMNS)
    missing = [c for c in ["id", *cols] if c not in frame.columns]
    if missing:
        raise PrefkitError(f"{path}: column {missing[0]!r}: missing column")
    probs = frame.set_index("id")[cols]
    absent = [i for i in table.frame["id"] if i not in probs.index]
    if absent:
        raise PrefkitError(f"{path}: {len(absent)} training ids have no soft label (first: {absent[0]!r})")
    t = probs.loc[table.frame["id"]].to_numpy(dtype=np.float32)
    if not np.allclose(t.sum(axis=1), 1.0, atol=1e-3) or (t < 0).any():
        raise PrefkitError(f"{path}: soft labels must be probabilities that sum to 1 per row")
    return t


def eval_sample(table: PairTable, rows: int, seed: int) -> PairTable:
    """The rows evaluated during training: all of them, or a seeded sample of `rows` (0: all). Evaluating a
    whole validation fold every `eval_every` steps, with swap TTA, costs hours on a T4 (a fifth of LMSYS is
    11,500 rows); the fold's full prediction (the OOF) comes once, after training."""
    if not rows or len(table) <= rows:
        return table
    keep = np.sort(np.random.default_rng([seed, 7]).choice(len(table), rows, replace=False))
    return PairTable(table.frame.iloc[keep].reset_index(drop=True), table.source)


class PairTrainData:
    """`train.TrainData` for the classifier. Example i of an epoch is row i % n, swapped when i >= n
    ("both") or when that epoch's seeded coin says so ("random")."""

    def __init__(self, ids: list[np.ndarray], ids_swapped: list[np.ndarray] | None, targets: np.ndarray,
                 swap: str, batch_size: int, seed: int, pad_id: int, names: list[str] | None = None):
        self.ids, self.ids_swapped, self.targets = ids, ids_swapped, targets
        self.swap, self.batch_size, self.seed, self.pad_id = swap, batch_size, seed, pad_id
        self.names = names
        self.n = len(ids)
        self.len = np.array([len(x) for x in ids])
        self.len_swapped = None if ids_swapped is None else np.array([len(x) for x in ids_swapped])

    def _flips(self, epoch: int) -> np.ndarray:
        if self.swap == "random":
            return np.random.default_rng([self.seed, epoch, 1]).random(self.n) < 0.5
        if self.swap == "both":
            return np.r_[np.zeros(self.n, bool), np.ones(self.n, bool)]
        return np.zeros(self.n, bool)

    def batches(self, epoch: int, world: int = 1) -> list[np.ndarray]:
        flips = self._flips(epoch)
        rows = np.arange(len(flips)) % self.n
        lengths = np.where(flips, self.len_swapped[rows] if self.len_swapped is not None else 0, self.len[rows])
        return train_batches(lengths, self.batch_size, self.seed, epoch, world)

    def describe(self, batch: np.ndarray, epoch: int) -> str:
        flips = self._flips(epoch)[batch]
        rows = batch % self.n
        names = [self.names[r] if self.names is not None else f"#{r}" for r in rows]
        return ", ".join(f"id {n!r}" + (" (A/B swapped)" if f else "") for n, f in zip(names, flips))

    def collate(self, batch: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        flips = self._flips(epoch)[batch]
        rows = batch % self.n
        seqs = [self.ids_swapped[r] if f else self.ids[r] for r, f in zip(rows, flips)]
        targets = np.where(flips[:, None], swap_probs(self.targets[rows]), self.targets[rows])
        return {**collate(seqs, self.pad_id), "targets": torch.from_numpy(targets)}

    def loss(self, model: Any, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"], use_cache=False).logits
        return torch.nn.functional.cross_entropy(logits.float(), tensors["targets"]), len(logits)


class NonFiniteLogits(PrefkitError):
    pass


@torch.inference_mode()
def predict_logits(model: Any, seqs: list[np.ndarray], pad_id: int, batch_tokens: int, sort: bool,
                   desc: str = "predict", dtype: torch.dtype = torch.float32,
                   names: list[str] | None = None) -> tuple[np.ndarray, dict]:
    """Logits of every row, in row order, computed under autocast to `dtype`. Batches are shared out over
    processes and gathered back; a check makes sure that no row is lost or predicted twice, and rows whose
    logits are not finite stop prediction with their ids (`names`) listed."""
    from accelerate.utils import gather_object

    from prefkit.dist import state as dist_state

    state = dist_state()
    if not seqs:
        return np.zeros((0, 3)), {"rows": 0, "seconds": 0.0, "rows_per_s": 0.0, "padding_ratio": 0.0,
                                  "processes": state.num_processes}
    lengths = np.array([len(s) for s in seqs])
    batches = predict_batches(lengths, batch_tokens, sort)
    mine = shard(batches, state.process_index, state.num_processes)
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    results = []
    with tqdm(total=sum(len(b) for b in mine), desc=desc, unit="row", disable=not state.is_main_process,
              mininterval=1.0) as bar:
        for b in mine:
            t = collate([seqs[i] for i in b], pad_id)
            with precision(dtype, device):
                logits = model(input_ids=t["input_ids"].to(device), attention_mask=t["attention_mask"].to(device),
                               use_cache=False).logits
            results.append((b.tolist(), logits.float().cpu().numpy()))
            bar.update(len(b))
    if state.num_processes > 1:
        results = gather_object(results)
    index = np.array([i for b, _ in results for i in b], dtype=np.int64)
    if len(index) != len(seqs) or not np.array_equal(np.sort(index), np.arange(len(seqs))):
        raise RuntimeError(f"prediction lost or doubled rows: {len(index)} predictions for {len(seqs)} rows")
    out = np.zeros((len(seqs), results[0][1].shape[1]), dtype=np.float64)
    out[index] = np.concatenate([l for _, l in results])
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if len(bad):
        shown = ", ".join(repr(names[i]) if names is not None else f"#{i}" for i in bad[:10])
        raise NonFiniteLogits(f"{desc}: {len(bad)} of {len(seqs)} rows have non-finite logits (ids {shown}"
                              f"{', ...' if len(bad) > 10 else ''}). In fp16 this is usually an activation overflow: "
                              "try model.dtype=bfloat16 where the GPU has it, or float32")
    seconds = time.perf_counter() - t0
    stats = {"rows": len(seqs), "seconds": round(seconds, 3), "rows_per_s": round(len(seqs) / max(seconds, 1e-9), 2),
             "padding_ratio": round(padding_ratio(batches, lengths), 4), "processes": state.num_processes}
    return out, stats


class RewardModelLearner:
    """Trains, saves and reloads one reward model (one folder: adapter + head, or the whole model)."""

    kind = "seq_cls"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.tokenizer = config_tokenizer(cfg)
        self.renderer = Renderer(self.tokenizer, cfg.template)
        self.pad_id = pad_token_id(self.tokenizer)
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.model = None
        self.folder: Path | None = None  # the trained model's folder, once loaded
        self.last_stats: dict = {}

    def fit(self, train: PairTable, valid: PairTable | None, out: Path, resume: bool = False) -> list[dict]:
        cfg, tc = self.cfg, self.cfg.train
        acc = make_accelerator(cfg)
        model = build_model(cfg, "seq_cls", self.pad_id, self.vocab_size)
        ids = self.renderer.render(train).input_ids
        ids_swapped = self.renderer.render(train, swap=True).input_ids if tc.swap_augment != "none" else None
        if not tc.soft_labels:
            check_classes(train, tc.swap_augment)
        targets = soft_targets(tc.soft_labels, train) if tc.soft_labels else hard_targets(train.frame["label"])
        data = PairTrainData(ids, ids_swapped, targets, tc.swap_augment, tc.batch_size, tc.seed, self.pad_id,
                             names=list(train.frame["id"]))
        evaluate = None
        if valid is not None and len(valid) and tc.eval_every:
            sample = eval_sample(valid, tc.eval_rows, tc.seed)
            valid_ids = self._render_tta(sample, tta=tc.eval_tta)
            labels, names = sample.frame["label"].to_numpy(), list(sample.frame["id"])

            def evaluate() -> dict:
                probs = self._predict_rendered(model, valid_ids, "eval", names)
                return {f"eval_{k}": v for k, v in score(probs, labels).items()}

        records = fit(model, data, cfg, out, evaluate, resume, acc)
        save_and_clear(acc, model, out)
        self.model = acc.unwrap_model(model).eval()
        release(acc)  # the accelerator's references go; the optimizer went with fit()
        return records

    def release(self) -> None:
        """Drop the model and give its memory back (before the next fold's model is built)."""
        self.model = None
        release()

    def _render_tta(self, table: PairTable, tta: bool | None = None) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        tta = self.cfg.predict.swap_tta if tta is None else tta
        swapped = self.renderer.render(table, swap=True).input_ids if tta else None
        return self.renderer.render(table).input_ids, swapped

    def _predict_rendered(self, model: Any, rendered, desc: str = "predict", names: list[str] | None = None) -> np.ndarray:
        ids, swapped = rendered
        pc = self.cfg.predict
        if pc.backend == "vllm" and model is None:
            return self._predict_vllm(ids, swapped)
        dtype = compute_dtype(self.cfg.model.dtype)
        logits, stats = predict_logits(model, ids, self.pad_id, pc.batch_tokens, pc.sort_by_length, desc, dtype, names)
        probs = softmax(logits, axis=1)
        if swapped is not None:
            logits_s, stats_s = predict_logits(model, swapped, self.pad_id, pc.batch_tokens, pc.sort_by_length,
                                               f"{desc} (swapped)", dtype, names)
            probs = (probs + swap_probs(softmax(logits_s, axis=1))) / 2
            stats["seconds"] = round(stats["seconds"] + stats_s["seconds"], 3)
        self.last_stats = stats
        return probs

    def _predict_vllm(self, ids: list[np.ndarray], swapped: list[np.ndarray] | None) -> np.ndarray:
        """The same rendered rows (and swap TTA) scored by vLLM's pooling runner on the merged model."""
        from prefkit import vllm_backend

        work = Path(self.cfg.output_dir or ".")  # predict's own output folder: writable, unlike /kaggle/input
        merged = vllm_backend.merged_checkpoint(self.cfg, self.folder, work, "seq_cls")
        t0 = time.perf_counter()
        probs = vllm_backend.classify(str(merged), ids + (swapped or []))
        if swapped is not None:
            probs = (probs[: len(ids)] + swap_probs(probs[len(ids):])) / 2
        seconds = time.perf_counter() - t0
        self.last_stats = {"rows": len(ids), "seconds": round(seconds, 3), "backend": "vllm",
                           "rows_per_s": round(len(ids) / max(seconds, 1e-9), 2)}
        return probs

    def predict(self, table: PairTable) -> np.ndarray:
        if self.model is None and self.folder is None:
            raise RuntimeError("predict before fit or load")
        return self._predict_rendered(self.model, self._render_tta(table), names=list(table.frame["id"]))

    @classmethod
    def load(cls, cfg: Config, folder: Path) -> "RewardModelLearner":
        learner = cls(cfg)
        learner.folder = Path(folder)
        if cfg.predict.backend == "vllm":  # vLLM loads the merged model itself; fail early where it is absent
            from prefkit.vllm_backend import require

            require()
        else:
            learner.model = load_trained(cfg, folder, "seq_cls", learner.pad_id, learner.vocab_size)
        return learner

