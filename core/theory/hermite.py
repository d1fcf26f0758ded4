"""Hermite coefficients of an activation under the standard Gaussian: the few numbers
through which random-matrix theory sees an entrywise nonlinearity f.

For ξ ~ N(0, 1) and the probabilists' Hermite polynomials He_k (He_0 = 1, He_1 = x,
He_2 = x² − 1, He_{k+1} = x·He_k − k·He_{k−1}), orthogonal with E[He_j He_k] = k!·[j = k],
f has the orthonormal expansion f(ξ) = Σ_k a_k He_k(ξ)/√(k!) with

    a_k = E[f(ξ) He_k(ξ)]/√(k!),    ν = E[f(ξ)²] = Σ_k a_k².

f is *centred* when a_0 = E f(ξ) = 0. The seed paper's nonlinear-attention theory needs a
centred f with a_1 ≠ 0 and, per its abstract and a review of it (the theorem itself could
not be read), depends on f only through a few such numbers, a_1 and ν among them.
memlab's Gaussian-equivalent surrogate (`core.theory.gaussian_equivalent`, memlab's own
derivation) uses a_1, ν and also a_2, for a low-rank term of its own.

The expectations are integrals against the Gaussian density, computed with Gauss–Legendre
panels over [−12, 12] whose edges include 0, not with Gauss–Hermite nodes: an f with a
kink at 0 (ReLU) is smooth on every panel, so its integrals are exact to about 1e-12,
where 200 Gauss–Hermite nodes leave E[ReLU(ξ) − 1/√(2π)] at 8e-4. The Gaussian mass
beyond ±12 is below 1e-32.

>>> import math, torch
>>> tanh = hermite_constants(torch.tanh)
>>> round(tanh.a1, 4), round(tanh.nu, 4), abs(tanh.a0) < 1e-12, abs(tanh.a2) < 1e-12
(0.6057, 0.3943, True, True)
>>> relu = hermite_constants(lambda x: torch.relu(x) - 1 / math.sqrt(2 * math.pi))
>>> abs(relu.a0) < 1e-12, round(relu.a1, 6), round(relu.a2, 4), round(relu.nu, 4)
(True, 0.5, 0.2821, 0.3408)
>>> mix = hermite_constants(lambda x: hermite_series((0.0, 1.0, 0.5), x))
>>> round(mix.a1, 6), round(mix.a2, 6), round(mix.nu, 6)  # a_2 = 0.5·√2, ν = 1 + 0.5²·2!
(1.0, 0.707107, 1.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import torch
from numpy.polynomial.legendre import leggauss

Activation = Callable[[torch.Tensor], torch.Tensor]

_HALF_WIDTH = 12.0  # integrate over [−12, 12]: the Gaussian mass outside is below 1e-32
_PANELS = 96  # panel width 0.25; edges at multiples of 0.25, so 0 is an edge
_NODES_PER_PANEL = 20


@dataclass(frozen=True)
class HermiteConstants:
    """The Hermite numbers of f: a0 = E f(ξ), a1 = E[ξ f(ξ)], a2 = E[(ξ² − 1) f(ξ)]/√2,
    nu = E[f(ξ)²]."""

    a0: float
    a1: float
    a2: float
    nu: float

    @property
    def chaos_variance(self) -> float:
        """ν − a_1²: the variance of f's nonlinear part, which the Gaussian-equivalent
        surrogate replaces by independent noise (never below 0 up to rounding)."""
        return max(self.nu - self.a1**2, 0.0)


def hermite_polynomial(degree: int, x: torch.Tensor) -> torch.Tensor:
    """He_degree(x), by the three-term recurrence.

    >>> hermite_polynomial(3, torch.tensor([2.0])).item()  # x³ − 3x
    2.0
    """
    if degree < 0:
        raise ValueError(f"degree must be non-negative, got {degree}")
    previous, current = torch.ones_like(x), x
    if degree == 0:
        return previous
    for k in range(1, degree):
        previous, current = current, x * current - k * previous
    return current


def hermite_series(coefficients: Sequence[float], x: torch.Tensor) -> torch.Tensor:
    """Σ_k coefficients[k]·He_k(x): an activation given by its Hermite coefficients (on the
    plain, not the normalised, polynomials)."""
    total = torch.zeros_like(x)
    for degree, coefficient in enumerate(coefficients):
        if coefficient:
            total = total + coefficient * hermite_polynomial(degree, x)
    return total


def gaussian_expectation(values: Activation) -> float:
    """E[g(ξ)] for ξ ~ N(0, 1), g given on a float64 tensor of points."""
    nodes, weights = _gaussian_rule()
    return float((weights * values(nodes)).sum())


def hermite_constants(f: Activation) -> HermiteConstants:
    """a0, a1, a2 and ν of f (module docstring)."""
    return HermiteConstants(
        a0=gaussian_expectation(f),
        a1=gaussian_expectation(lambda x: x * f(x)),
        a2=gaussian_expectation(lambda x: (x * x - 1) * f(x)) / math.sqrt(2.0),
        nu=gaussian_expectation(lambda x: f(x) ** 2),
    )


@cache
def _gaussian_rule() -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (each (panels·nodes,) float64) with Σ w·g(x) ≈ E g(ξ)."""
    unit_nodes, unit_weights = leggauss(_NODES_PER_PANEL)  # on [−1, 1]
    edges = torch.linspace(-_HALF_WIDTH, _HALF_WIDTH, _PANELS + 1, dtype=torch.float64)
    half = (edges[1:] - edges[:-1]) / 2  # (panels,)
    middle = (edges[1:] + edges[:-1]) / 2
    nodes = middle[:, None] + half[:, None] * torch.from_numpy(unit_nodes)[None, :]
    weights = half[:, None] * torch.from_numpy(unit_weights)[None, :]
    density = torch.exp(-(nodes**2) / 2) / math.sqrt(2 * math.pi)
    return nodes.reshape(-1), (weights * density).reshape(-1)
