"""`prefkit demo`: the loop a Kaggler runs, on a sample set prefkit makes, with no data and no network.

1. A sample set: 1,200 training and 300 test pairs (`prefkit.data.synthetic`; with `competition=wsdm` the WSDM
   Cup form: one turn per row, no ties, parquet, `id,winner` submissions).
2. The feature baseline and the transformer reward model (default: configs/rm/minilm_cpu.yaml, MiniLM with the
   Bradley-Terry head) cross-validated on the same 3 folds, each then predicting the test rows (fold models
   averaged, swap TTA where the head is not symmetric). The demo sizes the config it is given (`SIZES`): by
   default one epoch and 64 tokens a response (the Bradley-Terry head reads each in its own sequence; a head
   that reads the pair in one keeps 128), so that the first result comes in minutes on 2 cores; `--full` trains
   at 128 tokens for the config's own epochs (rm/minilm_cpu: 2), about 3x the time.
3. Their blend, weights fitted on the out-of-fold predictions and scored by the blender's own CV.
4. The submission from the best of the three by CV (the competition's metric), `report.md` with one table,
   the reliability plot of each and the log loss per fold, and the next steps: the exact commands that take
   the transformer run to Kaggle (bundle, kernel, push; the push is run here with --dry-run, which prints the
   T4x2 time estimate) and that train the Gemma-2 config on a GPU.

The terminal gets a progress bar per phase and a line per fold; everything else (library warnings, the
weight-loading report) goes to log.txt in the output folder (`-v` shows it too). A `--config` of the
feature baseline runs that model alone.

Writes in output_dir: data/, cv_<model>/ and predict_<model>/ for each model, blend/, submission.csv,
metrics.json, report.md, plots (reliability_<model>.png, folds.png), kaggle/ and log.txt.
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import time
from pathlib import Path

import numpy as np

from prefkit.competition import competition_of
from prefkit.config import Config, load_config
from prefkit.console import quiet
from prefkit.core.dist import is_main, wait
from prefkit.core.runs import output_dir
from prefkit.data.arena import write_lmsys_csv, write_wsdm_parquet
from prefkit.data.synthetic import make_pairs
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.io import new_figure, save_figure, write_json, write_text
from prefkit.metrics import label_curves, reliability_plot, score, uniform_logloss
from prefkit.recipes import blend, cv, predict
from prefkit.recipes.common import log
from prefkit.rm.heads import head_name
from prefkit.shipped import config_path as config_path_of
from prefkit.toolbox.predictions import Predictions, probabilities_of, read_logits

DEFAULT_CONFIG = "rm/minilm_cpu"  # a shipped config (prefkit.shipped)
BASELINE = "rm/features_baseline"
# What the demo changes in the config it is given, to fit its time (overrides typed after them win).
# quick (the default): MiniLM makes ~3x fewer token passes than at the full size (64 tokens: 0.58x the padded
# tokens of 128 on the sample set; one epoch of two) and still beats the baseline: CV log loss 0.570 against
# 0.643, their blend 0.518. On fold 0, one epoch at batch 8 (twice the steps, the same tokens) learned less
# (0.586 against 0.565); two folds of two epochs cost as much and leave each fold fewer rows (0.590).
# full: the size of prefkit's earlier demo.
SIZES = {"quick": ["train.epochs=1", "cv.n_splits=3"], "full": ["cv.n_splits=3"]}
# template.max_length where a sequence holds one response (model.head=bt reads each in its own) ...
TOKENS = {"quick": 64, "full": 128}
# ... and where it holds the prompt and both responses (every other head), at either size: at 64 a pair would
# keep ~16 tokens a text, and a byte tokenizer's headers leave it almost none
PAIR_TOKENS = 128
SHARED = ("competition", "data", "cv")  # the overrides that the baseline takes too: the same data and folds


def _sample(rows: int, seed: int, competition: str) -> PairTable:
    """`rows` synthetic pairs; for WSDM single-turn ones without ties (the first `rows` such of a larger draw)."""
    if competition != "wsdm":
        return make_pairs(rows, seed=seed)
    drawn = make_pairs(2 * rows, seed=seed, multi_turn_fraction=0.0)
    return drawn.subset(np.flatnonzero(drawn.frame["label"] != "tie")[:rows])


def _model_name(cfg: Config, config_path: Path) -> str:
    return "features" if cfg.model.kind == "features" else config_path.stem.split("_")[0]


def _better(comp, a: dict, b: dict) -> bool:
    return a["accuracy"] > b["accuracy"] if comp.metric == "accuracy" else a["logloss"] < b["logloss"]


def _fold_plot(results: dict, path: Path, comp) -> None:
    fig, ax = new_figure((6, 4))
    for name, r in results.items():
        folds = r["metrics"]["folds"]
        ax.plot([f["fold"] for f in folds], [f["logloss"] for f in folds], marker="o", label=name)
    ax.set_xticks([f["fold"] for f in next(iter(results.values()))["metrics"]["folds"]])
    ax.axhline(uniform_logloss(len(comp.labels)), color="grey", ls="--", lw=1, label="uniform")
    ax.set_xlabel("fold")
    ax.set_ylabel("log loss (lower is better)")
    ax.set_title("CV log loss per fold")
    ax.legend()
    save_figure(fig, path)


def _blend_folds(blend_dir: Path, comp) -> list[dict]:
    oof = Predictions.read(blend_dir, comp)
    p, folds, labels = oof.probs, oof.fold, oof.label
    return [{"fold": int(k), **score(p[folds == k], labels[folds == k])} for k in np.unique(folds)]


def _kaggle_steps(run: Path, out: Path, name: str) -> tuple[list[str], str]:
    """The commands that take the run to Kaggle, run here through the functions they call (the push as a dry run);
    (the commands a user would type, what they said)."""
    from prefkit.kaggle import commands

    bundle, kernel = out / "bundle", out / "kernel"
    dataset, slug = f"kaggle.dataset=YOU/prefkit-demo-{name}", f"kaggle.kernel=YOU/prefkit-demo-{name}-infer"
    typed = [f"prefkit kaggle bundle --run {run} --out {bundle} {dataset}",
             f"prefkit kaggle kernel infer --run {run} --bundle {bundle} --out {kernel} {slug}",
             f"prefkit kaggle push --bundle {bundle} --kernel {kernel} --new-dataset --dry-run"]
    for p in (bundle, kernel):
        shutil.rmtree(p, ignore_errors=True)
    said = io.StringIO()
    step = 0
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            commands.bundle(run, bundle, [dataset])
            step = 1
            commands.kernel("infer", run, bundle, kernel, [slug])
            step = 2
            try:
                commands.push(bundle, kernel, new_dataset=True, message="prefkit demo", dry_run=True)
            except PrefkitError:  # no T4 throughput known for this model: the time check is skipped
                typed[2] += " --force"
                commands.push(bundle, kernel, new_dataset=True, message="prefkit demo", force=True, dry_run=True)
    except PrefkitError as e:
        said.write(f"(`{typed[step]}` failed: {e})\n")
    return typed, said.getvalue()


def _report(cfg: Config, comp, results: dict, best: str, steps: list[str], said: str, gpu: str, seconds: float,
            rows: int, note: str) -> str:
    table = "\n".join(
        f"| {name}{' (submitted)' if name == best else ''} | {r['metrics']['logloss']:.4f} | {r['metrics']['accuracy']:.4f} | "
        f"{r['metrics']['ece']:.4f} | {r['seconds']:.0f} |" for name, r in results.items())
    plots = ", ".join(f"`reliability_{n}.png`" for n in results)
    step_lines = "\n".join(steps)
    return f"""# prefkit demo

