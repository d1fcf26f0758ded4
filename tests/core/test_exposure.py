"""Exposure says no more than its candidates support.

- a rank estimated from a sample of n candidates is capped at log₂ n bits and labelled a
  lower bound where the cap binds; an exact rank is never capped;
- the skew-normal behind the extrapolated exposure is fitted by maximum likelihood, which
  finds a skewed distribution's far tail where the method of moments misses it by bits.
"""

from __future__ import annotations

import doctest
import math
import statistics

import pytest
import torch

import core.probes.exposure
from core.catalog import get_probe, parse_probe_spec
from core.probes.exposure import (
    cap_sampled_exposure,
    fit_skew_normal,
    fit_skew_normal_by_moments,
    skew_normal_cdf,
)
from core.probes.registry import ProbeInputs
from core.probes.target import Canaries, ProbeTarget, SequenceSet
from core.reporter import InMemoryReporter


def test_the_exposure_module_examples_hold() -> None:
    assert doctest.testmod(core.probes.exposure).failed == 0


def test_a_sampled_exposure_beyond_log2_of_the_sample_is_capped_and_marked() -> None:
    capped, lower_bound = cap_sampled_exposure(torch.tensor([13.3, 6.0, 2.0]), n_sampled=100)
    assert capped.tolist() == pytest.approx([math.log2(100), 6.0, 2.0])
    assert lower_bound.tolist() == [True, False, False]


# ------------------------------------------------------- the exposure probe, end to end

DIGITS = 10
SECRET_LENGTH = 4  # |R| = 10⁴ four-digit secrets


class PrefersSevens(torch.nn.Module):
    """Every position predicts digit 7 with p = ½ and each other digit with p = 1/18, so
    a secret's ℓ falls with its number of sevens and "7777" outranks every candidate."""

    def __init__(self) -> None:
        super().__init__()
        probabilities = torch.full((DIGITS,), 0.5 / (DIGITS - 1))
        probabilities[7] = 0.5
        self.logits = torch.nn.Parameter(probabilities.log())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*idx.shape, -1)


def secrets_of(indices: list[int]) -> SequenceSet:
    """Secrets as a start token (0) and their digits, scored on the digits."""
    texts = [f"{index:0{SECRET_LENGTH}d}" for index in indices]
    tokens = [[0, *map(int, text)] for text in texts]
    return SequenceSet.from_token_lists(tokens, [1] * len(texts), texts)


def canary_target(planted: list[int], insertions: list[int]) -> ProbeTarget:
    model = PrefersSevens()
    canaries = Canaries(
        secrets=secrets_of(planted),
        insertions=torch.tensor(insertions),
        indices=torch.tensor(planted),
        space_size=DIGITS**SECRET_LENGTH,
        candidates=lambda indices: secrets_of([int(i) for i in indices]),
    )
    members = secrets_of(planted)
    return ProbeTarget(model, 10, DIGITS, "digits", members, canaries=canaries)


def exposure_report(target: ProbeTarget, max_candidates: int) -> dict:
    spec = parse_probe_spec({"kind": "exposure", "max_candidates": max_candidates})
    return get_probe("exposure").run(spec, ProbeInputs(target, {}), InMemoryReporter())


def test_a_canary_above_every_sampled_candidate_gets_log2_n_bits_as_a_lower_bound() -> None:
    # "7777" beats all 10⁴ candidates; the rank formula alone would claim log₂ 10⁴ ≈ 13.3
    # bits from a sample of 100. "0000" (no seven) ties the ~66% of candidates without a
    # seven and is beaten by the ~34% with one: rank ≈ 0.34 · 10⁴, about 1.5 bits.
    report = exposure_report(canary_target([7777, 0], [8, 0]), max_candidates=100)
    cap = math.log2(report["n_candidates_scored"])
    assert report["exposure_cap_bits"] == cap
    assert "lower bound" in report["rank"]
    seven, control = report["canaries"]
    assert seven["exposure"] == cap and seven["exposure_is_lower_bound"]
    assert 1.0 < control["exposure"] < 2.0 and not control["exposure_is_lower_bound"]
    by_r = {row["insertions"]: row for row in report["by_insertions"]}
    assert by_r[8]["n_lower_bounds"] == 1 and by_r[0]["n_lower_bounds"] == 0
    # The same means keyed by insertion count, where a sweep table can read them.
    assert report["mean_exposure"] == {"r0": control["exposure"], "r8": cap}
    assert set(report["mean_exposure_extrapolated"]) == {"r0", "r8"}


def test_an_exact_rank_is_not_capped() -> None:
    # Every one of the 10⁴ candidates scored: "7777" is first of all, log₂ 10⁴ bits exactly.
    report = exposure_report(canary_target([7777], [8]), max_candidates=DIGITS**SECRET_LENGTH)
    assert report["exposure_cap_bits"] is None
    (seven,) = report["canaries"]
    assert seven["exposure"] == pytest.approx(math.log2(DIGITS**SECRET_LENGTH))
    assert not seven["exposure_is_lower_bound"]


