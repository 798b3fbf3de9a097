"""The competitions prefkit serves: what is predicted, how it is scored, what is submitted.

    lmsys  LMSYS Chatbot Arena: P(A wins), P(B wins), P(tie); multi-class log loss;
           submission `id,winner_model_a,winner_model_b,winner_tie`.
    wsdm   WSDM Cup 2025 (multilingual arena): A or B; accuracy; submission `id,winner` in {model_a, model_b}.

Both metrics are always computed and reported (log loss also for WSDM, where it tells calibration apart); the
competition's own is named in `metrics.json` as `metric`. Probabilities are always in the competition's label
order (`labels`): columns 0 and 1 are A and B, so an A/B swap exchanges them and leaves the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefkit.data.table import LABELS, WINNER_COLUMNS, PairTable
from prefkit.errors import PrefkitError


@dataclass(frozen=True)
class Competition:
    name: str
    labels: tuple[str, ...]  # the classes, in probability-column order
    metric: str  # the leaderboard's metric: "logloss" (lower is better) or "accuracy"
    slug: str  # Kaggle's competition name
    train_file: str  # the competition's training file under /kaggle/input/<slug>
    test_file: str

    @property
    def columns(self) -> tuple[str, ...]:
        """Probability columns of OOF files, soft labels and the LMSYS submission, one per label."""
        return WINNER_COLUMNS[: len(self.labels)]


COMPETITIONS = {
    "lmsys": Competition("lmsys", LABELS, "logloss", "lmsys-chatbot-arena", "train.csv", "test.csv"),
    "wsdm": Competition("wsdm", LABELS[:2], "accuracy", "wsdm-cup-multilingual-chatbot-arena", "train.parquet",
                        "test.parquet"),
}


def competition_of(cfg) -> Competition:
    """The competition a config's run is for (`competition`: its labels, metric and files)."""
    return COMPETITIONS[cfg.competition]


def swap_index(k: int) -> list[int]:
    """Columns of the A/B-swapped row's probabilities (or targets) in the original order: A and B exchange."""
    return [1, 0, *range(2, k)]


def keep_labelled(table: PairTable, comp: Competition, ties: str) -> PairTable:
    """Rows whose label the competition has. A tie in a WSDM run (an LMSYS file given to an A-or-B
    competition) is refused, naming the first, or dropped and counted (`data.ties=drop`: `dropped_labels`)."""
    extra = ~table.frame["label"].isin(comp.labels) & table.frame["label"].notna()
    if not extra.any():
        return table
    n, first = int(extra.sum()), table.frame.loc[extra].iloc[0]
    where = f"row {first['row']}, id {first['id']!r}"
    if ties != "drop":
        raise PrefkitError(f"{table.source}: {n} rows are labelled {first['label']!r} ({where} first), which the "
                           f"{comp.name} competition does not have (labels: {', '.join(comp.labels)}); "
                           "data.ties=drop skips them")
    kept = table.subset(~extra)
    kept.dropped_labels = n
    return kept


def kaggle_slug(cfg) -> str:
    """`kaggle.competition`, or the competition's own slug. The slug of another competition prefkit knows is
    refused: the kernel would mount, and a submission go to, a competition whose files this run does not read
    or write (an LMSYS run's probabilities in WSDM's Kaggle competition)."""
    slug = cfg.kaggle.competition
    if not slug:
        return competition_of(cfg).slug
    other = [c.name for c in COMPETITIONS.values() if c.slug == slug and c.name != cfg.competition]
    if other:
        raise PrefkitError(f"kaggle.competition={slug} is the {other[0]} competition, but this run is for "
                           f"{cfg.competition} (competition={cfg.competition}): set competition={other[0]}, "
                           "or leave kaggle.competition unset")
    return slug


def kaggle_data_path(cfg, split: str) -> str:
    """Where a kernel reads the competition's train or test file (`kaggle.test_path` overrides the test one)."""
    if split == "test" and cfg.kaggle.test_path:
        return cfg.kaggle.test_path
    comp = competition_of(cfg)
    return f"/kaggle/input/{kaggle_slug(cfg)}/{comp.test_file if split == 'test' else comp.train_file}"
