"""Processes: one per GPU under `torchrun` (or `accelerate launch`), or one on CPU; gloo when on CPU.

accelerate's `PartialState` is a process-wide singleton: the first one made decides the backend, and on a
machine without CUDA it only joins the process group (gloo) when made with `cpu=True`. Everything in
prefkit gets it from here so that this holds.
"""

from __future__ import annotations


def state():
    # torch and accelerate load here, not when this module does: a command that never asks (`data check
    # --no-tokens`, through recipes.common) starts 1-2 s sooner
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main() -> bool:
    """True in the one process that writes outputs (always, without a multi-process launch)."""
    return state().is_main_process


def wait() -> None:
    state().wait_for_everyone()


def log(msg: str, summary: bool = False) -> None:
    """A progress message on stderr, from the main process only. Inside `console.quiet` (the demo) only
    `summary` lines reach the terminal; the rest go to its log file."""
    if is_main():
        from prefkit.console import write

        write(msg, summary)
