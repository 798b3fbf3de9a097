"""Dotted overrides under a mapping (`data.columns.X=Y`, `model.random_init.X=Y`): each sets one key of it."""

from __future__ import annotations

import csv

from prefkit.config import explicit_keys, load_config
from prefkit.data import load_pairs


def test_two_column_overrides_both_apply():
    cfg = load_config(None, ["data.columns.prompt=question", "data.columns.response_a=first"])
    assert cfg.data.columns == {"prompt": "question", "response_a": "first"}
    assert explicit_keys(cfg) == ["data.columns"], "the two overrides are one explicit key"


def test_column_overrides_merge_into_the_files_mapping_and_a_whole_mapping_replaces(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  format: generic\n  columns: {prompt: q, label: verdict}\n")
    cfg = load_config(p, ["data.columns.response_b=second", "data.columns.label=pref"])
    assert cfg.data.columns == {"prompt": "q", "label": "pref", "response_b": "second"}
    assert load_config(p, ["data.columns={id: key}"]).data.columns == {"id": "key"}


def test_two_random_init_overrides_both_apply():
    cfg = load_config(None, ["model.random_init.model_type=gemma2", "model.random_init.hidden_size=48",
                             "model.random_init.rope_scaling.type=linear", "model.random_init.rope_scaling.factor=3"])
    assert cfg.model.random_init == {"model_type": "gemma2", "hidden_size": 48,
                                     "rope_scaling": {"type": "linear", "factor": 3}}


def test_label_mapping_then_another_mapping_reads_the_mapped_label(tmp_path):
    # the file's own `label` column is stale; `pref` holds the labels to train on
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "ask", "one", "two", "label", "pref"])
        w.writerows([["k1", "why?", "x", "y", "tie", "a"], ["k2", "how?", "u", "v", "tie", "b"],
                     ["k3", "who?", "s", "t", "a", "tie"]])
    cfg = load_config(None, ["data.format=generic", "data.columns.label=pref", "data.columns.prompt=ask",
                             "data.columns.response_a=one", "data.columns.response_b=two", "data.columns.id=key"])
    table = load_pairs(path, cfg.data)
    assert list(table.frame["label"]) == ["a", "b", "tie"]
    assert list(table.frame["id"]) == ["k1", "k2", "k3"] and table.frame["prompt"][1] == ["how?"]
