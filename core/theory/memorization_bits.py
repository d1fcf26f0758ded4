"""Exact memorization I(A(X₁:ₙ); X₁:ₙ | θ), in bits, and the exact accuracy of the learners
`memorization_tradeoff` runs where both have a closed form: the theory curves it draws
beside its estimates.

The two problems and their learners are memlab's own instantiation of the seed paper
("Trade-offs in Data Memorization via Strong Data Processing Inequalities", Feldman,
Kornowski & Lyu, COLT 2025): its per-problem rates (its Section 4 and Appendices B–D)
could not be read, so every formula below is memlab's derivation
(shared/research/seed-details.md §6), checked by Monte Carlo in
tests/core/test_memorization_tradeoff.py.

**Gaussian mean estimation.** θ ~ N(0, s²I_d), X_i = θ + σZ_i. The Gaussian mechanism
releases A = c·X̄ + τW (W ~ N(0, I_d); c = 1 is the mechanism itself, c < 1 the same
release shrunk, as a few steps of noisy gradient descent without clipping give). Given θ,
A depends on the sample only through X̄ ~ N(θ, σ²/n·I), so

    mem = I(A; X̄ | θ) = (d/2)·log₂(1 + c²σ²/(nτ²)) bits,
    per-coordinate MSE E‖A − θ‖²/d = (1 − c)²s² + c²σ²/n + τ²  (= σ²/n + τ² at c = 1).

At a per-coordinate MSE budget b (in units of σ²), τ² = (b − 1/n)·σ², and the notes' check
(d = 1000, σ² = √d, b = 2) reads 500 bits at n = 1 and about d/n after:

>>> sigma2 = 1000 ** 0.5
>>> [round(gaussian_mechanism_bits(1000, sigma2, n, budget_noise_variance(2 * sigma2, sigma2, n)))
...  for n in (1, 2, 4, 8, 16)]
[500, 208, 96, 47, 23]

(The notes' table rounds n = 2 to 207; (1000/2)·log₂(4/3) = 207.5.) Noisy gradient
descent matched to the mechanism (`matched_gradient_descent_noise`) releases, unclipped,
c·(X̄ + τW): the same bits, the mechanism's release scaled by c.

**Accuracy: the cluster-membership test.** In the regime σ² ≍ √d the MSE is a poor
accuracy: every noisy release has MSE above s² = E‖θ‖²/d, which A = 0 attains with 0 bits.
What O(1) samples do allow is telling θ's cluster from another (seed-details.md §6): given
A, a fresh X ~ P_θ and X' drawn from another cluster θ' ~ N(0, s²I) (X' = θ' + σZ'), the
test "⟨A, X − X'⟩ > 0 means X is θ's" errs with probability, given A and θ,

    P(⟨A, X − X'⟩ ≤ 0 | A, θ) = Φ(−⟨A, θ⟩ / (‖A‖·√(2σ² + s²))),

since X − X' ~ N(θ, (2σ² + s²)I) independently of A (`membership_test_error`; A = 0 is
scored a coin, 1/2, chance). For a release that is Gaussian given θ, A ~ N(cθ, vI) (v =
c²σ²/n + τ² for c·X̄ + τW), the error averaged over θ, A and the test pair has a closed
form: each coordinate pair (A_j, D_j), D = X − X', is zero-mean bivariate normal with
correlation r = c·s² / √((c²s² + v)·2(s² + σ²)), so A_j·D_j is λ₊χ²₁ − λ₋χ²₁ with
λ₊/(λ₊ + λ₋) = (1 + r)/2 and ⟨A, D⟩ ≤ 0 exactly when a Beta(d/2, d/2) variable falls below
(1 − r)/2:

    error = I_{(1−r)/2}(d/2, d/2)   (regularized incomplete beta; at d = 1, arccos(r)/π).

The test is scale-invariant (c·A tests as A does), so c·(X̄ + τW) has the mechanism's
error, and at a fixed budget b the error does not depend on n: r = s²/√((s² + bσ²)·2(s² +
σ²)). As d grows with σ² = √d the error tends to Φ(−s²/√(2b)) (s = 1, b = 2: 0.309),
bounded away from chance 1/2 however large d is:

>>> round(gaussian_release_membership_error(1, 1.0, 1.0, 1.0), 4)  # r = 1/√8: arccos(r)/π
0.385
>>> round(gaussian_release_membership_error(64, 1.0, 8.0, 16.0), 3)  # d = 64, σ² = √d, b = 2
0.324

**Boolean clustering.** θ uniform on {±1}^d, X_ij = θ_j with probability (1 + ρ)/2. The
learner takes a per-coordinate majority vote (a tie gives a fair coin) and flips each
output coordinate with probability q (randomized response). With K ~ Bin(n, (1 + ρ)/2) the
votes agreeing with θ_j, and coordinates independent given θ,

    P_err = P(K < n/2)·(1 − q) + P(K > n/2)·q + P_tie/2,
    mem per coordinate = H(A_j | θ) − H(A_j | X) = h₂(P_err) − [P_tie + (1 − P_tie)·h₂(q)].

The notes' table at ρ = 0.3 (per coordinate), by exact enumeration of the binomial:

>>> [round(majority_vote_bits_per_coordinate(n, 0.3, 0.0), 3) for n in (1, 3, 9, 27, 81)]
[0.934, 0.858, 0.662, 0.302, 0.028]
>>> [round(majority_vote_bits_per_coordinate(n, 0.3, 0.1), 3) for n in (1, 3, 9, 27, 81)]
[0.489, 0.441, 0.322, 0.123, 0.007]
>>> round(majority_vote_error(1, 0.3, 0.1), 2), round(majority_vote_error(81, 0.3, 0.1), 2)
(0.38, 0.1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LN2 = math.log(2.0)


def binary_entropy_bits(p: float) -> float:
    """h₂(p) = −p log₂ p − (1 − p) log₂(1 − p), with h₂(0) = h₂(1) = 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability lies in [0, 1], not {p}")
    if p in (0.0, 1.0):
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


