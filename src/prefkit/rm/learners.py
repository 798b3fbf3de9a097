"""What CV, train and predict need from a model kind: fit into a folder, predict a table, load a folder (a run's
models predict through `prefkit.rm.run.Run`, which loads and releases them).

Two kinds: `features` (the baseline) and `seq_cls` (the transformer reward model, any head of `prefkit.rm.heads`).
Both predict probabilities over the competition's labels (`prefkit.competition`). A folder holds one
trained model and, written last, `trained.json`: a folder without it is unfinished (a crash, or training
still going) and is neither used for prediction nor skipped on `--resume`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from prefkit.competition import competition_of
from prefkit.config import Config
from prefkit.core.dist import is_main, log
from prefkit.core.runs import REWARD_MODEL_KINDS
from prefkit.data.check import check_classes
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.rm import golden
from prefkit.rm.features import FeatureModel, enabled_checks, table_features


class Learner(Protocol):
    kind: str

    def fit(self, train: PairTable, valid: PairTable | None, out: Path, resume: bool = False) -> list[dict]: ...

    def predict(self, table: PairTable) -> tuple[np.ndarray, dict]:
        """Probabilities of the competition's labels (A, B[, tie]) for every row, and the prediction statistics."""

    def release(self) -> None:
        """Drop the trained model and give its memory back."""

    def tokens(self) -> dict[str, int] | None:
        """Sequences read from the token cache and rendered so far ({"from_cache", "rendered"}); None: no tokens."""


class FeatureLearner:
    kind = "features"
    FILE = "model.joblib"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.model: FeatureModel | None = None

    def fit(self, train: PairTable, valid: PairTable | None, out: Path, resume: bool = False) -> list[dict]:
        check_classes(train, self.cfg.train.swap_augment)
        self.model = FeatureModel(self.cfg.features, self.cfg.train.seed, len(competition_of(self.cfg).labels)).fit(
            table_features(train, enabled_checks(self.cfg.features)), train.frame["label"].to_numpy(), self.cfg.train.swap_augment
        )
        if is_main():
            self.model.save(out / self.FILE)
        return []

    def predict(self, table: PairTable) -> tuple[np.ndarray, dict]:
        t0 = time.perf_counter()
        probs = self.model.predict_proba(table_features(table, enabled_checks(self.cfg.features)), self.cfg.predict.swap_tta)
        return probs, {"rows": len(table), "seconds": round(time.perf_counter() - t0, 3),
                       "tta_rows": len(table) if self.cfg.predict.swap_tta else 0}  # a column swap: every row

    def release(self) -> None:
        self.model = None

    def tokens(self) -> None:
        return None

    @classmethod
    def load(cls, cfg: Config, folder: Path) -> "FeatureLearner":
        learner = cls(cfg)
        learner.model = FeatureModel.load(folder / cls.FILE)
        return learner


def _class(cfg: Config):
    if cfg.model.kind == "features":
        return FeatureLearner
    if cfg.model.kind != "seq_cls":  # a student's folder holds no reward model: refused, not loaded as one
        raise PrefkitError(f"model.kind={cfg.model.kind}: not a reward model ({' or '.join(REWARD_MODEL_KINDS)}); "
                           "a causal_lm student trains with `prefkit cot sft` and answers with `prefkit cot generate`")
    from prefkit.rm.reward_model import RewardModelLearner

    return RewardModelLearner


def check_source(cfg: Config) -> None:
    """Fail before any data is read when the backbone or its tokenizer cannot be found."""
    if cfg.model.kind in ("seq_cls", "causal_lm"):
        from prefkit.core.modeling import check_positions
        from prefkit.core.tokenizer import config_tokenizer

        config_tokenizer(cfg)
        check_positions(cfg)


def token_line(counts: dict[str, int], cfg: Config) -> str:
    """The log line of a job's tokenising: how many sequences came from the token cache, how many were rendered."""
    from prefkit.rm.token_cache import folder_for

    off = " (data.token_cache is off)" if folder_for(cfg.data.token_cache) is None else ""
    return f"tokens: {counts['from_cache']} sequences from cache, {counts['rendered']} rendered{off}"


def make_learner(cfg: Config) -> Learner:
    return _class(cfg)(cfg)


def load_learner(cfg: Config, folder: Path) -> Learner:
    return _class(cfg).load(cfg, folder)


def record_golden(cfg: Config, folder: Path) -> None:
    """golden.json for the model just saved in `folder` (`prefkit.rm.golden`): call it before `mark_trained`,
    with the training model released (one model in memory at a time). The model is loaded from the folder as
    prediction loads it, with the transformers backend. A failure is a warning: the model trained, and
    prediction says that it has no golden scores."""
    if is_main():
        (folder / golden.FILE).unlink(missing_ok=True)  # an earlier model's scores must not stand for this one
    try:
        transformers = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, backend="transformers"))
        learner = load_learner(transformers, folder)
        try:
            golden.record(cfg, folder, learner)
        finally:
            learner.release()
    except Exception as e:  # noqa: BLE001 - a model that trained must not be lost to its golden scores
        log(f"warning: {folder.name}: golden scores not recorded ({type(e).__name__}: {e}); `prefkit predict` "
            "will predict with it unchecked", summary=True)
