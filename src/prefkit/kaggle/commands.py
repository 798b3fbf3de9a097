"""The `prefkit kaggle ...` and `prefkit ledger` commands, one function each (their arguments: the table in
`prefkit.cli`), over bundle, kernel, api, budget and ledger."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prefkit.competition import competition_of, kaggle_slug
from prefkit.core import runs
from prefkit.errors import PrefkitError
from prefkit.kaggle import api, ledger
from prefkit.kaggle.budget import estimate, estimate_training
from prefkit.submission import check_submission


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrefkitError(f"{path}: not valid JSON ({e})") from None


def _kernel_kind(kernel: Path) -> str:
    """kernels/common.py opens every rendered kernel with "# prefkit <kind> kernel"."""
    with open(kernel / "kernel.py", encoding="utf-8") as fh:
        words = fh.readline().split()
    if len(words) < 3 or words[:2] != ["#", "prefkit"] or words[2] not in ("train", "infer"):
        raise PrefkitError(f"{kernel / 'kernel.py'}: not a kernel rendered by `prefkit kaggle kernel`")
    return words[2]


def bundle(run: str | Path, out: str | Path, overrides: list[str] = ()) -> dict:
    from prefkit.kaggle.bundle import build_bundle

    info = build_bundle(run, out, list(overrides))
    say(f"bundle {info['bundle']}: models {', '.join(info['models'])}; wheels {', '.join(info['wheels'])}")
    for note in info["notes"]:
        say(f"note: {note}")
    return info


def kernel(kind: str, run: str | Path, bundle: str | Path, out: str | Path, overrides: list[str] = ()) -> Path:
    from prefkit.kaggle.kernel import render_kernel

    folder = render_kernel(kind, run, bundle, out, list(overrides))
    say(f"kernel folder {folder}: kernel.py, kernel-metadata.json")
    return folder


def push(bundle: str | Path | None, kernel: str | Path | None, new_dataset: bool = False, message: str = "",
         tokens_per_row: float | None = None, force: bool = False, dry_run: bool = False) -> None:
    if not bundle and not kernel:
        raise PrefkitError("give --bundle, --kernel or both")
    from prefkit.kaggle.kernel import bundle_dataset, check_competition
    from prefkit.kaggle.secrets import refuse_secrets

    bundle = Path(bundle) if bundle else None
    kernel = Path(kernel) if kernel else None
    if bundle is not None:
        bundle_dataset(bundle)  # a bundle folder, as `prefkit kaggle bundle` made it
    if kernel is not None and not (kernel / "kernel-metadata.json").is_file():
        what = "no such folder" if not kernel.exists() else "no kernel-metadata.json"
        raise PrefkitError(f"{kernel}: {what} (render one with `prefkit kaggle kernel`)")
    for folder in (bundle, kernel):  # as they are now: a file may have been added since they were made
        if folder is not None:
            refuse_secrets(folder, action="push")
    if kernel is not None:
        kind = _kernel_kind(kernel)
        if bundle is not None:
            meta = _read_json(kernel / "kernel-metadata.json")
            slugs = meta.get("competition_sources") if isinstance(meta, dict) else None
            if slugs:
                check_competition(bundle, slugs[0], None, str(kernel))
        _check_budget(bundle, kind, tokens_per_row, force)
    if not dry_run:
        say(f"credentials: {api.credentials_source()}")
    api.run_plan(api.push_plan(bundle, kernel, new_dataset, message), dry_run, say)


def status(kernel: str, download: str | None = None) -> int:
    """0 when the kernel completed, 1 when it ended otherwise."""
    state = api.wait_for_kernel(kernel, say)
    if download:
        api.run_plan([api.Call("kernels_output", {"kernel": kernel, "path": download})], False, say)
    return 0 if state == "complete" else 1


def submit(run: str | Path, file: str | None, kernel: str | None, version: int | None, message: str, ledger_path: str,
           dry_run: bool = False) -> dict:
    run_dir = Path(run)
    cfg = runs.open_config(run_dir)
    if file and not kernel:  # a file uploaded from here: it must be this competition's submission
        comp = competition_of(cfg)
        rows = check_submission(file, comp)
        say(f"{file}: a {comp.name} submission of {rows} rows")
    row = ledger.new_row(kaggle_slug(cfg), run_dir, message, file, kernel, version)
    message = f"{message} [{row['id']}]".strip()  # the ledger id lets `fetch_scores` find it again
    plan = api.submit_plan(kaggle_slug(cfg), message, file, kernel, version)
    api.run_plan(plan, dry_run, say)
    if dry_run:
        say(f"dry run: ledger row not written: {json.dumps(row)}")
    else:
        ledger.append({**row, "message": message}, Path(ledger_path))
        say(f"ledger: {ledger_path} row {row['id']}")
    return row


def fetch_scores(ledger_path: str, competition: str | None = None) -> int:
    path = Path(ledger_path)
    frame = ledger.read(path)
    competitions = [competition] if competition else sorted(set(frame["competition"]) - {""})
    filled = 0
    for comp in competitions:
        subs = api.client().competition_submissions(comp)
        filled += ledger.fill_scores(path, subs)
    say(f"{filled} leaderboard scores filled in {path}")
    return filled


def show_ledger(ledger_path: str, plot: str | None = None) -> None:
    path = Path(ledger_path)
    plot = Path(plot) if plot else path.with_suffix(".png")
    print(ledger.show(path, plot))
    say(f"plot: {plot}")


def _check_budget(bundle: Path | None, kind: str, tokens_per_row: float | None, force: bool) -> None:
    if bundle is None:
        raise PrefkitError(f"a {kind} kernel is pushed with its --bundle: the time check needs the bundled run")
    run_dir = bundle / "run"
    cfg = runs.open_config(run_dir, made_by="`prefkit kaggle bundle` (the bundle's run/)")
    n_models = len(runs.trained_folders(run_dir))
    try:
        est = estimate(cfg, n_models, tokens_per_row) if kind == "infer" else estimate_training(cfg, tokens_per_row)
    except PrefkitError:
        if force:
            say("no throughput known for this model: time check skipped (--force)")
            return
        raise
    if kind == "infer":
        say(f"time estimate on T4x{est['gpus']}: {est['hours']} h for {est['rows']} rows x {est['passes']} passes x "
            f"{est['models']} models at {est['tokens_per_row']} tokens/row, {est['tokens_per_s_per_gpu']} tokens/s per GPU "
            f"({est['throughput']}); limit {est['limit_hours']} h")
    else:
        f = est["hours_per_fold"]
        say(f"time estimate on T4x{est['gpus']}: {est['hours']} h for {est['folds']} folds of {est['train_rows']} training "
            f"rows x {est['epochs']} epochs at {est['tokens_per_row']} tokens/row (per fold: training {f['training']} h, "
            f"{est['evaluations']} evaluations of {est['eval_rows']} rows {f['evaluation']} h, OOF {f['oof']} h), "
            f"{est['tokens_per_s_per_gpu']} forward tokens/s per GPU ({est['throughput']}); limit {est['limit_hours']} h")
    if not est["fits"] and not force:
        fix = ("fewer folds, shorter rows, or --force" if kind == "infer" else
               "fewer folds (cv.folds), fewer rows (data.limit), a shorter template.max_length, "
               "train elsewhere and push an inference kernel, or --force")
        raise PrefkitError(f"the estimate ({est['hours']} h) exceeds the {est['limit_hours']} h limit: {fix}")
