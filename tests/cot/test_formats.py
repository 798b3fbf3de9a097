from __future__ import annotations

import json

import pytest

from prefkit.core.batching import IGNORE
from prefkit.core.tokenizer import byte_tokenizer
from prefkit.cot.formats import completion_only, teacher_samples
from tests.conftest import SHARED, need_shared


def test_reproduces_the_papers_finetuning_file():
    paper = need_shared(SHARED / "reasoning" / "multiarith" / "teacher-completions" / "finetune_data_P_openai"
                        / "F_zs_cot_multiarith.jsonl")
    expected = [json.loads(line) for line in paper.read_text().splitlines()]
    samples, counts = teacher_samples("multiarith", "train", SHARED)
    assert samples == expected, "same rows, same order, same bytes"
    assert counts == {"dataset": "multiarith", "split": "train", "diverse": False, "rationales": 420, "surviving": 323}


def test_diverse_rationales_survive_more():
    need_shared(SHARED / "reasoning")
    one, c1 = teacher_samples("multiarith", "train", SHARED)
    many, cd = teacher_samples("multiarith", "train", SHARED, diverse=True)
    assert cd["rationales"] > c1["rationales"] and len(many) > len(one)


@pytest.mark.parametrize("max_length", [512, 20])
def test_completion_only_masks_every_prompt_token(max_length):
    tok = byte_tokenizer()
    out = completion_only(tok, "What is 2+3?\n\n###\n\n", " 2+3=5\n\n-->\n\n5 END", max_length, bos_id=1, eos_id=2)
    ids, labels = out["input_ids"], out["labels"]
    prompt = tok.encode("What is 2+3?\n\n###\n\n", add_special_tokens=False).ids
    completion = tok.encode(" 2+3=5\n\n-->\n\n5 END", add_special_tokens=False).ids + [2]
    assert len(ids) == len(labels) <= max_length and ids[0] == 1
    n_masked = next(i for i, label in enumerate(labels) if label != IGNORE)
    assert IGNORE not in labels[n_masked:] and labels[n_masked:] == ids[n_masked:]
    assert prompt[-(n_masked - 1):] == ids[1:n_masked], "BOS and prompt tokens, and only those, carry no loss"
    if max_length >= len(prompt) + len(completion) + 1:
        assert ids[n_masked:] == completion and n_masked == 1 + len(prompt)
    else:
        assert ids[n_masked:] == completion[: len(ids) - n_masked], "too long: the completion's tail is cut"
