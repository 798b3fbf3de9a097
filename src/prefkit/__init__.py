"""prefkit: pairwise-preference (reward model) competitions, from data file to submission."""

__version__ = "0.1.0"
