"""Heads: the one place that knows what a reward model outputs (`model.head`).

A head says how a row becomes model inputs (one rendered pair, or one sequence per response), how the model
is called, how its outputs become log-probabilities of the competition's labels (A, B[, tie]), and so the
loss for hard or soft targets. Templates, training data, the predictor, TTA, metrics and the submission ask
the competition and the head; none of them knows how many classes there are.

    cls3       a sequence classifier with 3 outputs: A, B, tie (LMSYS; the 1st-place family of solutions).
    cls2       the same with 2 outputs: A, B (WSDM Cup).
    bt         one score per (prompt, response) sequence, Bradley-Terry on the difference: P(A) = sigmoid(s_A -
               s_B). For LMSYS a tie model is added, Davidson's (1970): P(A), P(B), P(tie) proportional to
               exp(d/2), exp(-d/2), nu with d = s_A - s_B and log nu = t_A + t_B, t a second output per
               response (a constant nu is the special case of constant t). Symmetric in A and B by
               construction, so swap augmentation and swap TTA change nothing and are skipped. Can start from
               a single-score reward model's folder (its one output becomes s; t starts at zero).
    lm_tokens  a causal LM prompted as a judge (`template.question`); the answer tokens' next-token logits
               (`template.answers`: " A", " B"[, " tie"]) are the class logits. The form WSDM Cup's 3rd, 4th
               and 7th places used, because vLLM serves it with prefix caching (`vllm_backend.judge_logprobs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prefkit.competition import Competition, competition_of
from prefkit.errors import PrefkitError
from prefkit.metrics import probabilities


class Head:
    name = ""
    task = "seq_cls"  # what modeling builds: a sequence classifier, or a causal LM ("causal_lm")
    layout = "pair"  # how templates render a row (templates.Renderer)
    per_row = 1  # model input sequences per row, consecutive
    symmetric = False  # A and B are seen alike: swap augmentation and swap TTA would change nothing
    left_pad = False  # batches padded on the left, so that every row's last token is at position -1
    vllm = True  # predict.backend=vllm can serve it (one sequence a row)

    def __init__(self, comp: Competition, tokenizer: Any = None, template: Any = None):
        self.comp = comp
        self.k = len(comp.labels)

    @property
    def outputs(self) -> int:
        """Model outputs per sequence (`num_labels` of a sequence classifier)."""
        return self.k

    @property
    def zero_outputs(self) -> tuple[int, ...]:
        """Outputs that a new (not loaded) head starts at zero."""
        return ()

    def forward(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Outputs of each sequence of a collated batch: (sequences, outputs)."""
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits

    def row_logits(self, out: torch.Tensor) -> torch.Tensor:
        """(rows * per_row, outputs) -> (rows, labels): log-probabilities up to a per-row constant."""
        return out

    def loss(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against hard (one-hot) or soft (teacher) targets, in fp32."""
        return torch.nn.functional.cross_entropy(self.row_logits(out.float()), targets)

    def probs(self, out: np.ndarray) -> np.ndarray:
        return probabilities(self.row_logits(torch.from_numpy(np.asarray(out, dtype=np.float64))).numpy())

    def sequences(self, renderer: Any, table: Any, swap: bool = False) -> list[np.ndarray]:
        """Token ids of every row's sequences, `per_row` consecutive ones per row."""
        return renderer.render(table, swap=swap).input_ids

    def vllm_probs(self, model_path: str, seqs: list[np.ndarray]) -> np.ndarray:
        """Probabilities of the labels for each sequence, scored by vLLM on the merged checkpoint at `model_path`:
        its pooling runner gives the classifier's softmax."""
        from prefkit.core import vllm_backend

        return vllm_backend.classify(model_path, seqs, self.outputs)


class Classifier(Head):
    def __init__(self, comp: Competition, tokenizer: Any = None, template: Any = None):
        super().__init__(comp)
        self.name = f"cls{self.k}"


class BradleyTerry(Head):
    name = "bt"
    layout = "single"
    per_row = 2
    symmetric = True
    vllm = False  # two sequences a row: vLLM's pooling runner would score them apart, with no pairing

    @property
    def outputs(self) -> int:
        return 2 if "tie" in self.comp.labels else 1  # the score s, and the tie term t where ties are scored

    @property
    def zero_outputs(self) -> tuple[int, ...]:
        return (1,) if self.outputs == 2 else ()  # a new head's tie term t starts at zero: nu = 1

    def row_logits(self, out: torch.Tensor) -> torch.Tensor:
        pair = out.reshape(-1, 2, self.outputs)
        half = (pair[:, 0, 0] - pair[:, 1, 0]) / 2
        cols = [half, -half]
        if self.outputs == 2:
            cols.append(pair[:, 0, 1] + pair[:, 1, 1])  # log nu
        return torch.stack(cols, dim=1)

    def sequences(self, renderer: Any, table: Any, swap: bool = False) -> list[np.ndarray]:
        first, second = ("b", "a") if swap else ("a", "b")
        one, two = renderer.render_response(table, first).input_ids, renderer.render_response(table, second).input_ids
        return [s for pair in zip(one, two) for s in pair]


class LmTokens(Head):
    name = "lm_tokens"
    task = "causal_lm"
    layout = "judge"
    left_pad = True

    def __init__(self, comp: Competition, tokenizer: Any = None, template: Any = None):
        super().__init__(comp)
        self.token_ids: list[int] = []
        if tokenizer is not None:
            self.token_ids = answer_token_ids(tokenizer, template.answers, self.k)

    def forward(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        # left padding: positions count real tokens only, so a row's positions do not depend on its batch
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions, use_cache=False,
                       logits_to_keep=1).logits
        return logits[:, -1, self.token_ids]

    def vllm_probs(self, model_path: str, seqs: list[np.ndarray]) -> np.ndarray:
        """One generated token's log-probabilities over the answer tokens (prefix caching on)."""
        from prefkit.core import vllm_backend

        return self.probs(vllm_backend.judge_logprobs(model_path, seqs, self.token_ids))


def answer_token_ids(tokenizer: Any, answers: list[str], k: int) -> list[int]:
    """The token id of each answer (`template.answers`, in label order); each must be one token, all different."""
    if len(answers) < k:
        raise PrefkitError(f"template.answers has {len(answers)} answers; the competition has {k} labels")
    ids = []
    for text in answers[:k]:
        enc = tokenizer.encode(text, add_special_tokens=False).ids
        if len(enc) != 1:
            raise PrefkitError(f"template.answers: {text!r} is {len(enc)} tokens for this tokenizer; each answer "
                               "must be one token (try it with or without a leading space)")
        ids.append(enc[0])
    if len(set(ids)) != len(ids):
        raise PrefkitError(f"template.answers {answers[:k]}: two answers are the same token")
    return ids


def head_name(cfg: Any) -> str:
    """`model.head`, with auto resolved (cls3 for LMSYS, cls2 for WSDM) and checked against the competition."""
    comp = competition_of(cfg)
    name = cfg.model.head
    if name == "auto":
        return f"cls{len(comp.labels)}"
    if name.startswith("cls") and name != f"cls{len(comp.labels)}":
        raise PrefkitError(f"model.head={name} predicts {name[3:]} classes; competition={comp.name} has "
                           f"{len(comp.labels)} ({', '.join(comp.labels)}): use cls{len(comp.labels)}, bt or lm_tokens")
    return name


def make_head(cfg: Any, tokenizer: Any = None) -> Head:
    """The configured head; lm_tokens needs the tokenizer to find its answer tokens."""
    name = head_name(cfg)
    cls = {"bt": BradleyTerry, "lm_tokens": LmTokens}.get(name, Classifier)
    return cls(competition_of(cfg), tokenizer, cfg.template)
