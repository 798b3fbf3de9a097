"""`prefkit export`: a run's reward model as a folder that plain transformers loads. The model card's own code (run
as it stands: transformers and torch, no prefkit) scores rows as prefkit's predictor scores them, within 1e-4: a
pair classifier (cls3, LoRA merged) with and without swap TTA, a Bradley-Terry head's fold and fold average
(LoRA), and MiniLM fine-tuned in full; a row past the token budget is refused by the card's `render` and rendered
exactly by `prefkit.rm.export.renderer`; what cannot be exported is refused with exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from prefkit import cli
from prefkit.data.table import PairTable, TableBuilder
from prefkit.rm import export
from tests.conftest import FAST, MINILM, TINY, lmsys_row, write_lmsys

# rows within the budget: one-turn, multi-turn, an empty (None) and a blank turn, non-ASCII
ROWS = [
    (["Is the sky blue?"], ["Yes, on a clear day."], ["no"]),
    (["hi", "and?"], ["Hello!", "Then."], [None, "ok"]),
    (["¿Qué tal?"], ["Muy bien, gracias."], ["   "]),
    (["question 3?"], ["maybe"], ["maybe"]),
]


def pairs(path: Path, n: int = 24) -> Path:
    rows = []
    for i in range(n):
        good, bad = "Yes! Here is a clear and correct answer." + " More." * (i % 5), "no" + " no" * (i % 4)
        a, b, winner = [(good, bad, (1, 0, 0)), (bad, good, (0, 1, 0)), ("maybe", "maybe", (0, 0, 1))][i % 3]
        rows.append(lmsys_row(f"r{i}", [f"question {i % 7}?"], [a], [b], winner))
    return write_lmsys(path, rows)


def table(rows=ROWS) -> PairTable:
    b = TableBuilder("<export rows>")
    for i, (p, a, bb) in enumerate(rows, start=1):
        b.add(i, None, f"x{i}", p, a, bb, None)
    return b.build()


def card(folder: Path) -> dict:
    """The namespace of the model card's Python, run as the card shows it (with DIR pointing at the folder)."""
    text = (folder / export.CARD_FILE).read_text()
    code = re.search(r"```python\n(.*?)\n```", text, re.S).group(1)
    assert 'DIR = "."' in code and set(re.findall(r"^(?:from|import) (\w+)", code, re.M)) == {"json", "transformers"}
    namespace: dict = {}
    exec(compile(code.replace('DIR = "."', f"DIR = {str(folder)!r}"), str(folder / "README.md"), "exec"), namespace)
    return namespace


def prefkit_probs(run: Path, folder: str, tta: bool = False, rows=ROWS) -> np.ndarray:
    """prefkit's predictor on the run's model folder."""
    from prefkit.rm.learners import load_learner
    from prefkit.rm.run import Run

    cfg = Run.open(run, [f"predict.swap_tta={str(tta).lower()}"]).config
    learner = load_learner(cfg, run / folder)
    try:
        return learner.predict(table(rows))[0]
    finally:
        learner.release()


def card_probs(ns: dict, tta: bool = False, rows=ROWS) -> np.ndarray:
    score = ns["score_pair_tta"] if tta else ns["score_pair"]
    return np.array([score(p, a, b) for p, a, b in rows])


def train(root: Path, *args: str, command: str = "train", config: Path = TINY) -> Path:
    run = root / command
    code = cli.main([command, str(config), f"data.train={pairs(root / 'train.csv')}", *args, "train.probe_rows=0",
                     f"output_dir={run}"])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory) -> Path:
    """The tiny Gemma-2, cls3 head, LoRA on unquantised weights (the export merges into those)."""
    return train(tmp_path_factory.mktemp("export_cls"), *FAST, "quantization.mode=none")


