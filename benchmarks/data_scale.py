"""Loading and checking LMSYS-form data as it grows: prefkit against plain polars and pandas, in one run.

    python benchmarks/data_scale.py [--sizes 10000,100000] [--million] [--repeats 1]

Makes (once, cached in benchmarks/.cache/) LMSYS-form CSV files of each size, with a length distribution like
the LMSYS Chatbot Arena training set's: about 14% of rows have several turns (2 to 6), prompts are
log-normal around 90 characters (mean about 500), responses log-normal around 650 characters (mean about 1,500)
with a tail of one in a thousand from 20,000 to 300,000 characters, about 1% null and empty turns, a little
Arabic, Chinese and emoji: about 3,700 bytes a row, as LMSYS's 57,477 rows take 184 MB. Texts are cut from a
corpus assembled from `prefkit.data.synthetic`'s phrase banks; nothing is real. `--million` adds 1,000,000 rows
(about 3.7 GB on disk).

Then, for each size and in the same run, each in a fresh process so that its peak memory is its own:

  prefkit    `load_pairs` + `summarise` (what `prefkit data check --no-tokens` does): parse, validate every row,
             build the canonical table, count
  rows       the same on the row reader (`load_pairs(..., fast=False)`, what prefkit did before it read with
             polars), up to 200,000 rows (`--rows-reader-max`)
  polars     plain `polars.read_csv` of the file, every column as text
  pandas     `pandas.read_csv` + `json.loads` of every turn cell
  jsonl      the same rows as a generic JSON-lines file (one object a row: id, prompt, response_a, response_b as
             lists of turns, label), loaded by prefkit's polars path (`load_pairs`, data.format generic), up to
             100,000 rows (`--jsonl-max`)
  jsonl_rows the same file on the row reader (`json.loads` a line), up to the same size
  tokens     render + tokenise the loaded table with MiniLM's tokenizer (pair layout, 512 tokens) into an empty
             token cache (`prefkit.rm.token_cache`: cold, the shard written included), then again from it
             (`cached_seconds`, a new renderer as a new run makes); only on files of at most 10,000 rows
             (`--tokens-max`); loading is not timed

and writes wall seconds, rows/s and peak RSS of each (and the RSS it added to the process after its imports)
to benchmarks/results/data_scale.{json,md}. polars uses every core it finds (POLARS_MAX_THREADS caps it).

    python benchmarks/data_scale.py --hh [--rows 150000,1000000] [--repeats 3]

The whole command on a file where prompts repeat and answers are long: the real HH-RLHF pairs (both test files
in ../shared/data/preference/hh-rlhf, 4,666 rows) repeated in order to each size of `--rows`, each copy's answer
turns repeated 3 to 6 times (`make_hh_file`: about 4,800 bytes a row, 150,000 rows about 715 MB, a million
about 4.8 GB). Each timed as a whole process, wall seconds from start to exit, the two taking turns:

  prefkit    `prefkit data check --no-tokens FILE`
  polars     `python -c` reading the file with polars (every column as text) and decoding the prompt,
             response_a and response_b JSON cells to lists of strings (`BASELINE`)

and the ratio of the best of each (`--repeats`), to benchmarks/results/data_scale_hh.{json,md}. Both run once on
a small file first, untimed, so that each finds its bytecode compiled (into benchmarks/.cache/pycache, as an
installed package has it; a session with PYTHONDONTWRITEBYTECODE would otherwise compile prefkit, polars and
numpy on every run), and the file is read once before each run (page cache). Peak RSS is sampled every 0.05 s.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("prefkit", "rows", "polars", "pandas", "jsonl", "jsonl_rows", "tokens")
HH = HERE.parent.parent / "shared" / "data" / "preference" / "hh-rlhf"
HH_FILES = ("helpful-base.test.jsonl.gz", "harmless-base.test.jsonl.gz")
STRETCH = (3, 4, 5, 6)  # how many times a copy of an HH row repeats each of its answer turns

# ------------------------------------------------------------------------------------------------ the files


def _corpus(rng) -> str:
    """About 1.2 M characters of text to cut turns from: the synthetic set's phrases, markdown, code, a little
    Arabic, Chinese and emoji, newlines."""
    from prefkit.data import synthetic as s

    topics = s.TOPICS
    bank = s.GOOD + s.FILLER + s.OFF_TOPIC + s.REFUSALS + s.ASKS + s.FOLLOW_UPS
    parts: list[str] = []
    size = 0
    while size < 1_200_000:
        t = str(rng.choice(topics))
        kind = rng.random()
        if kind < 0.06:
            piece = str(rng.choice(s.FOREIGN)).format(t=t) + " 😀"
        elif kind < 0.12:
            piece = f"```python\ndef f(x):\n    return x * {int(rng.integers(100))}\n```"
        elif kind < 0.25:
            piece = f"\n\n## {t.title()}\n\n- " + "\n- ".join(str(rng.choice(bank)).format(t=t, T=t.title()) for _ in range(3))
        else:
            piece = str(rng.choice(bank)).format(t=t, T=t.title())
        parts.append(piece)
        size += len(piece) + 1
    return " ".join(parts)


def _lengths(rng, n: int, median: float, sigma: float, tail: float, tail_range: tuple[int, int]):
    import numpy as np

    out = rng.lognormal(np.log(median), sigma, n)
    heavy = rng.random(n) < tail
    out[heavy] = np.exp(rng.uniform(np.log(tail_range[0]), np.log(tail_range[1]), heavy.sum()))
    return np.clip(out, 1, tail_range[1]).astype(np.int64)


def make_file(rows: int, path: Path, seed: int = 0, chunk: int = 20_000) -> Path:
    """An LMSYS-form CSV of `rows` rows (labelled, with model names), written in chunks (memory stays small)."""
    import numpy as np

    from prefkit.data.synthetic import MODELS

    rng = np.random.default_rng(seed)
    corpus = _corpus(rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    winners = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "model_a", "model_b", "prompt", "response_a", "response_b",
                    "winner_model_a", "winner_model_b", "winner_tie"])
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            turns = np.where(rng.random(n) < 0.14, rng.integers(2, 7, n), 1)
            total = int(turns.sum())
            p_len = _lengths(rng, total, 90, 1.6, 0.002, (5_000, 50_000))
            r_len = _lengths(rng, 2 * total, 650, 0.9, 0.001, (20_000, 300_000))
            offsets = rng.integers(0, len(corpus) - 300_001, 3 * total)
            blank = rng.random(2 * total)
            label = rng.choice(3, n, p=[0.35, 0.34, 0.31])
            models = rng.integers(0, len(MODELS), (n, 2))
            top = len(corpus) - 300_001
            k = 0  # the first turn of row i among this chunk's turns
            for i in range(n):
                prompt = [corpus[offsets[t] : offsets[t] + p_len[t]] for t in range(k, k + turns[i])]
                sides = []
                for side in (0, 1):
                    cell = []
                    for t in range(k, k + turns[i]):
                        j = 2 * t + side
                        o = offsets[total + j] % top
                        cell.append(None if blank[j] < 0.005 else "" if blank[j] < 0.01 else corpus[o : o + r_len[j]])
                    sides.append(cell)
                k += turns[i]
                a, b = models[i]
                w.writerow([str(30_000 + start + i), MODELS[a], MODELS[b if b != a else (a + 1) % len(MODELS)],
                            *(json.dumps(c, ensure_ascii=False) for c in (prompt, *sides)), *winners[label[i]]])
    tmp.replace(path)
    return path


def data_file(rows: int, cache: Path) -> Path:
    path = cache / f"lmsys_scale_v1_{rows}.csv"
    if not path.exists():
        print(f"making {rows} LMSYS-form rows -> {path}", file=sys.stderr)
        make_file(rows, path)
    return path


def make_hh_file(rows: int, path: Path, chunk: int = 100_000) -> Path:
    """An LMSYS-form CSV of `rows` rows made of the real HH-RLHF pairs (read by prefkit, chosen/rejected placed as
    A/B by its seeded order), repeated in order: each prompt comes back once every 4,666 rows, and a copy's answer
    turns are each that turn repeated `STRETCH[(copy + row) % 4]` times, joined by a blank line (A and B alike).
    Labels as HH's (a or b, no ties), no model names. The cells are JSON-encoded once a base row and stretch,
    then gathered and written by polars a chunk of rows at a time (memory stays small)."""
    import polars as pl

    from prefkit.config import DataConfig
    from prefkit.data import load_pairs

    base = pl.concat([load_pairs(HH / name, DataConfig(format="hh_rlhf")).polars() for name in HH_FILES])
    n, k = base.height, len(STRETCH)

    def encode(turns: list, times: int) -> str:
        return json.dumps([t if t is None else "\n\n".join([t] * times) for t in turns], ensure_ascii=False)

    cells: dict[str, list] = {"prompt": [], "response_a": [], "response_b": []}  # row b * k + s: base row b, stretch s
    for p, a, b in zip(*(base[c].to_list() for c in cells)):
        for times in STRETCH:
            cells["prompt"].append(json.dumps(p, ensure_ascii=False))
            cells["response_a"].append(encode(a, times))
            cells["response_b"].append(encode(b, times))
    label = base["label"].gather(pl.int_range(n * k, eager=True) // k)
    cells_frame = pl.DataFrame(cells).with_columns(
        (label == x).cast(pl.Int8).alias(w) for x, w in (("a", "winner_model_a"), ("b", "winner_model_b"),
                                                         ("tie", "winner_tie")))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        for start in range(0, rows, chunk):
            i = pl.int_range(start, min(start + chunk, rows), dtype=pl.Int64, eager=True)
            index = (i % n) * k + (i // n + i % n) % k
            part = cells_frame[index].select(pl.Series("id", (i + 100_000).cast(pl.String)), pl.all())
            part.write_csv(fh, include_header=start == 0)
    tmp.replace(path)
    return path


def hh_file(rows: int, cache: Path) -> Path:
    path = cache / f"hh_repeated_v1_{rows}.csv"
    if not path.exists():
        print(f"making {rows} HH-RLHF rows repeated, answers lengthened -> {path}", file=sys.stderr)
        make_hh_file(rows, path)
    return path


def jsonl_file(csv_path: Path) -> Path:
    """The rows of an LMSYS-form file as a generic JSON-lines file beside it (made once, by prefkit + polars)."""
    path = csv_path.with_suffix(".jsonl")
    if not path.exists():
        from prefkit.config import DataConfig
        from prefkit.data import load_pairs

        print(f"writing {csv_path.name}'s rows as JSON lines -> {path}", file=sys.stderr)
        f = load_pairs(csv_path, DataConfig()).polars().select("id", "prompt", "response_a", "response_b", "label")
        tmp = path.with_name(path.name + ".tmp")
        f.write_ndjson(tmp)
        tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------------ variants


def peak_rss_mb() -> float:
    """This process's peak resident set size. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
    exec, so a fresh variant process would start from the driver's peak."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_variant(variant: str, path: Path) -> dict:
    """One variant in this process; returns its figures (the driver runs each in a fresh process)."""
    if variant in ("prefkit", "rows"):
        from prefkit.config import DataConfig
        from prefkit.data import load_pairs
        from prefkit.data.check import summarise

        if variant == "prefkit":  # polars imported before the clock starts, as in the other variants
            importlib.import_module("prefkit.data.fast")
        base = peak_rss_mb()
        t0 = time.perf_counter()
        table = load_pairs(path, DataConfig(), fast=variant == "prefkit")
        t1 = time.perf_counter()
        summary = summarise(table)
        out = {"rows": len(table), "load_seconds": round(t1 - t0, 3),
               "summary_seconds": round(time.perf_counter() - t1, 3), "read_by": table.read_by,
               "chars": int(sum(summary["chars"][c]["mean"] for c in summary["chars"]) * len(table))}
    elif variant in ("jsonl", "jsonl_rows"):
        from prefkit.config import DataConfig
        from prefkit.data import load_pairs

        if variant == "jsonl":
            importlib.import_module("prefkit.data.fast")
        base = peak_rss_mb()
        t0 = time.perf_counter()
        table = load_pairs(path, DataConfig(format="generic"), fast=variant == "jsonl")
        out = {"rows": len(table), "load_seconds": round(time.perf_counter() - t0, 3), "read_by": table.read_by}
    elif variant == "polars":
        import polars as pl

        base = peak_rss_mb()
        t0 = time.perf_counter()
        frame = pl.read_csv(path, infer_schema=False)
        out = {"rows": frame.height}
    elif variant == "pandas":
        import pandas as pd

        base = peak_rss_mb()
        t0 = time.perf_counter()
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for c in ("prompt", "response_a", "response_b"):
            frame[c] = [json.loads(v) for v in frame[c]]
        out = {"rows": len(frame)}
    elif variant == "tokens":
        out = _tokens(path)  # times itself: cold, and from the cache
        base = out.pop("base_rss_mb")
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    seconds = out.pop("seconds") if "seconds" in out else time.perf_counter() - t0
    return {"variant": variant, **out, "seconds": round(seconds, 3), "rows_per_s": round(out["rows"] / seconds),
            "peak_rss_mb": round(peak_rss_mb()), "added_rss_mb": round(peak_rss_mb() - base)}


