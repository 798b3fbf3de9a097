"""prefkit beside its peers in one run: the same reward model trained by prefkit and by TRL's `RewardTrainer`, then
prefkit's model scoring the held-out rows through prefkit's predictor, a plain transformers loop and `pipeline`.

    python3 benchmarks/vs_peers.py --setup     # once: benchmarks/.cache/peers-venv, prefkit's lock + trl (no make)
    benchmarks/.cache/peers-venv/bin/python benchmarks/vs_peers.py [--rows N] [--valid-rows M] [--batch 16]

TRL is no prefkit dependency: `--setup` makes the benchmark's own virtual environment (gitignored) as `make setup`
makes `.venv` (uv from requirements-bootstrap.lock; requirements.lock, torch 2.13.0+cpu from $TORCH_WHEELS,
default /opt/wheels; requirements-nodeps.lock; prefkit editable), then `trl==1.16.0` and the four packages it adds
(datasets, dill, multiprocess), constrained by requirements.lock: nothing prefkit has changes (an unconstrained
install would replace the CPU torch with a CUDA build of several GB). Every variant runs with that interpreter,
so both trainers see the same torch, transformers, peft and accelerate.

The model: SmolLM2-135M-Instruct (prefkit's converted weights, `smollm2-135m-instruct`) as a Bradley-Terry reward
model, the shipped config rm/smollm2_135m_cpu: LoRA r 16, alpha 32, dropout 0.05 on the 7 projections of layers
22-29 (peft `layers_to_transform`), the score head trained whole (`modules_to_save`), fp32, one epoch, 8 pairs
(16 sequences) a step, rate 5e-4 and 1e-3 for the head, 5 % warmup then cosine, gradient clipping at 1. The rows:
HH-RLHF helpful-base.test, fold 0 of prefkit's grouped folds (`assign_folds`, cv.seed 42, 5 splits: 1,883 training
and 471 held-out pairs, written to WORK as parquet in file order); `--rows N` / `--valid-rows M` keep the first N
and M of them for a short run. HH-RLHF has no ties: a coin scores log loss 0.693, accuracy 0.5.

Training, each in its own process: wall = start (from the process's start: imports, data, rendering, the model)
+ loop (the training loop) + end (to the command's end); peak RSS of the process at that point; trainable
parameters counted (the same LoRA gives the same count):
  prefkit  `prefkit train rm/smollm2_135m_cpu data.train=WORK/train.parquet` in-process (the rows and order that
           `prefkit cv ... cv.folds=[0]` trains on); its end saves the adapter, records the golden scores and runs
           the model probes on a sample of rows, as every `prefkit train` does; held out: its predictor, below
  trl      `trl.RewardTrainer(model=<the converted folder>, peft_config=LoraConfig(the same LoRA))` on the token
           ids prefkit renders (`chosen_ids`/`rejected_ids`: prompt + one response in 128 tokens), so that only the
           trainer differs. RewardConfig defaults that differ from prefkit's config are set to it: bf16=False (TRL
           defaults to bf16 autocast: 30-50x slower a step on this CPU), gradient_checkpointing=False,
           disable_dropout=False (it would also zero LoRA's dropout), cosine schedule, prefkit's warmup steps
           (round(0.05 x steps); TRL would round a ratio up), seed, the pad id. RewardConfig has one learning
           rate: the head's 1e-3 comes through Trainer's documented hook, a subclass's `create_optimizer` (the
           fused AdamW Trainer picks, in prefkit's two parameter groups). Its end saves the adapter. Held out: the
           trained model in the same process after the timing, P(A) = sigmoid(s_A - s_B)
Scoring the held-out rows with prefkit's trained model, each in its own process (load: the model; score:
rendering or tokenising and the forward passes; rows are pairs, two sequences each):
  prefkit   `Run.open` + `load_learner` + `predict` (token-budget, length-sorted batches)
  plain     `prefkit export`'s folder in AutoModelForSequenceClassification, --batch sequences a batch in row order,
            right-padded by the tokenizer; the ids from the export's renderer (`prefkit.rm.export.renderer`)
  pipeline  pipeline("text-classification") on the same folder, --batch a batch, given the text of those ids: it
            tokenises the text whole, where prefkit tokenises each piece alone (how many sequences get other ids,
            and the largest difference on those that do not, are both reported)
Every scorer's pair probabilities are compared with the predictor's (the export's rule: softmax of
[(s_A - s_B)/2, (s_B - s_A)/2, t_A + t_B]).

Writes results/vs_peers.{json,md}; the run's files stay in --work (default runs/vs_peers, emptied first).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".cache" / "peers-venv"
HH = ROOT.parent / "shared" / "data" / "preference" / "hh-rlhf" / "helpful-base.test.jsonl.gz"
CONFIG = "rm/smollm2_135m_cpu"
# adapters on layers 22-29, as the committed comparison ran (the shipped config's default then; 14-29 since): both
# sides read the layers from the loaded config, so the pin keeps a rerun the same job
PINNED = ["lora.skip_first_layers=22"]
PEERS = ["trl==1.16.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19"]
MARK = ".vs_peers"  # a work folder this script made (and may empty)
COLUMNS = ["job", "variant", "rows", "wall s", "start s", "loop s", "end s", "peak RSS GiB", "first loss", "last loss",
           "accuracy", "log loss", "load s", "score s", "rows/s", "max |dp| vs predictor", "speed vs peer",
           "loop speed vs peer"]


def setup() -> None:
    """The benchmark's environment, as the Makefile's setup target makes .venv, plus TRL (constrained by the lock)."""
    py, uv = VENV / "bin" / "python", VENV / "bin" / "uv"
    wheels = os.environ.get("TORCH_WHEELS", "/opt/wheels")
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--require-hashes", "--no-deps",
         "-r", "requirements-bootstrap.lock"],
        [str(uv), "pip", "install", "-q", "-p", str(py), "--require-hashes", "--no-deps", "--find-links", wheels,
         "-r", "requirements.lock"],
        [str(uv), "pip", "install", "-q", "-p", str(py), "--require-hashes", "--no-deps",
         "-r", "requirements-nodeps.lock"],
        [str(uv), "pip", "install", "-q", "-p", str(py), "--no-deps", "--no-build-isolation", "-e", "."],
        [str(uv), "pip", "install", "-q", "-p", str(py), "-c", "requirements.lock", "--find-links", wheels, *PEERS],
    ]
    shutil.rmtree(VENV, ignore_errors=True)
    for cmd in steps:
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    print(f"ready: {py} benchmarks/vs_peers.py")


# ------------------------------------------------------------------------------------------------ shared pieces

def config(work: Path, extra: list[str] = ()):
    from prefkit.config import load_config
    from prefkit.shipped import config_path

    return load_config(config_path(CONFIG), [f"data.train={work / 'train.parquet'}", "data.token_cache=null",
                                             "train.log_every=1", *PINNED, *extra])


def table(work: Path, part: str, cfg=None):
    from prefkit.recipes.common import load_labelled

    cfg = cfg or config(work)
    return load_labelled(str(work / f"{part}.parquet"), cfg, what=part)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def pair_probs(scores, ties: bool = True):
    """(sequences, outputs) in row order, A then B -> each pair's P(A), P(B), P(tie), as the export's card says."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    s = scores.reshape(-1, 2, scores.shape[-1])
    half = (s[:, 0, 0] - s[:, 1, 0]) / 2
    cols = [half, -half] + ([s[:, 0, 1] + s[:, 1, 1]] if ties and s.shape[-1] > 1 else [np.full_like(half, -np.inf)])
    z = np.stack(cols, axis=1)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def loop_scores(model, seqs, pad_id: int, batch: int):
    """The model's outputs for every sequence: `batch` at a time in the given order, right-padded."""
    import numpy as np
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(seqs), batch):
            chunk = seqs[i:i + batch]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, s in enumerate(chunk):
                ids[j, :len(s)] = torch.as_tensor(np.asarray(s, dtype=np.int64))
                mask[j, :len(s)] = 1
            out.append(model(input_ids=ids, attention_mask=mask).logits.float().numpy())
    return np.concatenate(out)


