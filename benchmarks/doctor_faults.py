"""The doctor against planted faults: the bugs reward-model users keep reporting, each planted into a run of the
tiny Gemma-2 or the features baseline (trained in seconds, as the tests train them), and `prefkit doctor`'s probes
run on it. Every fault must be caught by its probe; the clean runs, on every fold, must raise no alarm.

    python benchmarks/doctor_faults.py [--work DIR] [--shipped [--shipped-configs minilm_cpu,smollm2_135m_cpu]
                                       [--shipped-rows 200] [--shipped-epochs 0.5]]

Writes benchmarks/results/doctor_faults.{json,md}: for each fault, the public report it comes from, the probe that
should catch it, that probe's figure and tolerance, whether it was caught, and the other probes that failed with
it; for each clean run and fold, its alarms (the probes out of tolerance: 0 expected). A few minutes on 2 cores.

--shipped adds the shipped CPU models (configs/rm/<name>.yaml) trained briefly, one fold of two on the first
--shipped-rows pairs of HH-RLHF helpful-base.test (../shared/data; prefkit's synthetic pairs without it) for
--shipped-epochs epochs, then doctored: tens of minutes on 2 cores (gemma3_270m_cpu needs its extra).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from harness import bench_pairs, write_results  # noqa: E402

CONFIGS = ROOT / "configs" / "rm"
TINY, FEATURES = CONFIGS / "tiny_gemma2.yaml", CONFIGS / "features_baseline.yaml"
# the tests' fast settings (tests/conftest.py FAST): seconds a fold for the tiny Gemma-2
FAST = ["template.max_length=96", "train.batch_size=4", "train.save_every=0", "train.log_every=1",
        "train.warmup_ratio=0.0", "train.learning_rate=3e-3"]
SHIPPED = ["minilm_cpu", "smollm2_135m_cpu", "gemma3_270m_cpu"]


# ---------------------------------------------------------------------------------------------- data, runs

def pairs(path: Path, n: int) -> Path:
    """A good and a bad answer (or two equal ones for a tie), of lengths that differ from row to row, over 7
    prompts (as tests/recipes/test_doctor.py writes them)."""
    header = ["id", "model_a", "model_b", "prompt", "response_a", "response_b", "winner_model_a", "winner_model_b",
              "winner_tie"]
    rows = []
    for i in range(n):
        good, bad = "Yes! Here is a clear and correct answer." + " More." * (i % 5), "no" + " no" * (i % 4)
        a, b, winner = [(good, bad, (1, 0, 0)), (bad, good, (0, 1, 0)), ("maybe", "maybe", (0, 0, 1))][i % 3]
        rows.append([f"r{i}", "m1", "m2", json.dumps([f"question {i % 7}?"]), json.dumps([a]), json.dumps([b]), *winner])
    pd.DataFrame(rows, columns=header).to_csv(path, index=False)
    return path


def cv(config: Path, data: Path, out: Path, *overrides: str) -> Path:
    """`prefkit cv` into `out` (two folds), in this process; a run that does not finish stops the benchmark."""
    from prefkit import cli

    code = cli.main(["cv", str(config), f"data.train={data}", "cv.n_splits=2", *overrides, f"output_dir={out}"])
    if code != 0:
        raise SystemExit(f"cv {config.name} {' '.join(overrides)} -> exit {code}")
    return out


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def byte_tokenizer_file(path: Path, pad: str | None = None, eos_last: bool = False) -> Path:
    """The tiny models' byte tokenizer as a file: with `pad`, its padding setting names that token; with
    `eos_last`, <bos> starts and <eos> ends every text and there is no <pad> (prefkit then pads with <eos>)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    from prefkit.core.tokenizer import byte_tokenizer

    tok = byte_tokenizer()
    if pad is not None:
        tok.enable_padding(pad_id=tok.token_to_id(pad), pad_token=pad)
    if eos_last:  # (as tests/rm/test_probes.py's pad_is_eos_tokenizer)
        specials = ["<bos>", "<eos>"]
        tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))},
                                   merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(specials)
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>",
                                                           special_tokens=[("<bos>", 0), ("<eos>", 1)])
    tok.save(str(path))
    return path


def swapped_ids_tokenizer(path: Path) -> Path:
    """The byte tokenizer with two byte tokens exchanged ('e' and 'o'): the same size and specials, other ids."""
    from prefkit.core.tokenizer import byte_tokenizer

    spec = json.loads(byte_tokenizer().to_str())
    v = spec["model"]["vocab"]
    v["e"], v["o"] = v["o"], v["e"]
    path.write_text(json.dumps(spec))
    return path


