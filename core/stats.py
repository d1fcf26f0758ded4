"""Summaries over seeds: mean, standard deviation and a Student-t interval.

The t quantile is computed here (no SciPy in the engine's dependencies): the t density is
integrated with Simpson's rule and the 1 − α/2 point found by bisection, to about 1e-9.

>>> round(t_quantile(0.975, 1), 3), round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 30), 3)
(12.706, 4.303, 2.042)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Summary:
    """A value over n seeds: mean, sample standard deviation (n − 1), and the 95%
    Student-t interval of the mean; std and interval are None below two seeds."""

    n: int
    mean: float
    std: float | None
    ci95_low: float | None
    ci95_high: float | None


def summarize(values: Sequence[float]) -> Summary:
    """The summary of `values` (one per seed), which must not be empty."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(n, mean, None, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@cache
def t_quantile(probability: float, degrees_of_freedom: int) -> float:
    """The `probability` quantile (> 0.5) of Student's t with the given degrees of freedom."""
    if not 0.5 < probability < 1 or degrees_of_freedom < 1:
        raise ValueError("needs 0.5 < probability < 1 and degrees_of_freedom >= 1")
    low, high = 0.0, 1.0
    while _t_cdf(high, degrees_of_freedom) < probability:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        if _t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _t_cdf(x: float, nu: int) -> float:
    """P(T ≤ x) for x ≥ 0: one half plus the density integrated over [0, x]."""
    log_norm = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)

    def density(t: float) -> float:
        return math.exp(log_norm - (nu + 1) / 2 * math.log1p(t * t / nu))

    steps = 2000  # even; the density is smooth, so Simpson's error is ~1e-12 here
    width = x / steps
    total = density(0.0) + density(x)
    total += 4 * math.fsum(density((2 * i - 1) * width) for i in range(1, steps // 2 + 1))
    total += 2 * math.fsum(density(2 * i * width) for i in range(1, steps // 2))
    return 0.5 + total * width / 3
