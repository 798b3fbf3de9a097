"""A reward model as a plain transformers folder (`prefkit export`): what `AutoModelForSequenceClassification` and
`AutoTokenizer.from_pretrained(DIR)` load, with the rendering of a pair written down beside it, so that a model
trained here scores the same outside prefkit (a scoring loop, TRL's reward functions, a model hub).

    config.json, model.safetensors   the model: a LoRA adapter merged into the unquantised base weights (as
                                     `prefkit merge --into-base` and the vLLM backend merge it), or the whole
                                     fine-tuned model; `id2label` names the head's outputs
    tokenizer.json, tokenizer_config.json   the tokenizer prefkit rendered with, its padding id, right padding
    prefkit_render.json              the template (headers, separator, special ids, the token budget) and the head
    README.md                        a model card: what the outputs mean, and the code that scores a pair

prefkit tokenises each piece of a row (a header, a turn, a separator) on its own and concatenates the ids. A row
within the budget (`template.max_length`) is rendered whole, and the card's `render` reproduces it with the saved
tokenizer alone. A longer row is cut by the template's budgets (`prefkit.rm.templates`), which the card does not
repeat: its `render` refuses such a row, and `renderer(DIR)` gives prefkit's own renderer for the folder. A chat
template is not written: it would render text that is tokenised whole, and where a tokenizer merges across a
piece's boundary its ids would not be the ones the model was trained on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefkit.competition import Competition
from prefkit.config import Config, TemplateConfig
from prefkit.rm import golden
from prefkit.rm.heads import Head
from prefkit.rm.templates import Renderer

RENDER_FILE = "prefkit_render.json"
CARD_FILE = "README.md"


def output_names(head: Head, comp: Competition) -> list[str]:
    """What each output of the exported classifier is: the competition's columns for a pair classifier; a
    response's score (and its tie term, where ties are scored) for the Bradley-Terry head."""
    if head.name == "bt":
        return ["score", "tie_term"][: head.outputs]
    return list(comp.columns)


def merged_model(cfg: Config, folder: Path, head: Head, tokenizer: Any) -> Any:
    """The model of `folder` as one plain transformers model on the CPU: a LoRA adapter merged into the base
    weights loaded unquantised (as `prefkit merge --into-base` and the vLLM backend merge it), or the whole
    fine-tuned model. A quantised run's base is not dequantised instead: bitsandbytes' CPU kernels compute 2e-3
    away from their own dequantised weights in one tiny layer, and after a forward they repack the weights so
    that transformers' `dequantize()` returns other ones (logits 0.67 apart on the tiny Gemma-2)."""
    from prefkit.core.modeling import load_merged
    from prefkit.core.tokenizer import Vocab

    return load_merged(cfg, Vocab.of(tokenizer), folder, head.task, outputs=head.outputs)


def write_model(model: Any, names: list[str], out: Path) -> None:
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}
    model.save_pretrained(str(out), safe_serialization=True)


def write_tokenizer(renderer: Renderer, pad_id: int, out: Path) -> None:
    """The renderer's own copy of the tokenizer (padding and truncation off) as a transformers tokenizer: its
    padding token, right padding (what prefkit's batches use), and the token budget as `model_max_length`."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=renderer.tok, pad_token=renderer.tok.id_to_token(pad_id),
                                  padding_side="right", model_max_length=renderer.cfg.max_length)
    tok.save_pretrained(str(out))


def render_settings(renderer: Renderer, head: Head, comp: Competition, pad_id: int, swap_tta: bool,
                    temperature: float | None, source: dict) -> dict:
    """prefkit_render.json: what the card's `render` reads (headers, separator, empty-turn text, special ids, the
    budget), the whole template for prefkit's renderer, and how the outputs become probabilities."""
    cfg = renderer.cfg
    headers = ([cfg.prompt_header, cfg.response_header] if renderer.layout == "single"
               else [cfg.prompt_header, cfg.response_a_header, cfg.response_b_header])
    if head.name == "bt":
        how = "softmax([(s_A - s_B) / 2, (s_B - s_A) / 2" + (", t_A + t_B])" if head.outputs == 2 else "])")
    else:
        how = "softmax(logits)"
    return {
        "head": head.name, "layout": renderer.layout, "sequences_per_pair": head.per_row,
        "outputs": output_names(head, comp), "labels": list(comp.labels), "probabilities": how,
        "headers": headers, "turn_separator": cfg.turn_separator, "empty_turn": cfg.empty_turn,
        "prefix_ids": list(renderer.prefix), "suffix_ids": list(renderer.suffix), "max_length": cfg.max_length,
        "pad_id": pad_id, "padding_side": "right",
        "swap_tta": bool(swap_tta and not head.symmetric), "temperature": temperature,
        "template": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "tokenizer"},  # the folder holds it
        "source": source,
    }


