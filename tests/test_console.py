"""What the terminal shows inside `console.quiet`: summary lines; the rest (prefkit's detail, library logging,
Python warnings) goes to the log file, and to the terminal too with verbose."""

from __future__ import annotations

import logging
import warnings

import pytest

from prefkit.console import keep_bars, quiet
from prefkit.core.dist import log


@pytest.mark.parametrize("verbose", [False, True])
def test_quiet_sends_details_to_the_log_file(tmp_path, capsys, verbose):
    from transformers.utils import logging as hf_logging

    with quiet(tmp_path / "log.txt", verbose):
        log("a detail line")
        log("a summary line", summary=True)
        hf_logging.get_logger("transformers.modeling_utils").warning("classifier.bias | MISSING")
        warnings.warn("a library warning", UserWarning)
        assert keep_bars() is verbose
    err = capsys.readouterr().err
    text = (tmp_path / "log.txt").read_text()
    assert all(x in text for x in ("a detail line", "a summary line", "MISSING", "a library warning"))
    assert "a summary line" in err
    for x in ("a detail line", "MISSING", "a library warning"):
        assert (x in err) is verbose, x
    log("after")  # outside: back to the terminal, no file
    assert "after" in capsys.readouterr().err and "after" not in (tmp_path / "log.txt").read_text()
    assert keep_bars()
    assert logging.getLogger("transformers").handlers, "transformers' own handler is back"
