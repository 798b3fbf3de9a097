"""`prefkit data check`: summarise a preference file and validate every row (token counts with the configured
tokenizer and template). Exit 1 when bad rows were skipped (`data.skip_bad_rows`)."""

from __future__ import annotations

import json
import sys

from prefkit.config import Config
from prefkit.data import load_pairs

SECTIONS = ["output_dir", "data.*", "template.*", "model.kind", "model.path", "model.head", "competition"]


def main(cfg: Config, path: str, as_json: bool = False, tokens: bool = True) -> int:
    from prefkit.data.check import format_summary, summarise
    from prefkit.io import write_json
    from prefkit.recipes.common import report_unused, require_rows

    report_unused(cfg, "data check", SECTIONS)
    table = load_pairs(path, cfg.data)
    require_rows(table, path, "to check")  # a header alone would pass with exit 0
    renderer = None
    if tokens:
        # the tokenizer, the head and torch are imported only here: without them `--no-tokens` starts about 3 s
        # sooner, as long as polars takes to read and decode 150,000 rows (benchmarks/data_scale.py --hh)
        from prefkit.core.tokenizer import config_tokenizer
        from prefkit.rm.heads import make_head
        from prefkit.rm.templates import Renderer

        tok = config_tokenizer(cfg)
        # the head's layout sets the budget: bt renders prompt + one response a sequence, lm_tokens adds its question
        layout = make_head(cfg, tok).layout if cfg.model.kind == "seq_cls" else "pair"
        renderer = Renderer(tok, cfg.template, layout)
    summary = summarise(table, renderer)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if as_json else format_summary(summary))
    if table.skipped:
        print(table.skipped_report(), file=sys.stderr)
    if cfg.output_dir:
        from prefkit.core.runs import output_dir

        write_json(output_dir(cfg, "check") / "summary.json", summary)
    return 1 if table.skipped else 0