{rows} synthetic {comp.name.upper()}-format training pairs (`prefkit.data.synthetic`), grouped
{cfg.cv.n_splits}-fold CV; the same folds for every model. The competition scores {comp.metric}; a uniform
prediction has log loss {uniform_logloss(len(comp.labels)):.4f}.{note}

| model | CV log loss | CV accuracy | ECE | seconds |
|---|---|---|---|---|
{table}

Seconds: cross-validation and test prediction of the model (the blend: fitting and its own CV). The blend's
scores are the blender's own CV (weights fitted on the other folds' OOF), so they are out of fold too.
`submission.csv` comes from the best by {comp.metric}: **{best}**. Reliability plots: {plots};
log loss per fold: `folds.png`. Library messages: `log.txt`.

## Next: the same run on Kaggle

Run here, the push as a dry run (it prints what it would call and the T4x2 time estimate):

```
{step_lines}
```

```
{said.strip()}
```

Set `kaggle.dataset` and `kaggle.kernel` to your own `OWNER/SLUG`, and drop `--dry-run` (credentials from
`~/.kaggle/kaggle.json` or `KAGGLE_USERNAME`/`KAGGLE_KEY`).

## Next: a real model on a GPU

```
{gpu}
```
"""


def sized_config(config: str | None, overrides: list[str], full: bool = False) -> tuple[Config, Path, list[str]]:
    """The demo's config: `config` (default: the CPU reward model) at the demo's size, then `overrides`;
    (the config, its file, the overrides the size put before the user's)."""
    size = "full" if full else "quick"
    config_path = config_path_of(config or DEFAULT_CONFIG)
    plain = load_config(config_path, overrides)
    one_response = plain.model.kind == "seq_cls" and head_name(plain) == "bt"
    sized = [f"template.max_length={TOKENS[size] if one_response else PAIR_TOKENS}", *SIZES[size]]
    return load_config(config_path, sized + list(overrides)), config_path, sized


def main(overrides: list[str], config: str | None = None, rows: int = 1200, verbose: bool = False,
         full: bool = False) -> dict:
    t0 = time.perf_counter()
    cfg, config_path, sized = sized_config(config, overrides, full)
    out = output_dir(cfg, "demo")
    default_head = config is None and not any(o.startswith("model.head") for o in overrides)
    with quiet(out / "log.txt", verbose):
        return _run(cfg, config_path, overrides, out, rows, t0, default_head, "full" if full else "quick", sized)


def _run(cfg: Config, config_path: Path, overrides: list[str], out: Path, rows: int, t0: float,
         default_head: bool, size: str, sized: list[str]) -> dict:
    comp = competition_of(cfg)
    data_dir = out / "data"
    train_set = _sample(rows, cfg.data.seed, cfg.competition)
    test_set = _sample(max(rows // 4, 10), cfg.data.seed + 1, cfg.competition)
    test_set = PairTable(test_set.frame.assign(label=None), test_set.source)
    write, ext = (write_wsdm_parquet, "parquet") if cfg.competition == "wsdm" else (write_lmsys_csv, "csv")
    cfg.data.train, cfg.data.test = str(data_dir / f"train.{ext}"), str(data_dir / f"test.{ext}")
    if is_main():
        write(train_set, cfg.data.train)
        write(test_set, cfg.data.test)
    wait()  # the other processes read these next
    log(f"sample set: {len(train_set)} training and {len(test_set)} test pairs ({comp.name}) -> {data_dir}", summary=True)

    configs = {}
    if cfg.model.kind != "features":
        shared = [o for o in overrides if o.split("=", 1)[0].split(".")[0] in SHARED]
        base = load_config(config_path_of(BASELINE), sized + shared)
        base.data.train, base.data.test = cfg.data.train, cfg.data.test
        configs["features"] = base
    configs[_model_name(cfg, config_path)] = cfg
    results: dict = {}
    for name, mcfg in configs.items():
        t = time.perf_counter()
        run_cfg = copy.deepcopy(mcfg)
        run_cfg.output_dir = str(out / f"cv_{name}")
        head = f", head {head_name(mcfg)}" if mcfg.model.kind == "seq_cls" else ""
        log(f"{name}: {mcfg.model.kind}{head}, {mcfg.cv.n_splits}-fold CV", summary=True)
        metrics = cv.main(run_cfg, name)
        predict.main(out / f"cv_{name}", cfg.data.test, out / f"submission_{name}.csv", [f"output_dir={out / f'predict_{name}'}"])
        results[name] = {"metrics": metrics, "seconds": time.perf_counter() - t, "submission": out / f"submission_{name}.csv"}
        shutil.copy2(out / f"cv_{name}" / "reliability.png", out / f"reliability_{name}.png")
    if len(results) > 1:
        t = time.perf_counter()
        names = list(results)
        m = blend.main([str(out / f"cv_{n}") for n in names], str(out / "blend"),
                       test_preds=[str(out / f"predict_{n}") for n in names], submission=str(out / "submission_blend.csv"))
        m["folds"] = _blend_folds(out / "blend", comp)
        results["blend"] = {"metrics": m, "seconds": time.perf_counter() - t, "submission": out / "submission_blend.csv"}
        oof = read_logits(out / "blend", comp)
        reliability_plot(label_curves(probabilities_of(oof, comp), oof["label"].to_numpy()),
                         out / "reliability_blend.png", title=f"blend OOF, {len(oof)} rows")
        log(f"blend: CV logloss {m['logloss']:.4f}  accuracy {m['accuracy']:.4f}  weights "
            f"{m['blender'].get('weights')}", summary=True)
    best = None
    for name, r in results.items():
        if best is None or _better(comp, r["metrics"], results[best]["metrics"]):
            best = name
    if not is_main():
        return results[best]["metrics"]
    shutil.copy2(results[best]["submission"], out / "submission.csv")
    _fold_plot(results, out / "folds.png", comp)
    transformer = next((n for n in configs if configs[n].model.kind == "seq_cls"), None)
    steps, said = _kaggle_steps(out / f"cv_{transformer or 'features'}", out / "kaggle", transformer or "features")
    gpu = ("prefkit configs copy rm/gemma2_9b_qlora_t4x2 gemma2.yaml   # set model.path to your Gemma-2 9B folder\n"
           "torchrun --nproc_per_node 2 -m prefkit.cli -- cv gemma2.yaml data.train=PATH/train.csv output_dir=runs/gemma2\n"
           "prefkit kaggle bundle --run runs/gemma2 --out bundle-gemma2 kaggle.dataset=YOU/gemma2-folds\n"
           "prefkit kaggle kernel infer --run runs/gemma2 --bundle bundle-gemma2 --out kernel-gemma2 "
           "kaggle.kernel=YOU/gemma2-infer")
    note = f"\n\nThe demo's {size} size: " + ", ".join(f"`{o}`" for o in sized) + "."
    if size == "quick":
        note += " `prefkit demo --full` trains at 128 tokens for the config's own epochs, about 3x as long."
    if default_head:
        note += ("\n\nThe transformer is the shipped CPU reward model (`rm/minilm_cpu`): MiniLM with the "
                 f"Bradley-Terry head (`model.head=bt`: each response read with the prompt in its own "
                 f"{cfg.template.max_length} tokens, one score each), the head chosen by grouped 5-fold CV on real "
                 "human preferences (HH-RLHF helpful-base, docs/results.md), where the 3-class pair classifier "
                 "(`model.head=cls3`, which runs it here) stays at chance.")
    if "features" in results and transformer and not _better(comp, results[transformer]["metrics"], results["features"]["metrics"]):
        note += (f"\n\nOn this small sample the baseline beats {transformer}: a transformer needs more pairs, more tokens "
                "and a GPU to pass a feature model; the blend still takes what each knows.")
    seconds = time.perf_counter() - t0
    summary = {"models": {n: {k: r["metrics"][k] for k in ("logloss", "accuracy", "ece")} | {"seconds": round(r["seconds"], 1)}
                          for n, r in results.items()},
               "best": best, "competition": comp.name, "metric": comp.metric, "seconds": round(seconds, 1),
               "size": size, "size_overrides": sized,
               "uniform_logloss": uniform_logloss(len(comp.labels)),
               **{k: results[best]["metrics"][k] for k in ("logloss", "accuracy", "ece", "n")}}
    write_json(out / "metrics.json", summary)
    write_text(out / "report.md", _report(cfg, comp, results, best, steps, said, gpu, seconds, rows, note))
    width = max(len(n) for n in results)
    for name, r in results.items():
        log(f"  {name:<{width}}  logloss {r['metrics']['logloss']:.4f}  accuracy {r['metrics']['accuracy']:.4f}  "
            f"{r['seconds']:.0f} s{'  <- submitted' if name == best else ''}", summary=True)
    log(f"demo done in {seconds:.0f} s -> {out / 'report.md'} (next steps for Kaggle and a GPU are at its end)", summary=True)
    return summary
