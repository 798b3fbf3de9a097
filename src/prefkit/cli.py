"""`prefkit` console script: a table from command to recipe.

    prefkit data check PATH [--format F] [--json] [key=value ...]
    prefkit data convert PATH --out OUT.{csv,parquet} [--format F] [key=value ...]
    prefkit cv CONFIG [--resume] [key=value ...]
    prefkit train CONFIG [--resume] [key=value ...]
    prefkit predict --run RUN_DIR --test PATH --out FILE [key=value ...]
    prefkit demo [--config CONFIG] [--rows N] [-v] [key=value ...]
    prefkit repredict --run CV_RUN [key=value ...]
    prefkit doctor --run RUN [--rows N] [key=value ...]
    prefkit merge --run RUN [--run RUN ...] --out DIR [--into-base]
    prefkit export --run RUN --out DIR [--fold K | --average] [key=value ...]
    prefkit blend RUN RUN... --out DIR [--method simplex|stack] [--test-preds PRED...] [--submission FILE]
    prefkit compare RUN RUN... [--out FILE.json]
    prefkit pseudo-label --run RUN_OR_BLEND --data PATH --out FILE [--min-margin M] [key=value ...]
    prefkit configs {list,copy}
    prefkit kaggle {bundle,kernel,push,status,submit,scores} ...      prefkit ledger
    prefkit cot sft CONFIG [--resume] [key=value ...]
    prefkit cot generate --run RUN_OR_CONFIG --out FILE [--split test] [--limit N] [key=value ...]
    prefkit cot pairs --dataset NAMES --system NAME=FILE ... [--teacher] [--reference] --out DIR [--test-fraction F]
    prefkit cot sample --run RUN_OR_CONFIG --out FILE [--k 8 --temperature 0.7 --top-p 0.95 --seed 0] [key=value ...]
    prefkit cot verifier-pairs --samples FILE... --out DIR [--valid-fraction 0.2] [--per-question 4]
    prefkit cot rerank --rm VERIFIER_RUN... --pairs DIR --samples FILE... --out DIR
    prefkit cot rank --rm RUN --dataset NAME --system NAME=FILE ... [--reference] [--questions SPLIT_JSON] --out DIR
    prefkit cot teacher --dataset NAME --out FILE [--samples D --temperature T]
    prefkit cot demo [--rm RUN] [--limit N] [--student CONFIG] [-v] [key=value ...]
    prefkit cot eval --dataset NAME --predictions FILE [--split train|test|all]
    prefkit cot truthfulqa RUN_OR_CONFIG [--limit N] [--out FILE] [key=value ...]

Each command is a row of `COMMANDS`: its words, the recipe module that does the job (each has a `main`), its
arguments, and `call`, the few lines from parsed arguments to that `main`. Recipe modules are imported only
when their command runs, so `prefkit --help` stays fast. Every `key=value` is a config override
(`data.train=PATH`, `cv.n_splits=3`, `output_dir=DIR`); a CONFIG is a path or the name of a shipped config.
Exit codes: 0 success; 1 `data check`/`data convert` skipped bad rows (or a kernel that did not complete, or a
`doctor` probe out of tolerance);
2 a user error (bad file, bad config), printed without a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prefkit import __version__
from prefkit.errors import PrefkitError

OVERRIDES = (("overrides",), {"nargs": "*", "metavar": "key=value"})
CONFIG = (("config",), {"help": "a config file, or the name of a shipped config (prefkit configs list)"})
RESUME = (("--resume",), {"action": "store_true", "help": "continue an interrupted run in the same output_dir"})
SPLIT = (("--split",), {"default": "test", "choices": ["train", "test", "all"]})
DATA_ROOT = (("--data-root",), {"default": None, "help": "folder holding reasoning/ (default: ../shared/data)"})
LEDGER = (("--ledger",), {"default": "submissions/ledger.csv"})


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    recipe: str  # the module whose `main` does the job
    help: str
    args: tuple[tuple[tuple[str, ...], dict], ...]
    call: Callable[[Any, Any], Any]  # (parsed arguments, recipe module) -> exit code (anything else: 0)


def _config(args) -> Any:
    from prefkit.config import load_config

    return load_config(args.config, args.overrides)


def _data_config(args) -> Any:
    from prefkit.config import load_config

    return load_config(None, list(args.overrides) + ([f"data.format={args.format}"] if args.format else []))


def _root(args) -> Path:
    from prefkit.cot.datasets import DEFAULT_ROOT

    return Path(args.data_root) if args.data_root else DEFAULT_ROOT


def _configs(args, shipped) -> int:
    if args.configs_command == "list":
        print("\n".join(shipped.config_names()))
    else:
        print(f"copied to {shipped.copy_config(args.name, args.dest)}", file=sys.stderr)
    return 0


def _done(_result: Any) -> int:
    """A command that returns what it made (or nothing) and raises on failure: exit 0."""
    return 0


def _cot_generate(args, recipe) -> int:
    info = recipe.main(args.run, args.out, args.split, args.limit, args.overrides)
    print(f"wrote {info['rows']} completions -> {info['out']}", file=sys.stderr)
    return 0


def _systems(args) -> dict:
    systems: dict = {}
    for item in args.system:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise PrefkitError(f"--system {item!r}: write NAME=FILE")
        systems[name] = path
    return systems


def _cot_rank(args, recipe) -> int:
    from prefkit.cot.pairs import REFERENCE

    systems = {**_systems(args), **({REFERENCE: None} if args.reference else {})}
    recipe.main(args.rm, args.dataset, systems, args.out, args.split, _root(args), args.limit, questions=args.questions)
    print((Path(args.out) / "rank.md").read_text())
    return 0


def _cot_pairs(args, recipe) -> int:
    from prefkit.cot.pairs import REFERENCE, TEACHER

    systems = {**_systems(args), **({"teacher": TEACHER} if args.teacher else {}),
               **({REFERENCE: None} if args.reference else {})}
    summary = recipe.main(args.dataset, systems, args.out, args.split, args.test_fraction, args.per_question,
                          args.seed, _root(args))
    print(json.dumps(summary, indent=2))
    return 0


KAGGLE = "prefkit.kaggle.commands"
COMMANDS = [
    Command(("data", "check"), "prefkit.recipes.data_check", "summarise a preference file and validate every row",
            ((("path",), {}), (("--format",), {"default": None, "help": "lmsys, wsdm, hh_rlhf or generic (default: detected)"}),
             (("--json",), {"action": "store_true", "help": "print the summary as JSON"}),
             (("--no-tokens",), {"action": "store_true", "help": "skip token counts (faster)"}), OVERRIDES),
            lambda a, r: r.main(_data_config(a), a.path, a.json, not a.no_tokens)),
    Command(("data", "convert"), "prefkit.recipes.data_convert", "write any source in competition form",
            ((("path",), {}), (("--out",), {"required": True, "help": "OUT.csv (LMSYS CSV) or OUT.parquet (WSDM with competition=wsdm)"}),
             (("--format",), {"default": None}), OVERRIDES),
            lambda a, r: r.main(_data_config(a), a.path, a.out)),
    Command(("cv",), "prefkit.recipes.cv", "K-fold cross-validation: oof.csv, metrics.json", (CONFIG, RESUME, OVERRIDES),
            lambda a, r: r.main(_config(a), Path(a.config).stem, resume=a.resume)),
    Command(("train",), "prefkit.recipes.train", "train on all rows", (CONFIG, RESUME, OVERRIDES),
            lambda a, r: r.main(_config(a), Path(a.config).stem, resume=a.resume)),
    Command(("predict",), "prefkit.recipes.predict", "write a submission from a trained run",
            ((("--run",), {"required": True, "help": "folder written by `prefkit cv` or `prefkit train`"}),
             (("--test",), {"required": True}), (("--out",), {"required": True, "help": "submission CSV to write"}), OVERRIDES),
            lambda a, r: r.main(a.run, a.test, a.out, a.overrides)),
    Command(("demo",), "prefkit.recipes.demo", "end to end on a sample set prefkit makes: CV, predict, report",
            ((("--config",), {"default": None, "help": "default: rm/minilm_cpu (the CPU reward model)"}),
             (("--rows",), {"type": int, "default": 1200, "help": "training pairs to make (test: a quarter as many)"}),
             (("--full",), {"action": "store_true",
                            "help": "the larger run: 128 tokens and the config's own epochs (default: 64 tokens, one epoch)"}),
             (("-v", "--verbose"), {"action": "store_true", "help": "library messages on the terminal too (always in log.txt)"}),
             OVERRIDES),
            lambda a, r: r.main(a.overrides, a.config, a.rows, a.verbose, a.full)),
    Command(("repredict",), "prefkit.recipes.repredict", "a cv run's out-of-fold predictions again under other predict.* settings",
            ((("--run",), {"required": True, "help": "folder written by `prefkit cv`"}), OVERRIDES),
            lambda a, r: r.main(a.run, a.overrides)),
    Command(("doctor",), "prefkit.recipes.doctor",
            "probe a run's model: batch and padding, dtype, A/B swap, the position read, shuffled labels (exit 1: a fault)",
            ((("--run",), {"required": True, "help": "folder written by `prefkit cv` or `prefkit train`"}),
             (("--rows",), {"type": int, "default": 16, "help": "rows to probe (a seeded sample of data.train)"}),
             OVERRIDES),
            lambda a, r: r.main(a.run, a.rows, a.overrides)),
    Command(("merge",), "prefkit.recipes.merge", "average models into one (a run folder): a cv run's folds, or several runs'",
            ((("--run",), {"required": True, "action": "append",
                           "help": "folder written by `prefkit cv` (its fold models) or `train` (its model); again for more"}),
             (("--out",), {"required": True, "help": "new run folder for the averaged model"}),
             (("--into-base",), {"action": "store_true", "help": "merge each model's LoRA into the base weights, then average"})),
            lambda a, r: r.main(a.run, a.out, a.into_base)),
    Command(("export",), "prefkit.recipes.export", "a run's reward model as a folder plain transformers loads (model card included)",
            ((("--run",), {"required": True, "help": "folder written by `prefkit cv`, `train` or `merge`"}),
             (("--out",), {"required": True, "help": "new folder for the exported model"}),
             (("--fold",), {"type": int, "default": None, "help": "a cv run: export fold K's model"}),
             (("--average",), {"action": "store_true", "help": "a cv run: export its fold models averaged"}), OVERRIDES),
            lambda a, r: r.main(a.run, a.out, a.fold, a.average, a.overrides)),
    Command(("blend",), "prefkit.recipes.blend", "blend cv runs with weights fitted on their OOF (and the blender's own CV)",
            ((("runs",), {"nargs": "+", "metavar": "RUN", "help": "cv run folders"}),
             (("--out",), {"required": True, "help": "folder for the blend"}),
             (("--method",), {"default": "simplex", "choices": ["simplex", "stack"]}),
             (("--test-preds",), {"nargs": "+", "default": [], "metavar": "PRED",
                                   "help": "one predict folder per run (matched to its run, any order): writes the blended submission"}),
             (("--submission",), {"default": None, "help": "submission CSV to write (default: OUT/submission.csv)"})),
            lambda a, r: r.main(a.runs, a.out, a.method, a.test_preds, a.submission)),
    Command(("compare",), "prefkit.recipes.compare",
            "runs against the first on the same out-of-fold rows: paired differences, their errors, a verdict",
            ((("runs",), {"nargs": "+", "metavar": "RUN", "help": "cv run or blend folders, the baseline first"}),
             (("--out",), {"default": None, "help": "JSON file for the figures"})),
            lambda a, r: print(r.markdown(r.main(a.runs, a.out)))),
    Command(("pseudo-label",), "prefkit.recipes.pseudo_label", "soft labels for unlabelled pairs from a run or blend",
            ((("--run",), {"required": True, "help": "a cv/train run folder or a blend folder"}),
             (("--data",), {"required": True, "help": "the unlabelled pairs (any supported format)"}),
             (("--out",), {"required": True, "help": "pseudo-label CSV to write (train.pseudo_labels reads it)"}),
             (("--min-margin",), {"type": float, "default": 0.0, "help": "drop rows whose two most probable labels are at most this far apart (|P(A) - P(B)| for WSDM)"}),
             OVERRIDES),
            lambda a, r: r.main(a.run, a.data, a.out, a.min_margin, a.overrides)),
    Command(("configs", "list"), "prefkit.shipped", "names of the shipped configs (usable wherever a config path is)",
            (), _configs),
    Command(("configs", "copy"), "prefkit.shipped", "copy a shipped config to edit it",
            ((("name",), {}), (("dest",), {"help": "a folder or a file name"})), _configs),
    Command(("kaggle", "bundle"), KAGGLE, "a Kaggle dataset folder with what an offline kernel needs",
            ((("--run",), {"required": True}), (("--out",), {"required": True}), OVERRIDES),
            lambda a, r: _done(r.bundle(a.run, a.out, a.overrides))),
    Command(("kaggle", "kernel"), KAGGLE, "render a kernel folder (kernel.py + kernel-metadata.json)",
            ((("kind",), {"choices": ["train", "infer"]}), (("--run",), {"required": True}),
             (("--bundle",), {"required": True}), (("--out",), {"required": True}), OVERRIDES),
            lambda a, r: _done(r.kernel(a.kind, a.run, a.bundle, a.out, a.overrides))),
    Command(("kaggle", "push"), KAGGLE, "create or version the bundle dataset and push a kernel",
            ((("--bundle",), {"help": "bundle folder to upload as a dataset version"}),
             (("--kernel",), {"help": "kernel folder to push"}),
             (("--new-dataset",), {"action": "store_true", "help": "create the dataset instead of versioning it"}),
             (("--message",), {"default": f"prefkit {__version__}"}),
             (("--tokens-per-row",), {"type": float, "help": "mean rendered tokens of the test rows (default: max_length)"}),
             (("--force",), {"action": "store_true", "help": "push even when the time estimate exceeds the limit"}),
             (("--dry-run",), {"action": "store_true", "help": "prepare everything and print the calls, touch nothing"})),
            lambda a, r: _done(r.push(a.bundle, a.kernel, a.new_dataset, a.message, a.tokens_per_row, a.force, a.dry_run))),
    Command(("kaggle", "status"), KAGGLE, "poll a kernel with backoff until it ends; optionally download its output",
            ((("kernel",), {"help": "OWNER/SLUG"}), (("--download",), {"help": "folder for the kernel's output files"})),
            lambda a, r: r.status(a.kernel, a.download)),
    Command(("kaggle", "submit"), KAGGLE, "submit a file, or a kernel version in a code competition; adds a ledger row",
            ((("--run",), {"required": True, "help": "the run the submission comes from (for the ledger)"}),
             (("--file",), {}), (("--kernel",), {}), (("--version",), {"type": int}), (("--message",), {"default": ""}),
             LEDGER, (("--dry-run",), {"action": "store_true"})),
            lambda a, r: _done(r.submit(a.run, a.file, a.kernel, a.version, a.message, a.ledger, a.dry_run))),
    Command(("kaggle", "scores"), KAGGLE, "fill leaderboard scores into the ledger",
            ((("--competition",), {"default": None}), LEDGER), lambda a, r: _done(r.fetch_scores(a.ledger, a.competition))),
    Command(("ledger",), KAGGLE, "CV against LB for every submission, and a plot",
            (LEDGER, (("--plot",), {"default": None, "help": "PNG to draw (default: beside the ledger)"})),
            lambda a, r: _done(r.show_ledger(a.ledger, a.plot))),
    Command(("cot", "sft"), "prefkit.recipes.cot_sft", "LoRA fine-tuning of a student on the teacher's correct rationales",
            (CONFIG, RESUME, OVERRIDES), lambda a, r: r.main(_config(a), Path(a.config).stem, resume=a.resume)),
    Command(("cot", "generate"), "prefkit.recipes.cot_generate",
            "a student answers a dataset split (JSONL predictions): a trained one, or zero-shot from a config",
            ((("--run",), {"required": True, "help": "an SFT run folder, or a config (its base weights: zero-shot)"}), (("--out",), {"required": True}), SPLIT,
             (("--limit",), {"type": int, "default": None, "help": "only the first N examples"}), OVERRIDES), _cot_generate),
    Command(("cot", "sample"), "prefkit.recipes.cot_sample",
            "K sampled rationales a question from one student, each scored (JSONL), resumable",
            ((("--run",), {"required": True, "help": "an SFT run folder, or a config (its base weights)"}),
             (("--out",), {"required": True, "help": "JSONL to write (<out>.partial while it runs)"}), SPLIT,
             (("--k",), {"type": int, "default": 8, "help": "samples a question (1 with --temperature 0: greedy)"}),
             (("--temperature",), {"type": float, "default": 0.7}), (("--top-p",), {"type": float, "default": 0.95}),
             (("--seed",), {"type": int, "default": 0}),
             (("--limit",), {"type": int, "default": None, "help": "only the first N questions"}), OVERRIDES),
            lambda a, r: print(json.dumps(r.main(a.run, a.out, a.split, a.k, a.temperature, a.top_p, a.seed, a.limit,
                                                 a.overrides), indent=2))),
    Command(("cot", "verifier-pairs"), "prefkit.recipes.cot_verifier_pairs",
            "same-source pairs (a right and a wrong sample of one question) from training-split samples",
            ((("--samples",), {"nargs": "+", "required": True, "help": "`prefkit cot sample` files of the train split"}),
             (("--out",), {"required": True, "help": "folder for train.csv, valid.csv, split.json, summary.json"}),
             (("--valid-fraction",), {"type": float, "default": 0.2, "help": "share of training questions held out"}),
             (("--per-question",), {"type": int, "default": 4, "help": "at most this many pairs a question"}),
             (("--seed",), {"type": int, "default": 0}), DATA_ROOT),
            lambda a, r: print(json.dumps(r.main(a.samples, a.out, a.valid_fraction, a.per_question, a.seed, _root(a)),
                                          indent=2))),
    Command(("cot", "rerank"), "prefkit.recipes.cot_rerank",
            "best-of-K: first sample, majority vote, verifier best, verifier-weighted vote; the verifier's quality",
            ((("--rm",), {"required": True, "nargs": "+",
                          "help": "the verifier: a reward-model run (cv or train) on verifier-pairs; several are blended"}),
             (("--pairs",), {"required": True, "help": "the verifier-pairs folder the verifiers were trained on"}),
             (("--samples",), {"nargs": "+", "required": True, "help": "test-split `prefkit cot sample` files"}),
             (("--votes",), {"action": "store_true",
                             "help": "blend in each sample's answer share among its question's samples"}),
             (("--other-k",), {"action": "store_true",
                               "help": "rerank samples of another K than the pairs' (held-out figures stay at theirs)"}),
             (("--out",), {"required": True}), (("--seed",), {"type": int, "default": 0})),
            lambda a, r: print(r.markdown(r.main(a.rm, a.pairs, a.samples, a.out, seed=a.seed, votes=a.votes,
                                                 other_k=a.other_k)))),
    Command(("cot", "rank"), "prefkit.recipes.cot_rank", "rank students (and teacher, reference) with a trained reward model",
            ((("--rm",), {"required": True, "help": "reward-model run folder (cv or train)"}), (("--dataset",), {"required": True}),
             (("--system",), {"action": "append", "default": [], "metavar": "NAME=FILE", "help": "predictions or teacher file"}),
             (("--reference",), {"action": "store_true", "help": "add the reference answers as a system"}), SPLIT,
             (("--limit",), {"type": int, "default": None}), (("--out",), {"required": True}),
             (("--questions",), {"default": None, "metavar": "SPLIT_JSON",
                                 "help": "rank only the held-out questions of a `cot pairs` split.json"}), DATA_ROOT), _cot_rank),
    Command(("cot", "pairs"), "prefkit.recipes.cot_pairs",
            "arena-format pairs (a right and a wrong answer to one question) for a CoT reward model, split by question",
            ((("--dataset",), {"required": True, "help": "a dataset, several separated by commas, or all"}),
             (("--system",), {"action": "append", "default": [], "metavar": "NAME=FILE",
                              "help": "predictions or teacher file; {dataset} in FILE is filled in per dataset"}),
             (("--teacher",), {"action": "store_true", "help": "add each dataset's teacher file as a system"}),
             (("--reference",), {"action": "store_true", "help": "add the reference answers as a system"}), SPLIT,
             (("--test-fraction",), {"type": float, "default": 0.3, "help": "share of questions held out"}),
             (("--per-question",), {"type": int, "default": 2, "help": "at most this many pairs a question"}),
             (("--seed",), {"type": int, "default": 0}), (("--out",), {"required": True}), DATA_ROOT), _cot_pairs),
    Command(("cot", "teacher"), "prefkit.recipes.cot_teacher",
            "ask an OpenAI-compatible endpoint for rationales (env: PREFKIT_TEACHER_*)",
            ((("--dataset",), {"required": True}), (("--split",), {"default": "train", "choices": ["train", "test", "all"]}),
             (("--samples",), {"type": int, "default": 1, "help": "rationales per question (diverse reasoning)"}),
             (("--temperature",), {"type": float, "default": 0.0}), (("--concurrency",), {"type": int, "default": 4}),
             (("--limit",), {"type": int, "default": None}), (("--cache",), {"default": None, "help": "JSONL cache (default: beside --out)"}),
             (("--out",), {"required": True, "help": "teacher-completion file to write (the paper's format)"}), DATA_ROOT),
            lambda a, r: print(json.dumps(r.main(a.dataset, a.out, a.split, _root(a), a.samples, a.temperature,
                                                 a.concurrency, a.limit, a.cache), indent=2))),
    Command(("cot", "demo"), "prefkit.recipes.cot_demo",
            "SmolLM2 student zero-shot, Fine-tune-CoT, a reward model on right-against-wrong pairs, ranking, best-of-K",
            ((("--rm",), {"default": None, "help": "a trained reward-model run (default: train MiniLM here)"}),
             (("--limit",), {"type": int, "default": 64, "help": "test questions the student answers"}),
             (("--student",), {"default": None, "help": "student config (default: sft/smollm2_135m_cpu)"}),
             (("--train-on",), {"default": "singleeq,addsub,multiarith,svamp",
                                "help": "datasets whose teacher rationales the student is fine-tuned on"}),
             (("--k",), {"type": int, "default": 4, "help": "best-of-K: samples a question (0: no best-of-K step)"}),
             (("--sample-questions",), {"type": int, "default": 16,
                                        "help": "best-of-K: test questions sampled, and as many training questions"}),
             (("-v", "--verbose"), {"action": "store_true", "help": "library messages on the terminal too (always in log.txt)"}),
             OVERRIDES),
            lambda a, r: r.main(a.overrides, a.rm, a.limit, a.student, a.verbose, a.train_on, a.k, a.sample_questions)),
    Command(("cot", "truthfulqa"), "prefkit.recipes.cot_truthfulqa",
            "TruthfulQA MC1/MC2 from the student's log-likelihoods (a config: base weights; a run: after SFT)",
            ((("source",), {"help": "an SFT run folder, or a config (path or shipped name)"}),
             (("--limit",), {"type": int, "default": None, "help": "only the first N questions"}),
             (("--out",), {"default": None, "help": "JSON file for the scores"}), OVERRIDES),
            lambda a, r: print(json.dumps(r.main(a.source, a.out, a.limit, a.overrides), indent=2))),
    Command(("cot", "eval"), "prefkit.recipes.cot_eval", "answer accuracy of predictions (or of the paper's teacher files)",
            ((("--dataset",), {"required": True}), (("--predictions",), {"required": True}),
             (("--split",), {"default": "all", "choices": ["train", "test", "all"]}), DATA_ROOT),
            lambda a, r: print(json.dumps(r.main(a.dataset, a.predictions, a.split, _root(a)), indent=2))),
]

GROUPS = {"data": "inspect and convert preference files", "configs": "the configs shipped with prefkit",
          "kaggle": "bundles, kernels, pushes, submissions", "cot": "chain-of-thought students"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prefkit", description="Pairwise-preference competitions, from data to submission.")
    sub = p.add_subparsers(dest="command", required=True)
    groups: dict[str, Any] = {}
    for cmd in COMMANDS:
        parent = sub
        if len(cmd.words) == 2:
            group = cmd.words[0]
            if group not in groups:
                groups[group] = sub.add_parser(group, help=GROUPS[group]).add_subparsers(dest=f"{group}_command", required=True)
            parent = groups[group]
        c = parent.add_parser(cmd.words[-1], help=cmd.help)
        for flags, kwargs in cmd.args:
            c.add_argument(*flags, **kwargs)
        c.set_defaults(_command=cmd)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (a timeout, `docker stop`, Kaggle's kill) raised where the program is, as Ctrl-C raises
    KeyboardInterrupt: every `finally` runs, so locks, temporary files and child processes are cleaned up."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated()


def _handle_sigterm() -> Callable[[], None]:
    """Install the SIGTERM handler; returns what puts the previous one back (a test or a notebook calls `main`
    more than once). Python can only do this in the main thread: elsewhere the default stays."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # None: a handler installed outside Python, which cannot be put back from here; the default is the nearest
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # argparse binds an empty `overrides` list at the first positional, so `key=value` words placed after an
    # option flag come back unparsed: they are overrides too; anything else is an error.
    args, extra = parser.parse_known_args(argv)
    for word in extra:
        if word.startswith("-") or "=" not in word or not hasattr(args, "overrides"):
            parser.error(f"unrecognised argument: {word}")
        args.overrides.append(word)
    restore_sigterm = lambda: None  # noqa: E731
    try:
        restore_sigterm = _handle_sigterm()
        if getattr(args, "config", None) is not None and args.command != "demo":
            from prefkit.shipped import config_path

            args.config = str(config_path(args.config))  # a path, or the name of a shipped config
        cmd: Command = args._command
        code = cmd.call(args, importlib.import_module(cmd.recipe))
        return code if isinstance(code, int) else 0  # recipes' own results (a run folder, metrics) are not exit codes
    except PrefkitError as e:
        from prefkit.core.runs import abandon_refused

        abandon_refused()  # a training job refused before it wrote anything leaves no config.yaml behind
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`prefkit data check FILE | head`): not an error of ours
        # Python would report the failed flush of stdout at exit once more: point it at /dev/null first
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a writer whose reader closed the pipe
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a write with no path attached: the disk is the user's to free
            print(f"error: {e.filename + ': ' if e.filename else ''}no space left on the device (or over quota) "
                  "while writing: free some and run the command again (with --resume where it has one)", file=sys.stderr)
            return 2
        if e.filename is None:  # not about a path the user gave: a bug, keep the traceback
            raise
        # a path problem (a folder where a file is asked for, no permission, a full disk): the user's to fix
        print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143  # 128 + SIGTERM, as a shell reports a process the signal ended
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        from prefkit.lock import release_all

        release_all()
        restore_sigterm()


if __name__ == "__main__":
    sys.exit(main())