def renderer(folder: str | Path) -> Renderer:
    """prefkit's renderer for an exported folder (its tokenizer and template): the exact ids of any row, a row
    past the budget included."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    settings = json.loads((folder / RENDER_FILE).read_text(encoding="utf-8"))
    template = TemplateConfig(**settings["template"], tokenizer=str(folder / "tokenizer.json"))
    return Renderer(Tokenizer.from_file(str(folder / "tokenizer.json")), template, settings["layout"])


@torch.no_grad()
def plain_probabilities(folder: Path, head: Head, table: Any) -> np.ndarray:
    """The rows scored by the exported folder through plain transformers, one sequence at a time (no padding to
    agree on), their ids from `renderer(folder)`, the head's probabilities of the outputs."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    seqs = head.sequences(renderer(folder), table)
    out = [model(input_ids=torch.tensor(np.asarray([s], dtype=np.int64))).logits[0].float().numpy() for s in seqs]
    del model
    return head.probs(np.stack(out))


class Exported:
    """An exported folder as `golden.compare` sees a learner: its rows scored through plain transformers."""

    kind = "seq_cls"

    def __init__(self, cfg: Config, folder: Path, head: Head, tokenizer: Any):
        self.cfg, self.folder, self.head, self.tokenizer = cfg, Path(folder), head, tokenizer

    def predict(self, table: Any) -> tuple[np.ndarray, dict]:
        return plain_probabilities(self.folder, self.head, table), {}


def golden_check(cfg: Config, source: Path, head: Head, tokenizer: Any, folder: Path) -> dict:
    """The golden rows (`prefkit.rm.golden`) scored by the exported `folder` against the scores prefkit recorded
    for the model of `source`: `golden.compare`'s fields (status FAIL beyond the tolerance of the compute dtype;
    `values["changed"]` names what differs, a quantised run's quantization among them)."""
    plain = dataclasses.replace(cfg, quantization=dataclasses.replace(cfg.quantization, mode="none"),
                                predict=dataclasses.replace(cfg.predict, backend="transformers"))
    return golden.compare(plain, source, Exported(plain, folder, head, tokenizer))


# ------------------------------------------------------------------------------------------------ the card

_LOAD = '''import json, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

DIR = "."  # this folder (or its name on a model hub)
tok = AutoTokenizer.from_pretrained(DIR)
model = AutoModelForSequenceClassification.from_pretrained(DIR).eval()
R = json.load(open(f"{DIR}/prefkit_render.json"))  # on a hub: hf_hub_download(DIR, "prefkit_render.json")


def render(*parts):
    """Token ids of a row as prefkit renders it within its budget: each header, turn and separator tokenised
    alone, the ids concatenated. A part is a text or a list of turns (a conversation's user or assistant turns)."""
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    ids = list(R["prefix_ids"])
    for header, turns in zip(R["headers"], parts):
        turns = [turns] if isinstance(turns, str) else list(turns) or [None]
        ids += enc(header)
        for i, turn in enumerate(turns):
            ids += (enc(R["turn_separator"]) if i else []) + enc(turn if turn and turn.strip() else R["empty_turn"])
    ids += R["suffix_ids"]
    if len(ids) > R["max_length"]:
        raise ValueError(f"{len(ids)} tokens, over the {R['max_length']}-token budget: prefkit would cut this row")
    return ids
'''

_PAIR = '''

@torch.no_grad()
def score_pair(prompt, a, b):  # -> [{names}]
    return model(torch.tensor([render(prompt, a, b)])).logits.softmax(-1)[0].tolist()
'''

_TTA = '''

def score_pair_tta(prompt, a, b):  # as `prefkit predict` scores (predict.swap_tta): the swapped pair averaged in
    p, q = score_pair(prompt, a, b), score_pair(prompt, b, a)
    return [(p[0] + q[1]) / 2, (p[1] + q[0]) / 2] + [(x + y) / 2 for x, y in zip(p[2:], q[2:])]
'''

