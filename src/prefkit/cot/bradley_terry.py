"""Bradley-Terry strengths from pairwise (soft) wins, with bootstrap confidence intervals.

P(i beats j) = s_i / (s_i + s_j). Fitted with Hunter's MM updates (Hunter 2004, "MM algorithms for
generalized Bradley-Terry models"): s_i <- W_i / sum_j n_ij / (s_i + s_j), where W_i counts i's wins (a tie
counts half to each) and n_ij the comparisons of i and j. Reported as log-strengths centred on 0. Neither
scipy nor scikit-learn fits Bradley-Terry, and the update is a few lines, so it is written here.
"""

from __future__ import annotations

import numpy as np

from prefkit import metrics


def log_strengths(wins: np.ndarray, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """`wins[i, j]`: (soft) wins of i over j. Returns centred log-strengths."""
    k = len(wins)
    n = wins + wins.T
    w = wins.sum(axis=1) + 1e-9  # a system that never wins keeps a tiny strength instead of zero
    s = np.ones(k)
    for _ in range(iters):
        denom = (n / (s[:, None] + s[None, :])).sum(axis=1)
        new = w / np.maximum(denom, 1e-12)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - s)) < tol:
            s = new
            break
        s = new
    log_s = np.log(s)
    return log_s - log_s.mean()


def bootstrap(per_item: np.ndarray, rounds: int = 200, seed: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """`per_item[q, i, j]`: wins of i over j on item q. Items are resampled with replacement; returns the
    lower and upper bounds of the central `level` interval of each log-strength (`metrics.bootstrap`)."""
    return metrics.bootstrap(lambda items: log_strengths(per_item[items].sum(axis=0)), len(per_item), rounds, seed, level)
