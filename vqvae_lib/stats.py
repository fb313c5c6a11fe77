"""How far apart two rows of seeds are: Welch's t-test and its confidence interval (via SciPy).

Three seeds per row leave few degrees of freedom, so an interval says more than a ranking of means:
Chapter 07 states a gap only where its 95% interval excludes zero.
"""

from __future__ import annotations

import statistics

from scipy import stats as _scipy_stats


def welch(better: list[float], worse: list[float], confidence: float = 0.95) -> dict:
    """Welch's unequal-variance t-test of ``mean(worse) - mean(better)``.

    Returns ``gap`` (the difference of means; positive when ``better`` is lower), the two-sided
    ``confidence`` interval ``low``, ``high`` of that difference, its ``p`` value and Welch's ``df``.
    Needs at least two values per row (one value has no spread).
    """
    if len(better) < 2 or len(worse) < 2:
        raise ValueError(f"Welch's test needs at least 2 values per row (seeds), got {len(better)} and {len(worse)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")
    result = _scipy_stats.ttest_ind(list(worse), list(better), equal_var=False)
    interval = result.confidence_interval(confidence)
    return dict(gap=statistics.mean(worse) - statistics.mean(better), low=float(interval.low),
                high=float(interval.high), p=float(result.pvalue), df=float(result.df))
