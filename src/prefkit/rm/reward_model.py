"""The reward model's learner: a transformer over rendered rows, its outputs chosen by the head
(`prefkit.rm.heads`: cls3, cls2, bt, lm_tokens), that trains into a folder (LoRA adapter + head, or the whole
model), reloads from it and predicts tables.

Training data: `pair_data`; prediction: `predictor`; vLLM scoring: `vllm_backend`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from prefkit.competition import competition_of
from prefkit.config import Config
from prefkit.core.dist import log
from prefkit.core.modeling import build_model, compute_dtype, load_trained, release
from prefkit.core.tokenizer import Vocab
from prefkit.core.train import fit, make_accelerator, save_and_clear
from prefkit.data.check import check_classes
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import score, swap_probs
from prefkit.rm.heads import make_head
from prefkit.rm.pair_data import PairTrainData, eval_sample
from prefkit.rm.predictor import PredictSettings, predict_pairs
from prefkit.rm.templates import Renderer
from prefkit.rm.token_cache import folder_for
from prefkit.toolbox.distill import distillation, row_targets


class RewardModelLearner:
    """Trains, saves and reloads one reward model (one folder: adapter + head, or the whole model)."""

    kind = "seq_cls"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.comp = competition_of(cfg)
        self.vocab = Vocab.from_config(cfg)
        self.tokenizer = self.vocab.tokenizer
        self.head = make_head(cfg, self.tokenizer)
        self.renderer = Renderer(self.tokenizer, cfg.template, self.head.layout, cache=folder_for(cfg.data.token_cache))
        self.pad_id = self.vocab.pad_id
        self.vocab_size = self.vocab.size
        self.model = None
        self.folder: Path | None = None  # the trained model's folder, once loaded

    def fit(self, train: PairTable, valid: PairTable | None, out: Path, resume: bool = False) -> list[dict]:
        cfg, tc, head = self.cfg, self.cfg.train, self.head
        acc = make_accelerator()
        model = build_model(cfg, self.vocab, head.task, outputs=head.outputs, zero_outputs=head.zero_outputs)
        swap = "none" if head.symmetric else tc.swap_augment
        if head.symmetric and tc.swap_augment != "none":
            log(f"model.head={head.name} sees A and B alike: train.swap_augment={tc.swap_augment} would change nothing, skipped")
        ids = head.sequences(self.renderer, train)
        ids_swapped = head.sequences(self.renderer, train, swap=True) if swap != "none" else None
        if not tc.soft_labels:
            check_classes(train, swap)
        targets = row_targets(cfg, train, self.comp)
        distill = distillation(cfg, train, self.comp)
        if distill is not None:
            log(distill.describe(tc.distill.teacher))
        data = PairTrainData(head, ids, ids_swapped, targets, swap, tc.batch_size, tc.seed, self.pad_id,
                             names=list(train.frame["id"]), distill=distill)
        evaluate = None
        if valid is not None and len(valid) and tc.eval_every:
            sample = eval_sample(valid, tc.eval_rows, tc.seed)
            valid_ids = self._render_tta(sample, tta=tc.eval_tta)
            labels, names = sample.frame["label"].to_numpy(), list(sample.frame["id"])

            def evaluate() -> dict:
                probs, _ = self._predict_rendered(model, valid_ids, names, evaluation=True)
                return {f"eval_{k}": v for k, v in score(probs, labels).items()}

        records = fit(model, data, cfg, out, evaluate, resume, acc)
        save_and_clear(acc, model, out)
        self.model = acc.unwrap_model(model).eval()
        release(acc)  # the accelerator's references go; the optimizer went with fit()
        return records

    def tokens(self) -> dict[str, int]:
        """Sequences this learner's renderer read from the token cache and rendered."""
        return dict(self.renderer.counts)

    def release(self) -> None:
        """Drop the model and give its memory back (before the next fold's model is built)."""
        self.model = None
        release()

    def _render_tta(self, table: PairTable, tta: bool | None = None) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """The rows' sequences, and those of the swapped rows where swap TTA is on (never for a symmetric head)."""
        tta = (self.cfg.predict.swap_tta if tta is None else tta) and not self.head.symmetric
        swapped = self.head.sequences(self.renderer, table, swap=True) if tta else None
        return self.head.sequences(self.renderer, table), swapped

    def predict_settings(self, evaluation: bool = False) -> PredictSettings:
        """`predict`'s settings; for evaluation during training, the plain or the full TTA pass (as configured:
        `train.eval_tta`), never a budgeted one."""
        pc = self.cfg.predict
        full = {"desc": "eval"} if evaluation else {"tta_fraction": pc.tta_fraction, "tta_budget_s": pc.tta_budget_s}
        return PredictSettings(self.pad_id, pc.batch_tokens, pc.sort_by_length, compute_dtype(self.cfg.model.dtype), **full)

    def _predict_rendered(self, model: Any, rendered, names: list[str] | None = None,
                          evaluation: bool = False) -> tuple[np.ndarray, dict]:
        if self.cfg.predict.backend == "vllm" and model is None:
            return self._predict_vllm(*rendered)
        return predict_pairs(model, self.head, rendered, self.predict_settings(evaluation), names)

    def _predict_vllm(self, ids: list[np.ndarray], swapped: list[np.ndarray] | None) -> tuple[np.ndarray, dict]:
        """The same rendered rows (and swap TTA) scored by vLLM on the merged model: its pooling runner for a
        classifier head, one generated token's log-probabilities (prefix caching on) for lm_tokens."""
        from prefkit.core import vllm_backend

        work = Path(self.cfg.output_dir or ".")  # predict's own output folder: writable, unlike /kaggle/input
        merged = vllm_backend.merged_checkpoint(self.cfg, self.folder, work, self.head.task, self.head.outputs)
        pc = self.cfg.predict
        if swapped is not None and (pc.tta_fraction < 1 or pc.tta_budget_s is not None):
            log("predict.backend=vllm scores every row in one pass: the swap pass covers all rows "
                "(predict.tta_fraction and tta_budget_s apply to the transformers backend)")
        t0 = time.perf_counter()
        seqs = ids + (swapped or [])
        probs = self.head.vllm_probs(str(merged), seqs)
        if swapped is not None:
            probs = (probs[: len(ids)] + swap_probs(probs[len(ids):])) / 2
        seconds = time.perf_counter() - t0
        return probs, {"rows": len(ids), "seconds": round(seconds, 3), "backend": "vllm",
                       "tta_rows": len(ids) if swapped is not None else 0,
                       "rows_per_s": round(len(ids) / max(seconds, 1e-9), 2)}

    def predict(self, table: PairTable) -> tuple[np.ndarray, dict]:
        """Probabilities of the competition's labels for every row, and the prediction statistics."""
        if self.model is None and self.folder is None:
            raise RuntimeError("predict before fit or load")
        return self._predict_rendered(self.model, self._render_tta(table), names=list(table.frame["id"]))

    @classmethod
    def load(cls, cfg: Config, folder: Path) -> "RewardModelLearner":
        learner = cls(cfg)
        learner.folder = Path(folder)
        if cfg.predict.backend == "vllm":  # vLLM loads the merged model itself; fail early where it is absent
            from prefkit.core.vllm_backend import require

            if not learner.head.vllm:
                raise PrefkitError(f"predict.backend=vllm serves the cls and lm_tokens heads; model.head="
                                   f"{learner.head.name} predicts with predict.backend=transformers")
            require()
        else:
            learner.model = load_trained(cfg, learner.vocab, folder, learner.head.task, outputs=learner.head.outputs)
        return learner
