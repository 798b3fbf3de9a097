"""The step checks a CoT verifier reads (`features.checks`: arithmetic, dates, swaps), measured on the committed
samples of benchmarks/cot_verifier.py (SmolLM2-135M student, K=8, its first 40 training and 40 test questions of
each of the six datasets; results/cot_verifier_samples/student/):

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/step_checks.py [--work runs/step_checks]

1. each check's features alone: the AUC of P(right) of every test sample ranked by one feature (Date
   Understanding's and Shuffled Objects' new checks, and the arithmetic check on the four arithmetic sets);
2. the feature verifier as benchmarks/cot_verifier.py trains and scores it (same-source pairs of the training
   samples, `prefkit cv rm/features_baseline` cross-validated by question, `prefkit cot rerank` with a calibration
   a dataset), with the arithmetic check alone (its `features.arithmetic=true`, as before) and with
   `features.checks=[arithmetic,dates,swaps]`; each with hist_gb and logreg, without and with the vote share;
   per dataset, the test AUC of calibrated P(right) and the weighted vote's accuracy;
3. references that are not verifier features: the answer the question alone gives (Shuffled Objects: the swaps
   replayed, `swap_check.replay_answer`, an oracle; Date Understanding: a choice one stated offset from a date of
   the question, either way), to show what a solver of the task would read, which no check here does.

Results: results/step_checks.{json,md}. CPU only, a few minutes on one core.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import HERE, write_results  # noqa: E402

DATASETS = ["singleeq", "addsub", "multiarith", "svamp", "date_understanding", "tracking_shuffled_objects"]
SAMPLES = HERE / "results" / "cot_verifier_samples" / "student"
CHECK_OF = {"date_understanding": "dates", "tracking_shuffled_objects": "swaps"}  # the rest: arithmetic
VARIANTS = {"arithmetic": ["features.arithmetic=true"],
            "arithmetic+dates+swaps": ["features.checks=[arithmetic,dates,swaps]"],
            "arithmetic+dates+swaps, no conclusion": ["features.checks=[arithmetic,dates,swaps]"]}
# the features that hold the rationale's conclusion against the answer the question itself gives (its last date
# against the date asked, its last claim of the player asked against the replay) and the answer against that
# conclusion: on these two tasks the question decides the answer, so with them the check is partly a solver
# reading the rationale's conclusion; the "no conclusion" variant leaves them out (this process only)
CONCLUSIONS = {"dates": ["last_date_right", "answer_follows_right_date"],
               "swaps": ["final_claim_right", "answer_follows_right_claim"]}
COLUMNS = ["dataset", "verifier", "estimator", "votes", "auc", "weighted", "majority", "pass@8"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/step_checks")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()

    from prefkit.config import load_config
    from prefkit.recipes import cot_rerank, cot_verifier_pairs, cv
    from prefkit.shipped import config_path

    work = Path(args.work)
    files = {}
    for split in ("train", "test"):
        for d in DATASETS:
            f = work / "samples" / f"{split}_k8_n40" / f"{d}.jsonl"
            if not f.exists():
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(gzip.decompress((SAMPLES / f"{split}_k8_n40" / f"{d}.jsonl.gz").read_bytes()))
            files[split, d] = f
    test_rows = {d: [json.loads(x) for x in files["test", d].read_text().splitlines()] for d in DATASETS}
    results: dict = {"samples": str(SAMPLES.relative_to(HERE.parent)),
                     "test_samples": {d: {"samples": len(r), "right": sum(x["correct"] for x in r)} for d, r in test_rows.items()},
                     "features_alone": alone(test_rows),
                     "question_only": question_only(test_rows), "verifiers": {}}

    pairs = work / "pairs"
    if not (pairs / "split.json").exists():  # as benchmarks/cot_verifier.py builds them: same files, same seed
        cot_verifier_pairs.main([str(files["train", d]) for d in DATASETS], pairs)
    table = []
    for variant, overrides in VARIANTS.items():
        for estimator in ("hist_gb", "logreg") if "conclusion" not in variant else ("hist_gb",):
            if "no conclusion" in variant:
                without_conclusions()
            run = work / "verifiers" / f"{variant}_{estimator}".replace(", ", "_").replace(" ", "_")
            cfg = load_config(config_path("rm/features_baseline"), [
                *overrides, f"features.estimator={estimator}", f"data.train={pairs / 'train.csv'}", f"output_dir={run}"])
            cv.main(cfg, run.name, resume=True)
            for votes in (False, True):
                out = work / "rerank" / (run.name + ("+votes" if votes else ""))
                got = (json.loads((out / "rerank.json").read_text()) if (out / "rerank.json").exists() else
                       cot_rerank.main([run], pairs, [str(files["test", d]) for d in DATASETS], out, votes=votes))
                results["verifiers"][out.name] = {d: {m: got["datasets"][d][m] for m in ("auc", "weighted", "majority",
                                                                                         "pass_at_k")}
                                                  for d in DATASETS}
                for d in DATASETS:
                    x = got["datasets"][d]
                    table.append({"dataset": d, "verifier": variant, "estimator": estimator, "votes": votes,
                                  "auc": x["auc"], "weighted": _pct(x["weighted"]), "majority": _pct(x["majority"]),
                                  "pass@8": _pct(x["pass_at_k"])})
    results["conclusion_cells"] = cells(test_rows)
    results["goal"] = goal(results)
    write_results("step_checks", Path(args.out), results, COLUMNS, table, INTRO + features_md(results))
    return 0


def _pct(v: float) -> float:
    return round(100 * v, 1)


def auc(score, right) -> float | None:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(right, score)), 4) if 0 < sum(right) < len(right) else None


def alone(test_rows: dict[str, list[dict]]) -> dict:
    """dataset -> feature -> the test AUC of that one feature of the dataset's check (ties count half)."""
    from prefkit.cot.verifier_pairs import answer_text
    from prefkit.rm.features import CHECKS

    out = {}
    for d, rows in test_rows.items():
        names, fn = CHECKS[CHECK_OF.get(d, "arithmetic")]
        values = [fn(answer_text(r), r["question"]) for r in rows]
        right = [bool(r["correct"]) for r in rows]
        out[d] = {n: auc([v[j] for v in values], right) for j, n in enumerate(names)}
    return out


