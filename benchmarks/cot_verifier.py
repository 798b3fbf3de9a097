"""Best-of-K with a verifier trained on the student's own samples, against self-consistency, on the paper's splits.

    python benchmarks/cot_verifier.py [--datasets all] [--k 8] [--train-questions 100] [--work runs/cot_verifier]
                                      [--verifiers features,minilm,smollm2] [--self-train]

Steps, each kept in --work and reused when the script runs again (a long run stops and goes on; the results
are rewritten after every step that adds figures):
1. the student: SmolLM2-135M-Instruct, LoRA SFT on the teacher's right rationales of all six training splits
   (`prefkit cot sft sft/smollm2_135m_cpu cot.dataset=all`, as benchmarks/cot_students.py; reused from --student);
2. its greedy answers (K=1, temperature 0) and K samples (temperature 0.7, top-p 0.95, seed 0) of every test
   question, and K samples of the first --train-questions training questions of each dataset;
3. same-source pairs from the training samples (`prefkit cot verifier-pairs`, 20% of the training questions
   held out for calibration and for choosing the verifier);
4. verifiers trained on those pairs with prefkit's own reward-model core, cross-validated by question
   (`prefkit.recipes.cv`, so every training question gets an out-of-fold score): the feature baseline with its
   step checks (`features.checks=[arithmetic,dates,swaps]`: each "x op y = z" recomputed, dates held to the
   calendar, swaps replayed; benchmarks/step_checks.py), MiniLM (bt head), SmolLM2-135M with LoRA and a bt score head
   (the student's own backbone, as Cobbe et al. 2021 initialise the verifier from the generator);
5. `prefkit cot rerank` with each verifier, and with the blend of those trained so far (a logistic regression on
   their out-of-fold scores, one a dataset), each also with the answers' vote share as a column (`--votes`:
   the verifier and self-consistency in one probability); the headline is the one with the lowest log loss of P(right) on the held-out
   *training* samples (cross-fitted; never chosen on test);
6. --self-train: the student fine-tuned again from its base weights on the teacher's rationales plus its own
   right training samples (STaR-style rejection sampling, `cot.samples`), then greedy and best-of-K again.

Every sample file is also kept gzipped in results/cot_verifier_samples/ (committed): sampling is the long part
(about 45 s a batch of 32 sequences on 2 cores), and a later session reuses what an earlier one sampled. The
student is trained again in each fresh checkout (seeded), so new datasets' samples come from the same recipe.

Results: results/cot_verifier.{json,md}; one object a dataset with `first`, `majority`, `verifier`,
`weighted`, `pass_at_k`, `k`, `n` (accuracy as fractions), and pooled `auc` and `same_source_gold`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, write_results  # noqa: E402

# Ho et al. 2023, Table 1, the 0.3B (ada) student with diverse reasoning, accuracy in %.
PAPER_DIVERSE = {"singleeq": 9.21, "addsub": 10.08, "multiarith": 23.89, "svamp": 14.33, "date_understanding": 58.56,
                 "tracking_shuffled_objects": 61.78}
VERIFIERS = {
    "features": ("rm/features_baseline", ["features.checks=[arithmetic,dates,swaps]"]),
    "minilm": ("rm/minilm_cpu", ["model.head=bt", "template.max_length=256", "train.epochs=3"]),
    # 3 folds and 192 tokens (question ~40, rationale 60-130 of SmolLM2's tokens): each fold model scores every
    # test sample, the cost of this verifier on 2 cores
    "smollm2": ("rm/smollm2_135m_cpu", ["cv.n_splits=3", "template.max_length=192"]),
}
COLUMNS = ["dataset", "n", "k", "greedy", "first", "majority", "verifier", "weighted", "pass@K", "verifier used",
           "auc", "same-source gold", "paper 0.3B diverse", "self-trained greedy",
           "self-trained weighted", "student weighted, same K"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--train-questions", type=int, default=100, help="training questions sampled a dataset")
    ap.add_argument("--test-questions", type=int, default=None, help="only the first N test questions (default: all)")
    ap.add_argument("--work", default="runs/cot_verifier")
    ap.add_argument("--student", default=None, help="a trained student run (default: train one in --work)")
    ap.add_argument("--verifiers", default="features,minilm,smollm2")
    ap.add_argument("--self-train", action="store_true")
    ap.add_argument("--self-train-k", type=int, default=None,
                    help="K of the self-trained student's samples (default --k); the student's own first K compare")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--samples-cache", default=str(HERE / "results" / "cot_verifier_samples"),
                    help="gzipped copies of every sample file (committed), reused by a later run: a session that "
                         "starts afresh samples only what no earlier one did")
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.cot.datasets import names
    from prefkit.recipes import cot_rerank, cot_sample, cot_verifier_pairs, cv
    from prefkit.recipes import cot_sft as sft
    from prefkit.shipped import config_path

    work = Path(args.work)
    datasets = names(args.datasets)
    seconds: dict[str, float] = json.loads((work / "seconds.json").read_text()) if (work / "seconds.json").exists() else {}

    def timed(key: str, fn):
        t = time.perf_counter()
        out = fn()
        if key not in seconds:
            seconds[key] = round(time.perf_counter() - t, 1)
            (work / "seconds.json").write_text(json.dumps(seconds, indent=1))
        return out

    work.mkdir(parents=True, exist_ok=True)
    student = Path(args.student) if args.student else work / "student"
    if not args.student:
        cfg = load_config(config_path("sft/smollm2_135m_cpu"), ["cot.dataset=all", f"output_dir={student}"])
        timed("sft", lambda: sft.main(cfg, resume=True))

    def sample(run: Path, tag: str, split: str, d: str, k: int, limit: int | None = None) -> Path:
        out = samples_path(work, tag, split, k, limit, d)
        t, p = (0.0, 1.0) if k == 1 else (0.7, 0.95)
        cached = Path(args.samples_cache) / out.relative_to(work).with_suffix(".jsonl.gz")
        if not out.exists() and cached.exists():  # sampled by an earlier session with the same settings
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(gzip.decompress(cached.read_bytes()))
        if not out.exists():
            timed(f"{tag}/{split}_k{k}/{d}", lambda: cot_sample.main(run, out, split, k, t, p, 0, limit, [f"cot.dataset={d}"]))
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(gzip.compress(out.read_bytes(), mtime=0))
        return out

    results: dict = {"k": args.k, "train_questions": args.train_questions, "test_questions": args.test_questions or "all",
                     "datasets": {}, "seconds": seconds}
    for d in datasets:  # the test samples first: the greedy and self-consistency columns need no verifier
        sample(student, "student", "test", d, 1, args.test_questions)  # greedy on the questions sampled
        sample(student, "student", "test", d, args.k, args.test_questions)
        sample(student, "student", "train", d, args.k, args.train_questions)
        _report(results, work, datasets, args, rerank=None)

    done = [d for d in datasets if (samples_path(work, "student", "train", args.k, args.train_questions, d)).exists()]
    pairs = work / "pairs"
    if (pairs / "summary.json").exists() and json.loads((pairs / "summary.json").read_text())["datasets"].keys() != set(done):
        import shutil  # more datasets sampled since: new pairs, so new verifiers and reranks

        for stale in ("pairs", "verifiers", "rerank", "rerank_self_trained", "self_trained"):
            shutil.rmtree(work / stale, ignore_errors=True)
    if not (pairs / "summary.json").exists():
        for key in [k for k in seconds if k.startswith(("verifier/", "rerank/", "self_train"))]:
            del seconds[key]  # timings of verifiers trained on earlier pairs: they are trained again
        cot_verifier_pairs.main([str(samples_path(work, "student", "train", args.k, args.train_questions, d)) for d in done], pairs)
    reranks = {}
    trained = []
    for name in args.verifiers.split(","):
        config, over = VERIFIERS[name]
        run = work / "verifiers" / name
        cfg = load_config(config_path(config), [*over, f"data.train={pairs / 'train.csv'}", f"output_dir={run}"])
        timed(f"verifier/{name}", lambda: cv.main(cfg, name, resume=True))  # out of fold: every training question held out once
        trained.append(name)
        for label, members in ([(name, [name])] + ([("+".join(trained), list(trained))] if len(trained) > 1 else [])):
            for votes in (False, True):  # each also with the answers' vote share in its calibration
                tag = label + ("+votes" if votes else "")
                out = work / "rerank" / tag
                if not (out / "rerank.json").exists():
                    timed(f"rerank/{tag}", lambda: cot_rerank.main(
                        [work / "verifiers" / m for m in members], pairs,
                        [str(samples_path(work, "student", "test", args.k, args.test_questions, d)) for d in done], out,
                        votes=votes))
                reranks[tag] = json.loads((out / "rerank.json").read_text())
        _report(results, work, datasets, args, rerank=reranks)

    if args.self_train:
        st = work / "self_trained"
        cfg = load_config(config_path("sft/smollm2_135m_cpu"), [
            "cot.dataset=all", f"output_dir={st}",
            f"cot.samples=[{','.join(str(samples_path(work, 'student', 'train', args.k, args.train_questions, d)) for d in done)}]"])
        timed("self_train_sft", lambda: sft.main(cfg, resume=True))
        kk = args.self_train_k or args.k
        for d in done:
            sample(st, "self_trained", "test", d, 1, args.test_questions)
        for d in done:
            sample(st, "self_trained", "test", d, kk, args.test_questions)
        best = chosen(reranks)
        if best:
            # the same verifier reranks the self-trained student's K samples, and the first K of the student's own
            # (samples 0..K-1 of its K=args.k draw: a K-sample draw of the same sampler), so the two compare at one K
            members = [work / "verifiers" / m for m in best.split("+") if m != "votes"]
            for tag in ("self_trained", "student"):
                out = work / f"rerank_{tag}_k{kk}" / best
                if (out / "rerank.json").exists():
                    continue
                files = []
                for d in done:
                    src = samples_path(work, tag, "test", kk if tag == "self_trained" else args.k, args.test_questions, d)
                    if tag == "student" and kk != args.k:
                        cut = work / "student" / f"test_k{args.k}_first{kk}" / src.name
                        cut.parent.mkdir(parents=True, exist_ok=True)
                        cut.write_text("".join(x + "\n" for x in src.read_text().splitlines() if json.loads(x)["sample"] < kk))
                        src = cut
                    files.append(str(src))
                timed(f"rerank_{tag}_k{kk}", lambda: cot_rerank.main(members, pairs, files, out,
                                                                    votes=best.endswith("+votes"), other_k=kk != args.k))
        _report(results, work, datasets, args, rerank=reranks)
    return 0


def chosen(reranks: dict | None) -> str | None:
    """The headline verifier (one, or a blend "a+b"): the lowest log loss of P(right) on the held-out training
    samples (out of fold, calibration cross-fitted; `prefkit cot rerank`), never a test figure."""
    return min(reranks, key=lambda n: reranks[n]["held_out"]["logloss"]) if reranks else None


def samples_path(work: Path, tag: str, split: str, k: int, limit: int | None, dataset: str) -> Path:
    """Where one sampling step's rows live: the question limit is in the name, so a run with more questions
    never reuses a file sampled on fewer (the batches, and so the seeded samples, differ)."""
    return work / tag / (f"{split}_k{k}" + ("" if limit is None else f"_n{limit}")) / f"{dataset}.jsonl"


def _accuracy(path: Path, questions: set | None = None) -> tuple[float | None, int]:
    """Accuracy of each question's first sample, over `questions` (default: every question in the file)."""
    if not path.exists():
        return None, 0
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    first = {}
    for r in rows:
        if questions is None or r["index"] in questions:
            first.setdefault(r["index"], r["correct"])
    return sum(first.values()) / len(first), len(first)


