"""`prefkit` console script: subcommands over the recipes.

    prefkit data check PATH [--format F] [--json] [key=value ...]
    prefkit data convert PATH --out OUT.{csv,parquet} [--format F] [key=value ...]
    prefkit cv CONFIG [--resume] [key=value ...]
    prefkit train CONFIG [--resume] [key=value ...]
    prefkit predict --run RUN_DIR --test PATH --out FILE [key=value ...]
    prefkit demo [--config CONFIG] [--rows N] [key=value ...]
    prefkit kaggle {bundle,kernel,push,status,submit,scores} ...      prefkit ledger
    prefkit cot sft CONFIG [--resume] [key=value ...]
    prefkit cot generate --run RUN --out FILE [--split test] [--limit N]
    prefkit cot rank --rm RUN --dataset NAME --system NAME=FILE ... [--reference] --out DIR
    prefkit cot teacher --dataset NAME --out FILE [--samples D --temperature T]
    prefkit cot demo [--rm RUN] [--limit N] [key=value ...]
    prefkit cot eval --dataset NAME --predictions FILE [--split train|test|all]

Every `key=value` is a config override (`data.train=PATH`, `cv.n_splits=3`, `output_dir=DIR`).
Exit codes: 0 success; 1 `data check`/`data convert` skipped bad rows; 2 a user error (bad file, bad config), printed
without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prefkit.errors import PrefkitError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prefkit", description="Pairwise-preference competitions, from data to submission.")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect and convert preference files").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="summarise a preference file and validate every row")
    check.add_argument("path")
    check.add_argument("--format", default=None, help="lmsys, wsdm, hh_rlhf or generic (default: detected)")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.add_argument("--no-tokens", action="store_true", help="skip token counts (faster)")
    check.add_argument("overrides", nargs="*", metavar="key=value")
    convert = data.add_parser("convert", help="write any source in competition form (LMSYS CSV or parquet)")
    convert.add_argument("path")
    convert.add_argument("--out", required=True, help="OUT.csv (LMSYS CSV) or OUT.parquet")
    convert.add_argument("--format", default=None)
    convert.add_argument("overrides", nargs="*", metavar="key=value")

    for name, help_ in (("cv", "K-fold cross-validation: oof.csv, metrics.json"), ("train", "train on all rows")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("config")
        c.add_argument("--resume", action="store_true", help="continue an interrupted run in the same output_dir")
        c.add_argument("overrides", nargs="*", metavar="key=value")

    pred = sub.add_parser("predict", help="write a submission from a trained run")
    pred.add_argument("--run", required=True, help="folder written by `prefkit train`")
    pred.add_argument("--test", required=True)
    pred.add_argument("--out", required=True, help="submission CSV to write")
    pred.add_argument("overrides", nargs="*", metavar="key=value")

    from prefkit.kaggle.commands import add_parsers

    add_parsers(sub)

    cf = sub.add_parser("configs", help="the configs shipped with prefkit").add_subparsers(dest="configs_command", required=True)
    cf.add_parser("list", help="names of the shipped configs (usable wherever a config path is)")
    cp = cf.add_parser("copy", help="copy a shipped config to edit it")
    cp.add_argument("name")
    cp.add_argument("dest", help="a folder or a file name")

    cot = sub.add_parser("cot", help="chain-of-thought students").add_subparsers(dest="cot_command", required=True)
    sft = cot.add_parser("sft", help="LoRA fine-tuning of a student on the teacher's correct rationales")
    sft.add_argument("config")
    sft.add_argument("--resume", action="store_true")
    sft.add_argument("overrides", nargs="*", metavar="key=value")
    gen = cot.add_parser("generate", help="a trained student answers a dataset split (JSONL predictions)")
    gen.add_argument("--run", required=True)
    gen.add_argument("--out", required=True)
    gen.add_argument("--split", default="test", choices=["train", "test", "all"])
    gen.add_argument("--limit", type=int, default=None, help="only the first N examples")
    gen.add_argument("overrides", nargs="*", metavar="key=value")
    rk = cot.add_parser("rank", help="rank students (and teacher, reference) with a trained reward model")
    rk.add_argument("--rm", required=True, help="reward-model run folder (cv or train)")
    rk.add_argument("--dataset", required=True)
    rk.add_argument("--system", action="append", default=[], metavar="NAME=FILE", help="predictions or teacher file")
    rk.add_argument("--reference", action="store_true", help="add the reference answers as a system")
    rk.add_argument("--split", default="test", choices=["train", "test", "all"])
    rk.add_argument("--limit", type=int, default=None)
    rk.add_argument("--out", required=True)
    rk.add_argument("--data-root", default=None)
    cd = cot.add_parser("demo", help="teacher file, tiny student SFT, generation, accuracy, reward-model ranking")
    cd.add_argument("--rm", default=None, help="a trained reward-model run (default: train MiniLM here)")
    cd.add_argument("--limit", type=int, default=30, help="test questions the student answers")
    cd.add_argument("overrides", nargs="*", metavar="key=value")
    te = cot.add_parser("teacher", help="ask an OpenAI-compatible endpoint for rationales (env: PREFKIT_TEACHER_*)")
    te.add_argument("--dataset", required=True)
    te.add_argument("--split", default="train", choices=["train", "test", "all"])
    te.add_argument("--samples", type=int, default=1, help="rationales per question (diverse reasoning)")
    te.add_argument("--temperature", type=float, default=0.0)
    te.add_argument("--concurrency", type=int, default=4)
    te.add_argument("--limit", type=int, default=None)
    te.add_argument("--cache", default=None, help="JSONL cache (default: beside --out)")
    te.add_argument("--out", required=True, help="teacher-completion file to write (the paper's format)")
    te.add_argument("--data-root", default=None)
    ev = cot.add_parser("eval", help="answer accuracy of predictions (or of the paper's teacher files)")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--predictions", required=True)
    ev.add_argument("--split", default="all", choices=["train", "test", "all"])
    ev.add_argument("--data-root", default=None, help="folder holding reasoning/ (default: ../shared/data)")

    demo = sub.add_parser("demo", help="end to end on a sample set prefkit makes: CV, predict, report")
    demo.add_argument("--config", default=None, help="default: configs/rm/minilm_cpu.yaml (the CPU reward model)")
    demo.add_argument("--rows", type=int, default=1200, help="training pairs to make (test: a quarter as many)")
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    return p


def _data_command(args) -> int:
    from prefkit.config import load_config
    from prefkit.data import load_pairs

    overrides = list(args.overrides) + ([f"data.format={args.format}"] if args.format else [])
    cfg = load_config(None, overrides)
    if args.data_command == "convert":
        from prefkit.data.arena import write_lmsys_csv, write_parquet

        table = load_pairs(args.path, cfg.data)
        out = Path(args.out)
        if out.suffix == ".parquet":
            write_parquet(table, out)
        elif out.suffix == ".csv":
            write_lmsys_csv(table, out)
        else:
            raise PrefkitError(f"--out {out}: the name must end in .csv or .parquet")
        if table.skipped:
            print(table.skipped_report(), file=sys.stderr)
        if cfg.output_dir:
            from prefkit.recipes.common import output_dir

            output_dir(cfg, "convert")
        print(f"wrote {len(table)} rows -> {out}", file=sys.stderr)
        return 1 if table.skipped else 0

    from prefkit.data.check import format_summary, summarise
    from prefkit.io import write_json
    from prefkit.recipes.common import output_dir
    from prefkit.templates import Renderer, config_tokenizer

    table = load_pairs(args.path, cfg.data)
    renderer = None if args.no_tokens else Renderer(config_tokenizer(cfg), cfg.template)
    summary = summarise(table, renderer)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else format_summary(summary))
    if table.skipped:
        print(table.skipped_report(), file=sys.stderr)
    if cfg.output_dir:
        write_json(output_dir(cfg, "check") / "summary.json", summary)
    return 1 if table.skipped else 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # argparse binds an empty `overrides` list at the first positional, so `key=value` words placed after an
    # option flag come back unparsed: they are overrides too; anything else is an error.
    args, extra = parser.parse_known_args(argv)
    for word in extra:
        if word.startswith("-") or "=" not in word:
            parser.error(f"unrecognised argument: {word}")
        args.overrides.append(word)
    try:
        if args.command == "data":
            return _data_command(args)
        if args.command == "configs":
            from prefkit import shipped

            if args.configs_command == "list":
                print("\n".join(shipped.config_names()))
            else:
                print(f"copied to {shipped.copy_config(args.name, args.dest)}", file=sys.stderr)
            return 0
        from prefkit.shipped import config_path

        if getattr(args, "config", None) is not None and args.command != "demo":
            args.config = str(config_path(args.config))  # a path, or the name of a shipped config
        if args.command == "cot" and args.cot_command == "sft":
            from prefkit.config import load_config
            from prefkit.cot import sft

            sft.main(load_config(args.config, args.overrides), Path(args.config).stem, resume=args.resume)
            return 0
        if args.command == "cot" and args.cot_command == "generate":
            from prefkit.cot import generate

            info = generate.main(args.run, args.out, args.split, args.limit, args.overrides)
            print(f"wrote {info['rows']} completions -> {info['out']}", file=sys.stderr)
            return 0
        if args.command == "cot" and args.cot_command == "demo":
            from prefkit.cot import demo as cot_demo

            cot_demo.main(args.overrides, args.rm, args.limit)
            return 0
        if args.command == "cot" and args.cot_command == "teacher":
            from prefkit.cot.datasets import DEFAULT_ROOT
            from prefkit.cot.teacher_api import Teacher, TeacherConfig, write_teacher_file

            out = Path(args.out)
            teacher = Teacher(TeacherConfig.from_env(concurrency=args.concurrency, temperature=args.temperature),
                              Path(args.cache) if args.cache else out.with_suffix(".cache.jsonl"))
            root = Path(args.data_root) if args.data_root else DEFAULT_ROOT
            info = write_teacher_file(teacher, args.dataset, args.split, root, out, args.samples, args.temperature, args.limit)
            print(json.dumps(info, indent=2))
            return 0
        if args.command == "cot" and args.cot_command == "rank":
            from prefkit.cot import rank
            from prefkit.cot.datasets import DEFAULT_ROOT

            systems: dict = {}
            for item in args.system:
                name, sep, path = item.partition("=")
                if not sep or not name or not path:
                    raise PrefkitError(f"--system {item!r}: write NAME=FILE")
                systems[name] = path
            if args.reference:
                systems[rank.REFERENCE] = None
            root = Path(args.data_root) if args.data_root else DEFAULT_ROOT
            rank.main(args.rm, args.dataset, systems, args.out, args.split, root, args.limit)
            print((Path(args.out) / "rank.md").read_text())
            return 0
        if args.command == "cot":
            from prefkit.cot.datasets import DEFAULT_ROOT
            from prefkit.cot.evaluate import evaluate

            root = Path(args.data_root) if args.data_root else DEFAULT_ROOT
            print(json.dumps(evaluate(args.dataset, Path(args.predictions), args.split, root), indent=2))
            return 0
        if args.command in ("kaggle", "ledger"):
            from prefkit.kaggle.commands import run

            return run(args)
        from prefkit.config import load_config

        if args.command in ("cv", "train"):
            from prefkit.recipes import cv, train

            cfg = load_config(args.config, args.overrides)
            (cv if args.command == "cv" else train).main(cfg, Path(args.config).stem, resume=args.resume)
        elif args.command == "predict":
            from prefkit.recipes import predict

            predict.main(args.run, args.test, args.out, args.overrides)
        elif args.command == "demo":
            from prefkit.recipes import demo

            demo.main(args.overrides, args.config, args.rows)
        return 0
    except PrefkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: a bug, keep the traceback
            raise
        # a path problem (a folder where a file is asked for, no permission, a full disk): the user's to fix
        print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        from prefkit.lock import release_all

        release_all()


if __name__ == "__main__":
    sys.exit(main())
