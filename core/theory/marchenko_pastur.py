"""The Marchenko–Pastur law and the closed-form memorization error of ridge regression on
noisy two-class tokens: the theory curve `attention_memorization` draws beside its ridge
Monte Carlo.

Setting (the seed paper's ridge baseline, "A Random Matrix Analysis of In-context
Memorization for Nonlinear Attention", its Proposition 2 and Fig. 1): n tokens
x_i = y_i μ + z_i in R^p, labels y_i = ±1, z_i ~ N(0, I_p), ‖μ‖² = snr, ratio c = p/n.
Ridge fits the labels it was given with w = (X Xᵀ + nγ I_p)⁻¹ X y, and its in-context
memorization error is the training error E_RR = ‖y − Xᵀw‖²/n = (γ²/n) yᵀQ²y with
Q = (XᵀX/n + γ I_n)⁻¹.

The closed form is memlab's own derivation (the paper's Proposition 2 could not be read;
shared/research/seed-details.md §1), checked against Monte Carlo in
tests/core/test_attention_memorization.py:

- m(γ), the Stieltjes transform of the Marchenko–Pastur law of ZᵀZ/n at −γ, is the
  positive root of c·γ·m² + (1 − c + γ)·m − 1 = 0;
- rotating y/√n to e_1, a Schur complement on the first column gives
  [Q]₁₁ ≈ 1/(γ(1 + δ(γ))) with δ(γ) = (snr + c)·m(γ);
- E_RR = γ²[Q²]₁₁ = −γ² ∂_γ [Q]₁₁ = (1 + δ + γδ′) / (1 + δ)².

Limits: γ → 0 with c < 1 gives (1 − c)/(1 + snr) (the labels' share outside the span of
the tokens); c > 1 gives 0 (the tokens interpolate any labels); γ → ∞ gives 1. γ below
MIN_GAMMA = 1e-12 is refused: the curve has long reached its γ → 0 limit there, and for
c > 1 the formula's m(γ) ~ 1/γ overflows when squared near γ = 1e-160.

>>> round(ridge_memorization_error(1e-9, c=0.5, snr=1.0), 6)
0.25
>>> round(ridge_memorization_error(1e-9, c=2.0, snr=1.0), 6)
0.0
>>> round(ridge_memorization_error(1e9, c=0.5, snr=1.0), 6)
1.0
>>> round(ridge_memorization_error(1.0, c=0.5, snr=1.0), 4)
0.3886
>>> ridge_memorization_error(1e-12, c=2.0, snr=1.0) < 1e-11
True
"""

from __future__ import annotations

import math

MIN_GAMMA = 1e-12  # the smallest γ the closed form (and the kind's grid) accepts


def marchenko_pastur_stieltjes(gamma: float, c: float) -> float:
    """m(γ) = ∫ dμ_MP(λ)/(λ + γ): the Marchenko–Pastur law of ZᵀZ/n (Z p×n standard
    Gaussian, c = p/n) at −γ, the positive root of c·γ·m² + (1 − c + γ)·m − 1 = 0.

    >>> round(marchenko_pastur_stieltjes(1.0, c=1.0), 6)  # (√5 − 1)/2
    0.618034
    """
    _check(gamma, c)
    b = 1.0 - c + gamma
    root = math.sqrt(b * b + 4.0 * c * gamma)
    # Each branch avoids subtracting two nearly equal numbers.
    if b >= 0:
        return 2.0 / (b + root)
    return (root - b) / (2.0 * c * gamma)


def marchenko_pastur_stieltjes_derivative(gamma: float, c: float) -> float:
    """dm/dγ, from differentiating the quadratic: −(c·m² + m)/(2cγm + 1 − c + γ)."""
    m = marchenko_pastur_stieltjes(gamma, c)
    return -(c * m * m + m) / (2.0 * c * gamma * m + 1.0 - c + gamma)


def ridge_memorization_error(gamma: float, c: float, snr: float) -> float:
    """Ē_RR(γ): the deterministic equivalent of ridge's training error on the labels,
    (1 + δ + γδ′)/(1 + δ)² with δ = (snr + c)·m(γ) (module docstring)."""
    if snr < 0:
        raise ValueError(f"snr must be non-negative, got {snr}")
    delta = (snr + c) * marchenko_pastur_stieltjes(gamma, c)
    delta_prime = (snr + c) * marchenko_pastur_stieltjes_derivative(gamma, c)
    return (1.0 + delta + gamma * delta_prime) / (1.0 + delta) ** 2


def _check(gamma: float, c: float) -> None:
    if not (gamma >= MIN_GAMMA and math.isfinite(gamma)):
        raise ValueError(f"gamma must be finite and at least {MIN_GAMMA:g}, got {gamma}")
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"c = p/n must be positive and finite, got {c}")