# --- Gaussian mean estimation -------------------------------------------------------------


def budget_noise_variance(budget: float, sample_variance: float, n: int) -> float:
    """τ² = b − σ²/n: the mechanism's noise that spends a per-coordinate MSE budget b."""
    noise_variance = budget - sample_variance / n
    if noise_variance <= 0:
        raise ValueError(
            f"budget {budget} is not above σ²/n = {sample_variance / n}: no noise is left to add"
        )
    return noise_variance


def gaussian_mechanism_bits(
    d: int, sample_variance: float, n: int, noise_variance: float, gain: float = 1.0
) -> float:
    """(d/2)·log₂(1 + c²σ²/(nτ²)): I(c·X̄ + τW; X | θ) in bits (c = `gain`)."""
    if noise_variance <= 0:
        raise ValueError("τ² must be positive: a noiseless continuous release memorizes ∞ bits")
    return 0.5 * d * math.log2(1.0 + gain * gain * sample_variance / (n * noise_variance))


def gaussian_mechanism_mse(
    sample_variance: float,
    n: int,
    noise_variance: float,
    gain: float = 1.0,
    prior_variance: float = 0.0,
) -> float:
    """E‖c·X̄ + τW − θ‖²/d = (1 − c)²s² + c²σ²/n + τ², averaged over θ ~ N(0, s²I)."""
    shrinkage = (1.0 - gain) ** 2 * prior_variance
    return shrinkage + gain * gain * sample_variance / n + noise_variance


@dataclass(frozen=True)
class GradientDescentNoise:
    """Noisy gradient descent on ½‖w − X_i‖² averaged over the sample, from w = 0, with
    step size η for T steps and N(0, step_std²·I) added after each step. Unclipped, it
    returns c·X̄ + (accumulated noise): c = 1 − (1 − η)^T and the noise's variance is
    step_std²·Σ_{k<T} (1 − η)^{2k}. `step_std` is chosen so that this variance is
    `output_noise_variance`."""

    gain: float
    step_std: float
    output_noise_variance: float


def gradient_descent_noise(noise_variance: float, steps: int, lr: float) -> GradientDescentNoise:
    """The gain and per-step noise of T steps of size η whose output noise has variance
    `noise_variance`.

    >>> one = gradient_descent_noise(4.0, steps=1, lr=1.0)  # one full step: X̄ + τW
    >>> one.gain, one.step_std
    (1.0, 2.0)
    """
    if not 0 < lr <= 1:
        raise ValueError(f"step size η must lie in (0, 1], not {lr}")
    contraction = 1.0 - lr
    accumulated = math.fsum(contraction ** (2 * k) for k in range(steps))
    return GradientDescentNoise(
        gain=1.0 - contraction**steps,
        step_std=math.sqrt(noise_variance / accumulated),
        output_noise_variance=noise_variance,
    )


def matched_gradient_descent_noise(
    mechanism_noise_variance: float, steps: int, lr: float
) -> GradientDescentNoise:
    """The per-step noise that makes unclipped noisy gradient descent release
    c·(X̄ + τW), the Gaussian mechanism with noise τ² scaled by its gain c: output noise
    c²τ², so the same bits and (the membership test being scale-invariant) the same error.

    >>> matched = matched_gradient_descent_noise(4.0, steps=2, lr=0.5)  # c = 0.75
    >>> matched.gain, round(matched.output_noise_variance, 4)
    (0.75, 2.25)
    """
    gain = 1.0 - (1.0 - lr) ** steps
    return gradient_descent_noise(gain * gain * mechanism_noise_variance, steps, lr)


