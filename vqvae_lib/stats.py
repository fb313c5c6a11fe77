"""How far apart two rows of seeds are: Welch's t-test and its confidence interval (via SciPy); and
where one more seed of a row would land: its prediction interval.

Three seeds per row leave few degrees of freedom, so an interval says more than a ranking of means:
Chapter 07 states a gap only where its 95% interval excludes zero. The worked solutions train one seed of
a new setting and call it different from the chapter's seeds only outside their prediction interval.
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


def prediction_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Where one more draw from the distribution of ``values`` falls with probability ``confidence``,
    assuming a normal distribution: ``mean ± t_{n-1} * sd * sqrt(1 + 1/n)`` (Student's t with n - 1
    degrees of freedom). With three seeds at 95 % that is about 5 sd either side of the mean: a new
    seed outside the plain range of three happens half the time when nothing changed."""
    if len(values) < 2:
        raise ValueError(f"a prediction interval needs at least 2 values (seeds), got {len(values)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")
    n, mean, sd = len(values), statistics.mean(values), statistics.stdev(values)
    half = float(_scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * sd * (1 + 1 / n) ** 0.5
    return mean - half, mean + half
