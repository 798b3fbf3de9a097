"""Best-of-K with a verifier trained on the student's own samples, against self-consistency, on the paper's splits.

    python benchmarks/cot_verifier.py [--datasets all] [--k 8] [--train-questions 100] [--work runs/cot_verifier]
                                      [--verifiers features,minilm,smollm2] [--self-train] [--double-k svamp,addsub]
    (--verifiers from: features, minilm, smollm2, smollm2_judge, logprob)

Steps, each kept in --work and reused when the script runs again (a long run stops and goes on; the results
are rewritten after every step that adds figures):
1. the student: SmolLM2-135M-Instruct, LoRA SFT on the teacher's right rationales of all six training splits
   (`prefkit cot sft sft/smollm2_135m_cpu cot.dataset=all`, as benchmarks/cot_students.py; reused from --student);
2. its greedy answers (K=1, temperature 0) and K samples (temperature 0.7, top-p 0.95, seed 0) of every test
   question, and K samples of the first --train-questions training questions of each dataset; the datasets of
   --double-k get 2K samples a test question, and everything at K reads their first K (`best_of_k.first_k`), so
   that weighted@K compares with majority@2K (about the same compute) on the same draws;
3. same-source pairs from the training samples (`prefkit cot verifier-pairs`, 20% of the training questions
   held out for calibration and for choosing the verifier);
4. verifiers trained on those pairs with prefkit's own reward-model core, cross-validated by question
   (`prefkit.recipes.cv`, so every training question gets an out-of-fold score): the feature baseline with its
   step checks (`features.checks=[arithmetic,dates,swaps]`: each "x op y = z" recomputed, dates held to the
   calendar, swaps replayed; benchmarks/step_checks.py), MiniLM (bt head), SmolLM2-135M with LoRA and a bt score head
   (the student's own backbone, as Cobbe et al. 2021 initialise the verifier from the generator); not by default:
   `smollm2_judge`, the same backbone as a judge answering with one token (`model.head=lm_tokens`, " A" or " B":
   the GenRM shape, Zhang et al. 2024), and `logprob`, each sample's mean token log-probability under the student
   itself (`prefkit.cot.mean_logprob`: the generator's own confidence, trained on nothing, so its scores of the
   training samples are held out as they are; timed as `verifier/logprob` for the training samples and
   `score/logprob` for the test samples; the scores kept in verifiers/logprob/);
5. `prefkit cot rerank` with each verifier, and with the blend of those trained so far (a logistic regression on
   their out-of-fold scores, one a dataset), each also with the answers' vote share as a column (`--votes`:
   the verifier and self-consistency in one probability); the headline is the one with the lowest log loss of P(right) on the held-out
   *training* samples (cross-fitted; never chosen on test);
6. --self-train: the student fine-tuned again from its base weights on the teacher's rationales plus its own
   right training samples (STaR-style rejection sampling, `cot.samples`), then greedy and best-of-K again.

Every sample file is also kept gzipped in results/cot_verifier_samples/ (committed): sampling is the long part
(about 45 s a batch of 32 sequences on 2 cores), and a later session reuses what an earlier one sampled. The
student is trained again in each fresh checkout (seeded), so new datasets' samples come from the same recipe.
An unfinished sampling survives too: `--keep-partials` (run with the same --work before a session ends) keeps each
`<file>.partial` as `<file>.partial.jsonl.gz` there, and the next run resumes it where it stopped (`cot sample`
refuses rows of other settings, the student's path among them: keep --work as it was).

Results: results/cot_verifier.{json,md}; one object a dataset with `first`, `majority`, `verifier`,
`weighted`, `pass_at_k`, `k`, `n` (accuracy as fractions, each with `<method>_ci`, its 95% bootstrap interval
over questions), `diff` (the paired differences weighted - majority, weighted - first, verifier - majority with
their intervals: one resample of questions for both methods) and, for a --double-k dataset, `at_2k` (majority@2K
and weighted@K - majority@2K); `pooled` (every dataset's questions as one set), pooled `at_2k`, `auc` and
`same_source_gold`; `verifier_cost`: seconds of the chosen verifier scoring the test samples against seconds of
sampling them (a sample each), None where a step was not timed in this work folder (samples reused from the
cache, or resumed after a stop: only the last part's seconds are known).
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
    # (adapters on the last 8 layers, as the committed figures were measured: the shipped config has 16 since)
    "smollm2": ("rm/smollm2_135m_cpu", ["cv.n_splits=3", "template.max_length=192", "lora.skip_first_layers=22"]),
    # the GenRM shape: the same backbone reads the question and both samples in one sequence and answers " A" or
    # " B" (twice the tokens of a bt sequence, so 384); not symmetric, so trained in a random A/B order, and scored
    # against the empty anchor in both orders (predict.swap_tta, on by default: verifier_scores)
    "smollm2_judge": ("rm/smollm2_135m_cpu", ["model.head=lm_tokens", "cv.n_splits=3", "template.max_length=384",
                                              "train.swap_augment=random", "lora.skip_first_layers=22"]),
}
# verifiers that train nothing: a score of each sample read off the student itself, one scorer of `cot rerank`
UNTRAINED = {"logprob"}
COLUMNS = ["dataset", "n", "k", "greedy", "first", "majority", "verifier", "weighted", "pass@K", "verifier used",
           "auc", "same-source gold", "paper 0.3B diverse", "self-trained greedy",
           "self-trained weighted", "student weighted, same K", "weighted - majority", "weighted - first",
           "verifier - majority", "majority@2K", "weighted@K - majority@2K"]


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
    ap.add_argument("--double-k", default="", help="datasets whose test questions get 2K samples (majority@2K "
                    "against weighted@K; their K-sample figures read the first K samples of each question)")
    ap.add_argument("--self-train-k", type=int, default=None,
                    help="K of the self-trained student's samples (default --k); the student's own first K compare")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--samples-cache", default=str(HERE / "results" / "cot_verifier_samples"),
                    help="gzipped copies of every sample file (committed), reused by a later run: a session that "
                         "starts afresh samples only what no earlier one did")
    ap.add_argument("--keep-partials", action="store_true",
                    help="copy every unfinished sample file of --work (<file>.partial) into --samples-cache and "
                         "stop: a later session, on another machine, resumes those samplings where they stopped")
    args = ap.parse_args()
    if args.keep_partials:
        for kept in keep_partials(Path(args.samples_cache), Path(args.work)):
            print(f"kept {kept}")
        return 0
    unknown = [n for n in args.verifiers.split(",") if n not in VERIFIERS and n not in UNTRAINED]
    if unknown:
        ap.error(f"--verifiers: unknown {unknown[0]!r} (known: {', '.join([*VERIFIERS, *sorted(UNTRAINED)])})")

    from prefkit.config import load_config
    from prefkit.cot import best_of_k
    from prefkit.cot.datasets import names
    from prefkit.cot.mean_logprob import MeanLogProb
    from prefkit.cot.sampling import read_samples
    from prefkit.cot.verifier_pairs import samples_of
    from prefkit.io import write_text
    from prefkit.recipes import cot_rerank, cot_sample, cot_verifier_pairs, cv
    from prefkit.recipes import cot_sft as sft
    from prefkit.shipped import config_path

    work = Path(args.work)
    datasets = names(args.datasets)
    args.double_k = names(args.double_k) if args.double_k.strip() else []
    if set(args.double_k) - set(datasets):
        ap.error(f"--double-k {','.join(args.double_k)}: {sorted(set(args.double_k) - set(datasets))[0]} is not among --datasets")
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

    cache = Path(args.samples_cache)

    def sample(run: Path, tag: str, split: str, d: str, k: int, limit: int | None = None) -> Path:
        out = samples_path(work, tag, split, k, limit, d)
        t, p = (0.0, 1.0) if k == 1 else (0.7, 0.95)
        cached = cache_path(cache, work, out)
        if not out.exists() and cached.exists():  # sampled by an earlier session with the same settings
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(gzip.decompress(cached.read_bytes()))
        restore_partial(cache, work, out)
        if not out.exists():
            # keyed by the file (its question limit in the name); a resumed sampling's seconds are the last part's
            # only, kept apart so that no cost is figured from them
            key = sampling_key(work, out) + (" (resumed)" if out.with_name(out.name + ".partial").exists() else "")
            timed(key, lambda: cot_sample.main(run, out, split, k, t, p, 0, limit, [f"cot.dataset={d}"]))
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(gzip.compress(out.read_bytes(), mtime=0))
        cache_path(cache, work, out, partial=True).unlink(missing_ok=True)  # finished: not needed
        return out

    results: dict = {"k": args.k, "train_questions": args.train_questions, "test_questions": args.test_questions or "all",
                     "datasets": {}, "seconds": seconds}
    for d in datasets:  # the test samples first: the greedy and self-consistency columns need no verifier
        sample(student, "student", "test", d, 1, args.test_questions)  # greedy on the questions sampled
        at_k, drawn = test_files(work, args, d)
        sample(student, "student", "test", d, 2 * args.k if d in args.double_k else args.k, args.test_questions)
        if at_k != drawn and not at_k.exists():  # a --double-k dataset: its first K samples are its K-sample file
            rows = best_of_k.first_k(read_samples(drawn), args.k)
            write_text(at_k, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        sample(student, "student", "train", d, args.k, args.train_questions)
        _report(results, work, datasets, args, rerank=None)

    done = [d for d in datasets if (samples_path(work, "student", "train", args.k, args.train_questions, d)).exists()]
    pairs = work / "pairs"
    if (pairs / "summary.json").exists() and json.loads((pairs / "summary.json").read_text())["datasets"].keys() != set(done):
        import shutil  # more datasets sampled since: new pairs, so new verifiers and reranks

        for stale in ("pairs", "verifiers", "rerank", "rerank_self_trained", "self_trained"):
            shutil.rmtree(work / stale, ignore_errors=True)
    if not (pairs / "summary.json").exists():
        for key in [k for k in seconds if k.startswith(("verifier/", "score/", "rerank/", "self_train"))]:
            del seconds[key]  # timings of verifiers trained on earlier pairs: they are trained again
        cot_verifier_pairs.main([str(samples_path(work, "student", "train", args.k, args.train_questions, d)) for d in done], pairs)
    reranks = {}
    trained = []
    tests = [str(test_files(work, args, d)[0]) for d in done]

    def verifier(name: str):
        """What `cot rerank` reads a verifier's scores from: its run folder, or the scorer of an untrained one (the
        student that drew the samples: `logprob` scores the self-trained student's samples by it too, the scorer
        its calibration was fitted for)."""
        return MeanLogProb(student, work / "verifiers" / name) if name in UNTRAINED else work / "verifiers" / name

    for name in args.verifiers.split(","):
        if name in UNTRAINED:
            # nothing is trained on the pairs: the scores of every training sample (those the calibration is fitted
            # on) are held out as they are; timed as the trained verifiers' cv is, and kept (verifiers/logprob/)
            train_rows = samples_of([str(samples_path(work, "student", "train", args.k, args.train_questions, d)) for d in done])
            timed(f"verifier/{name}", lambda: verifier(name).held_out(train_rows))
        else:
            config, over = VERIFIERS[name]
            run = work / "verifiers" / name
            cfg = load_config(config_path(config), [*over, f"data.train={pairs / 'train.csv'}", f"output_dir={run}"])
            timed(f"verifier/{name}", lambda: cv.main(cfg, name, resume=True))  # out of fold: every training question held out once
        trained.append(name)
        if not (work / "rerank" / name / "rerank.json").exists():  # else an earlier run scored them (kept, untimed)
            # the test samples scored here, timed alone (the verifier's cost); `cot rerank` reads the kept scores
            test_rows = samples_of(tests)
            timed(f"score/{name}", lambda: cot_rerank.scores(verifier(name), test_rows, held_out=False))
        for label, members in ([(name, [name])] + ([("+".join(trained), list(trained))] if len(trained) > 1 else [])):
            for votes in (False, True):  # each also with the answers' vote share in its calibration
                tag = label + ("+votes" if votes else "")
                out = work / "rerank" / tag
                if not (out / "rerank.json").exists():
                    timed(f"rerank/{tag}", lambda: cot_rerank.main(
                        [verifier(m) for m in members], pairs, tests, out, votes=votes))
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
            members = [verifier(m) for m in best.split("+") if m != "votes"]
            for tag in ("self_trained", "student"):
                out = work / f"rerank_{tag}_k{kk}" / best
                if (out / "rerank.json").exists():
                    continue
                files = []
                for d in done:
                    src = (samples_path(work, tag, "test", kk, args.test_questions, d) if tag == "self_trained"
                           else test_files(work, args, d)[0])
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


def test_files(work: Path, args, dataset: str) -> tuple[Path, Path]:
    """(the student's K-sample test file, which every figure at K reads; the file sampled): one file, but for a
    --double-k dataset, sampled at 2K and cut to each question's first K samples (`best_of_k.first_k`)."""
    at_k = samples_path(work, "student", "test", args.k, args.test_questions, dataset)
    if dataset not in args.double_k:
        return at_k, at_k
    drawn = samples_path(work, "student", "test", 2 * args.k, args.test_questions, dataset)
    return drawn.parent.with_name(f"{drawn.parent.name}_first{args.k}") / drawn.name, drawn


def sampling_key(work: Path, path: Path) -> str:
    """The seconds.json key of the sampling that wrote `path`: "sample/student/test_k8/addsub"."""
    return "sample/" + path.relative_to(work).with_suffix("").as_posix()


def verifier_cost(seconds: dict, scoring: list[str], sampling: list[str], scored: int, drawn: int) -> dict:
    """Seconds of the verifier scoring the test samples (`scoring` keys of seconds.json, one a verifier of a
    blend) over seconds of sampling them (`sampling` keys), a sample each (`scored` samples scored, `drawn`
    sampled: more than scored where a --double-k dataset drew 2K); "not timed" (fraction None) where a key is
    missing: samples reused from the cache or resumed after a stop, scores an earlier run kept."""
    missing = [key for key in [*scoring, *sampling] if key not in seconds]
    out = {"scoring_seconds": round(sum(seconds.get(key, 0.0) for key in scoring), 1),
           "sampling_seconds": round(sum(seconds.get(key, 0.0) for key in sampling), 1),
           "samples_scored": scored, "samples_drawn": drawn, "fraction": None, "not_timed": missing}
    if not missing and scored and drawn and out["sampling_seconds"] > 0:
        out["fraction"] = round((out["scoring_seconds"] / scored) / (out["sampling_seconds"] / drawn), 4)
    return out


def cost_line(cost: dict | None) -> str:
    """The verifier's cost, a sentence of the report."""
    if cost is None:
        return "not yet measured (no verifier chosen)"
    if cost["fraction"] is None:
        return "not timed (no seconds in this work folder for " + ", ".join(cost["not_timed"]) + ")"
    return (f"{100 * cost['fraction']:.1f}% of the sampling cost ({cost['scoring_seconds']} s scoring "
            f"{cost['samples_scored']} test samples, {cost['sampling_seconds']} s sampling {cost['samples_drawn']})")


def cache_path(cache: Path, work: Path, out: Path, partial: bool = False) -> Path:
    """Where the gzipped copy of the sample file `out` (of work folder `work`) is kept: the same relative path under
    `cache`; `partial`: the copy of its unfinished `<out>.partial` (--keep-partials)."""
    rel = out.relative_to(work).with_suffix("")
    return cache / rel.with_name(rel.name + (".partial" if partial else "") + ".jsonl.gz")


def keep_partials(cache: Path, work: Path) -> list[Path]:
    """Copy each unfinished sampling of `work` (a `<file>.jsonl.partial` that `prefkit cot sample` appends to a batch
    at a time) into `cache`, gzipped: the questions sampled so far survive the machine. Returns the copies."""
    kept = []
    for partial in sorted(work.rglob("*.jsonl.partial")):
        copy = cache_path(cache, work, partial.with_name(partial.name.removesuffix(".partial")), partial=True)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(gzip.compress(partial.read_bytes(), mtime=0))
        kept.append(copy)
    return kept


def restore_partial(cache: Path, work: Path, out: Path) -> None:
    """Put back an earlier session's unfinished sampling of `out` (kept by --keep-partials) where `cot sample`
    resumes it, unless `out` is finished or a partial file of this work folder is already there (newer than any
    copy). `cot sample` checks each row's sampling settings (the student's path, K, seed, batch size): a copy of
    other settings is refused there, never resumed into a mix."""
    copy = cache_path(cache, work, out, partial=True)
    partial = out.with_name(out.name + ".partial")
    if copy.exists() and not out.exists() and not partial.exists():
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(gzip.decompress(copy.read_bytes()))


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
    import numpy as np

    from prefkit.cot import best_of_k
    from prefkit.cot.sampling import read_samples

    k = args.k
    best = chosen(rerank)
    table = []
    plain: list[dict] = []  # without a verifier: every dataset's K samples, for the pooled first and majority
    right_k: dict[str, str] = {}  # the --double-k datasets' methods at K by question, and their 2K samples: pooled
    rows_2k: list[dict] = []
    weighted_2k = True  # every --double-k dataset reranked by the verifier: weighted@K pooled over them
    scored = drawn = 0
    sampled_keys = []
    greedy_right = 0.0
    for d in datasets:
        path, sampled = test_files(work, args, d)
        if not path.exists() or not sampled.exists():
            continue
        asked = {json.loads(x)["index"] for x in path.read_text().splitlines()}
        greedy, n = _accuracy(samples_path(work, "student", "test", 1, args.test_questions, d), asked)  # on the questions sampled
        if greedy is None:
            continue
        entry: dict = {"n": n, "k": k, "greedy": round(greedy, 4)}
        greedy_right += greedy * n
        if best and d in rerank[best]["datasets"]:
            x = rerank[best]["datasets"][d]
            entry.update({m: x[m] for m in ("first", "majority", "verifier", "weighted", "pass_at_k")})
            entry.update({f"{m}_ci": x[f"{m}_ci"] for m in best_of_k.METHODS})
            entry["diff"] = x.get("diff")  # None from the rerank.json of an older prefkit
            entry.update({"verifier_name": best, "auc": x["auc"], "same_source_gold": x["same_source_gold"],
                          "by_verifier": {name: {m: r["datasets"][d][m] for m in (*best_of_k.METHODS, "auc", "same_source_gold")}
                                          for name, r in rerank.items() if d in r["datasets"]}})
            scored, drawn = scored + n * k, drawn + n * (2 * k if sampled != path else k)
            sampled_keys.append(sampling_key(work, sampled))
        else:  # no verifier yet: the methods that need none
            rows = read_samples(path)
            plain += rows
            x = best_of_k.rerank(rows, np.zeros(len(rows)))
            entry.update({m: x[m] for m in ("first", "majority", "pass_at_k")})
            entry.update({f"{m}_ci": x[f"{m}_ci"] for m in ("first", "majority")})
        if sampled != path:  # a --double-k dataset: majority@2K on all its samples, the K figures on the first K
            rows = read_samples(sampled)
            verified = bool(best and d in rerank[best]["datasets"])
            entry["at_2k"] = at_2k(rows, x.get("right"), k, with_weighted=verified)
            weighted_2k = weighted_2k and verified
            rows_2k += rows
            right_k.update(x.get("right") or {})
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
        table.append(_row(d, entry, k))
    if not results["datasets"]:
        return
    n_all = sum(e["n"] for e in results["datasets"].values())
    if best:  # every dataset's questions as one set (resampled together), as `cot rerank` pools them
        x = rerank[best]["pooled"]
        pooled = {m: x[m] for m in ("n", "k", *best_of_k.METHODS, "pass_at_k")}
        pooled.update({f"{m}_ci": x[f"{m}_ci"] for m in best_of_k.METHODS})
        pooled.update({"diff": x.get("diff"), "verifier_name": best, "auc": x["auc"], "same_source_gold": x["same_source_gold"]})
    else:
        x = best_of_k.rerank(plain, np.zeros(len(plain)))
        pooled = {m: x[m] for m in ("n", "k", "first", "majority", "pass_at_k", "first_ci", "majority_ci")}
    if pooled["n"] == n_all:  # the greedy column over the same questions
        pooled["greedy"] = round(greedy_right / n_all, 4)
    if rows_2k:
        pooled["at_2k"] = at_2k(rows_2k, right_k or None, k, with_weighted=weighted_2k)
        pooled["at_2k"]["datasets"] = [d for d in results["datasets"] if "at_2k" in results["datasets"][d]]
    results["pooled"] = pooled
    table.append(_row("pooled", pooled, k))
    cost = None
    if best:
        results["auc"] = rerank[best]["pooled"]["auc"]
        results["same_source_gold"] = rerank[best]["pooled"]["same_source_gold"]
        results["verifier"] = best
        results["verifiers"] = {n: {"held_out": {m: r["held_out"][m] for m in ("auc", "same_source_gold", "logloss", "n")},
                                    "calibration": r["calibration"], "pooled": {m: r["pooled"][m] for m in
                                    ("auc", "same_source_gold", "logloss", "ece", *best_of_k.METHODS, "pass_at_k")}}
                                for n, r in rerank.items()}
        members = [m for m in best.split("+") if m != "votes"]
        cost = verifier_cost(results["seconds"], [f"score/{m}" for m in members], sampled_keys, scored, drawn)
        cost["training_seconds"] = {m: results["seconds"].get(f"verifier/{m}") for m in members}  # once, not a sample
        results["verifier_cost"] = cost
    write_results("cot_verifier", Path(args.out), results, COLUMNS, table, INTRO.format(
        k=k, n=args.train_questions, tq=f"the first {args.test_questions}" if args.test_questions else "all", cost=cost_line(cost),
        double=DOUBLE.format(k=k, k2=2 * k, km1=k - 1, d=", ".join(args.double_k)) if args.double_k else ""))


def at_2k(rows_2k: list[dict], right_k: dict[str, str] | None, k: int, with_weighted: bool) -> dict:
    """Majority@2K over all 2K samples of each question, and the paired differences weighted@K - majority@2K and
    majority@K - majority@2K, K read off `right_k` (a `rerank` result's "right" on the same questions' first K
    samples; weighted only `with_weighted`: a verifier's)."""
    import numpy as np

    from prefkit.cot import best_of_k

    x = best_of_k.rerank(rows_2k, np.zeros(len(rows_2k)))
    out = {"k": 2 * k, "n": x["n"], "majority": x["majority"], "majority_ci": x["majority_ci"], "pass_at_k": x["pass_at_k"]}
    if right_k:
        at_k = {"right": right_k}
        majority_2k = best_of_k.right_by_question(x, "majority")
        for m in ("weighted", "majority") if with_weighted else ("majority",):
            out[f"{m}_k-majority_2k"] = best_of_k.paired_by_question(best_of_k.right_by_question(at_k, m), majority_2k)
    return out


def _row(name: str, entry: dict, k: int) -> dict:
    """One line of the markdown table: accuracies in %, differences in points with their 95% interval."""
    def pct(v):
        return None if v is None else round(100 * v, 2)

    def points(x: dict | None) -> str:
        return "" if not x else f"{100 * x['diff']:+.1f} [{100 * x['ci'][0]:+.1f}, {100 * x['ci'][1]:+.1f}]"

    diff, more = entry.get("diff") or {}, entry.get("at_2k") or {}
    return {"dataset": name, "n": entry["n"], "k": k, "greedy": pct(entry.get("greedy")), "first": pct(entry.get("first")),
            "majority": pct(entry.get("majority")), "verifier": pct(entry.get("verifier")),
            "weighted": pct(entry.get("weighted")), "pass@K": pct(entry.get("pass_at_k")),
            "verifier used": entry.get("verifier_name"), "auc": entry.get("auc"),
            "same-source gold": entry.get("same_source_gold"), "paper 0.3B diverse": PAPER_DIVERSE.get(name, ""),
            "self-trained greedy": pct(entry.get("self_trained_greedy")),
            "self-trained weighted": pct((entry.get("self_trained") or {}).get("weighted")),
            "student weighted, same K": pct((entry.get("student_same_k") or {}).get("weighted")),
            "weighted - majority": points(diff.get("weighted-majority")),
            "weighted - first": points(diff.get("weighted-first")),
            "verifier - majority": points(diff.get("verifier-majority")),
            "majority@2K": "" if not more else pct(more["majority"]),
            "weighted@K - majority@2K": points(more.get("weighted_k-majority_2k"))}


INTRO = """
Accuracy (%) on each dataset's test split (the paper's split; {tq} of its questions). Student: SmolLM2-135M-Instruct after Fine-tune-CoT
on all six training splits. greedy: temperature 0. The other columns choose among K={k} samples (temperature 0.7,
top-p 0.95, seed 0): first, majority (self-consistency), verifier (its best-scored sample), weighted (the answer
with the largest sum of calibrated P(right)); pass@K: some sample is right. The verifier is trained on pairs of a
right and a wrong sample of the same training question (the first {n} training questions of each dataset), cross-validated
by question, and chosen (one verifier or a blend of them) by the log loss of P(right) on out-of-fold training samples.
"a - b": the paired difference of two methods' accuracy in points with its 95% interval (one bootstrap resample of
questions for both methods; the accuracies' own intervals are in the JSON); pooled: every dataset's questions as one set.{double}
The verifier's cost (scoring the test samples, a sample, against sampling them): {cost}. Written by benchmarks/cot_verifier.py.
"""
DOUBLE = """
{d}: {k2} samples a test question; majority@2K votes over all {k2}, every K column reads samples 0-{km1} of the same
draws ({k} draws of the same sampler, not those a K={k} run makes: `cot sample` seeds each batch by its number and a
batch holds fewer questions at K={k2}); the pooled row's 2K columns pool these datasets only."""

if __name__ == "__main__":
    sys.exit(main())
