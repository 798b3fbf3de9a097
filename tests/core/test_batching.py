"""The one padding of prefkit (`core.batching.collate`): every batch of the reward model, the SFT loss, the
TruthfulQA scorer and generation goes through it."""

import numpy as np
import pytest

from prefkit.core.batching import IGNORE, collate


def test_right_padding_keeps_tokens_first_and_masks_the_rest():
    t = collate([[5, 6, 7], [8]], pad_id=0)
    assert t["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert t["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert "labels" not in t


def test_left_padding_ends_every_row_at_the_last_column():
    t = collate([np.array([5, 6, 7]), np.array([8, 9])], pad_id=2, left=True)
    assert t["input_ids"].tolist() == [[5, 6, 7], [2, 8, 9]]
    assert t["attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]


def test_labels_are_padded_with_ignore_on_the_same_side():
    right = collate([[1, 2, 3], [4]], pad_id=0, labels=[[IGNORE, 2, 3], [4]])
    assert right["labels"].tolist() == [[IGNORE, 2, 3], [4, IGNORE, IGNORE]]
    left = collate([[1, 2, 3], [4]], pad_id=0, left=True, labels=[[IGNORE, 2, 3], [4]])
    assert left["labels"].tolist() == [[IGNORE, 2, 3], [IGNORE, IGNORE, 4]]


def test_labels_of_another_length_are_refused():
    with pytest.raises(ValueError, match="sequence 1: 2 labels for 1 tokens"):
        collate([[1, 2], [3]], pad_id=0, labels=[[1, 2], [3, 4]])
