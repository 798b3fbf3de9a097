"""vLLM, used only when installed (GPU machines): generation for students and a local teacher
(`cot.backend=vllm`), and reward-model scoring (`predict.backend=vllm`): its pooling runner for classifier heads,
one generated token's log-probabilities for the lm_tokens judge.

vllm pins a CUDA build of torch, so it cannot be installed on the CPU machines prefkit is built and tested
on. What prefkit adds around it, the merged checkpoint vLLM serves, building the requests and mapping the
results back to rows, lives here apart from the import and is tested with stand-ins for vLLM's outputs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from prefkit.errors import PrefkitError

MERGED_MARKER = "merged.json"


@dataclass(frozen=True)
class Request:
    prompts: list[str]
    n: int  # samples per prompt (diverse reasoning: n > 1 at a temperature > 0)
    temperature: float
    max_tokens: int
    stop: list[str]


def build_request(prompts: Sequence[str], samples: int = 1, temperature: float = 0.0, max_tokens: int = 128,
                  stop: Sequence[str] = (" END",)) -> Request:
    if samples < 1:
        raise PrefkitError("samples must be at least 1")
    if samples > 1 and temperature == 0.0:
        raise PrefkitError("several samples at temperature 0 are all the same: set a temperature above 0")
    return Request(list(prompts), samples, temperature, max_tokens, list(stop))


def map_outputs(request: Request, outputs: Sequence[Any]) -> list[list[str]]:
    """vLLM returns one RequestOutput per prompt, in order, each with `.outputs[k].text`; check and unpack."""
    if len(outputs) != len(request.prompts):
        raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(request.prompts)} prompts")
    texts = []
    for prompt, out in zip(request.prompts, outputs):
        if getattr(out, "prompt", prompt) != prompt:
            raise RuntimeError("vLLM results came back out of order")
        samples = [o.text for o in out.outputs]
        if len(samples) != request.n:
            raise RuntimeError(f"vLLM returned {len(samples)} samples, {request.n} asked")
        texts.append(samples)
    return texts


def require() -> Any:
    """The vllm module, or a clear error where it is not installed."""
    try:
        import vllm
    except ImportError:
        raise PrefkitError("vllm is not installed: it runs on GPU machines only (pip install 'prefkit[vllm]' there)") from None
    return vllm


def generate(model_path: str, request: Request, **engine_kw) -> list[list[str]]:
    vllm = require()
    LLM, SamplingParams = vllm.LLM, vllm.SamplingParams
    llm = LLM(model=model_path, **engine_kw)
    params = SamplingParams(n=request.n, temperature=request.temperature, max_tokens=request.max_tokens, stop=request.stop)
    return map_outputs(request, llm.generate(request.prompts, params))


def merged_checkpoint(cfg: Any, folder: Path, work: Path, task: str = "causal_lm", outputs: int | None = None,
                      chat_tokenizer: Any = None) -> Path:
    """A plain checkpoint that vLLM can serve: base weights (unquantised, the compute dtype) with the LoRA
    adapter merged in (and the score head, for a reward model), and its tokenizer.

    Written once into `work/merged/<folder name>`, a writable working folder: the adapter's own folder may be
    read-only (/kaggle/input). The merge runs on the CPU, where it does not take GPU memory that vLLM is about
    to claim, and in the main process only; the others wait at a barrier and then read it. Written through a
    temporary folder renamed at the end; reused while its marker is there. `outputs`: a classifier's head width;
    `chat_tokenizer`: a student's transformers tokenizer with its chat template, saved in place of the plain one."""
    import json

    from prefkit.core.dist import is_main, wait
    from prefkit.core.modeling import load_merged, release
    from prefkit.core.tokenizer import Vocab

    target = Path(work) / "merged" / Path(folder).name
    if is_main() and not (target / MERGED_MARKER).is_file():
        vocab = Vocab.from_config(cfg)
        model = load_merged(cfg, vocab, Path(folder), task, outputs=outputs)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
        except OSError as e:
            raise PrefkitError(f"{tmp.parent}: cannot write the merged checkpoint there ({e.strerror or e})") from None
        model.save_pretrained(str(tmp), safe_serialization=True)
        del model
        release()
        if chat_tokenizer is not None:
            chat_tokenizer.save_pretrained(str(tmp))
        else:
            from transformers import PreTrainedTokenizerFast

            PreTrainedTokenizerFast(tokenizer_object=vocab.tokenizer).save_pretrained(str(tmp))
        (tmp / MERGED_MARKER).write_text(json.dumps({"adapter": str(folder)}) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    wait()
    return target


# --- reward-model scoring: vLLM's pooling runner, "classify" task ---------------------------------------------


def classify_requests(seqs: Sequence[Sequence[int]]) -> list[dict]:
    """One vLLM prompt per rendered row: prefkit's own token ids (`TokensPrompt`), so the template, its token
    budgets and the A/B order are exactly those of the transformers path."""
    return [{"prompt_token_ids": [int(t) for t in s]} for s in seqs]


def probs_from(outputs: Sequence[Any], n_rows: int, n_labels: int):
    """vLLM's ClassificationRequestOutputs (`.outputs.probs`, softmax applied), in request order -> (rows, labels)."""
    import numpy as np

    if len(outputs) != n_rows:
        raise RuntimeError(f"vLLM returned {len(outputs)} results for {n_rows} rows")
    probs = np.array([list(o.outputs.probs) for o in outputs], dtype=np.float64)
    if probs.shape != (n_rows, n_labels) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise RuntimeError(f"vLLM returned probabilities of shape {probs.shape} that do not each sum to 1")
    return probs


def classify(model_path: str, seqs: Sequence[Sequence[int]], n_labels: int, **engine_kw):
    """Class probabilities of every rendered row from a merged reward model."""
    vllm = require()
    llm = vllm.LLM(model=model_path, runner="pooling", **engine_kw)
    return probs_from(llm.classify(classify_requests(seqs)), len(seqs), n_labels)


# --- the lm_tokens judge: one generated token, its log-probabilities over the answer tokens -----------------

# The engine must report log-probabilities after the allowed-token mask: by default (raw_logprobs) vLLM
# computes them before it, and the top-k of the whole vocabulary need not hold every answer token.
JUDGE_ENGINE = {"enable_prefix_caching": True, "logprobs_mode": "processed_logprobs"}


def judge_params(token_ids: Sequence[int]) -> dict:
    """SamplingParams of the judge: greedy, one token, only the answer tokens allowed, all their logprobs."""
    ids = [int(t) for t in token_ids]
    return {"max_tokens": 1, "temperature": 0.0, "allowed_token_ids": ids, "logprobs": len(ids)}


def logprobs_from(outputs: Sequence[Any], n_rows: int, token_ids: Sequence[int]):
    """vLLM's RequestOutputs (`.outputs[0].logprobs[0]`: token id -> Logprob) in request order -> (rows, answers),
    the answer tokens' log-probabilities in `token_ids` order."""
    import numpy as np

    if len(outputs) != n_rows:
        raise RuntimeError(f"vLLM returned {len(outputs)} results for {n_rows} rows")
    out = np.empty((n_rows, len(token_ids)))
    for i, o in enumerate(outputs):
        first = o.outputs[0].logprobs[0]
        missing = [t for t in token_ids if t not in first]
        if missing:
            raise RuntimeError(f"vLLM returned no log-probability for answer token {missing[0]} (row {i}): the engine "
                               "needs logprobs_mode=processed_logprobs")
        out[i] = [first[t].logprob for t in token_ids]
    return out


def judge_logprobs(model_path: str, seqs: Sequence[Sequence[int]], token_ids: Sequence[int], **engine_kw):
    """The answer tokens' log-probabilities after every rendered row, from a merged causal LM judge. Rows share
    the template's opening (and, with swap TTA, every prompt twice), which prefix caching computes once."""
    vllm = require()
    llm = vllm.LLM(model=model_path, **{**JUDGE_ENGINE, **engine_kw})
    outputs = llm.generate(classify_requests(seqs), vllm.SamplingParams(**judge_params(token_ids)))
    return logprobs_from(outputs, len(seqs), token_ids)
