"""vLLM for generation (students, and a local teacher), used only when installed: GPU machines.

vllm pins a CUDA build of torch, so it cannot be installed on the CPU machines prefkit is built and tested
on. What prefkit adds around it, building the requests and mapping the results back to questions, lives
here apart from the import and is tested with stand-ins for vLLM's output objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from prefkit.errors import PrefkitError


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


def generate(model_path: str, request: Request, **engine_kw) -> list[list[str]]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise PrefkitError("vllm is not installed: it runs on GPU machines only (pip install 'prefkit[vllm]' there)") from None
    llm = LLM(model=model_path, **engine_kw)
    params = SamplingParams(n=request.n, temperature=request.temperature, max_tokens=request.max_tokens, stop=request.stop)
    return map_outputs(request, llm.generate(request.prompts, params))