def _report(results: dict, work: Path, datasets: list[str], args, rerank: dict | None) -> None:
    from prefkit.cot import best_of_k
    from prefkit.cot.sampling import read_samples

    k = args.k
    best = chosen(rerank)
    table = []
    for d in datasets:
        path = samples_path(work, "student", "test", k, args.test_questions, d)
        if not path.exists():
            continue
        asked = {json.loads(x)["index"] for x in path.read_text().splitlines()}
        greedy, n = _accuracy(samples_path(work, "student", "test", 1, args.test_questions, d), asked)  # on the questions sampled
        if greedy is None:
            continue
        entry: dict = {"n": n, "k": k, "greedy": round(greedy, 4)}
        if best and d in rerank[best]["datasets"]:
            x = rerank[best]["datasets"][d]
            entry.update({m: x[m] for m in ("first", "majority", "verifier", "weighted", "pass_at_k")})
            entry.update({f"{m}_ci": x[f"{m}_ci"] for m in best_of_k.METHODS})
            entry.update({"verifier_name": best, "auc": x["auc"], "same_source_gold": x["same_source_gold"],
                          "by_verifier": {name: {m: r["datasets"][d][m] for m in (*best_of_k.METHODS, "auc", "same_source_gold")}
                                          for name, r in rerank.items() if d in r["datasets"]}})
        else:  # no verifier yet: the methods that need none
            rows = read_samples(path)
            import numpy as np

            x = best_of_k.rerank(rows, np.zeros(len(rows)))
            entry.update({m: x[m] for m in ("first", "majority", "pass_at_k")})
        sg, _ = _accuracy(samples_path(work, "self_trained", "test", 1, args.test_questions, d), asked)
        if sg is not None:
            entry["self_trained_greedy"] = round(sg, 4)
        kk = args.self_train_k or k
        for tag, key in (("self_trained", "self_trained"), ("student", "student_same_k")):
            st = work / f"rerank_{tag}_k{kk}" / (best or "") / "rerank.json"
            if best and st.exists():
                entry[key] = {"k": kk, **{m: json.loads(st.read_text())["datasets"][d][m]
                                          for m in ("first", "majority", "verifier", "weighted", "pass_at_k")}}
        results["datasets"][d] = entry

        def pct(v):
            return None if v is None else round(100 * v, 2)

        table.append({"dataset": d, "n": n, "k": k, "greedy": pct(entry["greedy"]), "first": pct(entry.get("first")),
                      "majority": pct(entry.get("majority")), "verifier": pct(entry.get("verifier")),
                      "weighted": pct(entry.get("weighted")), "pass@K": pct(entry.get("pass_at_k")),
                      "verifier used": entry.get("verifier_name"), "auc": entry.get("auc"),
                      "same-source gold": entry.get("same_source_gold"), "paper 0.3B diverse": PAPER_DIVERSE[d],
                      "self-trained greedy": pct(entry.get("self_trained_greedy")),
                      "self-trained weighted": pct((entry.get("self_trained") or {}).get("weighted")),
                      "student weighted, same K": pct((entry.get("student_same_k") or {}).get("weighted"))})
    if best:
        results["auc"] = rerank[best]["pooled"]["auc"]
        results["same_source_gold"] = rerank[best]["pooled"]["same_source_gold"]
        results["verifier"] = best
        results["verifiers"] = {n: {"held_out": {m: r["held_out"][m] for m in ("auc", "same_source_gold", "logloss", "n")},
                                    "calibration": r["calibration"], "pooled": {m: r["pooled"][m] for m in
                                    ("auc", "same_source_gold", "logloss", "ece", *best_of_k.METHODS, "pass_at_k")}}
                                for n, r in rerank.items()}
    write_results("cot_verifier", Path(args.out), results, COLUMNS, table, INTRO.format(k=k, n=args.train_questions,
                                                                              tq=f"the first {args.test_questions}" if args.test_questions else "all"))


INTRO = """
Accuracy (%) on each dataset's test split (the paper's split; {tq} of its questions). Student: SmolLM2-135M-Instruct after Fine-tune-CoT
on all six training splits. greedy: temperature 0. The other columns choose among K={k} samples (temperature 0.7,
top-p 0.95, seed 0): first, majority (self-consistency), verifier (its best-scored sample), weighted (the answer
with the largest sum of calibrated P(right)); pass@K: some sample is right. The verifier is trained on pairs of a
right and a wrong sample of the same training question (the first {n} training questions of each dataset), cross-validated
by question, and chosen (one verifier or a blend of them) by the log loss of P(right) on out-of-fold training samples. Written by benchmarks/cot_verifier.py.
"""

if __name__ == "__main__":
    sys.exit(main())
