"""What the terminal shows. By default everything prefkit says goes to stderr. Inside `quiet(log_file)` (the
demo) the terminal gets only summary lines (`dist.log(..., summary=True)`) and progress bars that vanish when
their phase ends; every other message, the libraries' logging (transformers' weight-loading report, peft,
accelerate) and Python warnings go to `log_file`. `verbose=True` shows all of it on the terminal as well."""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

_state: dict = {"file": None, "verbose": True}
LIBRARIES = ("transformers", "peft", "accelerate", "bitsandbytes", "torch", "datasets", "py.warnings")


def write(msg: str, summary: bool = False) -> None:
    fh: TextIO | None = _state["file"]
    if fh is not None:
        fh.write(msg + "\n")
        fh.flush()
    if fh is None or summary or _state["verbose"]:
        print(msg, file=sys.stderr, flush=True)


def keep_bars() -> bool:
    """Whether a finished progress bar stays on the terminal (not inside `quiet`, unless verbose)."""
    return _state["file"] is None or _state["verbose"]


@contextmanager
def quiet(log_file: Path, verbose: bool = False) -> Iterator[None]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_file, "a", encoding="utf-8")
    handler = logging.StreamHandler(fh)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    hf_logging = None
    try:  # transformers adds its stderr handler when first used: have it added now, so that it can be taken off
        from transformers.utils import logging as hf_logging

        hf_logging.get_logger()
        if not verbose:
            hf_logging.disable_progress_bar()  # its "Loading weights" bar
    except ImportError:
        pass
    terminal = logging.StreamHandler(sys.stderr)  # verbose: the same records on the terminal too
    saved = []
    for name in LIBRARIES:
        lg = logging.getLogger(name)
        saved.append((lg, list(lg.handlers), lg.propagate))
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.addHandler(handler)
        if verbose:
            lg.addHandler(terminal)
        lg.propagate = False
    logging.captureWarnings(True)
    old = dict(_state)
    _state.update(file=fh, verbose=verbose)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each distinct warning once, into the log file
            yield
    finally:
        _state.update(old)
        logging.captureWarnings(False)
        if hf_logging is not None and not verbose:
            hf_logging.enable_progress_bar()
        for lg, handlers, propagate in saved:
            lg.removeHandler(handler)
            lg.removeHandler(terminal)
            for h in handlers:
                if h not in lg.handlers:
                    lg.addHandler(h)
            lg.propagate = propagate
        fh.close()
