"""`prefkit train`: one model on every labelled row, in RUN/model (with its resolved config in RUN). With
`train.length_balance`, the labelled rows are length-balanced (`rules.length_balanced`) before pseudo-labelled
pairs join; the counts are logged and kept in the model's trained.json and in metrics.json."""

from __future__ import annotations

from pathlib import Path

from prefkit.competition import competition_of
from prefkit.config import USES, Config
from prefkit.core.dist import is_main
from prefkit.core.runs import REWARD_MODEL_KINDS, mark_trained
from prefkit.io import write_json
from prefkit.recipes.common import finished_earlier, load_labelled, log, start
from prefkit.rm import probes
from prefkit.rm.learners import check_source, make_learner, record_golden, token_line
from prefkit.toolbox import rules
from prefkit.toolbox.pseudo import with_pseudo_rows

SECTIONS = USES  # the config keys it reads, by model.kind


def main(cfg: Config, name: str = "", resume: bool = False) -> Path:
    check_source(cfg)
    out = start(cfg, "train", REWARD_MODEL_KINDS, "a causal_lm student trains with `prefkit cot sft`", SECTIONS, name, resume)
    folder = out / "model"
    if finished_earlier(folder, resume):
        return out
    table = load_labelled(cfg.data.train, cfg)
    if is_main():
        write_json(out / rules.FILE, rules.fitted_rules(table, competition_of(cfg)))
    labelled, balance = table, None
    if cfg.train.length_balance:  # the labelled rows only; pseudo-labelled pairs join after
        table, balance = rules.length_balanced(table, cfg.train.seed)
        log(f"length-balanced training rows: {rules.balance_line(balance)}")
    table = with_pseudo_rows(table, cfg.train.pseudo_labels)
    learner = make_learner(cfg)
    history = learner.fit(table, None, folder, resume)
    tokens = learner.tokens()
    if tokens is not None:
        log(token_line(tokens, cfg))
    learner.release()
    del learner
    record_golden(cfg, folder)  # the model's scores on fixed rows, checked wherever it predicts
    probes.record_training(cfg, folder)  # its tokenizer and special tokens, for the doctor
    mark_trained(folder, {"kind": cfg.model.kind, "rows": len(table), "history_tail": history[-1:],
                          **({"length_balance": balance} if balance else {})})
    probed = probes.after_training(cfg, out, labelled)  # the model itself, on a sample of its training rows
    metrics = {k: v for k, v in (("probes", probed), ("tokens", tokens), ("length_balance", balance)) if v is not None}
    if metrics and is_main():
        write_json(out / "metrics.json", metrics)
    log(f"trained on {len(table)} rows -> {folder}")
    return out
