from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prefkit.config import Config, load_config, save_config
from prefkit.errors import PrefkitError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert CONFIGS, "configs/ should ship at least one config"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    raw = yaml.safe_load(path.read_text())
    for section, values in raw.items():  # every key written in the file reached the dataclass
        if isinstance(values, dict) and not isinstance(getattr(cfg, section), dict):
            for key, value in values.items():
                assert getattr(getattr(cfg, section), key) == value, f"{section}.{key}"
        else:  # a top-level key (competition, output_dir, ...)
            assert getattr(cfg, section) == values, section


def test_overrides_keep_types_and_save(tmp_path):
    cfg = load_config(CONFIGS[0], ["cv.n_splits=3", "data.skip_bad_rows=true", "template.prompt_share=0.3",
                                   f"output_dir={tmp_path}", "data.train=123", "train.learning_rate=2e-4"])
    assert cfg.train.learning_rate == 2e-4, "YAML reads 2e-4 as a string; a float field takes it"
    assert cfg.cv.n_splits == 3 and cfg.data.skip_bad_rows is True and cfg.template.prompt_share == 0.3
    assert cfg.data.train == "123", "a path that YAML reads as a number stays a string"
    saved = save_config(cfg, tmp_path)
    assert load_config(saved).cv.n_splits == 3


@pytest.mark.parametrize("override,words", [
    ("template.max_lenght=10", ["unknown key 'template.max_lenght'", "did you mean 'max_length'"]),
    ("nosuch.key=1", ["unknown key 'nosuch'"]),
    ("cv.n_splits=three", ["'cv.n_splits' must be int"]),
    ("data.format=xlsx", ["'data.format' must be one of"]),
    ("data=5", ["'data' is a section"]),
    ("justaword", ["key.sub=value"]),
])
def test_bad_keys_name_the_key(override, words):
    with pytest.raises(PrefkitError) as e:
        load_config(None, [override])
    for w in words:
        assert w in str(e.value)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("cv:\n  n_split: 3\n")
    with pytest.raises(PrefkitError, match=r"c\.yaml: unknown key 'cv\.n_split' \(did you mean 'n_splits'\?\)"):
        load_config(p)


def test_cli_config_error_exits_2(run_cli, tmp_path):
    r = run_cli("cv", CONFIGS[0], "cv.n_splitz=3")
    assert r.code == 2 and "unknown key 'cv.n_splitz'" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("override", ["cv.seed=-3", "train.seed=4294967300", "data.seed=31415926535897932384",
                                      "train.seed=-99999999999999999999"])
def test_seed_outside_numpy_range_refused_at_load(override):
    # numpy (scikit-learn's folds) takes seeds in 0..2**32-1 only; outside it a job died with a traceback
    with pytest.raises(PrefkitError, match=rf"'{override.split('=')[0]}' must be >= 0 and <= 4294967295; got -?\d+"):
        load_config(None, [override])


def test_seed_range_edges_accepted():
    cfg = load_config(None, ["cv.seed=0", "train.seed=4294967295", "data.seed=17"])
    assert (cfg.cv.seed, cfg.train.seed, cfg.data.seed) == (0, 2**32 - 1, 17)


def test_every_seed_field_is_range_checked():
    # a seed added later gets the same check, or this fails
    import dataclasses

    def seeds(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                yield from seeds(value, f"{prefix}{f.name}.")
            elif "seed" in f.name:
                yield f"{prefix}{f.name}", f.metadata.get("range")

    found = dict(seeds(Config()))
    assert {"data.seed", "train.seed", "cv.seed"} <= found.keys()
    assert all(r == (0, 2**32 - 1, False, False) for r in found.values()), found


def test_cli_bad_seed_exits_2_without_traceback(run_cli, tmp_path):
    from tests.conftest import lmsys_row, write_lmsys

    rows = [lmsys_row(str(i), [f"q{i}"], ["a"], ["b"], winner=(1, 0, 0) if i % 2 else (0, 1, 0)) for i in range(12)]
    train = write_lmsys(tmp_path / "train.csv", rows)
    r = run_cli("cv", CONFIGS[0], "cv.seed=-12", f"data.train={train}", f"output_dir={tmp_path / 'run'}")
    assert r.code == 2 and r.err.startswith("error: command line: key 'cv.seed' must be >= 0")
    assert "Traceback" not in r.err and not (tmp_path / "run").exists(), "refused before any folder is made"