def question_only(test_rows: dict[str, list[dict]]) -> dict:
    """The test AUC of answers the question alone gives (no rationale read): not a check, a solver's reference."""
    from prefkit.rm import date_check, swap_check

    def one_offset(r: dict) -> float:
        q = date_check.parse(r["question"])
        chosen = q.options.get(r["answer"]) if q else None
        return float(chosen is not None and bool(date_check.one_offset_away({chosen}, set(q.dates), q.steps)))

    def replayed(r: dict) -> float:
        return float(r["answer"] is not None and r["answer"] == swap_check.replay_answer(r["question"]))

    out = {}
    for d, name, fn in (("date_understanding", "answer_one_offset_from_question", one_offset),
                        ("tracking_shuffled_objects", "answer_is_replay (oracle)", replayed)):
        rows = test_rows[d]
        out[d] = {name: auc([fn(r) for r in rows], [bool(r["correct"]) for r in rows])}
    return out


def without_conclusions() -> None:
    """The date and swap checks without their CONCLUSIONS features, in this process's CHECKS."""
    from prefkit.rm.features import CHECKS

    for name, drop in CONCLUSIONS.items():
        names, fn = CHECKS[name]
        keep = [i for i, n in enumerate(names) if n not in drop]
        CHECKS[name] = ([names[i] for i in keep], lambda text, prompt, fn=fn, keep=keep: [fn(text, prompt)[i] for i in keep])


def cells(test_rows: dict[str, list[dict]]) -> dict:
    """Test samples by (conclusion right, answer follows the conclusion): how many, and the share right."""
    from prefkit.cot.verifier_pairs import answer_text
    from prefkit.rm import date_check, swap_check

    out = {}
    for d, check, right, follows in (("date_understanding", date_check, "last_date_right", "answer_is_last_date"),
                                     ("tracking_shuffled_objects", swap_check, "final_claim_right", "answer_is_final_claim")):
        got: dict = {}
        for r in test_rows[d]:
            f = dict(zip(check.FEATURES, check.features(answer_text(r), r["question"])))
            key = f"{right}={int(f[right])}, {follows}={int(f[follows])}"
            got.setdefault(key, []).append(bool(r["correct"]))
        out[d] = {k: {"samples": len(v), "right": round(sum(v) / len(v), 3)} for k, v in sorted(got.items())}
    return out


def goal(results: dict) -> dict:
    """The issue's goal (AUC >= 0.70 on Date and Shuffled Objects): the best verifier figure and features alone."""
    out = {}
    for d in ("date_understanding", "tracking_shuffled_objects"):
        best = max(results["verifiers"], key=lambda v: results["verifiers"][v][d]["auc"])
        feature = max(results["features_alone"][d].items(), key=lambda kv: kv[1] or 0)
        out[d] = {"best_verifier": best, "auc": results["verifiers"][best][d]["auc"],
                  "best_feature_alone": feature[0], "feature_auc": feature[1]}
    return out


def features_md(results: dict) -> str:
    lines = ["\nRight test samples of 320: " + ", ".join(f"{d} {x['right']}" for d, x in results["test_samples"].items())
             + " (an AUC over few right samples moves much with one sample).",
             "\nEach check's features alone, test AUC of P(right) ranked by the one feature (0.5: reads nothing):\n"]
    for d, feats in results["features_alone"].items():
        lines.append(f"- {d}: " + ", ".join(f"{n} {v}" for n, v in feats.items() if v is not None))
    lines.append("\nQuestion-only references (not verifier features; what a solver of the task reads): "
                 + "; ".join(f"{d}: {n} {v}" for d, x in results["question_only"].items() for n, v in x.items()))
    lines.append("\nTest samples by the rationale's conclusion held against the question's own answer and whether the "
                 "answer follows it (samples, share right): " + "; ".join(
                     f"{d}: " + ", ".join(f"[{k}] {v['samples']}, {v['right']}" for k, v in x.items())
                     for d, x in results["conclusion_cells"].items()))
    lines.append("\nThe verifiers, per dataset: AUC of calibrated P(right) on the 320 test samples; weighted, "
                 "majority and pass@8 accuracy (%) on the 40 test questions.\n")
    return "\n".join(lines)


INTRO = """
The step checks of the feature verifier (`features.checks`): on the committed samples of benchmarks/cot_verifier.py
(SmolLM2-135M student after Fine-tune-CoT, K=8 samples of the first 40 training and 40 test questions a dataset).
The verifier is the feature baseline trained on same-source pairs of the training samples, cross-validated by
question, calibrated a dataset on out-of-fold training samples (`prefkit cot rerank`), with the arithmetic check
alone (as before) or with the date and swap checks too; `votes`: the answer's vote share is a calibration column.
Written by benchmarks/step_checks.py.
"""

if __name__ == "__main__":
    sys.exit(main())
