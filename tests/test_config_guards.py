"""Issue 27, class 8 (configs): what a config file or override sets is checked where configs load, once:
`predict.rules` names, an empty file, a key given twice."""

from __future__ import annotations

import re

import pytest

from prefkit.config import PREDICT_RULES, load_config, read_yaml
from prefkit.errors import PrefkitError
from prefkit.toolbox import rules


def test_unknown_rules_are_refused_at_load():
    """Before: `predict.rules=[empty, bogus]` loaded (a plain list of strings); `cv` ran and saved it into the
    run, and only `predict` of that run refused it."""
    with pytest.raises(PrefkitError, match=r"command line: key 'predict.rules': unknown rule 'nonsense' "
                                           r"\(each must be one of empty, identical\)"):
        load_config(None, ["predict.rules=[identical, nonsense]"])
    assert load_config(None, ["predict.rules=[identical, empty]"]).predict.rules == ["identical", "empty"]
    assert rules.RULES == PREDICT_RULES, "one list of rule names, the one configs are checked against"


def test_unknown_rules_in_a_config_file_are_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("competition: lmsys\npredict:\n  rules: [empty, ident]\n")
    with pytest.raises(PrefkitError, match=r"rules.yaml: key 'predict.rules': unknown rule 'ident'"):
        load_config(path)


def test_unknown_rules_are_refused_by_cv_before_it_runs(run_cli, tmp_path):
    """Before: `prefkit cv CONFIG predict.rules=[...]` took any name."""
    path = tmp_path / "base.yaml"
    path.write_text(f"data:\n  train: {tmp_path / 'none.csv'}\n")
    r = run_cli("cv", path, "predict.rules=[empty, bogus_rule]")
    assert r.code == 2 and "unknown rule 'bogus_rule'" in r.err and "Traceback" not in r.err, r.err


@pytest.mark.parametrize("text", ["", "\n", "# everything is default here\n\n# nothing set\n", "{}\n"])
def test_an_empty_config_file_is_refused(tmp_path, text):
    """Before: an empty (or comments-only) config loaded as all defaults, silently."""
    path = tmp_path / "blank.yaml"
    path.write_text(text)
    with pytest.raises(PrefkitError, match=rf"{path}: empty config"):
        load_config(path)


def test_a_section_given_twice_is_refused_with_both_lines(tmp_path):
    """Before: YAML kept the second `cv:` section and dropped the first without a word (n_splits, seed lost)."""
    path = tmp_path / "twice.yaml"
    path.write_text("competition: lmsys\ncv:\n  n_splits: 3\n  seed: 7\ntrain:\n  epochs: 2\n"
                    "\n# later, forgetting the first\ncv:\n  folds: [0]\n")
    with pytest.raises(PrefkitError, match=r"twice.yaml: key 'cv' is given twice, on lines 2 and 9"):
        load_config(path)


def test_a_key_given_twice_inside_a_section_is_refused(tmp_path):
    path = tmp_path / "inner.yaml"
    path.write_text("template:\n  max_length: 256\n  prompt_share: 0.3\n  max_length: 128\n")
    with pytest.raises(PrefkitError, match=r"key 'max_length' is given twice, on lines 2 and 4"):
        load_config(path)


def test_a_duplicate_is_one_line_and_exit_2_on_the_command_line(run_cli, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("data:\n  limit: 20\ndata:\n  limit: 30\n")
    r = run_cli("cv", path)
    assert r.code == 2 and "key 'data' is given twice, on lines 1 and 3" in r.err and "Traceback" not in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_merges_may_override_and_overrides_may_not_repeat():
    """A YAML merge (`<<: *base`) brings keys a mapping may set again: that is not a duplicate."""
    assert read_yaml("a: &base {k: 1, j: 2}\nb:\n  <<: *base\n  k: 5\n", "t") == {"a": {"k": 1, "j": 2},
                                                                                 "b": {"k": 5, "j": 2}}
    with pytest.raises(PrefkitError, match="key 'hidden_size' is given twice"):
        load_config(None, ["model.random_init={hidden_size: 8, hidden_size: 16}"])


@pytest.mark.parametrize("overrides,words", [
    (["train.pseudo_labels=pl.csv"], "train.pseudo_labels: trains model.kind=seq_cls"),
    (["train.distill.teacher=[t.csv]", "train.soft_labels=s.csv"], "train.soft_labels, train.distill.teacher: trains"),
    (["cv.n_splits=4", "cv.folds=[1,4]"], "cv.folds: fold 4 does not exist with cv.n_splits=4"),
])
def test_rules_across_fields_stop_the_config_at_load(overrides, words):
    """Before: these combinations passed load_config and were refused only inside `cv`/`train`, after the data
    had loaded (and `predict` or `kaggle bundle` never refused them)."""
    from prefkit.config import load_config
    from prefkit.errors import PrefkitError
    from prefkit.shipped import config_path

    with pytest.raises(PrefkitError, match=re.escape(words)):
        load_config(config_path("rm/features_baseline"), overrides)
