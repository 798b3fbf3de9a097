"""A template longer than the backbone's position table is refused before any data loads (issue 42, class 9):
it used to fail mid-training with an index error (absolute positions) or score positions never trained (rotary)."""

from __future__ import annotations

from tests.conftest import TINY


def test_max_length_beyond_the_position_table_is_refused_up_front(run_cli, tmp_path):
    missing = tmp_path / "not-read.csv"  # the refusal comes before the data is looked at
    r = run_cli("cv", TINY, f"data.train={missing}", "template.max_length=2048", f"output_dir={tmp_path / 'run'}")
    assert r.code == 2, r.err
    assert ("template.max_length=2048 is more than the 1024 positions the backbone (model.random_init) has "
            "(max_position_embeddings): set template.max_length=1024 or less") in r.err
    assert "Traceback" not in r.err and not (tmp_path / "run").exists()


def test_max_length_within_the_table_passes_the_check():
    from prefkit.config import load_config
    from prefkit.core.modeling import check_positions

    check_positions(load_config(TINY, ["template.max_length=1024"]))
