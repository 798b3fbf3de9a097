"""Loading, validating, checking and splitting preference data."""

from prefkit.data.load import load_pairs
from prefkit.data.table import PairTable, swap_ab

__all__ = ["PairTable", "load_pairs", "swap_ab"]
