"""`PairTable.subset`: the one way to take part of a table keeps what reading the file found."""

from __future__ import annotations

import numpy as np

from prefkit.config import DataConfig
from prefkit.data import load_pairs
from tests.conftest import lmsys_row, write_lmsys


def read(tmp_path):
    rows = [lmsys_row(str(i), [f"q{i}"], [f"a{i}"], [f"b{i}"]) for i in range(6)]
    rows[2] = lmsys_row("2", ["lone \ud83d surrogate"], ["x"], ["y"])
    rows[4] = lmsys_row("4", "not json", ["x"], ["y"])  # a bad row, skipped
    return load_pairs(write_lmsys(tmp_path / "train.csv", rows), DataConfig(skip_bad_rows=True))


def test_a_subset_keeps_the_files_skipped_rows_and_repaired_cells(tmp_path):
    t = read(tmp_path)
    assert len(t) == 5 and len(t.skipped) == 1 and t.repaired_cells == 1
    for rows, ids in (([4, 0], ["5", "0"]), (t.frame["id"].isin(["1", "3"]).to_numpy(), ["1", "3"]),
                      (np.array([], dtype=np.intp), []), ([], [])):
        part = t.subset(rows)
        assert list(part.frame["id"]) == ids and list(part.frame.index) == list(range(len(ids)))
        assert (part.source, part.skipped, part.repaired_cells) == (t.source, t.skipped, 1)
    assert t.subset(t.frame["id"] != "0").dropped_labels == t.dropped_labels