def _tokens(path: Path) -> dict:
    """Rendering cold into an empty token cache, then from it; the ids must be the same."""
    import tempfile

    import numpy as np

    from prefkit.config import DataConfig, TemplateConfig
    from prefkit.core.tokenizer import load_tokenizer
    from prefkit.data import load_pairs
    from prefkit.rm.templates import Renderer

    table = load_pairs(path, DataConfig())
    table.frame  # the pandas table rendering reads, built before the clock
    tok, cfg = load_tokenizer("minilm"), TemplateConfig(max_length=512)
    with tempfile.TemporaryDirectory() as cache:
        base = peak_rss_mb()
        t0 = time.perf_counter()
        cold = Renderer(tok, cfg, cache=Path(cache)).render(table)
        t1 = time.perf_counter()
        again = Renderer(tok, cfg, cache=Path(cache))
        warm = again.render(table)
        t2 = time.perf_counter()
        mb = sum(p.stat().st_size for p in Path(cache).rglob("*.parquet")) / 2**20
    if again.counts["rendered"] or not all(np.array_equal(a, b) for a, b in zip(cold.input_ids, warm.input_ids)):
        raise SystemExit(f"the token cache did not give back the rendered ids: {again.counts}")
    return {"rows": len(table), "base_rss_mb": base, "seconds": t1 - t0, "cached_seconds": round(t2 - t1, 3),
            "cache_mb": round(mb, 1), "tokens_out": int(cold.lengths.sum())}


