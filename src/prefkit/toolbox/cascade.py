"""`predict.cascade`: the least sure `fraction` of the rows re-scored by a second run and blended in with `weight`
(WSDM Cup 7th: a bigger model on 15%). `prefkit predict` has the second run predict those rows; `prefkit
repredict` reads its out-of-fold predictions of them, so the score stays out of fold."""

from __future__ import annotations

from typing import Callable

import numpy as np

from prefkit.competition import competition_of
from prefkit.config import CascadeConfig, Config
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import margins


def check(cfg: Config, second: Config) -> None:
    """The second run (its config `second`) must be of the same competition as the run predicting (`cfg`): its
    probabilities replace part of ours, column for column. Checked before anything is predicted."""
    if second.competition != cfg.competition:
        theirs, ours = competition_of(second).labels, competition_of(cfg).labels
        raise PrefkitError(f"predict.cascade.run={cfg.predict.cascade.run} is a competition={second.competition} run "
                           f"({', '.join(theirs)}); this run predicts competition={cfg.competition} "
                           f"({', '.join(ours)}): give a {cfg.competition} run")


def apply(cc: CascadeConfig, table: PairTable, p: np.ndarray,
            second: Callable[[PairTable], np.ndarray], say: Callable[[str], None] | None = None
            ) -> tuple[np.ndarray, dict]:
    """`p` with its least sure rows blended with `second(rows)`, the second run's probabilities of those rows;
    and what was done ({} without `cc.run`). `say` (a log function) hears which rows, before they are asked."""
    if not cc.run:
        return p, {}
    order = np.sort(np.argsort(margins(p), kind="stable")[: int(np.ceil(cc.fraction * len(p)))])
    if say:
        say(f"cascade: {cc.run} re-scores the {len(order)} least sure of {len(p)} rows (weight {cc.weight})")
    q = second(table.subset(order))
    p = p.copy()
    p[order] = (1 - cc.weight) * p[order] + cc.weight * q
    return p, {"run": cc.run, "rows": len(order), "weight": cc.weight}
