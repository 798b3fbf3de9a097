"""What a data file holds, read or refused as it is: a one-column `winner` label, a file whose bytes are another
kind than its name says (gzip, parquet, zip, UTF-16)."""

from __future__ import annotations

import csv
import gzip
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefkit.config import DataConfig
from prefkit.data import load_pairs
from prefkit.errors import DataError
from tests.conftest import lmsys_row, write_lmsys


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def json_row(i, winner):
    return [f"p{i}", json.dumps([f"question {i}?"]), json.dumps([f"one {i}"]), json.dumps([f"two {i}"]), winner]


# ------------------------------------------------------------------------------ a one-column winner


@pytest.mark.parametrize("fast", [True, False])
def test_one_winner_column_of_a_json_turn_csv_is_read(tmp_path, fast):
    winners = ["model_a", "tie", "model_b", "Model_B ", "A", "b", "tie (bothbad)"]
    path = write_csv(tmp_path / "arena.csv", ["id", "prompt", "response_a", "response_b", "winner"],
                     [json_row(i, w) for i, w in enumerate(winners)])
    t = load_pairs(path, DataConfig(), fast=fast)
    assert list(t.frame["label"]) == ["a", "tie", "b", "b", "a", "b", "tie"] and t.has_labels
    assert t.frame["prompt"][2] == ["question 2?"]


@pytest.mark.parametrize("fast", [True, False])
def test_wsdm_form_csv_with_a_b_winners_is_detected_and_read(tmp_path, fast):
    path = write_csv(tmp_path / "wsdm.csv", ["id", "prompt", "response_a", "response_b", "winner", "language"],
                     [["w1", "[not json] hi", "x", "y", "A", "en"], ["w2", "ho", "x", "y", "B", "de"]])
    t = load_pairs(path, DataConfig(), fast=fast)
    assert list(t.frame["label"]) == ["a", "b"] and t.frame["prompt"][0] == ["[not json] hi"]
    assert list(t.frame["language"]) == ["en", "de"]


@pytest.mark.parametrize("fast", [True, False])
def test_a_tie_in_a_wsdm_form_csv_is_refused_naming_the_row(tmp_path, fast):
    path = write_csv(tmp_path / "wsdm.csv", ["id", "prompt", "response_a", "response_b", "winner"],
                     [["w1", "hi", "x", "y", "model_a"], ["w2", "ho", "x", "y", "tie"]])
    with pytest.raises(DataError, match=r"row 2 \(id 'w2', line 3\): column 'winner': must be model_a or model_b "
                                        r"\(or A, B: WSDM Cup has no ties\), got 'tie'"):
        load_pairs(path, DataConfig(), fast=fast)


@pytest.mark.parametrize("fast", [True, False])
def test_a_winner_that_is_no_label_is_refused_naming_row_and_value(tmp_path, fast):
    path = write_csv(tmp_path / "arena.csv", ["id", "prompt", "response_a", "response_b", "winner"],
                     [json_row(1, "model_a"), json_row(2, "gpt-4o"), json_row(3, "")])
    with pytest.raises(DataError) as e:
        load_pairs(path, DataConfig(), fast=fast)
    message = str(e.value)
    assert "row 2 (id 'p2', line 3): column 'winner': must be model_a, model_b or tie (or A, B), got 'gpt-4o'" in message
    assert "row 3 (id 'p3', line 4): column 'winner'" in message


def test_three_winner_columns_still_decide_over_a_winner_column(tmp_path):
    header = ["id", "prompt", "response_a", "response_b", "winner_model_a", "winner_model_b", "winner_tie", "winner"]
    path = write_csv(tmp_path / "t.csv", header, [["1", '["q"]', '["a"]', '["b"]', 0, 0, 1, "model_a"]])
    assert list(load_pairs(path, DataConfig()).frame["label"]) == ["tie"]


# ------------------------------------------------------------------------------ bytes of another kind


def lmsys_bytes(tmp_path) -> bytes:
    return write_lmsys(tmp_path / "src.csv", [lmsys_row("1", ["q"], ["a"], ["b"])]).read_bytes()


def test_a_gzip_file_named_csv_says_so(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(gzip.compress(lmsys_bytes(tmp_path)))
    for fmt in ("auto", "lmsys", "generic"):
        with pytest.raises(DataError, match=r"train\.csv: is a gzip file: name it train\.csv\.gz \(prefkit reads "
                                             r"\.csv\.gz"):
            load_pairs(path, DataConfig(format=fmt))
    renamed = path.rename(tmp_path / "train.csv.gz")
    assert len(load_pairs(renamed, DataConfig())) == 1, "named as the message says, it reads"


def test_a_parquet_file_named_csv_says_so(tmp_path):
    path = tmp_path / "test.csv"
    pq.write_table(pa.table({"id": ["1"], "prompt": ['["q"]'], "response_a": ['["a"]'], "response_b": ['["b"]']}), path)
    with pytest.raises(DataError, match=r"test\.csv: is a parquet file: name it test\.parquet$"):
        load_pairs(path, DataConfig())
    inner = tmp_path / "test.csv.gz"
    inner.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match=r"test\.csv\.gz: holds a parquet file: decompress it and name it test\.parquet"):
        load_pairs(inner, DataConfig(format="generic"))


def test_a_zip_archive_named_csv_says_so(tmp_path):
    path = tmp_path / "lmsys-arena.csv"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("train.csv", lmsys_bytes(tmp_path))
    for fmt in ("auto", "generic"):  # (generic read a zip's header as text and died with a traceback)
        with pytest.raises(DataError, match=r"lmsys-arena\.csv: is a zip archive .*: unzip it"):
            load_pairs(path, DataConfig(format=fmt))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_text_named_csv_says_so(tmp_path, encoding):
    path = tmp_path / "pairs.csv"
    text = lmsys_bytes(tmp_path).decode("utf-8")
    path.write_bytes(("\ufeff" + text).encode(encoding) if encoding.endswith("be") else text.encode(encoding))
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    with pytest.raises(DataError, match=r"pairs\.csv: is UTF-16 text .*: save it as UTF-8"):
        load_pairs(path, DataConfig())
