"""`prefkit train`: one model on every labelled row, in RUN/model (with its resolved config in RUN)."""

from __future__ import annotations

from pathlib import Path

from prefkit.config import USES, Config
from prefkit.distill import check_trainable
from prefkit.pseudo import with_pseudo_rows
from prefkit.learners import check_source, is_trained, make_learner, mark_trained
from prefkit import rules
from prefkit.competition import of
from prefkit.dist import is_main
from prefkit.io import write_json
from prefkit.recipes.common import load_labelled, log, output_dir, report_unused, require_kind

SECTIONS = USES  # the config keys it reads, by model.kind


def main(cfg: Config, name: str = "", resume: bool = False) -> Path:
    check_source(cfg)
    require_kind(cfg, "prefkit train", ("features", "seq_cls"), "a causal_lm student trains with `prefkit cot sft`")
    check_trainable(cfg)
    report_unused(cfg, "train", SECTIONS)
    out = output_dir(cfg, "train", name)
    folder = out / "model"
    if resume and is_trained(folder):
        log(f"{folder}: finished earlier, kept")
        return out
    table = load_labelled(cfg.data.train, cfg)
    if is_main():
        write_json(out / rules.FILE, rules.fit_all(table, of(cfg)))
    table = with_pseudo_rows(table, cfg.train.pseudo_labels)
    history = make_learner(cfg).fit(table, None, folder, resume)
    mark_trained(folder, {"kind": cfg.model.kind, "rows": len(table), "history_tail": history[-1:]})
    log(f"trained on {len(table)} rows -> {folder}")
    return out
