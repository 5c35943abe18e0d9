"""Distribution drift between a reference (the training or validation part) and recent values.

PSI (population stability index) over the reference's decile bins:
`sum((a - e) * ln(a / e))` over bins, shares floored at `PSI_FLOOR`; the usual
reading is < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a major one. The
Kolmogorov-Smirnov two-sample test comes from scipy, against the reference's
stored order statistics (`REFERENCE_SAMPLE` evenly spaced quantiles, so the
p-value is that of a reference sample of that size: conservative).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

NULL_WINDOWS = (30, 90, 180, 365)  # window lengths whose no-drift PSI is measured on the reference rows
NULL_SAMPLES = 40
BINS = 10
PSI_FLOOR = 1e-4
REFERENCE_SAMPLE = 200


def distribution(values: np.ndarray) -> dict:
    """What drift is measured against: decile edges and counts, the 1% and 99% quantiles, and
    `REFERENCE_SAMPLE` evenly spaced order statistics (all JSON-ready)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < BINS:
        raise ValueError(f"a reference distribution needs at least {BINS} finite values, got {len(values)}")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)))
    return {
        "n": int(len(values)),
        "edges": edges.tolist(),
        "counts": bin_counts(values, edges).tolist(),
        "p01": float(np.quantile(values, 0.01)),
        "p99": float(np.quantile(values, 0.99)),
        "sample": np.quantile(values, np.linspace(0, 1, REFERENCE_SAMPLE)).tolist(),
    }


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in the bins between `edges`; values outside fall in the first or last bin."""
    inner = np.asarray(edges, dtype=float)[1:-1]
    return np.bincount(np.searchsorted(inner, np.asarray(values, dtype=float), side="right"), minlength=len(edges) - 1)


def psi(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    """Population stability index of `actual` against `expected` (same bins)."""
    expected = np.maximum(np.asarray(expected_counts, dtype=float) / np.sum(expected_counts), PSI_FLOOR)
    actual = np.maximum(np.asarray(actual_counts, dtype=float) / np.sum(actual_counts), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_against(reference: dict, values: np.ndarray) -> dict:
    """PSI, KS statistic and p-value, and the share outside the reference's 1-99% range."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ValueError("no finite recent values to compare with the reference")
    ks = stats.ks_2samp(np.asarray(reference["sample"]), values)
    return {
        "psi": psi(reference["counts"], bin_counts(values, np.asarray(reference["edges"]))),
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "outside_1_99": float(np.mean((values < reference["p01"]) | (values > reference["p99"]))),
        "n": int(len(values)),
    }


def null_psi(values: np.ndarray, reference: dict) -> dict:
    """How large the PSI of a window drawn from the reference rows themselves gets, per window
    length: the 95th and 99th percentiles over `NULL_SAMPLES` evenly spaced windows. A recent
    window is judged against these, not against a fixed PSI: a 90-bar window of a slow
    rolling statistic covers a narrow part of its range even when nothing changed."""
    values = np.asarray(values, dtype=float)
    out = {}
    for length in NULL_WINDOWS:
        if length * 2 > len(values):
            continue
        starts = np.linspace(0, len(values) - length, NULL_SAMPLES).astype(int)
        psis = [psi(reference["counts"], bin_counts(values[s : s + length][np.isfinite(values[s : s + length])], np.asarray(reference["edges"]))) for s in starts]
        out[str(length)] = {"q95": float(np.quantile(psis, 0.95)), "q99": float(np.quantile(psis, 0.99))}
    return out


def null_limit(reference: dict, window: int, quantile: str = "q99") -> float | None:
    """The reference's no-drift PSI limit for the stored window length nearest to `window`."""
    nulls = reference.get("null_psi") or {}
    if not nulls:
        return None
    nearest = min(nulls, key=lambda length: abs(int(length) - window))
    return nulls[nearest][quantile]