def _mem_total_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        return 16.0


def _rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 2**20
    except (OSError, StopIteration):
        return 0.0


def warm(path: Path) -> None:
    """Read the file once, so that each variant finds it in the page cache: whichever ran first after the file
    was made (or after pandas took 17 GB at a million rows) otherwise read it from disk (at 1M rows: byte
    counting 6.7 s cold, 1.7 s warm)."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def watch(cmd: list[str], cap_gb: float, env: dict | None = None) -> dict:
    """`cmd` in a fresh process, watched: its wall seconds from start to exit, its peak RSS (sampled every 0.05 s
    beside it, so the exit is seen at once), its stdout. Past `cap_gb` of RSS it is stopped (pandas on a million
    rows would otherwise take the machine) and {"stopped": why} returned instead of failing the whole run."""
    import tempfile
    import threading

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        done, peak = threading.Event(), [0.0]

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], _rss_gb(proc.pid))
                if peak[0] > cap_gb:
                    proc.kill()
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if peak[0] > cap_gb:
        return {"stopped": f"stopped at {peak[0]:.1f} GB RSS (cap {cap_gb} GB) after {seconds:.0f} s"}
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{stderr[-4000:]}")
    return {"seconds": seconds, "peak_rss_mb": round(peak[0] * 1024), "stdout": stdout}


def run_child(variant: str, path: Path, cap_gb: float) -> dict:
    """One variant in a fresh process (`watch`); its own figures, or {"stopped": why}."""
    res = watch([sys.executable, __file__, "--variant", variant, "--data", str(path)], cap_gb)
    return res if "stopped" in res else json.loads(res["stdout"].strip().splitlines()[-1])


def plot(rows: list[dict], out: Path) -> dict:
    """Seconds and peak RSS against rows, log-log, a line a variant; returns each variant's scaling exponent (the
    least-squares slope of log cost against log rows over the sizes it ran; 1.0: linear), which the legend states."""
    import numpy as np

    from prefkit.io import new_figure, save_figure

    fig, axes = new_figure((11, 4.2), ncols=2)
    slopes: dict[str, dict] = {}
    for v in VARIANTS:
        pts = sorted((r["rows"], r["seconds"], r["peak_rss_mb"]) for r in rows
                     if r["variant"] == v and "seconds" in r)
        if not pts:
            continue
        n, sec, rss = (np.array(x, dtype=float) for x in zip(*pts))
        slope = {}
        if len(n) > 1:
            slope = {"time": round(float(np.polyfit(np.log(n), np.log(sec), 1)[0]), 2),
                     "rss": round(float(np.polyfit(np.log(n), np.log(rss), 1)[0]), 2)}
            slopes[v] = slope
        axes[0].plot(n, sec, "o-", label=f"{v} (slope {slope['time']})" if slope else v)
        axes[1].plot(n, rss / 1024, "o-", label=f"{v} (slope {slope['rss']})" if slope else v)
    for ax, what in zip(axes, ("wall seconds", "peak RSS, GiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("LMSYS-form CSV: load + check against plain readers (log-log; a slope of 1 is linear in rows)")
    save_figure(fig, out, dpi=110)
    return slopes


# A polars read of the file and the JSON parse of its turn cells: the least any reader of it does
BASELINE = """import sys
import polars as pl
f = pl.read_csv(sys.argv[1], infer_schema=False)
f = f.with_columns(pl.col(c).str.json_decode(pl.List(pl.String)) for c in ("prompt", "response_a", "response_b"))
print(f.height)
"""


def whole_commands(args) -> None:
    """`--hh`: `prefkit data check --no-tokens` against the polars read + JSON parse, whole processes, on the
    HH-style files of each size in `--rows`."""
    import re

    sizes = [int(s) for s in args.rows.split(",") if s]
    script = Path(sys.executable).with_name("prefkit")  # the console script, as a user runs it
    prefkit = [str(script)] if script.exists() else [sys.executable, "-m", "prefkit.cli"]
    commands = {"prefkit": lambda path: [*prefkit, "data", "check", "--no-tokens", str(path)],
                "polars": lambda path: [sys.executable, "-c", BASELINE, str(path)]}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(args.cache / "pycache")
    small = hh_file(1000, args.cache)
    for name, cmd in commands.items():  # untimed: bytecode compiled, once
        watch(cmd(small), args.memory_cap_gb, env)
    rows_out = []
    for size in sizes:
        path = hh_file(size, args.cache)
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():  # taking turns: a change in the machine's load falls on both
                warm(path)
                res = watch(cmd(path), args.memory_cap_gb, env)
                runs[name].append(res)
                shown = res.get("stopped") or f"{res['seconds']:8.2f} s  peak {res['peak_rss_mb']:7.0f} MiB"
                print(f"{size:>9} rows  {name:<8} {shown}", file=sys.stderr)
        done = {name: [r for r in rs if "stopped" not in r] for name, rs in runs.items()}
        row = {"rows": size, "file_mb": round(path.stat().st_size / 2**20)}
        for name, rs in done.items():
            if not rs:
                row[f"{name}_stopped"] = runs[name][0]["stopped"]
                continue
            best = min(rs, key=lambda r: r["seconds"])
            row[f"{name}_seconds"] = round(best["seconds"], 2)
            row[f"{name}_all_seconds"] = [round(r["seconds"], 2) for r in rs]
            row[f"{name}_peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
        if done["prefkit"]:
            text = done["prefkit"][0]["stdout"]
            checked = int(re.search(r": (\d+) rows", text).group(1))
            if checked != size:
                raise SystemExit(f"prefkit data check read {checked} rows of {size}:\n{text}")
            row["distinct_prompts"] = int(re.search(r"distinct prompts: (\d+)", text).group(1))
        if "prefkit_seconds" in row and "polars_seconds" in row:
            row["ratio"] = round(row["prefkit_seconds"] / row["polars_seconds"], 2)
            print(f"{size:>9} rows  prefkit / polars {row['ratio']:.2f}x (best of {args.repeats})", file=sys.stderr)
        rows_out.append(row)

    sys.path.insert(0, str(HERE))
    import polars as pl
    from harness import write_results

    columns = ["rows", "file_mb", "prefkit_seconds", "polars_seconds", "ratio", "prefkit_all_seconds",
               "polars_all_seconds", "prefkit_peak_rss_mb", "polars_peak_rss_mb", "distinct_prompts"]
    intro = f"""`python benchmarks/data_scale.py --hh --rows {args.rows} --repeats {args.repeats}`
