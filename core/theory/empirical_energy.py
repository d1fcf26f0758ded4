"""The exact empirical energy of K training points at inverse temperature β, run as an
associative memory or as the reverse diffusion it defines: the training-free reference of
`associative_memory` (part "diffusion"), and the ring radius it tends to as K → ∞.

The seed paper ("Memorization to Generalization: Emergence of Diffusion Models from
Associative Memory", Pham et al. 2025) reads a diffusion model at noise level t as a dense
associative memory whose energy, for the empirical distribution of K training points ξ_μ,
is the log-sum-exp

    E(x) = −(1/β) log Σ_μ exp(−β‖x − ξ_μ‖²),    β = 1/(2σ²t) for its VE SDE

(the energy is the paper's, from its code and notes; the β–t relation is memlab's
derivation: the noised empirical distribution at t is a mixture of Gaussians of variance
σ²t, whose log-density is −βE up to a constant). Two ways to draw samples from it:

- **Reverse diffusion stopped at t_min = 1/(2σ²β)**
  (`core.theory.diffusion_memory.exact_reverse_diffusion`): the reverse SDE of the VE
  process dx = σ dW with the EXACT empirical score, integrated by Euler–Maruyama
  (`core.training.score_matching.euler_maruyama_samples`) from x ~ N(0, σ²I) at t = 1
  down to t_min, then the Tweedie denoised mean x̂ = x + σ²t_min·∇log p_t_min(x) =
  Σ_μ softmax_μ(−β‖x − ξ_μ‖²) ξ_μ (`energy_step`), which is one associative-memory step
  at β from the noisy state. Finite β is finite diffusion time;
  run down to t → 0 the exact score returns training points at every K, since its target
  is the empirical distribution itself (seed-details.md, pitfalls).
- **Descent** (`descend_empirical_energy`): the fixed-point iteration
  x ← Σ_μ softmax_μ(−β‖x − ξ_μ‖²) ξ_μ, gradient descent on E with step ½ (the gradient is
  2(x − Σ_μ w_μ ξ_μ)), which never raises E. Its samples collapse onto the energy's
  minima: at large K a few shallow wells along the ring, not the ring itself.

For K → ∞ points uniform on the unit circle the sum becomes an integral (the paper's
Eq. 13): E(R) = R² + 1 − (1/β) log I₀(2βR) at radius R, minimised on a ring of radius R*
with R* = I₁(2βR*)/I₀(2βR*) (its Eq. 18: the score 2(I₁/I₀ − R) x̂ vanishes there).
Since the ratio I₁/I₀ < 1, R* < 1: generalized samples sit slightly inside the circle.

>>> round(ring_radius(20.0), 4)
0.9873
>>> diffusion_time(20.0, sigma=1.0)
0.025
>>> points = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
>>> start = torch.tensor([[0.3, 0.2], [-0.1, -0.5]], dtype=torch.float64)
>>> descend_empirical_energy(start, points, beta=20.0, iterations=50, tolerance=1e-12).tolist()
[[1.0, 0.0], [-1.0, 0.0]]

Dimensions: M samples, K training points, D dimensions (2 for the circle toy).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from core.reporter import RunCancelled

# Long loops ask whether to stop every this many steps (a step is M·K work).
STOP_CHECK_EVERY = 50
# A sample whose softmax weight on one training point exceeds this is dominated by it.
DOMINANT_WEIGHT = 0.99

ShouldStop = Callable[[], bool]


def _never() -> bool:
    return False


def circle_points(count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 2) float64 points with uniform angle on the unit circle (the paper's toy
    draws its training set the same way: a random subset of uniform-angle points)."""
    angles = 2.0 * math.pi * torch.rand(count, generator=generator, dtype=torch.float64)
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def diffusion_time(beta: float, sigma: float) -> float:
    """t = 1/(2σ²β): the time of the VE SDE whose noised empirical distribution has the
    energy at inverse temperature β."""
    if beta <= 0 or sigma <= 0:
        raise ValueError(f"beta and sigma must be positive, got {beta} and {sigma}")
    return 1.0 / (2.0 * sigma**2 * beta)


def memory_weights(points: torch.Tensor, training: torch.Tensor, beta: float) -> torch.Tensor:
    """(M, K) softmax_μ(−β‖x − ξ_μ‖²) for each of `points` (M, D).

    −β‖x − ξ‖² = 2β(x·ξ − ½‖ξ‖²) − β‖x‖², and the last term is the same for every μ, so
    the softmax is taken of one (M, D)·(D, K) product: no (M, K) distance matrix."""
    half_norms = 0.5 * training.square().sum(dim=1)  # (K,)
    return torch.softmax(2.0 * beta * (points @ training.T - half_norms), dim=1)


def energy_step(points: torch.Tensor, training: torch.Tensor, beta: float) -> torch.Tensor:
    """(M, D) one fixed-point update x ← Σ_μ softmax(−β‖x − ξ_μ‖²) ξ_μ of each point (also
    the Tweedie denoised mean of x at t = 1/(2σ²β))."""
    return memory_weights(points, training, beta) @ training


def dominant_weight(points: torch.Tensor, training: torch.Tensor, beta: float) -> torch.Tensor:
    """(M,) the largest softmax weight at β of each of `points` (M, D) on one training point."""
    return memory_weights(points, training, beta).max(dim=1).values


def descend_empirical_energy(
    starts: torch.Tensor,
    training: torch.Tensor,
    beta: float,
    iterations: int,
    tolerance: float,
    should_stop: ShouldStop = _never,
) -> torch.Tensor:
    """(M, D) the points reached from `starts` (M, D) after at most `iterations` updates,
    each point frozen once its update moves it less than `tolerance` (it is then at a
    fixed point to that precision; freezing it changes nothing else and saves work).
    Points still moving after `iterations` are returned where they are. Raises
    RunCancelled when `should_stop()` says so (asked every STOP_CHECK_EVERY updates)."""
    points = starts.clone()
    moving = torch.ones(points.shape[0], dtype=torch.bool)
    for iteration in range(iterations):
        if not bool(moving.any()):
            break
        if iteration % STOP_CHECK_EVERY == STOP_CHECK_EVERY - 1 and should_stop():
            raise RunCancelled(iteration)
        current = points[moving]
        updated = energy_step(current, training, beta)
        step = (updated - current).norm(dim=1)
        points[moving] = updated
        still = moving.clone()
        still[moving] = step >= tolerance
        moving = still
    return points


def bessel_ratio(x: float) -> float:
    """I₁(x)/I₀(x), from the exponentially scaled Bessel functions (no overflow)."""
    value = torch.tensor(x, dtype=torch.float64)
    return float(torch.special.i1e(value) / torch.special.i0e(value))


def ring_radius(beta: float) -> float:
    """R*(β), the radius of the K → ∞ energy minimum: the largest root of
    R = I₁(2βR)/I₀(2βR), found by bisection on f(R) = I₁(2βR)/I₀(2βR) − R over (0, 1].
    For β ≤ 1 there is no ring (the minimum is the origin) and the root is 0."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    # Near 0 the ratio is ≈ βR, so f > 0 just above 0 exactly when β > 1; f(1) < 0 always.
    if beta <= 1.0:
        return 0.0
    low, high = 1e-9, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if bessel_ratio(2.0 * beta * middle) > middle:
            low = middle
        else:
            high = middle
    return (low + high) / 2