def held_out(probs, labels) -> dict:
    from prefkit.metrics import score

    s = score(probs, labels)
    return {"accuracy": round(s["accuracy"], 4), "log loss": round(s["logloss"], 4)}


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def phases(t0: float, start: float, end: float, done: float) -> dict:
    """Wall time (epoch seconds): the process's start `t0`, the loop's `start` and `end`, the command `done`."""
    return {"wall s": round(done - t0, 1), "start s": round(start - t0, 1), "loop s": round(end - start, 1),
            "end s": round(done - end, 1)}


def loss_ends(losses: list[float]) -> dict:
    """The mean loss of the first and of the last third of the steps (at least one step each): falling = learning."""
    k = max(1, len(losses) // 3)
    return {"first loss": round(sum(losses[:k]) / k, 4), "last loss": round(sum(losses[-k:]) / k, 4),
            "steps": len(losses), "losses": [round(x, 4) for x in losses]}


# ------------------------------------------------------------------------------------------------ the variants

def train_prefkit(args) -> dict:
    import prefkit.rm.reward_model as rm
    from prefkit.cli import main

    loop: dict = {}
    fit = rm.fit

    def timed_fit(model, *a, **k):  # the training loop alone, beside the whole command
        loop.update(start=time.time(), params=trainable(model))
        try:
            return fit(model, *a, **k)
        finally:
            loop["end"] = time.time()

    rm.fit = timed_fit
    run = args.work / "prefkit"
    argv = ["train", CONFIG, f"data.train={args.work / 'train.parquet'}", f"output_dir={run}", "data.token_cache=null",
            "train.log_every=1", *PINNED]
    if main(argv):
        raise SystemExit(f"prefkit {' '.join(argv)} failed")
    done = time.time()
    losses = [r["loss"] for r in map(json.loads, (run / "model" / "log.jsonl").read_text().splitlines()) if "loss" in r]
    return {**phases(args.t0, loop["start"], loop["end"], done), "peak RSS GiB": round(peak_rss_gib(), 2),
            "trainable parameters": loop["params"], "command": "prefkit " + " ".join(argv), **loss_ends(losses)}


def train_trl(args) -> dict:
    import numpy as np
    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from prefkit.core.pretrained import resolve
    from prefkit.rm.learners import make_learner

    cfg = config(args.work)
    tc, lc = cfg.train, cfg.lora
    learner = make_learner(cfg)  # prefkit's tokenizer, template and head: the ids only, no model
    rows = table(args.work, "train", cfg)
    seqs = learner.head.sequences(learner.renderer, rows)  # A, B, A, B, ...
    labels = list(rows.frame["label"])
    if set(labels) - {"a", "b"}:
        raise SystemExit("a Bradley-Terry pair needs a winner: this file has ties")
    pairs = [(a, b) if y == "a" else (b, a) for a, b, y in zip(seqs[0::2], seqs[1::2], labels)]  # (chosen, rejected)
    data = Dataset.from_dict({"chosen_ids": [[int(i) for i in c] for c, _ in pairs],
                              "rejected_ids": [[int(i) for i in r] for _, r in pairs]})
    folder = resolve(cfg.model.path)
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.pad_token = learner.tokenizer.id_to_token(learner.pad_id)  # prefkit's padding id (TRL's default: EOS)
    n_layers = json.loads((folder / "config.json").read_text())["num_hidden_layers"]
    lora = LoraConfig(task_type="SEQ_CLS", r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                      target_modules=list(lc.target_modules), modules_to_save=["score"],
                      layers_to_transform=list(range(lc.skip_first_layers, n_layers)))
    out = args.work / "trl"
    steps = math.ceil(math.ceil(len(rows) / tc.batch_size) / tc.grad_accum)  # prefkit's count of its warmup steps
    targs = RewardConfig(
        output_dir=str(out), num_train_epochs=tc.epochs, per_device_train_batch_size=tc.batch_size,
        gradient_accumulation_steps=tc.grad_accum, learning_rate=tc.learning_rate, weight_decay=tc.weight_decay,
        lr_scheduler_type="cosine", warmup_steps=round(tc.warmup_ratio * steps), max_grad_norm=tc.max_grad_norm,
        seed=tc.seed, bf16=False, gradient_checkpointing=False, disable_dropout=False,
        max_length=cfg.template.max_length,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0)

    class HeadRate(RewardTrainer):
        """RewardConfig has one learning rate: the head's own through Trainer's create_optimizer (its documented
        hook), with the optimizer class and settings Trainer picks (fused AdamW), in prefkit's two groups."""

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                model = model or self.model
                cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
                named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
                head = [p for n, p in named if ".score." in f".{n}."]
                body = [p for n, p in named if ".score." not in f".{n}."]
                self.optimizer = cls([{"params": body, "weight_decay": self.args.weight_decay},
                                      {"params": head, "weight_decay": self.args.weight_decay,
                                       "lr": tc.head_learning_rate or tc.learning_rate}], **kwargs)
            return self.optimizer

    trainer = HeadRate(model=str(folder), args=targs, train_dataset=data, processing_class=tok, peft_config=lora)
    start = time.time()
    trainer.train()
    end = time.time()
    trainer.save_model(str(out / "model"))
    done = time.time()
    rss = peak_rss_gib()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    rates = [g["initial_lr"] for g in trainer.optimizer.param_groups]
    model = trainer.model.eval()
    valid = table(args.work, "valid", cfg)
    scores = loop_scores(model, learner.head.sequences(learner.renderer, valid), learner.pad_id, 2 * tc.batch_size)
    p = pair_probs(scores, ties=False)
    np.save(args.work / "trl_valid_probs.npy", p)
    return {**phases(args.t0, start, end, done), "peak RSS GiB": round(rss, 2), **held_out(p, valid.frame["label"]),
            "trainable parameters": trainable(model), "learning rates": rates, "warmup steps": targs.warmup_steps,
            **loss_ends(losses), "trl": trl.__version__, "threads": torch.get_num_threads()}


def score_prefkit(args) -> dict:
    import numpy as np

    from prefkit.rm.learners import load_learner
    from prefkit.rm.run import Run

    t = time.perf_counter()
    run = Run.open(args.work / "prefkit")
    learner = load_learner(run.config, run.models[0])
    load = time.perf_counter() - t
    rows = table(args.work, "valid", run.config)
    t = time.perf_counter()
    probs, stats = learner.predict(rows)
    secs = time.perf_counter() - t
    np.save(args.work / "prefkit_valid_probs.npy", probs)
    return {"load s": round(load, 2), "score s": round(secs, 2), "rows/s": round(len(rows) / secs, 2),
            "peak RSS GiB": round(peak_rss_gib(), 2), **held_out(probs, rows.frame["label"]), "predictor": stats}


def _export_sequences(args):
    """The held-out rows' ids as the export's renderer gives them (A, B, A, B, ...) and its settings."""
    from prefkit.rm.export import RENDER_FILE, renderer

    folder = args.work / "export"
    r = renderer(folder)
    rows = table(args.work, "valid")
    a, b = r.render_response(rows, "a").input_ids, r.render_response(rows, "b").input_ids
    return [list(map(int, s)) for pair in zip(a, b) for s in pair], json.loads((folder / RENDER_FILE).read_text())


def score_plain(args) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = args.work / "export"
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    load = time.perf_counter() - t
    t = time.perf_counter()
    seqs, settings = _export_sequences(args)
    rendered = time.perf_counter() - t
    out = []
    with torch.inference_mode():
        for i in range(0, len(seqs), args.batch):  # what a plain loop does: pad a batch, run it
            batch = tok.pad({"input_ids": seqs[i:i + args.batch]}, return_tensors="pt")
            out.append(model(**batch).logits.float().numpy())
    secs = time.perf_counter() - t
    probs = pair_probs(np.concatenate(out), ties="tie" in settings["labels"])
    np.save(args.work / "plain_valid_probs.npy", probs)
    return {"load s": round(load, 2), "score s": round(secs, 2), "render s": round(rendered, 2),
            "rows/s": round(len(seqs) / 2 / secs, 2), "peak RSS GiB": round(peak_rss_gib(), 2)}


def score_pipeline(args) -> dict:
    import numpy as np
    from transformers import AutoTokenizer, pipeline

    folder = args.work / "export"
    seqs, settings = _export_sequences(args)
    tok = AutoTokenizer.from_pretrained(str(folder))
    texts = [tok.decode(s) for s in seqs]  # the rendered text: what a pipeline user hands it
    same = np.array([tok(x, add_special_tokens=False)["input_ids"] == s for x, s in zip(texts, seqs)])
    t = time.perf_counter()
    pipe = pipeline("text-classification", model=str(folder), tokenizer=tok, device="cpu")
    load = time.perf_counter() - t
    t = time.perf_counter()
    got = pipe(texts, batch_size=args.batch, function_to_apply="none", top_k=None, add_special_tokens=False)
    secs = time.perf_counter() - t
    names = settings["outputs"]
    scores = np.array([[{d["label"]: d["score"] for d in one}[n] for n in names] for one in got])
    probs = pair_probs(scores, ties="tie" in settings["labels"])
    np.save(args.work / "pipeline_valid_probs.npy", probs)
    np.save(args.work / "pipeline_same_ids.npy", same.reshape(-1, 2).all(axis=1))
    return {"load s": round(load, 2), "score s": round(secs, 2), "rows/s": round(len(seqs) / 2 / secs, 2),
            "peak RSS GiB": round(peak_rss_gib(), 2), "sequences re-tokenised to other ids": int((~same).sum()),
            "sequences": len(seqs)}


VARIANTS = {"train-prefkit": train_prefkit, "train-trl": train_trl, "score-prefkit": score_prefkit,
            "score-plain": score_plain, "score-pipeline": score_pipeline}


# ------------------------------------------------------------------------------------------------ the driver

def prepare(work: Path, data: Path, rows: int, valid_rows: int) -> dict:
    """Fold 0's training and held-out rows (prefkit's own folds), the first `rows` / `valid_rows` of each, written
    as parquet and read back as the variants read them: the same ids, labels and A/B order."""
    import numpy as np

    from prefkit.data.arena import write_parquet
    from prefkit.data.folds import assign_folds
    from prefkit.recipes.common import load_labelled

    cfg = config(work, [f"data.train={data}"])
    whole = load_labelled(str(data), cfg)
    folds = assign_folds(whole, cfg.cv.n_splits, cfg.cv.seed)
    parts = {"train": whole.subset(folds != 0), "valid": whole.subset(folds == 0)}
    counts = {}
    for name, cap in (("train", rows), ("valid", valid_rows)):
        part = parts[name]
        if cap:
            part = part.subset(np.arange(len(part)) < cap)
        write_parquet(part, work / f"{name}.parquet")
        back = table(work, name).frame
        for column in ("id", "label"):
            assert list(back[column]) == list(part.frame[column]), f"{name}.parquet: {column} changed on the way"
        counts[name] = {"rows": len(part), "of": len(parts[name])}
    return counts


def run(variant: str, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--work", str(args.work),
           "--batch", str(args.batch), "--t0", f"{time.time():.6f}"]
    print(f"$ {variant}", flush=True)
    with open(args.work / f"{variant}.log", "w") as log:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"{variant} failed (exit {r.returncode}); see {args.work / f'{variant}.log'}")
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(json.dumps({k: v for k, v in result.items() if k not in ("losses", "predictor")}), flush=True)
    return result


