"""The student's own confidence as a verifier (`cot.mean_logprob`): each sample's mean completion-token
log-probability by hand from the model's logits, the scores kept and read back, and `cot rerank` choosing by them
(alone, and blended with a verifier run) where nothing else could."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from prefkit.cot import mean_logprob
from prefkit.cot.generate import Student
from prefkit.cot.mean_logprob import MeanLogProb, mean_logprobs
from tests.conftest import SHARED, need_shared

TINY = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"


@pytest.fixture(scope="module")
def student() -> Student:
    torch.manual_seed(0)
    return Student(TINY, ["quantization.mode=none"])


def row(index: int, sample: int, completion: str, answer: str = "5", correct: bool = False, split: str = "train",
        question: str | None = None) -> dict:
    return {"dataset": "addsub", "split": split, "index": index, "sample": sample,
            "question": question or f"Tom has {index} apples and finds 3 more. How many?",
            "completion": completion, "answer": answer, "correct": correct}


def test_mean_logprob_of_the_completion_tokens_by_hand(student):
    rows = [row(1, 0, " He has 1 + 3 = 4.\n\n-->\n\n4 END"),
            row(2, 0, " Tom had 2 apples, found 3 more: 2 + 3 = 5 apples in all, so 5.\n\n-->\n\n5 END"),
            row(3, 0, " 6\n\n-->\n\n6 END")]
    got = mean_logprobs(student, rows, batch_tokens=200)  # two batches, the first padded
    ids = student.prompt_ids(rows[0]["question"])
    p = len(ids)
    ids = ids + student.format.vocab.tokenizer.encode(rows[0]["completion"], add_special_tokens=False).ids
    with torch.no_grad():
        logp = torch.log_softmax(student.model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    token = np.array([logp[t - 1, ids[t]].item() for t in range(1, len(ids))])  # token t given tokens before it
    hand = token[p - 1:].mean()
    assert got[0] == pytest.approx(hand, abs=1e-5)
    assert abs(token.mean() - hand) > 1e-3 and abs(token[p - 1:].sum() - hand) > 1e-3, "the checks would tell"
    alone = [mean_logprobs(student, [r])[0] for r in rows]
    assert np.allclose(got, alone, atol=1e-5), "padding and batch neighbours change nothing"


def test_scores_are_kept_by_the_student_and_read_back(tmp_path, monkeypatch):
    """A trained student's scores are kept per sample in the folder given: the same samples, or a subset, are read
    back without opening the student; a student trained again (another trained.json) is scored afresh."""
    run = tmp_path / "student"
    (run / "model").mkdir(parents=True)
    (run / "model" / "trained.json").write_text('{"steps": 1}')
    calls = []

    def fake(student, rows, batch_tokens):
        calls.append(len(rows))
        return np.array([float(len(r["completion"])) for r in rows])

    monkeypatch.setattr(Student, "__init__", lambda self, *a: None)  # never opened: the scores are faked
    monkeypatch.setattr(mean_logprob, "mean_logprobs", fake)
    rows = [row(1, k, "x" * (k + 1)) for k in range(4)]
    scorer = MeanLogProb(run, tmp_path / "kept")
    assert scorer.held_out(rows).tolist() == [1.0, 2.0, 3.0, 4.0] and calls == [4]
    assert MeanLogProb(run, tmp_path / "kept").averaged(rows[2:]).tolist() == [3.0, 4.0] and calls == [4]
    assert scorer.averaged([*rows, row(2, 0, "yy")]).tolist() == [1.0, 2.0, 3.0, 4.0, 2.0] and calls == [4, 1]
    (run / "model" / "trained.json").write_text('{"steps": 2}')
    scorer.averaged(rows)
    assert calls == [4, 1, 4]
    MeanLogProb(run).averaged(rows)  # no folder: nothing kept, scored each time
    assert calls == [4, 1, 4, 4] and len(list((tmp_path / "kept").glob("*.npz"))) == 2


def _planted(student: Student, questions: range, split: str) -> list[dict]:
    """Four samples a question: the one the student finds likeliest is right (answer 5), the other three wrong
    and agreeing (answer 7), so the majority is always wrong and only the log-probability finds the right one."""
    rng = np.random.default_rng(questions.start)
    words = ["apples", "pears", "so", "then", "he", "has", "more", "in", "all", "+", "=", "3", "4", "7"]
    rows = []
    for q in questions:
        texts = [" " + " ".join(rng.choice(words, size=int(rng.integers(3, 9)))) + "\n\n-->\n\n" for _ in range(4)]
        drafts = [row(q, k, t, split=split) for k, t in enumerate(texts)]
        best = int(np.argmax(mean_logprobs(student, drafts)))
        rows += [dict(r, answer="5" if k == best else "7", correct=k == best) for k, r in enumerate(drafts)]
    return rows


def test_rerank_chooses_by_the_log_probability_where_votes_cannot(run_cli, student, tmp_path):
    from prefkit.recipes import cot_rerank, cot_verifier_pairs

    need_shared(SHARED / "reasoning")  # verifier-pairs leaves out the datasets' test questions, read from there
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _planted(student, range(30), "train")))
    test.write_text("".join(json.dumps(r) + "\n" for r in _planted(student, range(1000, 1012), "test")))
    cot_verifier_pairs.main([str(train)], tmp_path / "pairs")
    scorer = MeanLogProb(student)
    got = cot_rerank.main(scorer, tmp_path / "pairs", [str(test)], tmp_path / "rerank")
    pooled = got["pooled"]
    assert (pooled["verifier"], pooled["majority"], pooled["first"] < 1) == (1.0, 0.0, True)
    assert pooled["same_source_gold"] == 1.0 and got["held_out"]["verifier"] == 1.0
    assert got["calibration"]["pooled"]["coef"][0] > 0 and got["verifiers"] == [str(scorer)]
    # beside a verifier run: one column each (a feature baseline, which reads nothing here)
    r = run_cli("cv", "rm/features_baseline", f"data.train={tmp_path / 'pairs' / 'train.csv'}", "cv.n_splits=2",
                f"output_dir={tmp_path / 'features'}")
    assert r.code == 0, r.err
    both = cot_rerank.main([scorer, tmp_path / "features"], tmp_path / "pairs", [str(test)], tmp_path / "both")
    assert len(both["calibration"]["pooled"]["coef"]) == 2 and both["pooled"]["majority"] == 0.0
    assert both["verifiers"] == [str(scorer), str(tmp_path / "features")]


def test_the_benchmark_takes_logprob_as_a_verifier(tmp_path, monkeypatch):
    """benchmarks/cot_verifier.py --verifiers logprob on samples already in its work folder (no SFT, no sampling):
    the training samples scored as its `verifier/` step, the test samples as its `score/` step, kept in
    verifiers/logprob/ (the student is a trained run there; a config here, so nothing is kept), then reranked."""
    import sys

    from tests.conftest import load_benchmark
    from tests.cot.test_verifier import _synthetic

    need_shared(SHARED / "reasoning")
    bench = load_benchmark("cot_verifier")
    work = tmp_path / "work"
    test = [dict(r, dataset="addsub") for r in _synthetic(8, "test", 1, start=1000)]
    for split, k, limit, rows in (("test", 1, None, [r for r in test if r["sample"] == 0]), ("test", 4, None, test),
                                  ("train", 4, 30, _synthetic(30, "train", 0))):
        path = bench.samples_path(work, "student", split, k, limit, "addsub")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(sys, "argv", ["cot_verifier.py", "--datasets", "addsub", "--k", "4", "--train-questions", "30",
                                      "--work", str(work), "--student", str(TINY), "--verifiers", "logprob",
                                      "--out", str(tmp_path / "out"), "--samples-cache", str(tmp_path / "cache")])
    assert bench.main() == 0
    got = json.loads((tmp_path / "out" / "cot_verifier.json").read_text())
    assert got["verifier"] in ("logprob", "logprob+votes") and got["datasets"]["addsub"]["n"] == 8
    assert {"verifier/logprob", "score/logprob"} <= set(got["seconds"])
    assert json.loads((work / "rerank" / "logprob" / "rerank.json").read_text())["verifiers"] == [
        f"mean log-probability under {TINY}"]