_BT = '''

@torch.no_grad()
def rewards(prompt, responses):  # -> one row a response: {outputs}
    batch = tok.pad({{"input_ids": [render(prompt, r) for r in responses]}}, return_tensors="pt")
    return model(**batch).logits


def score_pair(prompt, a, b):  # -> [{names}]
    ({sa}), ({sb}) = rewards(prompt, [a, b]).tolist()
    return torch.tensor([(s_a - s_b) / 2, (s_b - s_a) / 2{tie}]).softmax(-1).tolist()
'''

_EXAMPLE = '''

print(score_pair("What is 2 + 2?", "2 + 2 = 4.", "It is 5."))
'''


def card_code(settings: dict) -> str:
    """The card's Python: load, render, score a pair (for its head); runs as it stands in the folder."""
    names = ", ".join({"a": "P(A wins)", "b": "P(B wins)", "tie": "P(tie)"}[x] for x in settings["labels"])
    if settings["head"] == "bt":
        tie = len(settings["outputs"]) == 2
        code = _LOAD + _BT.format(outputs=", ".join(settings["outputs"]), names=names,
                                  sa="s_a, t_a" if tie else "s_a,", sb="s_b, t_b" if tie else "s_b,",
                                  tie=", t_a + t_b" if tie else "")
    else:
        code = _LOAD + _PAIR.format(names=names)
        if settings["swap_tta"]:
            code += _TTA
    return code + _EXAMPLE


def card(settings: dict, model_type: str, check: str) -> str:
    """README.md: what the model reads and outputs, the code that scores a pair, and what the code leaves out."""
    src, bt = settings["source"], settings["head"] == "bt"
    tie = "tie" in settings["labels"]
    if bt:
        reads = ("It reads **one response at a time**, with its prompt, and outputs one score per response: "
                 f"`score` s is the response's reward{' and `tie_term` t its share in a tie' if tie else ''}. A "
                 f"pair's probabilities (Bradley-Terry{', ties as Davidson (1970)' if tie else ''}): "
                 f"`{settings['probabilities']}`.")
    else:
        reads = (f"It reads a prompt and two responses in one sequence; its {len(settings['outputs'])} outputs "
                 f"({', '.join(settings['outputs'])}) are logits: their softmax is P(A wins), P(B wins)"
                 f"{', P(tie)' if tie else ''}.")
    shown = "".join(f"{h}{{{p}}}" for h, p in zip(settings["headers"], ("prompt", "response") if bt else
                                                     ("prompt", "response_a", "response_b")))
    notes = []
    if settings["swap_tta"]:
        notes.append("`prefkit predict` also scores the pair with A and B exchanged and averages the two "
                     "(`score_pair_tta`).")
    if settings["temperature"]:
        notes.append(f"`prefkit predict` on the cv run then applies the temperature its out-of-fold predictions "
                     f"fitted: softmax(log p / {settings['temperature']:.4g}).")
    lines = [
        "---", "library_name: transformers", "tags: [reward-model, prefkit]", "---", "",
        f"# Reward model ({settings['head']} head)", "",
        f"A `{model_type}` sequence classifier exported by `prefkit export` from `{src['run']}` ({src['how']}). "
        + reads, "",
        "## Score a pair", "",
        "Plain transformers; `render` writes the pair as prefkit did in training (below):", "",
        "```python", card_code(settings).rstrip(), "```", "",
        "## How a pair is rendered", "",
        f"As text (`prefkit_render.json` holds these settings), special tokens `{settings['prefix_ids']}` before and "
        f"`{settings['suffix_ids']}` after, the turns of a part joined by {json.dumps(settings['turn_separator'])}, "
        f"an empty turn written {json.dumps(settings['empty_turn'])}:", "",
        "    " + json.dumps(shown), "",
        "Each piece is tokenised alone and the ids concatenated: tokenising the joined text can give other ids where "
        "the tokenizer merges across a boundary. The padding id is "
        f"{settings['pad_id']}, padding on the right.", "",
        f"**Token budget**: a rendered row holds at most {settings['max_length']} tokens. A longer row is cut by "
        "prefkit (each part keeps a share of the budget, a long turn its head and tail around "
        f"{json.dumps(settings['template']['ellipsis'])}, middle turns dropped first); `render` above refuses it. "
        "For the exact ids of any row: `prefkit.rm.export.renderer(DIR)` (pip install prefkit).", "",
        f"**Checked** at export: {check}.", "",
    ]
    if notes:
        lines += ["**prefkit's predictions**: " + " ".join(notes), ""]
    return "\n".join(lines)
