"""Drift statistics on fixed-bin counts (no rows needed): chi-square test of homogeneity with Holm's correction
across features, PSI and Jensen-Shannon distance as effect sizes, out-of-range and missing shares.

PSI alone is not a test: with B bins and no drift it is about (1/N + 1/M) times a chi-square with B-1 degrees of
freedom, so small windows exceed the usual 0.1 by chance and large ones hide real shifts. edgebench therefore alarms
only when a feature is significant after the correction *and* its PSI is above a threshold calibrated at export for
the window's size.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

SMOOTHING = 0.5


def shares(counts: np.ndarray) -> np.ndarray:
    """Bin shares with additive smoothing, so that empty bins give finite PSI and JS."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + SMOOTHING) / (counts.sum(axis=-1, keepdims=True) + SMOOTHING * counts.shape[-1])


def psi(reference: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Population stability index of ``window`` against ``reference`` (the last axis is the bins)."""
    p, q = shares(reference), shares(window)
    return np.sum((q - p) * np.log(q / p), axis=-1)


def js_distance(reference: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2, between 0 and 1)."""
    p, q = shares(reference), shares(window)
    m = (p + q) / 2
    divergence = (np.sum(p * np.log2(p / m), axis=-1) + np.sum(q * np.log2(q / m), axis=-1)) / 2
    return np.sqrt(np.maximum(divergence, 0.0))


def chi_square(reference: np.ndarray, window: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count vectors: (statistic, p-value, degrees of freedom); bins empty
    in both are left out."""
    table = np.vstack([reference, window]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof)), dof


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error across features)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def calibrate(reference: list[np.ndarray], sizes: tuple[int, ...], repeats: int = 200, quantile: float = 0.99,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """Per window size, the PSI and JS distance that unshifted windows (drawn from each feature's reference
    shares) exceed with probability 1 - ``quantile``, pooled over features."""
    rng = np.random.default_rng(seed)
    found = {}
    for n in sizes:
        psis, jss = [], []
        for counts in reference:
            counts = np.asarray(counts, dtype=np.float64)
            if counts.sum() == 0:
                continue
            draws = rng.multinomial(n, counts / counts.sum(), size=repeats)
            psis.append(psi(counts[None, :], draws))
            jss.append(js_distance(counts[None, :], draws))
        found[str(n)] = {"psi": float(np.quantile(np.concatenate(psis), quantile)),
                         "js": float(np.quantile(np.concatenate(jss), quantile))}
    return found


def threshold(thresholds: dict[str, dict[str, float]], rows: int) -> dict[str, float]:
    """The calibrated thresholds of the nearest window size (log scale)."""
    sizes = sorted(int(n) for n in thresholds)
    nearest = min(sizes, key=lambda n: abs(np.log(n) - np.log(max(rows, 1))))
    return thresholds[str(nearest)]
