"""Each sampled rationale's mean token log-probability under a student (the one that sampled it): the generator's
own confidence, a verifier that is trained on nothing, and the baseline a learned verifier has to beat.

The tokens are those the sampler saw: the question's prompt ids (`Student.prompt_ids`, BOS where the format wants
it), then the row's completion text encoded alone, as `prefkit cot sample` generated it after the prompt. One
teacher-forced forward pass of prompt + completion, no gradient; each completion token's log-probability given
everything before it (the model's own distribution, not the sampler's temperature and top-p), averaged over the
completion's tokens: the prompt's are never counted, and the average does not favour short rationales as a sum
would. An empty completion (the student stopped at once) is scored by its first stop token. Rows go in batches of
at most `batch_tokens` (padding included), longest first, right-padded.

`MeanLogProb` is a scorer that `prefkit cot rerank` takes beside verifier runs (`held_out`, `averaged`): nothing
is fitted on labels, so a training sample's held-out score is simply its score. A trained student's scores are
kept in the folder the caller names (`mean_logprob_<model>.npz`, the model: the student's trained.json), one a
sample keyed by its question and completion, so a rerun reads them, and so does any other set of the same samples
(`cot rerank` scores the training samples of the questions `verifier-pairs` kept, which the caller does not list).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from prefkit.console import keep_bars
from prefkit.core.batching import collate
from prefkit.cot.generate import Student, length_order
from prefkit.errors import PrefkitError
from prefkit.io import atomic_path

BATCH_TOKENS = 4096  # SmolLM2's 49,152-word vocabulary: at most ~0.8 GB of logits a batch


@torch.no_grad()
def mean_logprobs(student: Student, rows: list[dict], batch_tokens: int = BATCH_TOKENS) -> np.ndarray:
    """Each row's mean log-probability of its completion tokens under `student`, given the question's prompt."""
    tokenizer = student.format.vocab.tokenizer
    seqs, starts = [], []
    for r in rows:
        prompt = student.prompt_ids(r["question"])
        completion = tokenizer.encode(r["completion"], add_special_tokens=False).ids or student.stops[:1]
        if not completion:
            raise PrefkitError(f"{r['dataset']}:{r['index']}: sample {r['sample']} has an empty completion and the "
                               "student no stop token to score it by")
        seqs.append(prompt + completion)
        starts.append(len(prompt))
    batches, batch = [], []
    for i in length_order(seqs):  # longest first: a batch is as wide as its first row
        if batch and len(seqs[batch[0]]) * (len(batch) + 1) > batch_tokens:
            batches.append(batch)
            batch = []
        batch.append(i)
    batches += [batch] if batch else []
    device = next(student.model.parameters()).device
    out = np.zeros(len(rows))
    for batch in tqdm(batches, desc=f"mean log-prob of {len(rows)} samples", unit="batch", leave=keep_bars(),
                      mininterval=1.0):
        t = collate([seqs[i] for i in batch], student.pad)
        ids = t["input_ids"].to(device)
        width = ids.shape[1]
        # logits only from the first position that predicts a completion token on: the prompts' positions need none
        offset = min(starts[i] for i in batch) - 1
        logits = student.model(input_ids=ids, attention_mask=t["attention_mask"].to(device), use_cache=False,
                               logits_to_keep=width - offset).logits
        for j, i in enumerate(batch):
            p, n = starts[i], len(seqs[i])  # position q's logits predict token q + 1
            logp = torch.log_softmax(logits[j, p - 1 - offset : n - 1 - offset].float(), dim=-1)
            out[i] = logp.gather(-1, ids[j, p:n, None]).mean().item()
    return out


class MeanLogProb:
    """The mean log-probability of each sample under `student` (a run folder or config, opened for each call that
    has rows to score and let go after; or an opened `Student`), as a scorer of `prefkit cot rerank`; kept in
    `folder` where the student is a trained run folder."""

    def __init__(self, student: str | Path | Student, folder: str | Path | None = None, overrides: list[str] = (),
                 batch_tokens: int = BATCH_TOKENS):
        self.student, self.overrides, self.batch_tokens = student, list(overrides), batch_tokens
        self.folder = None if folder is None else Path(folder)

    def __str__(self) -> str:
        source = "an opened student" if isinstance(self.student, Student) else str(self.student)
        return f"mean log-probability under {source}"

    def averaged(self, rows: list[dict]) -> np.ndarray:
        return self.scores(rows)

    def held_out(self, rows: list[dict]) -> np.ndarray:
        return self.scores(rows)  # nothing is trained on labels: every score is held out

    def scores(self, rows: list[dict]) -> np.ndarray:
        keys = [_row_key(r) for r in rows]
        path = self._kept_file()
        kept = _read(path) if path else {}
        todo = [i for i, k in enumerate(keys) if k not in kept]
        if todo:
            student = self.student if isinstance(self.student, Student) else Student(self.student, self.overrides)
            got = mean_logprobs(student, [rows[i] for i in todo], self.batch_tokens)
            kept.update(zip((keys[i] for i in todo), got.tolist()))
            if path:
                _write(path, kept)
        return np.array([kept[k] for k in keys], dtype=float)

    def _kept_file(self) -> Path | None:
        """Where the scores are kept: in `folder`, keyed by the student's model (its trained.json) and the overrides
        it is opened with. None without a folder, or for an opened student or a config (no trained model to key by)."""
        from prefkit.core.runs import MARKER

        if self.folder is None or isinstance(self.student, Student):
            return None
        marker = Path(self.student) / "model" / MARKER
        if not marker.is_file():
            return None
        h = hashlib.sha256(marker.read_bytes() + "\0".join(self.overrides).encode())
        return self.folder / f"mean_logprob_{h.hexdigest()[:16]}.npz"


def _row_key(row: dict) -> str:
    text = f"{row['question']}\0{row['completion']}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()[:32]


def _read(path: Path) -> dict[str, float]:
    try:
        with np.load(path) as f:
            return dict(zip(f["keys"].tolist(), f["scores"].tolist()))
    except (OSError, ValueError, KeyError):
        return {}  # none yet, or a damaged file: scored again and rewritten


def _write(path: Path, kept: dict[str, float]) -> None:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(list(kept), dtype="U32"), scores=np.array(list(kept.values()), dtype=float))
    except (OSError, PrefkitError):
        pass  # a read-only run folder: nothing kept, nothing lost