def gpt2_config(path: Path) -> Path:
    """configs/rm/tiny_gemma2.yaml with a 2-layer GPT-2 (absolute position embeddings) in place of Gemma-2."""
    import yaml

    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"]["random_init"] = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 1024,
                                   "bos_token_id": 1, "eos_token_id": 2}
    cfg["model"].pop("softcapping", None)
    cfg["lora"]["target_modules"] = ["c_attn", "c_proj", "c_fc"]
    path.write_text(yaml.safe_dump(cfg))
    return path


# ---------------------------------------------------------------------------------------------- plants

@contextlib.contextmanager
def on_load(change):
    """`change(model)` applied to every model as it is loaded (prefkit.rm.reward_model.load_trained)."""
    from prefkit.rm import reward_model

    loaded = reward_model.load_trained

    def planted(*args, **kwargs):
        model = loaded(*args, **kwargs)
        change(model)
        return model

    with mock.patch.object(reward_model, "load_trained", planted):
        yield


def pad_id_7(model) -> None:
    model.config.pad_token_id = 7


def reinit_head(model) -> None:
    for name, p in model.named_parameters():
        if "score.modules_to_save" in name:
            torch.nn.init.normal_(p.data, std=0.02)


def outliers(model) -> None:
    """Activations beyond fp16's range out of the first MLP (real Gemma weights carry such outliers)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.model.layers[0].mlp.register_forward_hook(lambda module, args, out: out * 1e8)


def norm_eps(model) -> None:
    """Every normalisation's epsilon changed: the same weights and versions, other scores."""
    for module in model.modules():
        if hasattr(module, "eps") and "Norm" in type(module).__name__:
            module.eps = 1.0


@contextlib.contextmanager
def eos_at_evaluation_only():
    """The renderer appends <eos> (id 2) that training never had (trl#5813 the other way round)."""
    from prefkit.rm.templates import Renderer

    specials = Renderer.specials
    with mock.patch.object(Renderer, "specials", lambda self: (specials(self)[0], [2])):
        yield


@contextlib.contextmanager
def swap_does_nothing():
    """The swapped rendering is the plain one."""
    from prefkit.rm.heads import Head

    plain = Head.sequences
    with mock.patch.object(Head, "sequences", lambda self, renderer, table, swap=False: plain(self, renderer, table)):
        yield


@contextlib.contextmanager
def position_bias():
    """A model that leans to the first answer on every row (+3 on A's logit)."""
    from prefkit.rm.heads import Head

    plain = Head.forward
    with mock.patch.object(Head, "forward", lambda self, model, batch: plain(self, model, batch) + torch.tensor([3.0, 0, 0])):
        yield


@contextlib.contextmanager
def left_padding():
    """A classifier padded on the left (its positions then move, under absolute position embeddings)."""
    from prefkit.rm.heads import Classifier

    with mock.patch.object(Classifier, "left_pad", True):
        yield


@contextlib.contextmanager
def features_swap_does_nothing():
    from prefkit.rm import probes

    with mock.patch.object(probes, "swap_ab", lambda table: table):
        yield


@contextlib.contextmanager
def ungrouped_folds():
    """Folds stratified by label and not grouped by prompt: the same prompt trains and validates."""
    from sklearn.model_selection import StratifiedKFold

    from prefkit.data import folds
    from prefkit.recipes import cv as cv_recipe

    def assign(table, n_splits, seed):
        out = np.zeros(len(table), dtype=np.int64)
        split = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(table.frame["id"], table.frame["label"])
        for k, (_, val) in enumerate(split):
            out[val] = k
        return out

    with mock.patch.object(cv_recipe, "assign_folds", assign), mock.patch.object(folds, "assign_folds", assign):
        yield


def edit_oof(run: Path, change) -> Path:
    path = run / "oof_logits.csv"
    frame = pd.read_csv(path, dtype={"id": str, "label": str}, keep_default_na=False)
    change(frame)
    frame.to_csv(path, index=False)
    return run


def labels_exchanged(frame: pd.DataFrame) -> None:
    frame["label"] = frame["label"].map(lambda x: {"a": "b", "b": "a"}.get(x, x))


def a_equals_b(frame: pd.DataFrame) -> None:
    """P(A) = P(B) on every row: what swap TTA over a swap that does nothing predicts."""
    cols = [c for c in frame.columns if c.startswith("logit")]
    mean = (frame[cols[0]] + frame[cols[1]]) / 2
    frame[cols[0]], frame[cols[1]] = mean, mean


def folds_moved(frame: pd.DataFrame) -> None:
    """Three rows moved to the other fold after training (what a resumed run with another seed wrote)."""
    frame.loc[:2, "fold"] = 1 - frame.loc[:2, "fold"]


# ---------------------------------------------------------------------------------------------- the doctor

