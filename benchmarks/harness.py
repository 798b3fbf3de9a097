"""What every benchmark shares: model presets, the device and its peak, FLOP counting, peak memory, running a
variant in its own process, and writing `results/<name>.{json,md}`.

Presets are real architectures with random weights (speed and memory do not depend on the weights):

    gemma2-9b   Gemma-2 9B shape (the shipped T4x2 config's model), nf4 + LoRA r=16 as configs/rm/gemma2_9b_qlora_t4x2.yaml
    gemma2-2b   Gemma-2 2B shape, same recipe
    minilm      all-MiniLM-L6-v2 with its real weights (CPU), full fine-tuning as configs/rm/minilm_cpu.yaml
    tiny        a 2-layer Gemma-2, nf4 + LoRA: the CI smoke preset (seconds on CPU)

Every preset tokenises with MiniLM's WordPiece (it ships offline; no Gemma tokenizer can be had here): token
ids stay below every preset's vocabulary, and lengths are close to what a SentencePiece tokenizer gives.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = ROOT / "configs" / "rm"
HH = ROOT.parent / "shared" / "data" / "preference" / "hh-rlhf"

# Gemma-2 shapes from the released configs (google/gemma-2-9b, google/gemma-2-2b config.json).
GEMMA2_9B = {"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 3584, "intermediate_size": 14336,
             "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
             "query_pre_attn_scalar": 256, "sliding_window": 4096, "max_position_embeddings": 8192}
GEMMA2_2B = {"model_type": "gemma2", "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216,
             "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
             "query_pre_attn_scalar": 256, "sliding_window": 4096, "max_position_embeddings": 8192}

PRESETS: dict[str, dict[str, Any]] = {
    "gemma2-9b": {"config": CONFIGS / "gemma2_9b_qlora_t4x2.yaml",
                  "overrides": ["model.path=null", "template.tokenizer=minilm"], "random_init": GEMMA2_9B},
    "gemma2-2b": {"config": CONFIGS / "gemma2_2b_qlora_t4x2.yaml",
                  "overrides": ["model.path=null", "template.tokenizer=minilm"], "random_init": GEMMA2_2B},
    "minilm": {"config": CONFIGS / "minilm_cpu.yaml", "overrides": [], "random_init": None},
    "tiny": {"config": CONFIGS / "tiny_gemma2.yaml", "overrides": ["template.tokenizer=minilm"], "random_init": None},
}

# Dense peak FLOP/s of the accelerators prefkit targets, from the vendors' data sheets (no sparsity):
# T4 65 TFLOP/s fp16 tensor cores; A100 312 bf16; H100 SXM 989 bf16; H200 989 bf16; L4 121 fp16.
GPU_PEAK = {"T4": 65e12, "A100": 312e12, "H100": 989e12, "H200": 989e12, "L4": 121e12}


def preset_config(name: str, extra: list[str] = (), tokenizer: str = ""):
    """The preset's prefkit config (random weights of the real shape for the Gemma presets). `tokenizer`: a
    tokenizer.json to use instead of MiniLM's (the Gemma and tiny presets)."""
    from prefkit.config import load_config

    if name not in PRESETS:
        raise SystemExit(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    p = PRESETS[name]
    overrides = [o for o in p["overrides"] if not (tokenizer and o.startswith("template.tokenizer="))]
    cfg = load_config(p["config"], [*overrides, *extra, *([f"template.tokenizer={tokenizer}"] if tokenizer else [])])
    if p["random_init"] is not None:
        cfg.model.random_init = dict(p["random_init"])
    return cfg


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def device_peak_flops(dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from). GPUs: the data sheet. CPU: no data sheet fits every machine, so the
    best of a few large fp32 matmuls is measured here and utilisation is relative to that."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for key, peak in GPU_PEAK.items():
            if key in name:
                return peak, f"{key} data sheet"
        return float("nan"), f"unknown GPU {name}"
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best, "measured fp32 matmul peak of this CPU"


def forward_flops_per_token(model: Any, length: int = 256, task: str = "seq_cls") -> float:
    """Model FLOPs of one forward pass per token, at `length` tokens (matmuls and attention, as
    torch.utils.flop_counter counts them). Counted on a weightless copy of the architecture on the "meta"
    device: no memory, and 4-bit/8-bit layers (whose bitsandbytes kernels the counter cannot see) count as the
    matmuls they stand for. Training MFU uses 3x this (forward + backward, the usual 6N convention)."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if task == "causal_lm" else AutoModelForSequenceClassification
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config.__class__.from_dict(base.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    for device in ("meta", "cpu"):  # some models read a value during forward (BERT): those need real tensors
        with torch.device(device):
            clone = auto.from_config(config)
        ids = torch.zeros((1, length), dtype=torch.long, device=device)
        try:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                clone(input_ids=ids, attention_mask=torch.ones_like(ids))
        except RuntimeError:
            if device == "cpu":
                raise
            continue
        return counter.get_total_flops() / length
    raise AssertionError("unreachable")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float:
    """This process's peak: GPU memory allocated by torch on a GPU, resident set size on CPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def parser(doc: str, rows: int, variants: list[str]):
    """The options every speed benchmark takes; `--variant` is how the driver runs one variant per process."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--preset", default="minilm", choices=list(PRESETS))
    ap.add_argument("--rows", type=int, default=rows)
    ap.add_argument("--max-length", type=int, default=0, help="template.max_length (default: the config's)")
    ap.add_argument("--tokenizer", default="", help="a tokenizer.json instead of MiniLM's (Gemma and tiny presets)")
    ap.add_argument("--variant", choices=variants, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    return ap


def common_argv(args) -> list[str]:
    """The driver's options again, for a variant's process."""
    return ["--preset", args.preset, "--rows", str(args.rows), "--max-length", str(args.max_length),
            "--tokenizer", args.tokenizer]


def run_variant(script: Path, args: list[str]) -> dict:
    """Run one variant in a fresh process (so that its peak memory is its own) and read its JSON line."""
    r = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{script.name} {' '.join(args)} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_results(name: str, out: Path, result: dict, columns: list[str], rows: list[dict], intro: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "device": device_name(), "torch": torch.__version__, **result, "results": rows}
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# {name}\n", intro.strip() + "\n", f"Device: {result['device']}.\n",
          "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def bench_pairs(rows: int, seed: int = 0):
    """Real HH-RLHF pairs when ../shared/data is there (real length spread), else prefkit's synthetic pairs."""
    from prefkit.config import DataConfig
    from prefkit.data import load_pairs
    from prefkit.data.synthetic import make_pairs
    from prefkit.data.table import PairTable

    path = HH / "helpful-base.test.jsonl.gz"
    if path.exists():
        table = load_pairs(path, DataConfig())
        if len(table) >= rows:
            return PairTable(table.frame.iloc[:rows].reset_index(drop=True), table.source), path.name
    return make_pairs(rows, seed=seed), "synthetic"
