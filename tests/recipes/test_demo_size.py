"""The demo's size: a first result in minutes by default, the earlier, larger run with --full (no training here)."""

from __future__ import annotations

from prefkit.recipes import demo


def _size(cfg) -> tuple:
    return cfg.template.max_length, cfg.train.epochs, cfg.cv.n_splits


def test_the_default_demo_is_the_quick_size():
    """The shipped CPU reward model (the bt head: one response a sequence) at 64 tokens and one epoch, 3 folds."""
    cfg, path, sized = demo.sized_config(None, [])
    assert path.name == "minilm_cpu.yaml" and cfg.model.head == "bt"
    assert _size(cfg) == (64, 1, 3) and sized == ["template.max_length=64", "train.epochs=1", "cv.n_splits=3"]


def test_full_keeps_the_larger_run():
    """--full: 128 tokens and the config's own epochs (rm/minilm_cpu: 2), the demo of earlier prefkit."""
    cfg, _, sized = demo.sized_config(None, [], full=True)
    assert _size(cfg) == (128, 2, 3) and not any(o.startswith("train.epochs") for o in sized)


def test_a_head_that_reads_the_pair_keeps_128_tokens():
    """64 tokens hold one response (bt); a pair in one sequence keeps 128 (a byte tokenizer's headers alone would
    leave a text almost nothing at 64), and trains one epoch all the same."""
    cfg, _, _ = demo.sized_config(None, ["model.head=cls3"])
    assert _size(cfg) == (128, 1, 3)
    cfg, _, _ = demo.sized_config("rm/tiny_gemma2", [])
    assert _size(cfg) == (128, 1, 3)


def test_overrides_typed_win_over_the_size():
    cfg, _, _ = demo.sized_config("rm/minilm_cpu", ["template.max_length=96", "train.epochs=3", "cv.n_splits=2"])
    assert _size(cfg) == (96, 3, 2)
