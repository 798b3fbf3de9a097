"""`prefkit data convert`: any source in competition form: LMSYS CSV, prefkit parquet (the LMSYS columns,
turns as native lists), or the WSDM Cup parquet (`competition=wsdm`). Exit 1 when bad rows were skipped."""

from __future__ import annotations

import sys
from pathlib import Path

from prefkit.config import Config
from prefkit.data import load_pairs
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite

SECTIONS = ["output_dir", "data.*", "competition"]


def main(cfg: Config, path: str, out: str | Path) -> int:
    from prefkit.core.runs import output_dir
    from prefkit.data.arena import write_lmsys_csv, write_parquet, write_wsdm_parquet
    from prefkit.recipes.common import report_unused, require_rows

    report_unused(cfg, "data convert", SECTIONS)
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise PrefkitError(f"--out {out}: the name must end in .csv or .parquet")
    if cfg.competition == "wsdm" and out.suffix != ".parquet":
        raise PrefkitError(f"--out {out}: WSDM Cup files are parquet")
    refuse_overwrite(out, {"the file to convert": path})
    table = load_pairs(path, cfg.data)
    require_rows(table, path, "to convert")  # a header alone would make an empty file, with exit 0
    if cfg.competition == "wsdm":
        write_wsdm_parquet(table, out)
    elif out.suffix == ".parquet":
        write_parquet(table, out)
    else:
        write_lmsys_csv(table, out)
    if table.skipped:
        print(table.skipped_report(), file=sys.stderr)
    if cfg.output_dir:
        output_dir(cfg, "convert")
    print(f"wrote {len(table)} rows -> {out}", file=sys.stderr)
    return 1 if table.skipped else 0
