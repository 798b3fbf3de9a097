"""A student to run: an SFT run folder (its trained adapter or model) or a config (its base weights, zero-shot).
What `prefkit cot generate` and `prefkit cot truthfulqa` open, so a student is scored before and after SFT the
same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefkit.config import Config, load_config
from prefkit.errors import PrefkitError


def open_student(source: str | Path, overrides: list[str] = (), load_model: bool = True) -> tuple[Config, Any, bool]:
    """(config, model in eval mode or None, trained?). `source`: a run folder holding model/ or a config (a
    file, or a shipped config's name)."""
    from prefkit.core import runs
    from prefkit.core.modeling import build_model, load_trained
    from prefkit.core.runs import is_trained
    from prefkit.core.tokenizer import Vocab
    from prefkit.shipped import config_path

    path = Path(source)
    trained = path.is_dir() and (path / "model").is_dir()
    if path.is_dir() and not trained:
        raise PrefkitError(f"{path}: not an SFT run folder (no model/); give a run folder or a config")
    if trained and not is_trained(path / "model"):
        raise PrefkitError(f"{path}: the student in model/ did not finish training (run `prefkit cot sft ... --resume`)")
    cfg = runs.open_config(path, overrides, "`prefkit cot sft`") if trained else load_config(config_path(str(source)), list(overrides))
    if cfg.model.kind != "causal_lm":
        raise PrefkitError(f"{source}: model.kind={cfg.model.kind}; a student is a causal_lm")
    if not load_model:
        return cfg, None, trained
    vocab = Vocab.from_config(cfg)
    if trained:
        model = load_trained(cfg, vocab, path / "model", "causal_lm")
    else:
        model = build_model(cfg, vocab, "causal_lm", trainable=False)
    return cfg, model.eval(), trained
