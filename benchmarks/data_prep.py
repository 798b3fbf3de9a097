"""Data preparation against the tokenizer alone, on LMSYS-sized data.

    python benchmarks/data_prep.py [--rows 57000] [--max-length 1024] [--repeats 2]   (or: make bench-data)

Makes (once, cached in benchmarks/.cache/) an LMSYS-like CSV from prefkit's synthetic generator: 57,000 rows
by default, as in the LMSYS Chatbot Arena training set, about 14% multi-turn, responses of ~1,500
characters on average with a few of several hundred thousand. Then times, each in a fresh process so that
its peak memory is its own, and interleaved so that machine noise hits both alike:

  tokenizer  the tokenizer alone: `encode_batch_fast` over every turn text of every row, in full
             (the texts are read from the table beforehand, outside the timing)
  render     prefkit's rendering of the loaded table (tokenise + budget + truncate + assemble)
  prepare    prefkit end to end: load the CSV (parse, validate) and render

The ratio `prepare / tokenizer` is the figure of merit (goal: at most 1.3). The tokenizer is MiniLM's
WordPiece (the one shipped offline); writes benchmarks/results/data_prep.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("tokenizer", "render", "prepare")


def make_data(rows: int, cache: Path) -> Path:
    from prefkit.data.arena import write_lmsys_csv
    from prefkit.data.synthetic import make_pairs

    path = cache / f"lmsys_like_{rows}.csv"
    if not path.exists():
        print(f"making {rows} LMSYS-like rows -> {path}", file=sys.stderr)
        table = make_pairs(rows, seed=0, long_fraction=0.002, multi_turn_fraction=0.14, sentences=(6, 32))
        write_lmsys_csv(table, path)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_stage(stage: str, path: Path, max_length: int) -> dict:
    from prefkit.config import DataConfig, TemplateConfig
    from prefkit.core.tokenizer import load_tokenizer
    from prefkit.data import load_pairs
    from prefkit.rm.templates import Renderer

    renderer = Renderer(load_tokenizer("minilm"), TemplateConfig(max_length=max_length))
    out: dict = {"stage": stage}
    if stage == "prepare":
        t0 = time.perf_counter()
        table = load_pairs(path, DataConfig())
        t1 = time.perf_counter()
        rendered = renderer.render(table)
        t2 = time.perf_counter()
        out.update(seconds=t2 - t0, load_seconds=t1 - t0, render_seconds=t2 - t1, rows=len(table),
                   tokens_out=int(rendered.lengths.sum()), cut_texts=rendered.cut_texts)
    else:
        table = load_pairs(path, DataConfig())
        out["rss_after_load_mb"] = peak_rss_mb()
        if stage == "render":
            t0 = time.perf_counter()
            rendered = renderer.render(table)
            out.update(seconds=time.perf_counter() - t0, rows=len(table), tokens_out=int(rendered.lengths.sum()))
        else:
            f = table.frame
            texts = [t for c in ("prompt", "response_a", "response_b") for turns in f[c] for t in turns if t and t.strip()]
            chars = sum(map(len, texts))
            del table, f
            tokens = 0
            t0 = time.perf_counter()
            for i in range(0, len(texts), 4096):  # chunked as prefkit does, so neither holds all ids at once
                tokens += sum(len(e.ids) for e in renderer.tok.encode_batch_fast(texts[i : i + 4096], add_special_tokens=False))
            out.update(seconds=time.perf_counter() - t0, texts=len(texts), chars=chars, tokens_in=tokens)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=57_000)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache", help="where the generated CSV is kept")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # internal: one stage in this process
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.data, args.max_length)))
        return

    path = make_data(args.rows, args.cache)
    runs: dict[str, list[dict]] = {s: [] for s in STAGES}
    for r in range(args.repeats):
        for stage in STAGES:
            cmd = [sys.executable, __file__, "--stage", stage, "--data", str(path), "--max-length", str(args.max_length)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            runs[stage].append(res)
            print(f"repeat {r + 1} {stage:<9} {res['seconds']:7.2f} s  peak {res['peak_rss_mb']:7.0f} MiB", file=sys.stderr)
    best = {s: min(runs[s], key=lambda x: x["seconds"]) for s in STAGES}
    tok, ren, prep = best["tokenizer"], best["render"], best["prepare"]
    result = {
        "benchmark": "data_prep",
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores (CPU)",
        "rows": args.rows, "max_length": args.max_length, "tokenizer": "all-MiniLM-L6-v2 WordPiece",
        "repeats": args.repeats, "texts": tok["texts"], "chars": tok["chars"], "tokens_in_full_texts": tok["tokens_in"],
        "seconds": {s: round(best[s]["seconds"], 2) for s in STAGES},
        "load_seconds": round(prep["load_seconds"], 2), "render_seconds_in_prepare": round(prep["render_seconds"], 2),
        "ratio_prepare_vs_tokenizer": round(prep["seconds"] / tok["seconds"], 3),
        "ratio_render_vs_tokenizer": round(ren["seconds"] / tok["seconds"], 3),
        "peak_rss_mb": {s: round(best[s]["peak_rss_mb"]) for s in STAGES},
        "rss_after_load_mb": round(tok["rss_after_load_mb"]),
        "texts_cut_in_characters": prep["cut_texts"],
        "rows_per_second_prepare": round(args.rows / prep["seconds"]),
        "all_runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_prep.json").write_text(json.dumps(result, indent=2) + "\n")
    md = f"""# Data preparation vs the tokenizer alone

`python benchmarks/data_prep.py --rows {args.rows} --max-length {args.max_length} --repeats {args.repeats}` on {result['machine']};
best of {args.repeats} interleaved runs, each stage in its own process. {args.rows} LMSYS-like rows, {tok['texts']} turn texts,
{tok['chars'] / 1e6:.0f} M characters, {tok['tokens_in'] / 1e6:.1f} M tokens in full; tokenizer: {result['tokenizer']}.

| stage | seconds | ratio to tokenizer | peak RSS (MiB) |
|---|---|---|---|
| tokenizer alone (full texts) | {tok['seconds']:.2f} | 1.00 | {tok['peak_rss_mb']:.0f} |
| prefkit render (loaded table) | {ren['seconds']:.2f} | {result['ratio_render_vs_tokenizer']:.2f} | {ren['peak_rss_mb']:.0f} |
| prefkit prepare (load CSV + render) | {prep['seconds']:.2f} | **{result['ratio_prepare_vs_tokenizer']:.2f}** | {prep['peak_rss_mb']:.0f} |

Load (CSV parse + JSON cells + validation): {prep['load_seconds']:.2f} s; render inside prepare: {prep['render_seconds']:.2f} s.
Texts cut in characters before tokenising (longer than any budget): {prep['cut_texts']}.
Peak RSS of every stage includes the loaded table ({result['rss_after_load_mb']} MiB after loading).
"""
    (args.out / "data_prep.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
