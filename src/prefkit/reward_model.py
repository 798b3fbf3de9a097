"""The reward model's learner: a transformer sequence classifier over rendered pairs (3 labels: A, B, tie)
that trains into a folder (LoRA adapter + head, or the whole model), reloads from it and predicts tables.

Training data: `pair_data`; prediction: `predictor`; vLLM scoring: `vllm_backend`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from prefkit.config import Config
from prefkit.data.table import PairTable
from prefkit.learners import check_classes
from prefkit.metrics import score, swap_probs
from prefkit.modeling import build_model, compute_dtype, load_trained, release
from prefkit.pair_data import PairTrainData, eval_sample, hard_targets, soft_targets
from prefkit.predictor import predict_pairs
from prefkit.templates import Renderer, config_tokenizer, pad_token_id
from prefkit.train import fit, make_accelerator, save_and_clear


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
                probs, _ = self._predict_rendered(model, valid_ids, "eval", names)
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

    def _predict_rendered(self, model: Any, rendered, desc: str = "predict",
                          names: list[str] | None = None) -> tuple[np.ndarray, dict]:
        pc = self.cfg.predict
        if pc.backend == "vllm" and model is None:
            return self._predict_vllm(*rendered)
        return predict_pairs(model, rendered, self.pad_id, pc.batch_tokens, pc.sort_by_length,
                             compute_dtype(self.cfg.model.dtype), desc, names)

    def _predict_vllm(self, ids: list[np.ndarray], swapped: list[np.ndarray] | None) -> tuple[np.ndarray, dict]:
        """The same rendered rows (and swap TTA) scored by vLLM's pooling runner on the merged model."""
        from prefkit import vllm_backend

        work = Path(self.cfg.output_dir or ".")  # predict's own output folder: writable, unlike /kaggle/input
        merged = vllm_backend.merged_checkpoint(self.cfg, self.folder, work, "seq_cls")
        t0 = time.perf_counter()
        probs = vllm_backend.classify(str(merged), ids + (swapped or []))
        if swapped is not None:
            probs = (probs[: len(ids)] + swap_probs(probs[len(ids):])) / 2
        seconds = time.perf_counter() - t0
        return probs, {"rows": len(ids), "seconds": round(seconds, 3), "backend": "vllm",
                       "rows_per_s": round(len(ids) / max(seconds, 1e-9), 2)}

    def predict(self, table: PairTable) -> tuple[np.ndarray, dict]:
        """Probabilities (A, B, tie) of every row, and the prediction statistics."""
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