def membership_test_error(
    releases: torch.Tensor, theta: torch.Tensor, sample_variance: float, prior_variance: float
) -> torch.Tensor:
    """Φ(−⟨A, θ⟩ / (‖A‖·√(2σ² + s²))): the probability, given A and θ, that the test
    ⟨A, X − X'⟩ > 0 mislabels a fresh X ~ P_θ against X' from another cluster θ' ~ N(0, s²I);
    1/2 (a coin) where A = 0.

    releases: (..., d); theta: (d,). Returns (...).
    """
    test_std = math.sqrt(2.0 * sample_variance + prior_variance)
    inner = releases @ theta  # (...)
    norms = releases.norm(dim=-1)  # (...)
    error = torch.special.ndtr(-inner / (norms.clamp_min(1e-300) * test_std))
    return torch.where(norms > 0, error, torch.full_like(error, 0.5))


def gaussian_release_membership_error(
    d: int,
    prior_variance: float,
    sample_variance: float,
    release_variance: float,
    gain: float = 1.0,
) -> float:
    """I_{(1−r)/2}(d/2, d/2): the membership test's error averaged over θ ~ N(0, s²I), a
    release A ~ N(cθ, vI) given θ (v = `release_variance`, c = `gain`) and the test pair,
    with r = c·s²/√((c²s² + v)·2(s² + σ²)) the correlation of A_j with X_j − X'_j."""
    if gain == 0.0:
        return 0.5  # A carries nothing about θ: the test is a coin
    spread = (
        (gain * gain * prior_variance + release_variance) * 2.0 * (prior_variance + sample_variance)
    )
    correlation = gain * prior_variance / math.sqrt(spread)
    return regularized_incomplete_beta((1.0 - correlation) / 2.0, d / 2.0, d / 2.0)


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) = P(Beta(a, b) ≤ x), by the continued fraction (modified Lentz), on the side
    of the mean where it converges fast.

    >>> regularized_incomplete_beta(0.3, 1.0, 1.0)  # Beta(1, 1) is uniform
    0.3
    >>> round(regularized_incomplete_beta(0.25, 0.5, 0.5), 6)  # (2/π)·arcsin(√x) = 1/3
    0.333333
    """
    if not 0.0 <= x <= 1.0 or a <= 0 or b <= 0:
        raise ValueError(f"needs x in [0, 1] and a, b > 0, not x={x}, a={a}, b={b}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(1.0 - x, b, a) / b


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf), to 1e-15."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1_000_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return fraction
    raise ArithmeticError(f"the incomplete beta did not converge at x={x}, a={a}, b={b}")


# --- Boolean clustering: majority vote with randomized response ----------------------------


@dataclass(frozen=True)
class VoteOutcome:
    """Where the majority of n votes lands, for one coordinate: K ~ Bin(n, (1 + ρ)/2)."""

    wrong: float  # P(K < n/2): the majority disagrees with θ_j
    tie: float  # P(K = n/2), zero for odd n
    right: float  # P(K > n/2)


def vote_outcome(n: int, rho: float) -> VoteOutcome:
    """The majority's outcome probabilities by exact enumeration of the binomial (in log
    space, so n in the thousands does not overflow)."""
    if n < 1:
        raise ValueError("a vote needs n ≥ 1 samples")
    if not 0.0 < rho < 1.0:
        raise ValueError(f"ρ must lie in (0, 1), not {rho}")
    p = (1.0 + rho) / 2.0
    log_p, log_q = math.log(p), math.log1p(-p)
    wrong, tie, right = [], [], []
    for k in range(n + 1):
        log_mass = (
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * log_p + (n - k) * log_q
        )  # fmt: skip
        mass = math.exp(log_mass)
        if 2 * k < n:
            wrong.append(mass)
        elif 2 * k == n:
            tie.append(mass)
        else:
            right.append(mass)
    return VoteOutcome(math.fsum(wrong), math.fsum(tie), math.fsum(right))


def majority_vote_error(n: int, rho: float, flip: float) -> float:
    """P(A_j ≠ θ_j) for majority vote flipped with probability q: the coordinate error rate."""
    _check_flip(flip)
    outcome = vote_outcome(n, rho)
    return outcome.wrong * (1.0 - flip) + outcome.right * flip + 0.5 * outcome.tie


def majority_vote_bits_per_coordinate(n: int, rho: float, flip: float) -> float:
    """h₂(P_err) − [P_tie + (1 − P_tie)·h₂(q)]: I(A_j; X_{·j} | θ) in bits."""
    _check_flip(flip)
    outcome = vote_outcome(n, rho)
    given_sample = outcome.tie + (1.0 - outcome.tie) * binary_entropy_bits(flip)
    return binary_entropy_bits(majority_vote_error(n, rho, flip)) - given_sample


def _check_flip(flip: float) -> None:
    if not 0.0 <= flip <= 0.5:
        raise ValueError(f"the flip probability q must lie in [0, 0.5], not {flip}")
