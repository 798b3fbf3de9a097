"""Rules for rows a model should not have to guess (LMSYS 4th place): one response empty, or both the same.

    empty      one side's response is empty (every turn blank or null) and the other is not
    identical  the two responses are the same, turn for turn

A rule's prediction is the outcome distribution of the rows it matches in the training labels, oriented (for
`empty`: P(the non-empty side wins), P(the empty side wins), P(tie)), with one added count per outcome so
that none is 0. `prefkit cv` measures every rule on its out-of-fold predictions (each fold's rule fitted on the
other folds) and writes the rules fitted on all rows to `rules.json`; `predict.rules` applies them, from that
file, to the rows they match.

`length_view` is a rule measured, never applied: "the longer last answer wins", the bias a reward model learns
first, set beside the model's accuracy where the shorter answer won (in `metrics.json` of every cv run, and in
`prefkit compare`). `length_balanced` acts on it at training time (`train.length_balance`): the pairs of the
smaller of its two groups copied until the groups are as many.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefkit.competition import Competition
from prefkit.config import PREDICT_RULES
from prefkit.data.table import PairTable
from prefkit.errors import PrefkitError
from prefkit.metrics import label_ids, score

RULES = PREDICT_RULES  # named in prefkit.config, which checks `predict.rules` against them when a config loads
FILE = "rules.json"


def _blank(turns: list) -> bool:
    return all(t is None or not str(t).strip() for t in turns)


def matches(table: PairTable, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows the rule matches, the side its first column means: 0 for A, 1 for B)."""
    f = table.frame
    if rule == "empty":
        ea = np.array([_blank(t) for t in f["response_a"]], dtype=bool)
        eb = np.array([_blank(t) for t in f["response_b"]], dtype=bool)
        return ea ^ eb, np.where(eb, 0, 1)  # the non-empty side
    if rule == "identical":
        same = np.array([a == b for a, b in zip(f["response_a"], f["response_b"])], dtype=bool)
        return same, np.zeros(len(f), dtype=int)
    raise PrefkitError(f"predict.rules: unknown rule {rule!r} (rules: {', '.join(RULES)})")


