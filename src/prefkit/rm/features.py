"""The feature baseline: cheap text features of each response and a scikit-learn classifier.

Features of a response (all its turns together): length, words, lines, markdown structure (headers,
bullets, numbered items, code blocks, bold, tables, links), questions, refusal and apology phrases, word
overlap with the prompt, empty and null turns. A row is `[f(A), f(B), f(A) - f(B), prompt features,
A-B similarity]`. Swapping A and B is a permutation of those columns, so swap augmentation and swap TTA
need no second pass over the texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
from tqdm.auto import tqdm

from prefkit.config import FeaturesConfig
from prefkit.data.table import LABELS, SWAP_INDEX, PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import label_ids, swap_probs
from prefkit.rm import date_check, swap_check

_WORD = re.compile(r"\w+", re.UNICODE)
_PATTERNS = {
    "headers": re.compile(r"^\s{0,3}#{1,6}\s", re.M),
    "bullets": re.compile(r"^\s*[-*\u2022]\s+", re.M),
    "numbered": re.compile(r"^\s*\d+[.)]\s+", re.M),
    "code_blocks": re.compile(r"```"),
    "bold": re.compile(r"\*\*[^*\n]+\*\*"),
    "table_rows": re.compile(r"^\s*\|.*\|\s*$", re.M),
    "links": re.compile(r"https?://"),
    "questions": re.compile(r"\?"),
    "refusals": re.compile(
        r"\b(?:i\s+(?:can(?:no|')t|am\s+(?:not\s+able|unable)|won't|will\s+not)|i'm\s+(?:not\s+able|unable)"
        r"|as\s+an\s+ai|language\s+model|not\s+appropriate|against\s+(?:my|the)\s+(?:guidelines|policy))",
        re.I,
    ),
    "apologies": re.compile(r"\b(?:sorry|apologi[sz]e)\b", re.I),
}
RESPONSE_FEATURES = [
    "log_chars", "log_words", "lines", *_PATTERNS, "unique_word_ratio", "prompt_overlap", "prompt_coverage",
    "empty", "null_turns",
]
# features.arithmetic: does a response's own arithmetic hold? Every "x op y = z" it writes is recomputed (a
# verifier's check on chain-of-thought rationales); and does its stated answer come out of that arithmetic?
ARITHMETIC_FEATURES = ["equations", "equations_right", "equations_wrong", "share_wrong", "answer_is_last_result",
                       "answer_in_prompt", "answer_missing", "prompt_numbers_used"]
_NUM = r"-?\d+(?:\.\d+)?"
_EQUATION = re.compile(rf"({_NUM})\s*([-+*/x\u00d7\u00f7])\s*({_NUM})\s*=\s*({_NUM})")
_STATED = re.compile(rf"Answer:\s*({_NUM})\s*$")
PROMPT_FEATURES = ["prompt_log_chars", "prompt_turns"]
PAIR_FEATURES = ["ab_jaccard", "ab_identical"]


def _words(text: str) -> set[str]:
    return set(w.lower() for w in _WORD.findall(text))


def _response_features(turns: list, prompt_words: set[str]) -> list[float]:
    text = "\n".join(t for t in turns if t)
    words = _WORD.findall(text)
    wset = set(w.lower() for w in words)
    overlap = len(wset & prompt_words)
    return [
        np.log1p(len(text)),
        np.log1p(len(words)),
        text.count("\n") + 1 if text else 0,
        *(len(p.findall(text)) for p in _PATTERNS.values()),
        len(wset) / len(words) if words else 0.0,
        overlap / len(wset | prompt_words) if (wset or prompt_words) else 0.0,
        overlap / len(prompt_words) if prompt_words else 0.0,
        float(not text.strip()),
        float(sum(t is None for t in turns)),
    ]


def _apply(x: float, op: str, y: float) -> float | None:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op in "*x\u00d7":
        return x * y
    return x / y if y else None


def arithmetic_features(text: str, prompt: str) -> list[float]:
    """ARITHMETIC_FEATURES of one response (commas in numbers ignored)."""
    text, prompt = text.replace(",", ""), prompt.replace(",", "")
    right = wrong = 0
    last = None
    for m in _EQUATION.finditer(text):
        x, op, y, z = float(m.group(1)), m.group(2), float(m.group(3)), float(m.group(4))
        got = _apply(x, op, y)
        ok = got is not None and abs(got - z) <= 1e-6 * max(1.0, abs(z))
        right, wrong, last = right + ok, wrong + (not ok), z
    stated = _STATED.search(text.strip())
    answer = float(stated.group(1)) if stated else None
    prompt_numbers = {float(n) for n in re.findall(_NUM, prompt)}
    body_numbers = {float(n) for n in re.findall(_NUM, text[: stated.start()] if stated else text)}
    n = right + wrong
    return [n, right, wrong, wrong / n if n else 0.0,
            float(answer is not None and last is not None and abs(answer - last) <= 1e-6 * max(1.0, abs(last))),
            float(answer is not None and answer in prompt_numbers), float(answer is None),
            len(prompt_numbers & body_numbers) / len(prompt_numbers) if prompt_numbers else 0.0]


# The step checks a verifier may read (`features.checks`), each computed by code from a response's text and its
# prompt: name -> (its features, the function of (response text, prompt text) that gives them)
CHECKS = {"arithmetic": (ARITHMETIC_FEATURES, arithmetic_features),
          "dates": (date_check.FEATURES, date_check.features),
          "swaps": (swap_check.FEATURES, swap_check.features)}


def enabled_checks(cfg: FeaturesConfig) -> list[str]:
    """The checks a features config turns on, in CHECKS order (`arithmetic: true` is `checks: [arithmetic]`; a
    model saved before `checks` existed has none)."""
    on = set(getattr(cfg, "checks", None) or ()) | ({"arithmetic"} if cfg.arithmetic else set())
    return [name for name in CHECKS if name in on]


def table_features(table: PairTable, checks: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features of A, features of B, prompt and symmetric pair features), one row per table row.
    `checks`: each response's features of these CHECKS too (`enabled_checks`)."""
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise PrefkitError(f"unknown step check {unknown[0]!r} (known: {', '.join(CHECKS)})")
    f = table.frame
    fa, fb, shared = [], [], []
    rows = zip(f["prompt"], f["response_a"], f["response_b"])
    for prompt, a, b in tqdm(rows, total=len(f), desc="features", unit="row", leave=False, mininterval=1.0):
        ptext = "\n".join(t for t in prompt if t)
        pw = _words(ptext)
        fa.append(_response_features(a, pw))
        fb.append(_response_features(b, pw))
        for name in checks:
            fa[-1] += CHECKS[name][1]("\n".join(t for t in a if t), ptext)
            fb[-1] += CHECKS[name][1]("\n".join(t for t in b if t), ptext)
        wa, wb = _words("\n".join(t for t in a if t)), _words("\n".join(t for t in b if t))
        shared.append([
            np.log1p(len(ptext)),
            len(prompt),
            len(wa & wb) / len(wa | wb) if (wa or wb) else 1.0,
            float(a == b),
        ])
    return np.array(fa, dtype=np.float64), np.array(fb, dtype=np.float64), np.array(shared, dtype=np.float64)


