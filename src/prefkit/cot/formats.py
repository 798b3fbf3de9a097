"""Training samples for students, and completion-only loss masks.

Fine-tune-CoT form (as in the paper's own fine-tuning files, which this reproduces byte for byte):
    prompt      "<question>\\n\\n###\\n\\n"
    completion  " <rationale>\\n\\n-->\\n\\n<answer> END"
Alpaca form: the Stanford Alpaca prompt with the rationale and answer as the response.
Chat form: the student's own chat template (instruct models: Llama-3.2-Instruct, Qwen2.5, Gemma-2-it): the
question is the user turn, "<rationale>\n\n--> <answer>" the assistant turn, rendered by transformers'
`apply_chat_template` from the template the tokenizer folder ships (or `cot.chat_template`, a Jinja file).
Only rationales whose answer is correct are kept; `teacher_samples` counts what survives.
`StudentFormat` is a student's format resolved once from its config: the sample builder, the special ids its
sequences take and the tokens its generation stops at, which SFT, generation, TruthfulQA and vLLM all read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prefkit.core.batching import IGNORE
from prefkit.core.tokenizer import Vocab, special_ids
from prefkit.cot.answers import extract, is_correct
from prefkit.cot.datasets import DEFAULT_ROOT, load, teacher_file
from prefkit.errors import PrefkitError

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def finetune_cot(question: str, rationale: str, answer: str) -> dict[str, str]:
    return {"prompt": f"{question}\n\n###\n\n", "completion": f" {rationale.strip()}\n\n-->\n\n{answer} END"}


def alpaca(question: str, rationale: str, answer: str) -> dict[str, str]:
    return {"prompt": ALPACA.format(instruction=question), "completion": f"{rationale.strip()}\n\nThe answer is {answer}."}


FORMATS = {"finetune_cot": finetune_cot, "alpaca": alpaca}


class ChatFormat:
    """Samples in a chat template. `prompt` ends with the generation prompt (the assistant header), so the
    completion is the assistant's content plus whatever the template closes the turn with (e.g.
    "<end_of_turn>\n"); its special tokens are where generation stops."""

    def __init__(self, hf_tokenizer: Any):
        if not getattr(hf_tokenizer, "chat_template", None):
            raise PrefkitError("cot.format=chat: the tokenizer has no chat template (set cot.chat_template to a Jinja file)")
        self.hf = hf_tokenizer
        probe = self("Q", "R", "A")
        bos = hf_tokenizer.bos_token
        self.renders_bos = bool(bos) and probe["prompt"].startswith(bos)  # the template writes BOS itself
        suffix = probe["completion"][probe["completion"].index("--> A") + len("--> A"):]
        special = {t for t in hf_tokenizer.all_special_tokens} | {
            t.content for t in hf_tokenizer.added_tokens_decoder.values() if t.special}
        self.stop_tokens = [t for t in sorted(special, key=len, reverse=True) if t in suffix]

    def __call__(self, question: str, rationale: str, answer: str) -> dict[str, str]:
        user = [{"role": "user", "content": question}]
        prompt = self.hf.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        if not rationale and not answer:  # generation: the prompt alone
            return {"prompt": prompt, "completion": ""}
        content = f"{rationale.strip()}\n\n--> {answer}"
        full = self.hf.apply_chat_template(user + [{"role": "assistant", "content": content}], tokenize=False)
        if not full.startswith(prompt):
            raise PrefkitError("cot.format=chat: this chat template does not render the user turn the same way with "
                               "and without the answer, so the prompt cannot be masked from the loss")
        return {"prompt": prompt, "completion": full[len(prompt):]}


def chat_tokenizer(tokenizer_dir: str | Path, template_file: str = "") -> Any:
    """The transformers tokenizer of a local folder (for its chat template and special tokens); nothing is
    downloaded. `template_file` replaces the folder's template."""
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except (OSError, ValueError) as e:
        raise PrefkitError(f"{tokenizer_dir}: cannot load the tokenizer for its chat template ({e})") from None
    if template_file:
        try:
            hf.chat_template = Path(template_file).read_text(encoding="utf-8")
        except OSError as e:
            raise PrefkitError(f"cot.chat_template: {template_file}: {e.strerror}") from None
    return hf


def sample_format(cfg: Any) -> Any:
    """The config's sample builder: `(question, rationale, answer) -> {"prompt", "completion"}`."""
    if cfg.cot.format != "chat":
        return FORMATS[cfg.cot.format]
    from prefkit.core import pretrained
    from prefkit.core.tokenizer import config_model_path, tokenizer_path

    spec = cfg.template.tokenizer
    model_path = config_model_path(cfg) if spec == "model" else None
    # a shipped model (minilm, gemma3-270m) is not offered for a chat template: untested there, refused as before
    folder = None if pretrained.is_named(spec) else tokenizer_path(spec, model_path)
    if folder is None or not folder.is_dir():
        raise PrefkitError("cot.format=chat needs a tokenizer folder with a chat template: template.tokenizer=model "
                           "(with model.path) or a local tokenizer folder")
    return ChatFormat(chat_tokenizer(folder, cfg.cot.chat_template))