on {platform.processor() or platform.machine()}, {os.cpu_count()} cores (polars threads: {pl.thread_pool_size()}); best of {args.repeats},
each a whole process, wall seconds from start to exit, the file read once just before it (page cache), bytecode
compiled by an untimed run first. The file: HH-RLHF's two test files (4,666 real pairs) repeated in order to each
size, answer turns repeated 3 to 6 times (`make_hh_file`), so prompts repeat and answers are long. `prefkit`:
`prefkit data check --no-tokens FILE`; `polars`: `polars.read_csv` ({pl.__version__}, every column as text) and
`str.json_decode` of the prompt and both response columns (`BASELINE`); `ratio`: prefkit / polars. Peak RSS
sampled every 0.05 s."""
    columns += [c for c in ("prefkit_stopped", "polars_stopped") if any(c in r for r in rows_out)]
    write_results("data_scale_hh", args.out, {"polars": pl.__version__, "polars_threads": pl.thread_pool_size(),
                                             "rows": sizes, "repeats": args.repeats}, columns, rows_out, intro)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="rows of each file, separated by commas")
    ap.add_argument("--million", action="store_true", help="add a 1,000,000-row file (about 3.5 GB)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each variant (the best is kept)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rows-reader-max", type=int, default=200_000, help="largest size the row reader is timed on")
    ap.add_argument("--jsonl-max", type=int, default=100_000, help="largest size the JSON-lines variants run on")
    ap.add_argument("--tokens-max", type=int, default=10_000, help="largest size rendering (tokens) is timed on")
    ap.add_argument("--memory-cap-gb", type=float, default=round(0.8 * _mem_total_gb(), 1),
                    help="a variant whose RSS passes this is stopped and reported as such (default: 80%% of memory)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache", help="where the generated CSV files are kept")
    ap.add_argument("--hh", action="store_true", help="time the whole `prefkit data check --no-tokens` command "
                    "against a polars read + JSON parse, on HH-RLHF rows repeated to each size of --rows")
    ap.add_argument("--rows", default="150000,1000000", help="--hh: rows of each file, separated by commas")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # internal: one variant in this process
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.data)))
        return
    if args.hh:
        whole_commands(args)
        return

    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    variants = [v for v in args.variants.split(",") if v]
    rows_out = []
    for size in sizes:
        path = data_file(size, args.cache)
        best: dict[str, dict] = {}
        for _ in range(args.repeats):
            for v in variants:
                if ((v == "rows" and size > args.rows_reader_max) or (v == "tokens" and size > args.tokens_max)
                        or (v.startswith("jsonl") and size > args.jsonl_max)):
                    continue
                vpath = jsonl_file(path) if v.startswith("jsonl") else path
                warm(vpath)
                res = run_child(v, vpath, args.memory_cap_gb)
                if "stopped" in res:
                    print(f"{size:>9} rows  {v:<8} {res['stopped']}", file=sys.stderr)
                    best.setdefault(v, res)
                    continue
                cached = f"  (from the token cache {res['cached_seconds']:.2f} s)" if "cached_seconds" in res else ""
                print(f"{size:>9} rows  {v:<8} {res['seconds']:8.2f} s  peak {res['peak_rss_mb']:7.0f} MiB{cached}",
                      file=sys.stderr)
                if v not in best or "stopped" in best[v] or res["seconds"] < best[v]["seconds"]:
                    best[v] = res
        mb = path.stat().st_size / 2**20
        for v, res in best.items():
            row = {"rows": size, "file_mb": round(mb), "variant": v, **res}
            if v == "jsonl" and "jsonl_rows" in best and "stopped" not in res:
                row["vs_row_reader"] = round(res["seconds"] / best["jsonl_rows"]["seconds"], 3)
            if v.startswith("jsonl"):
                row["file_mb"] = round(jsonl_file(path).stat().st_size / 2**20)
            elif "polars" in best and "stopped" not in res and "stopped" not in best["polars"]:
                row["time_vs_polars"] = round(res["seconds"] / best["polars"]["seconds"], 2)
                if "load_seconds" in res:
                    row["load_vs_polars"] = round(res["load_seconds"] / best["polars"]["seconds"], 2)
                row["rss_vs_polars"] = round(res["peak_rss_mb"] / best["polars"]["peak_rss_mb"], 2)
                row["added_rss_vs_polars"] = round(res["added_rss_mb"] / max(1, best["polars"]["added_rss_mb"]), 2)
            rows_out.append(row)

    sys.path.insert(0, str(HERE))
    import polars as pl
    from harness import write_results

    import prefkit

    columns = ["rows", "file_mb", "variant", "seconds", "load_seconds", "summary_seconds", "rows_per_s", "peak_rss_mb",
               "added_rss_mb", "time_vs_polars", "load_vs_polars",
               "rss_vs_polars", "added_rss_vs_polars", "vs_row_reader", "cached_seconds", "cache_mb"]
    intro = f"""`python benchmarks/data_scale.py --sizes {args.sizes}{' --million' if args.million else ''} --repeats {args.repeats}`