def doctor(run: Path, overrides: list[str] = (), folder: str | None = None, rows: int = 16):
    from prefkit.recipes import doctor as recipe

    return recipe.run_probes(run, rows, list(overrides), folder)[3]


def fault_row(fault: str, report: str, run: str, expected: str, found) -> dict:
    by = {p.name: p for p in found}
    p = by.get(expected)
    caught = p is not None and p.failed
    return {"fault": fault, "report": report, "run": run, "probe": expected,
            "figure": p.figure if p else "(probe not run)", "tolerance": p.tolerance if p else "",
            "caught": caught, "rows": len(p.rows) if p else 0,
            "also_failed": [x.name for x in found if x.failed and x.name != expected]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--shipped", action="store_true", help="also the shipped CPU models, trained briefly (slow)")
    ap.add_argument("--shipped-configs", default="minilm_cpu,smollm2_135m_cpu")
    ap.add_argument("--shipped-rows", type=int, default=200)
    ap.add_argument("--shipped-epochs", type=float, default=0.5)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="doctor_faults-"))
    work.mkdir(parents=True, exist_ok=True)
    import importlib.util

    t0 = time.perf_counter()
    small, large = pairs(work / "pairs30.csv", 30), pairs(work / "pairs60.csv", 60)
    runs = {
        "tiny": cv(TINY, small, work / "tiny", *FAST),
        "features": cv(FEATURES, large, work / "features", "features.max_iter=20"),
        "tiny_head_lr0": cv(TINY, small, work / "tiny_head_lr0", *FAST, "cv.folds=[0]", "train.head_learning_rate=1e-30"),
        "tiny_pad_hash": cv(TINY, small, work / "tiny_pad_hash", *FAST, "cv.folds=[0]",
                            f"template.tokenizer={byte_tokenizer_file(work / 'pad_hash.json', pad='#')}"),
        "tiny_pad_eos": cv(TINY, small, work / "tiny_pad_eos", *FAST, "cv.folds=[0]",
                           f"template.tokenizer={byte_tokenizer_file(work / 'pad_eos.json', eos_last=True)}"),
        "tiny_gpt2": cv(gpt2_config(work / "tiny_gpt2.yaml"), small, work / "tiny_gpt2", *FAST, "cv.folds=[0]",
                        "quantization.mode=none"),
    }
    with ungrouped_folds():
        runs["features_ungrouped"] = cv(FEATURES, large, work / "features_ungrouped", "features.max_iter=20")
    runs["tiny_labels_exchanged"] = edit_oof(copy_run(runs["tiny"], work / "tiny_labels_exchanged"), labels_exchanged)
    runs["features_labels_exchanged"] = edit_oof(copy_run(runs["features"], work / "features_labels_exchanged"),
                                                 labels_exchanged)
    runs["features_a_equals_b"] = edit_oof(copy_run(runs["features"], work / "features_a_equals_b"), a_equals_b)
    runs["features_folds_moved"] = edit_oof(copy_run(runs["features"], work / "features_folds_moved"), folds_moved)
    trained_s = time.perf_counter() - t0

    faults = [  # (fault, public report, run, overrides, plant, the probe that must catch it)
        ("the model takes another id for padding than its batches (its score read at a padding position)",
         "transformers#35352", "tiny", [], on_load(pad_id_7), "position"),
        ("a padding id that is a real token of every sequence ('#', in every header)", "trl#6952",
         "tiny_pad_hash", [], contextlib.nullcontext(), "position"),
        ("pad = EOS, EOS ending every sequence", "trl#6952, transformers#35352", "tiny_pad_eos", [],
         contextlib.nullcontext(), "position"),
        ("an EOS at evaluation that training never had", "trl#5813", "tiny", [], eos_at_evaluation_only(), "eos"),
        ("a tokenizer swapped under the model (template.tokenizer overridden: 'e' and 'o' exchanged)",
         "issue 42 (37.5% of answers flipped)", "tiny", [f"template.tokenizer={swapped_ids_tokenizer(work / 'eo.json')}"],
         contextlib.nullcontext(), "tokenizer"),
        ("the score head re-initialised on load", "ms-swift#9239", "tiny", [], on_load(reinit_head), "head"),
        ("the score head left untrained under LoRA (its learning rate nil)", "trl#2743", "tiny_head_lr0", [],
         contextlib.nullcontext(), "head"),
        ("a classifier padded on the left, under absolute position embeddings (GPT-2)", "LlamaFactory#689",
         "tiny_gpt2", [], left_padding(), "batch (left padding)"),
        ("activations beyond fp16's range (model.dtype=float16, outliers in one MLP)", "fp16 overflow", "tiny",
         ["model.dtype=float16"], on_load(outliers), "overflow"),
        ("a swap that does nothing (the swapped rendering is the plain one)", "reward-bench (swap TTA)", "tiny", [],
         swap_does_nothing(), "swap"),
        ("a position bias with swap TTA off (predict.swap_tta=false)", "position bias", "tiny",
         ["predict.swap_tta=false"], position_bias(), "swap"),
        ("labels with A and B exchanged since the model learned them (tiny Gemma-2's OOF)", "ms-swift#9370",
         "tiny_labels_exchanged", [], contextlib.nullcontext(), "labels"),
        ("labels with A and B exchanged since the model learned them (features' OOF)", "ms-swift#9370",
         "features_labels_exchanged", [], contextlib.nullcontext(), "labels"),
        ("predictions that do not tell A from B (P(A) = P(B) in the OOF)", "ms-swift#9370",
         "features_a_equals_b", [], contextlib.nullcontext(), "labels"),
        ("a swap that does nothing (features)", "reward-bench (swap TTA)", "features", [],
         features_swap_does_nothing(), "swap"),
        ("folds not grouped by prompt: the same prompt trains and validates", "OpenRLHF#1089",
         "features_ungrouped", [], contextlib.nullcontext(), "folds"),
        ("an OOF whose folds are not what the models held out (3 rows moved)", "OpenRLHF#1089, issue 42 (--resume)",
         "features_folds_moved", [], contextlib.nullcontext(), "folds"),
    ]
    if importlib.util.find_spec("prefkit.rm.golden") is not None:
        faults.append(("the model computing otherwise than at training (every RMSNorm's eps changed, as a kernel "
                       "upgrade can)", "ms-swift#6704", "tiny", [], on_load(norm_eps), "golden"))
    results = []
    for fault, report, run, overrides, plant, expected in faults:
        with plant:
            found = doctor(runs[run], overrides)
        results.append(fault_row(fault, report, run, expected, found))
        print(("caught  " if results[-1]["caught"] else "MISSED  ") + fault, flush=True)

    clean = []
    for run, folders in (("tiny", ("fold0", "fold1")), ("features", ("fold0", "fold1"))):
        for folder in folders:
            found = doctor(runs[run], folder=folder)
            clean.append({"run": run, "model": folder, "probes": len(found),
                          "alarms": [f"{p.name}: {p.figure}" for p in found if p.failed]})
    if args.shipped:
        table, source = bench_pairs(args.shipped_rows)
        from prefkit.data.arena import write_lmsys_csv

        write_lmsys_csv(table, work / "shipped.csv")
        for name in args.shipped_configs.split(","):
            t = time.perf_counter()
            run = cv(CONFIGS / f"{name}.yaml", work / "shipped.csv", work / name, "cv.folds=[0]",
                     f"train.epochs={args.shipped_epochs}")
            found = doctor(run)
            clean.append({"run": f"{name} ({source}, {args.shipped_rows} rows, {args.shipped_epochs} epochs)",
                          "model": "fold0", "probes": len(found), "seconds": round(time.perf_counter() - t, 1),
                          "alarms": [f"{p.name}: {p.figure}" for p in found if p.failed]})

    caught = sum(r["caught"] for r in results)
    alarms = sum(len(c["alarms"]) for c in clean)
    rows = [{"fault": r["fault"], "report": r["report"], "probe": r["probe"], "figure": r["figure"].replace("|", "\\|"),
             "tolerance": r["tolerance"].replace("|", "\\|"), "caught": "yes" if r["caught"] else "**no**",
             "also": ", ".join(r["also_failed"])} for r in results]
    rows += [{"fault": f"clean: {c['run']} {c['model']}", "report": "", "probe": f"{c['probes']} probes",
              "figure": "; ".join(c["alarms"]).replace("|", "\\|") or "no alarm", "tolerance": "",
              "caught": f"{len(c['alarms'])} alarms", "also": ""} for c in clean]
    intro = (f"`prefkit doctor` on {len(results)} planted faults: {caught} caught; on {len(clean)} clean models: "
             f"{alarms} alarms. Runs trained in {trained_s:.0f} s (tiny Gemma-2: nf4 + LoRA, 2 folds of 30 rows; "
             "features: 60 rows); each fault planted into a run or at the doctor's load, as "
             "benchmarks/doctor_faults.py says. 'also': other probes the fault failed.")
    write_results("doctor_faults", args.out, {"caught": caught, "faults": len(results), "clean_alarms": alarms,
                                              "clean": clean, "seconds_training": round(trained_s, 1),
                                              "faults_detail": results},
                  ["fault", "report", "probe", "figure", "tolerance", "caught", "also"], rows, intro)
    if caught < len(results) or alarms:
        raise SystemExit(f"{len(results) - caught} faults missed, {alarms} alarms on clean models")


if __name__ == "__main__":
    main()