def _orient(values: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Exchange the A and B columns where `side` is 1 (the same map turns rule order into row order and back)."""
    out = values.copy()
    flip = side == 1
    out[flip, 0], out[flip, 1] = values[flip, 1], values[flip, 0]
    return out


def check(names: list[str]) -> None:
    bad = [r for r in names if r not in RULES]
    if bad:
        raise PrefkitError(f"predict.rules: unknown rule {bad[0]!r} (rules: {', '.join(RULES)})")


def fitted_rule(table: PairTable, comp: Competition, rule: str) -> dict:
    """A rule fitted on `table`'s labels: the rows it matches and its oriented outcome distribution."""
    mask, side = matches(table, rule)
    k = len(comp.labels)
    y = np.eye(k)[label_ids(table.frame["label"][mask])] if mask.any() else np.zeros((0, k))
    counts = _orient(y, side[mask]).sum(axis=0) + 1.0
    if rule == "identical":  # A and B are the same text: the two sides are exchangeable
        counts[:2] = counts[:2].mean()
    return {"rows": int(mask.sum()), "probs": (counts / counts.sum()).round(6).tolist()}


def apply(table: PairTable, probs: np.ndarray, fitted: dict, names: list[str]) -> tuple[np.ndarray, dict]:
    probs = probs.copy()
    counts = {}
    for rule in names:
        if rule not in fitted:
            raise PrefkitError(f"predict.rules: {rule!r} was not fitted by this run (its {FILE} has "
                               f"{', '.join(fitted) or 'none'}); train it again with this prefkit")
        mask, side = matches(table, rule)
        if mask.any():
            probs[mask] = _orient(np.tile(np.array(fitted[rule]["probs"]), (int(mask.sum()), 1)), side[mask])
        counts[rule] = int(mask.sum())
    return probs, counts


def out_of_fold(table: PairTable, probs: np.ndarray, folds: np.ndarray, comp: Competition,
                names: list[str]) -> tuple[np.ndarray, dict]:
    """`names` applied to out-of-fold predictions, each fold's rules fitted on the other folds' labels (so the
    result stays out of fold); the rows each rule matched."""
    probs = probs.copy()
    counts = dict.fromkeys(names, 0)
    for k in np.unique(folds):
        va = folds == k
        rest, here = table.subset(~va), table.subset(va)
        probs[va], n = apply(here, probs[va], {r: fitted_rule(rest, comp, r) for r in names}, names)
        for r in names:
            counts[r] += n[r]
    return probs, counts


def measure(table: PairTable, oof: np.ndarray, folds: np.ndarray, comp: Competition) -> dict:
    """Each rule on out-of-fold predictions: the rows it matches and their log loss and accuracy with the
    model's predictions and with the rule's, each fold's rule fitted on the other folds' labels."""
    labels = table.frame["label"].to_numpy()
    out = {}
    for rule in RULES:
        mask, _ = matches(table, rule)
        if not mask.any():
            out[rule] = {"rows": 0}
            continue
        ruled, _ = out_of_fold(table, oof, folds, comp, [rule])
        before, after = score(oof[mask], labels[mask]), score(ruled[mask], labels[mask])
        out[rule] = {"rows": int(mask.sum()), "logloss_model": round(before["logloss"], 4),
                     "logloss_rule": round(after["logloss"], 4), "accuracy_model": round(before["accuracy"], 4),
                     "accuracy_rule": round(after["accuracy"], 4),
                     "logloss_all_rows_with_rule": round(score(ruled, labels)["logloss"], 4)}
    return out


def last_turn_lengths(table: PairTable) -> tuple[np.ndarray, np.ndarray]:
    """Characters of the last turn of response A and of response B (a null turn, or none, counts 0)."""
    def last(turns) -> int:
        return len(turns[-1] or "") if len(turns) else 0

    f = table.frame
    return (np.array([last(t) for t in f["response_a"]], dtype=np.int64),
            np.array([last(t) for t in f["response_b"]], dtype=np.int64))


def length_groups(table: PairTable) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the pairs where the shorter last answer won and where the longer won (A or B won and the lengths
    differ; ties and pairs of equal lengths are in neither): the groups `length_view` scores, for a paired
    comparison of two models on one of them."""
    la, lb = last_turn_lengths(table)
    return _groups(la, lb, label_ids(table.frame["label"]))


def length_balanced(table: PairTable, seed: int) -> tuple[PairTable, dict]:
    """`table` and, after its rows, copies of the smaller of the two `length_groups` (the pairs where the shorter
    last answer won, those where the longer won) until the two are as many, so that length alone no longer lowers
    the training loss (`train.length_balance`): every pair of the group copied as many whole times as the gap
    allows (ids `<id>~dup1`, `<id>~dup2`, ...), then a subset of them, drawn with `seed`, once more for the rest.
    Pairs of equal lengths, and ties, are in neither group: counted, left once. Every row needs a label (balance
    the labelled rows, then join pseudo-labelled ones). Returns the table and the counts (`balance_line`)."""
    import pandas as pd

    labels = table.frame["label"]
    if labels.isna().any():
        first = table.frame["id"][labels.isna()].iloc[0]
        raise PrefkitError(f"{table.source}: length balancing: {int(labels.isna().sum())} rows have no label (first: "
                           f"id {first!r}); balance the labelled rows only, then join the pseudo-labelled ones")
    la, lb = last_turn_lengths(table)
    shorter, longer = _groups(la, lb, label_ids(labels))
    copied, group = (shorter, "shorter won") if shorter.sum() <= longer.sum() else (longer, "longer won")
    need = abs(int(longer.sum()) - int(shorter.sum()))
    idx = np.flatnonzero(copied)
    if need and not len(idx):
        raise PrefkitError(f"{table.source}: length balancing: no pair where the {group.split()[0]} answer won among "
                           f"its {len(table)} rows (the {'longer' if group == 'shorter won' else 'shorter'} won "
                           f"{need}): nothing to copy; train.length_balance needs pairs of both kinds")
    whole, part = divmod(need, len(idx)) if need else (0, 0)
    picks = [idx] * whole + ([np.sort(np.random.default_rng(seed).choice(idx, part, replace=False))] if part else [])
    frames, ids = [table.frame], set(table.frame["id"].astype(str))
    for r, rows in enumerate(picks, start=1):
        copy = table.frame.iloc[rows].copy()
        copy["id"] = copy["id"].astype(str) + f"~dup{r}"
        taken = copy["id"].isin(ids)
        if taken.any():
            raise PrefkitError(f"{table.source}: length balancing would name a copy {copy['id'][taken].iloc[0]!r}, "
                               "the id of a row of the file; give the rows other ids")
        frames.append(copy)
    out = PairTable(pd.concat(frames, ignore_index=True), table.source, table.skipped, table.repaired_cells,
                    table.dropped_labels)
    label = labels.to_numpy()
    counts = {"rows": len(table), "shorter_won": int(shorter.sum()), "longer_won": int(longer.sum()),
              "equal_lengths": int(((la == lb) & (label != "tie")).sum()), "ties": int((label == "tie").sum()),
              "copied": group, "duplicated": need, "rows_trained": len(out)}
    return out, counts


def balance_line(counts: dict) -> str:
    """One line of `length_balanced`'s counts for a log or a report."""
    return (f"{counts['rows']} rows: shorter won {counts['shorter_won']}, longer won {counts['longer_won']}, "
            f"equal lengths {counts['equal_lengths']}, ties {counts['ties']}; {counts['duplicated']} copies of "
            f"'{counts['copied']}' pairs: {counts['rows_trained']} trained on")


def _groups(la: np.ndarray, lb: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    longer = np.where(la > lb, 0, 1)
    decided = (la != lb) & (y < 2)  # A or B won, one of them longer
    return decided & (longer != y), decided & (longer == y)


def length_view(table: PairTable, probs: np.ndarray) -> dict:
    """The length-only rule "the longer last answer wins" on these rows, and the model's accuracy (`probs`' most
    probable label) on the pairs where the shorter answer won and where the longer won: how much of a score is
    length. The rule picks the side whose last turn has more characters; a pair of equal lengths counts 1/2 for
    it (it has no pick: a coin) and a tie label 0 (it never says tie). Tie-labelled pairs and pairs of equal
    lengths are in neither group. An accuracy over no rows is None."""
    la, lb = last_turn_lengths(table)
    y = label_ids(table.frame["label"])
    longer = np.where(la > lb, 0, 1)  # the side the rule picks where the lengths differ
    differ = la != lb
    rule = np.where(differ, (longer == y).astype(np.float64), np.where(y < 2, 0.5, 0.0))
    right = np.asarray(probs).argmax(axis=1) == y
    shorter_won, longer_won = _groups(la, lb, y)

    def group(mask: np.ndarray) -> dict:
        return {"rows": int(mask.sum()), "accuracy": round(float(right[mask].mean()), 4) if mask.any() else None}

    return {"rows": int(len(y)), "rule_accuracy": round(float(rule.mean()), 4) if len(y) else None,
            "differ_share": round(float(differ.mean()), 4) if len(y) else None,
            "shorter_won": group(shorter_won), "longer_won": group(longer_won)}


def length_line(view: dict) -> str:
    """One line of `length_view` for a log or a report."""
    def acc(g: dict) -> str:
        return "-" if g["accuracy"] is None else f"{g['accuracy']:.4f}"

    return (f"length rule (the longer last answer wins): accuracy {view['rule_accuracy']:.4f}, "
            f"{view['differ_share']:.1%} of pairs differ in length; the model's accuracy where the shorter won "
            f"{acc(view['shorter_won'])} ({view['shorter_won']['rows']} rows), where the longer won "
            f"{acc(view['longer_won'])} ({view['longer_won']['rows']} rows)")


def fitted_rules(table: PairTable, comp: Competition) -> dict:
    return {rule: fitted_rule(table, comp, rule) for rule in RULES}


def load(run_dir: Path) -> dict:
    import json

    path = Path(run_dir) / FILE
    if not path.is_file():
        raise PrefkitError(f"predict.rules: {run_dir} has no {FILE} (written by cv and train of this prefkit)")
    return json.loads(path.read_text())