def test_a_cls3_lora_model_scores_as_prefkit_in_plain_transformers(cls_run, tmp_path, run_cli):
    out = tmp_path / "exported"
    r = run_cli("export", "--run", cls_run, "--out", out)
    assert r.code == 0, r.err
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json", "README.md",
                                               export.RENDER_FILE}
    assert not (out / "adapter_config.json").exists(), "the adapter is merged"
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "winner_model_a", "1": "winner_model_b", "2": "winner_tie"}
    assert config["pad_token_id"] == 0
    ns = card(out)
    assert ns["tok"].pad_token_id == 0 and ns["tok"].padding_side == "right"
    # the card's ids are prefkit's, and so are its probabilities, with swap TTA and without
    renderer = export.renderer(out)
    assert [ns["render"](*row) for row in ROWS] == [list(ids) for ids in renderer.render(table()).input_ids]
    for tta in (False, True):
        diff = np.abs(card_probs(ns, tta) - prefkit_probs(cls_run, "model", tta)).max()
        assert diff < 1e-4, (tta, diff)
    # the export checked itself on the golden rows, one of them past the budget
    settings = json.loads((out / export.RENDER_FILE).read_text())
    assert settings["check"]["golden_rows"] == 7 and settings["check"]["max_abs_diff"] < 1e-4
    assert "differ from prefkit's for the run's model by at most" in r.err


def test_a_row_past_the_budget_is_refused_by_the_card_and_rendered_exactly_by_prefkit(cls_run, tmp_path):
    from prefkit.rm.reward_model import RewardModelLearner
    from prefkit.rm.run import Run

    out = tmp_path / "exported"
    assert cli.main(["export", "--run", str(cls_run), "--out", str(out)]) == 0
    long = (["Tell me about binary search."], ["It halves the range each step. " * 20], ["no"])
    with pytest.raises(ValueError, match="over the 96-token budget"):
        card(out)["render"](*long)
    trained = RewardModelLearner(Run.open(cls_run).config).renderer  # the renderer training used
    assert export.renderer(out).render(table([long])).input_ids[0].tolist() == \
        trained.render(table([long])).input_ids[0].tolist()


@pytest.fixture(scope="module")
def bt_cv(tmp_path_factory) -> Path:
    """Two folds of the tiny Gemma-2 with the Bradley-Terry head (one score a response, a tie term), LoRA."""
    return train(tmp_path_factory.mktemp("export_bt"), *FAST, "quantization.mode=none", "model.head=bt",
                 "train.swap_augment=none", "cv.n_splits=2", command="cv")


def test_a_bt_cv_run_exports_one_fold_or_the_average_as_prefkit_merge_averages(bt_cv, tmp_path, run_cli):
    r = run_cli("export", "--run", bt_cv, "--out", tmp_path / "x")
    assert r.code == 2 and "2 finished models (fold0, fold1): export one with --fold K" in r.err
    assert not (tmp_path / "x").exists()
    fold = tmp_path / "fold1"
    assert run_cli("export", "--run", bt_cv, "--out", fold, "--fold", "1").code == 0
    config = json.loads((fold / "config.json").read_text())
    assert config["id2label"] == {"0": "score", "1": "tie_term"}
    ns = card(fold)
    assert np.abs(card_probs(ns) - prefkit_probs(bt_cv, "fold1")).max() < 1e-4
    assert tuple(ns["rewards"]("Is the sky blue?", ["Yes.", "No.", "Maybe."]).shape) == (3, 2)  # s, t a response
    assert "one response at a time" in (fold / "README.md").read_text()
    # docs/reward-model.md's reward function for TRL, on standard and conversational prompts
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reward-model.md").read_text()
    exec(next(b for b in re.findall(r"```python\n(.*?)\n```", docs, re.S) if "def prefkit_reward" in b), ns)
    prompts, completions = ["Is the sky blue?", "hi"], ["Yes, on a clear day.", "Hello!"]
    chats = [[{"role": "user", "content": p}] for p in prompts], [[{"role": "assistant", "content": c}] for c in completions]
    want = [ns["rewards"](p, [c])[0, 0].item() for p, c in zip(prompts, completions)]
    assert np.allclose(ns["prefkit_reward"](prompts, completions), want, atol=1e-5)
    assert np.allclose(ns["prefkit_reward"](*chats), want, atol=1e-5)

    average, merged = tmp_path / "average", tmp_path / "merged"
    r = run_cli("export", "--run", bt_cv, "--out", average, "--average")
    assert r.code == 0, r.err
    assert "fold0, fold1 averaged tensor by tensor" in json.loads((average / export.RENDER_FILE).read_text())["source"]["how"]
    assert run_cli("merge", "--run", bt_cv, "--out", merged).code == 0  # prefkit's average, scored by prefkit
    ns = card(average)
    assert np.abs(card_probs(ns) - prefkit_probs(merged, "model")).max() < 1e-4
    assert np.abs(card_probs(ns) - card_probs(card(fold))).max() > 1e-4, "the average is not fold 1"


