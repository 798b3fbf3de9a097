"""The tokenizer record a backbone opens with (`core.tokenizer.Vocab`) and the one rule that finds a tokenizer."""

from __future__ import annotations

import dataclasses

import pytest

from prefkit.config import load_config
from prefkit.core.tokenizer import Vocab, byte_tokenizer, tokenizer_path
from tests.conftest import MINILM, TINY


def test_a_vocab_resolves_its_ids_once_and_stays_as_made():
    vocab = Vocab.of(byte_tokenizer())
    assert (vocab.pad_id, vocab.size, vocab.bos_id, vocab.eos_id) == (0, 259, 1, 2)  # <pad>, 256 bytes + 3, <bos>, <eos>
    with pytest.raises(dataclasses.FrozenInstanceError):
        vocab.pad_id = 5


def test_a_config_names_its_vocab():
    assert Vocab.from_config(load_config(TINY)).size == 259
    minilm = Vocab.from_config(load_config(MINILM))
    assert (minilm.pad_id, minilm.size, minilm.tokenizer.id_to_token(minilm.eos_id)) == (0, 30522, "[SEP]")


def test_one_rule_finds_the_tokenizer(tmp_path):
    assert tokenizer_path("bytes", None) is None
    assert tokenizer_path("model", None) is None
    assert tokenizer_path("model", str(tmp_path)) == tmp_path
    assert tokenizer_path(str(tmp_path / "tok.json"), str(tmp_path)) == tmp_path / "tok.json"
    assert (tokenizer_path("minilm", None) / "tokenizer.json").is_file()  # a shipped model's own folder