@dataclass(frozen=True)
class StudentFormat:
    """A student's format resolved once from its config (as litgpt's tokenizer resolves its ids once): the
    vocabulary, the sample builder (`sample_format`), the BOS put first and the EOS appended to a training
    completion (None where a chat template writes them), where generation stops (`stop_ids`: EOS and the chat
    template's end-of-turn tokens; `stop_texts`: those tokens as vLLM's stop strings), and the transformers
    tokenizer holding the chat template (saved with a merged checkpoint; None for the other formats)."""

    vocab: Vocab
    build: Callable[[str, str, str], dict[str, str]]
    bos_id: int | None
    eos_id: int | None
    stop_ids: list[int]
    stop_texts: list[str]
    chat_tokenizer: Any = None

    @classmethod
    def of(cls, cfg: Any, vocab: Vocab | None = None) -> "StudentFormat":
        """The format of the config's student (`cot.format`), over `vocab` (default: the config's own)."""
        vocab = vocab or Vocab.from_config(cfg)
        form = sample_format(cfg)
        bos, eos = special_ids(vocab.tokenizer, form)
        texts = list(getattr(form, "stop_tokens", []))
        stops = [i for i in [eos, *(vocab.tokenizer.token_to_id(t) for t in texts)] if i is not None]
        return cls(vocab, form, bos, eos, stops, texts, getattr(form, "hf", None))

    @property
    def chat(self) -> bool:
        return self.chat_tokenizer is not None

    def prompt(self, question: str) -> str:
        """The text a question is put to the student as (generation starts after it)."""
        return self.build(question, "", "")["prompt"]

    def prompt_ids(self, question: str) -> list[int]:
        """The prompt's token ids, BOS first where the format wants it."""
        ids = self.vocab.tokenizer.encode(self.prompt(question), add_special_tokens=False).ids
        return ([self.bos_id] if self.bos_id is not None else []) + ids

    def completion_ids(self, prompt: str, completion: str, max_length: int, eos: bool = True) -> dict[str, list[int]]:
        """`completion_only` with the format's BOS and (with `eos`: a training sample) its EOS."""
        return completion_only(self.vocab.tokenizer, prompt, completion, max_length, self.bos_id,
                               self.eos_id if eos else None)


def teacher_samples(dataset: str, split: str = "train", root: Path = DEFAULT_ROOT, diverse: bool = False,
                    form: Any = "finetune_cot") -> tuple[list[dict[str, str]], dict]:
    """Samples from the teacher's rationales whose answer is correct (completion 0, or all with `diverse`).
    `form`: a name in FORMATS or a sample builder (see `sample_format`)."""
    if isinstance(form, str):
        if form not in FORMATS:
            raise PrefkitError(f"unknown format {form!r} (known: {', '.join(FORMATS)})")
        form = FORMATS[form]
    data = json.loads(teacher_file(dataset, root).read_text(encoding="utf-8"))["data"]
    samples, seen = [], 0
    for ex in load(dataset, split, root):
        comps = sorted(data.get(str(ex.index), []), key=lambda c: c.get("completion_index", 0))
        for c in comps if diverse else comps[:1]:
            seen += 1
            if is_correct(dataset, extract(dataset, c.get("completion") or "", None), ex.answer):
                samples.append(form(ex.question, c.get("reasoning_completion") or "", ex.answer))
    return samples, {"dataset": dataset, "split": split, "diverse": diverse, "rationales": seen, "surviving": len(samples)}


def completion_only(tokenizer: Any, prompt: str, completion: str, max_length: int,
                    bos_id: int | None = None, eos_id: int | None = None) -> dict[str, list[int]]:
    """Token ids of prompt + completion and labels that are IGNORE on every prompt token: the loss falls on the
    completion alone. A `tokenizers.Tokenizer`; the prompt is cut from its head when the pair is too long."""
    p = tokenizer.encode(prompt, add_special_tokens=False).ids
    c = tokenizer.encode(completion, add_special_tokens=False).ids + ([eos_id] if eos_id is not None else [])
    head = [bos_id] if bos_id is not None else []
    room = max_length - len(head) - len(c)
    if room < 1:
        c = c[: max_length - len(head) - 1]
        room = 1
    p = p[-room:]
    ids = head + p + c
    return {"input_ids": ids, "labels": [IGNORE] * (len(head) + len(p)) + c}
