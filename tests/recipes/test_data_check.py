"""`prefkit data check` counts truncated rows against the budget of the configured head's layout."""

import json

from tests.conftest import lmsys_row, write_lmsys


def _over(run_cli, data, head: str) -> dict:
    r = run_cli("data", "check", data, "--json", "model.kind=seq_cls", "model.path=minilm", f"model.head={head}",
                "template.max_length=64")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_bt_rows_are_over_budget_only_when_prompt_and_one_response_are(run_cli, tmp_path):
    words = lambda n: " ".join(["apple"] * n)
    data = write_lmsys(tmp_path / "t.csv", [
        lmsys_row("fits-each-side", [words(10)], [words(25)], [words(25)]),  # 60 words as a pair, 35 a side
        lmsys_row("long-a", [words(10)], [words(50)], [words(5)]),  # 60 words on side A alone
    ])
    bt, cls3 = _over(run_cli, data, "bt"), _over(run_cli, data, "cls3")
    assert bt["sequences_per_row"] == 2 and cls3["sequences_per_row"] == 1
    assert bt["text_budget"] > cls3["text_budget"]  # two headers a sequence instead of three
    assert 35 < bt["text_budget"] < 60 and cls3["text_budget"] < 60
    assert (bt["rows_over_budget"], cls3["rows_over_budget"]) == (1, 2)


def test_no_tokens_starts_without_torch(tmp_path):
    """`data check --no-tokens` imports no tokenizer, head or torch (they cost about 3 s of a whole command, as long
    as polars takes to read and decode 150,000 rows): a fresh process asked which it loaded."""
    import subprocess
    import sys

    data = write_lmsys(tmp_path / "t.csv", [lmsys_row("1", ["hi"], ["a"], ["b"]), lmsys_row("2", ["yo"], ["c"], ["d"])])
    heavy = {"torch", "sklearn", "scipy", "transformers", "accelerate", "tokenizers", "pandas"}
    code = ("import sys\nfrom prefkit.cli import main\n"
            f"code = main(['data', 'check', '--no-tokens', {str(data)!r}])\n"
            f"print(code, sorted({heavy!r} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "0 []"