on {platform.processor() or platform.machine()}, {os.cpu_count()} cores (polars threads: {pl.thread_pool_size()}); best of {args.repeats},
each variant in its own process, the file read once just before it (so each finds it in the page cache).
LMSYS-form CSV files made by the script (length distribution like LMSYS's; see its docstring). `prefkit`: load and
validate every row (`load_seconds`: what every command does before it trains) and summarise (`summary_seconds`:
counts, lengths, distinct prompts), together `prefkit data check --no-tokens`; `rows`: the same on the row reader;
`polars`: `polars.read_csv` ({pl.__version__}), every column as text; `pandas`: `pandas.read_csv` + `json.loads`
of every turn cell; `jsonl`/`jsonl_rows`: the same rows as a generic JSON-lines file (lists of turns), loaded by
prefkit's polars path and by the row reader, up to {args.jsonl_max} rows; `tokens`: render + tokenise the loaded table with MiniLM's tokenizer (pair layout, 512 tokens)
into an empty token cache, and (`cached_seconds`) again from it, on files of at most {args.tokens_max} rows.
Peak RSS includes the interpreter and imported libraries (prefkit's imports weigh about 90 MB more than polars'
alone); `added_rss_mb` is the peak less the RSS after the variant's imports."""
    slopes = plot(rows_out, args.out / "data_scale.png")
    if slopes:
        intro += ("\n\nScaling exponent a variant (the slope of log seconds and of log peak RSS against log rows, fitted "
                  "over the sizes run; 1.0 is linear; data_scale.png plots them): "
                  + "; ".join(f"{v} time {s['time']}, RSS {s['rss']}" for v, s in slopes.items()) + ".")
    columns.append("stopped")
    write_results("data_scale", args.out, {"polars": pl.__version__, "polars_threads": pl.thread_pool_size(),
                                          "prefkit": getattr(prefkit, "__version__", ""), "sizes": sizes,
                                          "repeats": args.repeats, "memory_cap_gb": args.memory_cap_gb,
                                          "scaling_exponent": slopes}, columns, rows_out, intro)


if __name__ == "__main__":
    main()
