"""`prefkit data check` and `prefkit data convert` refuse a file with a header and no rows (they passed it with
exit 0, convert writing an empty file)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import lmsys_row, write_lmsys


@pytest.mark.parametrize("command", ["check", "convert"])
def test_a_header_and_no_rows_is_refused(run_cli, tmp_path, command):
    empty = write_lmsys(tmp_path / "empty.csv", [])
    extra = ["--out", tmp_path / "out.csv"] if command == "convert" else ["--json"]
    r = run_cli("data", command, empty, *extra)
    assert r.code == 2 and "Traceback" not in r.err
    assert f"{empty}: no rows to {command} (a header and no rows)" in r.err
    assert not (tmp_path / "out.csv").exists()
    parquet = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "prompt": pa.array([], pa.string()),
                             "response_a": pa.array([], pa.string()), "response_b": pa.array([], pa.string())}), parquet)
    assert run_cli("data", command, parquet, *extra).code == 2


def test_every_row_skipped_is_refused_too(run_cli, tmp_path):
    bad = write_lmsys(tmp_path / "bad.csv", [lmsys_row("1", "not json", ["a"], ["b"]),
                                             lmsys_row("2", ["q"], ["a"], ["b"], winner=(1, 1, 0))])
    r = run_cli("data", "convert", bad, "--out", tmp_path / "out.csv", "data.skip_bad_rows=true")
    assert r.code == 2 and "no rows to convert (2 skipped as bad)" in r.err and not (tmp_path / "out.csv").exists()
