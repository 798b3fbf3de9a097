"""Best-of-K reporting: the paired difference of two methods with its interval, a K=2k file cut to its first k
samples (majority@2k against the methods at k), and the benchmark's report of them and of the verifier's cost."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from prefkit.cot import best_of_k
from prefkit.errors import PrefkitError
from tests.conftest import load_benchmark
from tests.cot.test_verifier import row


def ten_questions() -> tuple[list[dict], np.ndarray]:
    """10 questions, 3 samples each: all right on 0-3; on 4 and 5 one right sample (not the first) against two
    wrong ones that agree, which the verifier scores high; nothing right on 6-9. So majority is right on 4, the
    verifier and weighted on 6, first on 4."""
    rows, s = [], []
    for q in range(10):
        if q < 4:
            rows += [row(q, j, 5, True) for j in range(3)]
            s += [0.0, 0.0, 0.0]
        elif q < 6:
            rows += [row(q, 0, 7, False), row(q, 1, 5, True), row(q, 2, 7, False)]
            s += [-3.0, 3.0, -3.0]
        else:
            rows += [row(q, j, j, False) for j in range(3)]
            s += [0.0, 0.0, 0.0]
    return rows, np.array(s)


def test_paired_difference_by_hand_and_narrower_than_unpaired():
    rows, s = ten_questions()
    r = best_of_k.rerank(rows, s, rounds=1000)
    assert (r["weighted"], r["majority"], r["first"]) == (0.6, 0.4, 0.4)
    d = r["diff"]["weighted-majority"]
    assert d["diff"] == pytest.approx(0.2)  # 6/10 - 4/10, by hand
    assert r["diff"]["weighted-first"]["diff"] == pytest.approx(0.2)
    assert r["diff"]["verifier-majority"]["diff"] == pytest.approx(0.2)
    lo, hi = d["ci"]
    assert lo <= 0.2 <= hi and lo >= 0  # weighted is never below majority on a question: no resample has it behind
    # which methods were right, a question (first, majority, verifier, weighted): what a later pairing reads
    assert r["right"]["addsub:0"] == "1111" and r["right"]["addsub:4"] == "0011" and r["right"]["addsub:9"] == "0000"
    assert best_of_k.right_by_question(r, "weighted") == {f"addsub:{q}": q < 6 for q in range(10)}

    # the two methods resampled apart (two resamples of questions): the interval the pairing saves
    a = np.array([q < 6 for q in range(10)], dtype=float)
    b = np.array([q < 4 for q in range(10)], dtype=float)
    rng = np.random.default_rng(0)
    apart = [a[rng.integers(0, 10, 10)].mean() - b[rng.integers(0, 10, 10)].mean() for _ in range(1000)]
    unpaired_lo, unpaired_hi = np.quantile(apart, [0.025, 0.975])
    assert hi - lo < 0.75 * (unpaired_hi - unpaired_lo), (d, unpaired_lo, unpaired_hi)
    assert unpaired_lo < 0  # apart, the difference could be either way; paired, it cannot


def test_paired_by_question_needs_the_same_questions():
    same = best_of_k.paired_by_question({"addsub:1": True, "addsub:2": False}, {"addsub:2": False, "addsub:1": False})
    assert same["diff"] == pytest.approx(0.5)  # paired by question, not by position
    with pytest.raises(PrefkitError, match="addsub:3 on one side only"):
        best_of_k.paired_by_question({"addsub:1": True, "addsub:3": True}, {"addsub:1": True, "addsub:2": True})


def sixteen(index: int = 1) -> list[dict]:
    """One question, 16 samples: in the first 8 the wrong 5 leads (3 votes, the right 7 twice); samples 8-15 all
    say 7. Majority@8 is wrong, majority@16 right (8 votes against 3)."""
    first8 = [5, 7, 5, 1, 7, 5, 2, 3]
    return [row(index, j, a, a == 7, dataset="svamp", split="test") for j, a in enumerate(first8 + [7] * 8)]


def test_first_k_keeps_samples_0_to_k_minus_1_and_majority_at_2k_can_differ():
    rows = sixteen()
    rows = rows[8:] + rows[:8]  # the file's order does not decide which samples are the first
    cut = best_of_k.first_k(rows, 8)
    assert sorted(r["sample"] for r in cut) == list(range(8))
    assert [r["answer"] for r in sorted(cut, key=lambda r: r["sample"])] == ["5", "7", "5", "1", "7", "5", "2", "3"]
    assert best_of_k.rerank(cut, np.zeros(8))["majority"] == 0.0
    assert best_of_k.rerank(rows, np.zeros(16))["majority"] == 1.0
    with pytest.raises(PrefkitError, match=r"svamp:1: 15 samples, none numbered 3"):
        best_of_k.first_k([r for r in rows if r["sample"] != 3], 8)


def test_at_2k_pairs_weighted_and_majority_at_k_with_majority_at_2k():
    bench = load_benchmark("cot_verifier")
    rows = sixteen(1) + sixteen(2)
    # at K=8: question 1 weighted right, majority wrong; question 2 both wrong
    block = bench.at_2k(rows, {"svamp:1": "0011", "svamp:2": "0000"}, 8, with_weighted=True)
    assert (block["k"], block["n"], block["majority"]) == (16, 2, 1.0)
    assert block["weighted_k-majority_2k"]["diff"] == pytest.approx(-0.5)  # (1 + 0)/2 - (1 + 1)/2
    assert block["majority_k-majority_2k"]["diff"] == pytest.approx(-1.0)
    assert "weighted_k-majority_2k" not in bench.at_2k(rows, {"svamp:1": "0000", "svamp:2": "0000"}, 8, False)


def test_verifier_cost_is_not_timed_without_the_sampling_seconds():
    bench = load_benchmark("cot_verifier")
    sampled = "sample/student/test_k8/addsub"
    cost = bench.verifier_cost({"score/features": 5.0}, ["score/features"], [sampled], 80, 80)
    assert cost["fraction"] is None and cost["not_timed"] == [sampled]
    assert bench.cost_line(cost).startswith("not timed") and sampled in bench.cost_line(cost)
    resumed = {"score/features": 5.0, sampled + " (resumed)": 100.0}  # only the last part's seconds: no figure
    assert bench.verifier_cost(resumed, ["score/features"], [sampled], 80, 80)["fraction"] is None
    timed = {"score/features": 5.0, sampled: 500.0}
    assert bench.verifier_cost(timed, ["score/features"], [sampled], 80, 80)["fraction"] == pytest.approx(0.01)
    # 160 samples drawn (a --double-k dataset) for the 80 scored: the cost a sample, 5/80 against 1000/160
    cost = bench.verifier_cost({"score/features": 5.0, sampled: 1000.0}, ["score/features"], [sampled], 80, 160)
    assert cost["fraction"] == pytest.approx(0.01) and "1.0% of the sampling cost" in bench.cost_line(cost)


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_gives_paired_differences_pooled_and_the_2k_comparison(tmp_path):
    """The report of a run with a verifier on two datasets, one of them (svamp) sampled at 2K=16."""
    bench = load_benchmark("cot_verifier")
    work = tmp_path / "work"
    args = SimpleNamespace(k=8, train_questions=10, test_questions=None, double_k=["svamp"], self_train_k=None,
                           out=str(tmp_path / "out"))
    addsub, s = ten_questions()  # 3 samples a question stand for K here: only svamp's samples are counted below
    addsub = [dict(r, split="test") for r in addsub]
    svamp = sixteen(1) + sixteen(2)
    at_k, drawn = bench.test_files(work, args, "svamp")
    assert drawn.parent.name == "test_k16" and at_k.parent.name == "test_k16_first8"
    write(drawn, svamp)
    write(at_k, best_of_k.first_k(svamp, 8))
    write(bench.test_files(work, args, "addsub")[0], addsub)
    for d, rows in (("addsub", addsub), ("svamp", svamp)):
        write(bench.samples_path(work, "student", "test", 1, None, d), [r for r in rows if r["sample"] == 0])
    first8 = best_of_k.first_k(svamp, 8)
    s_svamp = np.array([3.0 if (r["index"] == 1 and r["answer"] == "7") else 0.0 for r in first8])
    both = addsub + first8
    rerank = {"features": {"datasets": {"addsub": best_of_k.rerank(addsub, s), "svamp": best_of_k.rerank(first8, s_svamp)},
                           "pooled": best_of_k.rerank(both, np.concatenate([s, s_svamp])),
                           "held_out": {"auc": 0.7, "same_source_gold": 0.7, "logloss": 0.5, "n": 10}, "calibration": {}}}
    results = {"k": 8, "datasets": {}, "seconds": {"score/features": 2.0, "sample/student/test_k16/svamp": 64.0}}
    bench._report(results, work, ["addsub", "svamp"], args, rerank)

    got = json.loads((tmp_path / "out" / "cot_verifier.json").read_text())
    assert got["datasets"]["addsub"]["diff"]["weighted-majority"]["diff"] == pytest.approx(0.2)
    assert got["pooled"]["n"] == 12 and got["pooled"]["diff"]["weighted-majority"]["diff"] == pytest.approx(3 / 12)
    sv = got["datasets"]["svamp"]["at_2k"]
    assert sv["majority"] == 1.0 and sv["weighted_k-majority_2k"]["diff"] == pytest.approx(-0.5)
    assert got["pooled"]["at_2k"]["datasets"] == ["svamp"]
    # addsub's sampling was not timed in this work folder: no cost figure, and the report says so
    assert got["verifier_cost"]["fraction"] is None
    assert got["verifier_cost"]["not_timed"] == ["sample/student/test_k8/addsub"]
    md = (tmp_path / "out" / "cot_verifier.md").read_text()
    assert "| weighted - majority | weighted - first | verifier - majority | majority@2K | weighted@K - majority@2K |" in md
    assert "| pooled | 12 | 8 |" in md and "+25.0 [" in md and "| 100.0 | -50.0 [" in md
    assert "not timed (no seconds in this work folder for sample/student/test_k8/addsub)" in md
    assert "svamp: 16 samples a test question" in md


def test_an_unfinished_sampling_kept_by_keep_partials_is_resumed_in_a_new_work_folder(tmp_path):
    """A session's half-done sample file goes to the cache (--keep-partials) and comes back, on a fresh machine,
    as the `.partial` that `cot sample` resumes; a finished file or a newer partial of this machine is never
    overwritten by it."""
    bench = load_benchmark("cot_verifier")
    cache, old, new = tmp_path / "cache", tmp_path / "old", tmp_path / "new"
    out_old = bench.samples_path(old, "student", "test", 16, None, "addsub")
    write(out_old.with_name(out_old.name + ".partial"), sixteen(1))
    kept = bench.keep_partials(cache, old)
    assert kept == [cache / "student" / "test_k16" / "addsub.partial.jsonl.gz"]

    out = bench.samples_path(new, "student", "test", 16, None, "addsub")
    partial = out.with_name(out.name + ".partial")
    bench.restore_partial(cache, new, out)
    assert [json.loads(x) for x in partial.read_text().splitlines()] == sixteen(1)
    write(partial, sixteen(2))  # this machine sampled on: its own partial wins over the older copy
    bench.restore_partial(cache, new, out)
    assert [json.loads(x) for x in partial.read_text().splitlines()] == sixteen(2)
    partial.unlink()
    write(out, sixteen(3))  # finished here: no partial put back beside it
    bench.restore_partial(cache, new, out)
    assert not partial.exists()
    assert bench.cache_path(cache, new, out) == cache / "student" / "test_k16" / "addsub.jsonl.gz"