def test_what_cannot_be_exported_is_refused_naming_why(cls_run, bt_cv, tmp_path, run_cli):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    r = run_cli("export", "--run", cls_run, "--out", full)
    assert r.code == 2 and "exists and is not an empty folder" in r.err and (full / "keep.txt").read_text() == "mine"
    r = run_cli("export", "--run", bt_cv, "--out", tmp_path / "a", "--fold", "0", "--average")
    assert r.code == 2 and "not both" in r.err
    r = run_cli("export", "--run", bt_cv, "--out", tmp_path / "b", "--fold", "3")
    assert r.code == 2 and "no finished fold3 (finished models: fold0, fold1)" in r.err
    r = run_cli("export", "--run", cls_run, "--out", cls_run / "inside")
    assert r.code == 2 and "inside --run" in r.err
    assert not any(p.name.startswith((".a", ".b", ".inside")) for p in tmp_path.iterdir()), "no stage left behind"


def test_a_minilm_model_fine_tuned_in_full_scores_as_prefkit(tmp_path, run_cli):
    """all-MiniLM-L6-v2 (BERT: [CLS] ... [SEP], WordPiece) with the bt head of the CPU default config."""
    run = train(tmp_path, "template.max_length=48", "train.batch_size=8", "train.epochs=1", "train.save_every=0",
                "train.log_every=1", config=MINILM)
    out = tmp_path / "exported"
    r = run_cli("export", "--run", run, "--out", out)
    assert r.code == 0, r.err
    settings = json.loads((out / export.RENDER_FILE).read_text())
    assert settings["prefix_ids"] == [101] and settings["suffix_ids"] == [102]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]
    assert np.abs(card_probs(card(out)) - prefkit_probs(run, "model")).max() < 1e-4



def test_an_export_that_scores_otherwise_than_training_is_refused_unless_quantisation_explains_it(cls_run, tmp_path,
                                                                                                   run_cli):
    """The export checks itself against the golden scores prefkit recorded at training (`prefkit.rm.golden`): moved
    beyond the tolerance it is refused and nothing is written; a run trained on 4-bit weights is exported onto the
    unquantised ones, and the card says how far that moves its scores."""
    import shutil

    from prefkit.rm import golden

    run = tmp_path / "run"
    shutil.copytree(cls_run, run)
    saved = json.loads((run / "model" / golden.FILE).read_text())
    saved["probabilities"][2] = [1.0, 0.0, 0.0]
    (run / "model" / golden.FILE).write_text(json.dumps(saved))
    r = run_cli("export", "--run", run, "--out", tmp_path / "moved")
    assert r.code == 2 and "differ from prefkit's" in r.err and "golden-3" in r.err and "nothing was written" in r.err
    assert not (tmp_path / "moved").exists() and not list(tmp_path.glob(".moved*"))
    saved["environment"]["quantization"] = "nf4"
    (run / "model" / golden.FILE).write_text(json.dumps(saved))
    r = run_cli("export", "--run", run, "--out", tmp_path / "qlora")
    assert r.code == 0, r.err
    assert "quantization nf4 -> none" in (tmp_path / "qlora" / "README.md").read_text()
