"""The CLI is a table from command to recipe: every row's recipe imports and has what its call uses; recipes
say which config keys they read."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import prefkit.cot
from prefkit import cli


class _Called(Exception):
    pass


class _Spy:
    """Stands in for a recipe module: records the first function a command's call reaches for, and stops there."""

    def __init__(self):
        self.used = []

    def __getattr__(self, name):
        self.used.append(name)
        raise _Called(name)


class _Args:
    """Parsed arguments where every option is unset; `overrides` and `--system` empty."""

    overrides: list = []
    system: list = []
    out = "out"

    def __getattr__(self, name):
        return None


def test_every_command_has_its_recipe():
    """Each row's call reaches for a function its recipe module really has (not just any entry-looking name)."""
    names = [" ".join(c.words) for c in cli.COMMANDS]
    assert len(names) == len(set(names))
    for needed in ("cv", "train", "predict", "demo", "data check", "data convert", "cot sft", "cot generate",
                   "cot rank", "cot demo", "kaggle bundle", "kaggle kernel", "kaggle push", "ledger"):
        assert needed in names
    for cmd in cli.COMMANDS:
        module, spy = importlib.import_module(cmd.recipe), _Spy()
        try:
            cmd.call(_Args(), spy)
        except _Called:
            pass
        except Exception:  # the call failed on the unset arguments before reaching the recipe
            pass
        assert spy.used, f"{cmd.words}: its call never reached {cmd.recipe}"
        assert callable(getattr(module, spy.used[0], None)), f"{cmd.words}: {cmd.recipe} has no {spy.used[0]}()"


def test_cot_commands_run_recipes_and_cot_is_library_code():
    """Layout by role: every CoT command's entry point is a recipe; no module of cot/ is one."""
    for cmd in cli.COMMANDS:
        if cmd.words[0] == "cot":
            assert cmd.recipe.startswith("prefkit.recipes.cot_"), f"{cmd.words}: {cmd.recipe} is not a recipe"
    for path in Path(prefkit.cot.__file__).parent.glob("*.py"):
        defs = {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.FunctionDef)}
        assert "main" not in defs, f"{path.name}: a command's entry point belongs in recipes/"


def test_help_lists_the_table(run_cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["cot", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(w in out for w in ("sft", "generate", "rank", "teacher", "demo", "eval"))


def test_predict_says_which_overrides_it_does_not_read(run_cli, tmp_path):
    from tests.conftest import lmsys_row, write_lmsys

    rows = [lmsys_row(str(i), ["q"], ["good answer"] if i % 2 else ["no"], ["no"] if i % 2 else ["good answer"],
                      (1, 0, 0) if i % 2 else (0, 1, 0)) for i in range(40)]
    data = write_lmsys(tmp_path / "t.csv", rows)
    r = run_cli("train", "features_baseline", f"data.train={data}", f"output_dir={tmp_path / 'run'}")
    assert r.code == 0, r.err
    r = run_cli("predict", "--run", tmp_path / "run", "--test", data, "--out", tmp_path / "s.csv", "train.epochs=3",
                "predict.clip=0.01", f"output_dir={tmp_path / 'p'}")
    assert r.code == 0, r.err
    assert "note: `predict` does not read train.epochs (training settings): it is ignored" in r.err


def test_data_check_refuses_nothing_it_reads(run_cli, tmp_path):
    from tests.conftest import lmsys_row, write_lmsys

    data = write_lmsys(tmp_path / "t.csv", [lmsys_row("1", ["q"], ["a"], ["b"])])
    r = run_cli("data", "check", data, "--no-tokens", "data.limit=5", "train.epochs=2")
    assert r.code == 0, r.err
    assert "does not read train.epochs" in r.err and "data.limit" not in r.err.split("does not read")[1]


def test_a_reader_that_closes_the_pipe_gets_no_traceback(tmp_path):
    """`prefkit data check FILE | head`: the reader goes away before prefkit writes; it ended in a BrokenPipeError
    traceback (an OSError without a file name, which the CLI re-raised as a bug)."""
    import subprocess
    import sys

    from tests.conftest import lmsys_row, write_lmsys

    data = write_lmsys(tmp_path / "t.csv", [lmsys_row(str(i), ["q"], ["a"], ["b"]) for i in range(5)])
    p = subprocess.Popen([sys.executable, "-m", "prefkit.cli", "data", "check", str(data), "--no-tokens"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before anything is written
    err = p.stderr.read().decode()
    assert p.wait() == 141 and "Traceback" not in err, err