def design(fa: np.ndarray, fb: np.ndarray, shared: np.ndarray) -> np.ndarray:
    return np.hstack([fa, fb, fa - fb, shared])


def feature_names(checks: Sequence[str] = ()) -> list[str]:
    response = RESPONSE_FEATURES + [f for name in checks for f in CHECKS[name][0]]
    return ([f"a_{n}" for n in response] + [f"b_{n}" for n in response] + [f"diff_{n}" for n in response]
            + PROMPT_FEATURES + PAIR_FEATURES)


class FeatureModel:
    def __init__(self, cfg: FeaturesConfig, seed: int = 0, classes: int = len(LABELS)):
        self.cfg = cfg
        self.seed = seed
        self.classes = classes  # the competition's labels: 3 (A, B, tie) or 2 (A, B)
        self.estimator = None

    def _new_estimator(self):
        if self.cfg.estimator == "hist_gb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            return HistGradientBoostingClassifier(
                max_iter=self.cfg.max_iter, learning_rate=self.cfg.learning_rate,
                max_leaf_nodes=self.cfg.max_leaf_nodes, l2_regularization=self.cfg.l2_regularization,
                early_stopping=False, random_state=self.seed,
            )
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / self.cfg.l2_regularization, max_iter=self.cfg.max_iter))

    def fit(self, feats: tuple[np.ndarray, np.ndarray, np.ndarray], labels, swap_augment: str) -> "FeatureModel":
        """`swap_augment`: none; random (each row in a seeded random A/B order); both (every row twice)."""
        fa, fb, shared = feats
        y = label_ids(labels)
        swapped_y = np.array(SWAP_INDEX)[y]
        if swap_augment == "random":
            flip = np.random.default_rng(self.seed).random(len(y)) < 0.5
            fa, fb = np.where(flip[:, None], fb, fa), np.where(flip[:, None], fa, fb)
            y = np.where(flip, swapped_y, y)
        X = design(fa, fb, shared)
        if swap_augment == "both":
            X = np.vstack([X, design(fb, fa, shared)])
            y = np.concatenate([y, swapped_y])
        self.estimator = self._new_estimator().fit(X, y)
        return self

    def _proba(self, X: np.ndarray) -> np.ndarray:
        """A column per class, even when training saw only some (HH-RLHF has no ties)."""
        p = np.zeros((len(X), self.classes))
        p[:, self.estimator.classes_] = self.estimator.predict_proba(X)
        return p

    def predict_proba(self, feats: tuple[np.ndarray, np.ndarray, np.ndarray], swap_tta: bool) -> np.ndarray:
        if self.estimator is None:
            raise RuntimeError("predict_proba before fit")
        fa, fb, shared = feats
        p = self._proba(design(fa, fb, shared))
        if swap_tta:
            p = (p + swap_probs(self._proba(design(fb, fa, shared)))) / 2
        return p

    def save(self, path: str | Path) -> None:
        from prefkit.io import atomic_path

        with atomic_path(path) as tmp:
            joblib.dump({"cfg": self.cfg, "seed": self.seed, "classes": self.classes, "estimator": self.estimator,
                         "features": feature_names(enabled_checks(self.cfg))}, tmp)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureModel":
        try:
            state = joblib.load(path)
        except FileNotFoundError:
            raise PrefkitError(f"{path}: no trained model here (run `prefkit train` first)") from None
        if state.get("features") != feature_names(enabled_checks(state["cfg"])):
            raise PrefkitError(f"{path}: trained with another feature set; train it again with this prefkit")
        model = cls(state["cfg"], state["seed"], state.get("classes", len(LABELS)))
        model.estimator = state["estimator"]
        return model