def drive(args) -> None:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from harness import write_results

    try:
        import trl  # noqa: F401
    except ImportError:
        raise SystemExit(f"TRL is not installed here: python3 benchmarks/vs_peers.py --setup, then run "
                         f"{VENV / 'bin' / 'python'} benchmarks/vs_peers.py") from None
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: this benchmark reads HH-RLHF from ../shared/data")
    if args.work.exists():
        if any(args.work.iterdir()) and not (args.work / MARK).exists():
            raise SystemExit(f"{args.work} holds other files: give another --work")
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    (args.work / MARK).write_text("made by benchmarks/vs_peers.py; emptied by its next run\n")
    t0 = time.perf_counter()
    counts = prepare(args.work, args.data, args.rows, args.valid_rows)
    res = {v: run(v, args) for v in ("train-prefkit", "train-trl", "score-prefkit")}
    t = time.perf_counter()
    export = [sys.executable, "-c", "import sys; from prefkit.cli import main; sys.exit(main())", "export",
              "--run", str(args.work / "prefkit"), "--out", str(args.work / "export")]
    with open(args.work / "export.log", "w") as log:
        if subprocess.run(export, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode:
            raise SystemExit(f"prefkit export failed; see {args.work / 'export.log'}")
    export_s = time.perf_counter() - t
    res |= {v: run(v, args) for v in ("score-plain", "score-pipeline")}

    probs = {v: np.load(args.work / f"{v}_valid_probs.npy") for v in ("prefkit", "plain", "pipeline")}
    same = np.load(args.work / "pipeline_same_ids.npy")
    diff = {v: float(np.abs(p - probs["prefkit"]).max()) for v, p in probs.items()}
    same_diff = float(np.abs(probs["pipeline"][same] - probs["prefkit"][same]).max()) if same.any() else None
    tp, tt = res["train-prefkit"], res["train-trl"]
    sp, sl, sq = res["score-prefkit"], res["score-plain"], res["score-pipeline"]
    n_train, n_valid = counts["train"]["rows"], counts["valid"]["rows"]
    rows = [
        {"job": "train", "variant": "prefkit", "rows": n_train, **{k: tp[k] for k in tp if k != "command"},
         "accuracy": sp["accuracy"], "log loss": sp["log loss"], "speed vs peer": round(tt["wall s"] / tp["wall s"], 3),
         "loop speed vs peer": round(tt["loop s"] / tp["loop s"], 3), "command": tp["command"]},
        {"job": "train", "variant": "trl RewardTrainer", "rows": n_train, **tt},
        {"job": "score", "variant": "prefkit predictor", "rows": n_valid, **sp, "max |dp| vs predictor": 0.0,
         "speed vs peer": round(sp["rows/s"] / sl["rows/s"], 3)},
        {"job": "score", "variant": f"plain loop (batch {args.batch})", "rows": n_valid, **sl,
         "max |dp| vs predictor": f"{diff['plain']:.2e}"},
        {"job": "score", "variant": f"pipeline (batch {args.batch})", "rows": n_valid, **sq,
         "max |dp| vs predictor": f"{diff['pipeline']:.2e}",
         "max |dp| where its ids are prefkit's": None if same_diff is None else f"{same_diff:.2e}"},
    ]
    smoke = bool(args.rows or args.valid_rows)
    cmd = "python benchmarks/vs_peers.py" + "".join(f" {a}" for a in sys.argv[1:])
    intro = (("**Smoke run** (a few rows: it shows that the script works, not how the trainers compare). "
              if smoke else "")
             + f"`{cmd}` (in {VENV.relative_to(ROOT)}), {time.perf_counter() - t0:.0f} s in all. SmolLM2-135M-Instruct + "
             f"LoRA r 16 on layers 22-29, bt, 128 tokens a sequence, 1 epoch, 8 pairs a step, rate 5e-4 (head 1e-3); "
             f"HH-RLHF helpful-base.test fold 0: {n_train} of {counts['train']['of']} training pairs, {n_valid} of "
             f"{counts['valid']['of']} held-out pairs. Train: wall = start (process start: imports, data, rendering, "
             f"model) + loop (the training loop) + end (prefkit: saving, golden scores and its probes on a sample; "
             f"TRL: saving); peak RSS of that process; first/last loss: mean of the first/last third of the steps "
             f"(prefkit's is its bt head's three-way loss, A, B or tie: ln 3 = 1.10 at equal scores and a zero tie "
             f"term; TRL's the two-way one, ln 2 = 0.69: compare each trainer with itself); "
             f"accuracy and log loss on the held-out pairs (prefkit's through its predictor); speed vs peer = TRL's "
             f"time / prefkit's. Score: prefkit's trained model (`prefkit export`: {export_s:.0f} s), rows/s over "
             f"rendering or tokenising and the forward passes, model loading apart; speed vs peer = prefkit's rows/s "
             f"/ the plain loop's; |dp|: pair probabilities against the predictor's. The pipeline re-tokenises "
             f"the rendered text: {sq['sequences re-tokenised to other ids']} of {sq['sequences']} sequences got "
             f"other ids. Threads: {tt['threads']}. Each variant ran in its own process.")
    write_results("vs_peers", args.out, {"command": cmd, "smoke": smoke, "data": args.data.name,
                                         "cv": "fold 0 of 5 grouped folds, seed 42", "counts": counts,
                                         "export_seconds": round(export_s, 1)}, COLUMNS, rows, intro)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help=f"make {VENV.relative_to(ROOT)} (prefkit's lock + trl)")
    ap.add_argument("--rows", type=int, default=0, help="keep the first N training pairs of fold 0 (0: all)")
    ap.add_argument("--valid-rows", type=int, default=0, help="keep the first M held-out pairs (0: all)")
    ap.add_argument("--batch", type=int, default=16, help="sequences a batch of the plain loop and the pipeline")
    ap.add_argument("--data", type=Path, default=HH)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "vs_peers")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)  # when the driver started this process
    args = ap.parse_args()
    args.work = args.work.resolve()
    if args.setup:
        setup()
    elif args.variant:
        print(json.dumps(VARIANTS[args.variant](args)))
    else:
        drive(args)


if __name__ == "__main__":
    main()