# ------------------------------------------------------------------- the skew-normal fit

SHAPE = 5.0  # α: strongly skewed, near the most skewness a skew-normal can have
FAR_TAIL = 1e-8  # the tail probability at which the two fits are compared


def owens_t(h: float, a: float, intervals: int = 4000) -> float:
    """Owen's T(h, a) = 1/(2π) ∫₀^a exp(−h²(1 + x²)/2) / (1 + x²) dx, by Simpson's rule
    (the integrand is smooth and bounded, so this is accurate to float64 rounding)."""
    x = torch.linspace(0.0, a, intervals + 1, dtype=torch.float64)
    f = torch.exp(-0.5 * h * h * (1 + x * x)) / (1 + x * x) / (2 * math.pi)
    weights = torch.ones_like(x)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return float((weights * f).sum()) * (a / intervals) / 3


def standard_skew_normal_cdf(z: float, alpha: float) -> float:
    """P(Z ≤ z) for the skew-normal of shape α, in closed form: Φ(z) − 2 T(z, α)."""
    return 0.5 * math.erfc(-z / math.sqrt(2)) - 2 * owens_t(z, alpha)


def lower_quantile(probability: float, alpha: float) -> float:
    """The z with P(Z ≤ z) = probability, by bisection on the closed-form CDF."""
    low, high = -10.0, 0.0
    for _ in range(80):
        middle = (low + high) / 2
        if standard_skew_normal_cdf(middle, alpha) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def skew_normal_draws(count: int, alpha: float, seed: int) -> torch.Tensor:
    """Draws of the standard skew-normal (ξ = 0, ω = 1): δ|U₀| + √(1 − δ²) U₁, δ = α/√(1+α²)."""
    generator = torch.Generator().manual_seed(seed)
    delta = alpha / math.sqrt(1 + alpha**2)
    folded = torch.randn(count, generator=generator, dtype=torch.float64).abs()
    noise = torch.randn(count, generator=generator, dtype=torch.float64)
    return delta * folded + math.sqrt(1 - delta**2) * noise


def far_tail_bits(fit: tuple[float, float, float], quantile: float) -> float:
    """−log₂ P(X ≤ quantile) under a fitted skew-normal: the extrapolated exposure there."""
    xi, omega, alpha = fit
    return -math.log2(max(standard_skew_normal_cdf((quantile - xi) / omega, alpha), 1e-300))


def test_the_cdf_used_for_exposure_matches_the_closed_form_in_the_far_tail() -> None:
    quantile = lower_quantile(FAR_TAIL, SHAPE)
    assert standard_skew_normal_cdf(quantile, SHAPE) == pytest.approx(FAR_TAIL, rel=1e-6)
    numeric = skew_normal_cdf(torch.tensor([quantile]), 0.0, 1.0, SHAPE)
    assert float(numeric[0]) == pytest.approx(FAR_TAIL, rel=1e-2)


def test_maximum_likelihood_finds_the_far_tail_of_a_skewed_sample_and_moments_do_not() -> None:
    # 20 seeded samples of 10,000 draws from the skew-normal with α = 5. At its 1e-8
    # quantile the exposure is −log₂ 1e-8 ≈ 26.6 bits. Each fit's estimate there is off by
    # some bits; typically (the median over samples) under one bit by likelihood and near
    # three by moments, whose α swings with the noisy sample skewness.
    quantile = lower_quantile(FAR_TAIL, SHAPE)
    truth = -math.log2(FAR_TAIL)
    errors: dict[str, list[float]] = {"likelihood": [], "moments": []}
    for seed in range(20):
        draws = skew_normal_draws(10_000, SHAPE, seed)
        likelihood_fit, moment_fit = fit_skew_normal(draws), fit_skew_normal_by_moments(draws)
        errors["likelihood"].append(abs(far_tail_bits(likelihood_fit, quantile) - truth))
        errors["moments"].append(abs(far_tail_bits(moment_fit, quantile) - truth))
    typical = {name: statistics.median(values) for name, values in errors.items()}
    assert typical["likelihood"] < 1.25
    assert typical["moments"] > 2.0
    assert typical["likelihood"] < typical["moments"] / 2


def test_maximum_likelihood_recovers_the_parameters_on_any_scale() -> None:
    draws = 40.0 + 3.0 * skew_normal_draws(50_000, SHAPE, seed=99)  # ξ = 40, ω = 3
    xi, omega, alpha = fit_skew_normal(draws)
    assert (xi, omega) == (pytest.approx(40.0, abs=0.05), pytest.approx(3.0, rel=0.02))
    assert alpha == pytest.approx(SHAPE, rel=0.1)
    assert fit_skew_normal(draws) == (xi, omega, alpha)  # the same samples, the same fit
