"""Denoising score matching and Euler–Maruyama sampling for a variance-exploding SDE with
constant diffusion g(t) = σ (Brownian motion: the marginal at t is x₀ + σ√t·z), the SDE
of the diffusion toy in "Memorization to Generalization" (its code's `VESDETerms`,
σ = 1, t ∈ [eps, 1]).

The objective is the Trainer's (`core.training.trainer.Objective`): for a batch of
training points x₀, t ~ U(eps, 1), z ~ N(0, I), it is the mean over the batch of
‖s(x₀ + σ_t z, t)·σ_t + z‖², which the true score of the noised data minimises.

The sampler takes any score function, a trained network or the exact score of the
training points' noised empirical distribution, and integrates the reverse SDE from
t = 1 to t_min; its last step returns the noiseless mean, as the paper's code does.

Dimensions: B batch, D data dimension, K training points, M samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# (x (M, D), t (M,)) → the score at x (M, D).
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

EPS_TIME = 1e-5  # the smallest training time, as in the paper's code


def denoising_objective(
    sigma: float,
) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]:
    """The DSM loss for a batch (x₀ (B, D), t (B,), z (B, D)); the sampler draws t and z so
    that every random draw comes from the trainer's seeded generator."""

    def objective(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        clean, t, noise = batch
        std = sigma * t.sqrt()  # (B,)
        score = model(clean + std[:, None] * noise, t)  # (B, D)
        return (score * std[:, None] + noise).square().sum(dim=-1).mean()

    return objective


def dsm_batch(
    points: torch.Tensor, batch_size: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """A batch of distinct training points (all of them when there are at most
    `batch_size`: full batch, as the paper's `min(500, K)`), with its times and noise."""
    count = min(batch_size, points.shape[0])
    rows = torch.randperm(points.shape[0], generator=generator)[:count]
    t = torch.rand(count, generator=generator, dtype=points.dtype) * (1 - EPS_TIME) + EPS_TIME
    noise = torch.randn(count, points.shape[1], generator=generator, dtype=points.dtype)
    return points[rows].to(device), t.to(device), noise.to(device)


def empirical_score(points: torch.Tensor, sigma: float) -> ScoreFn:
    """The exact score of the training points (K, D) noised to time t: a Gaussian mixture
    with means at the points and standard deviation σ√t, ∇ log Σ_k N(x; ξ_k, σ_t² I)."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        variance = (sigma**2 * t)[:, None]  # (M, 1)
        squared = torch.cdist(x, points).square()  # (M, K)
        weights = torch.softmax(-squared / (2 * variance), dim=-1)  # (M, K)
        return (weights @ points - x) / variance

    return score


def euler_maruyama_samples(
    score: ScoreFn,
    count: int,
    data_dim: int,
    sigma: float,
    steps: int,
    t_min: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """`count` samples (M, D) of the reverse SDE from x ~ N(0, σ² I) at t = 1 down to
    t_min in `steps` equal steps; the last step's noiseless mean is returned.

    Near a training point the exact score is −(x − ξ)/(σ²t), so a step moves x by
    dt/t of its distance to ξ: the step must stay below 2t or the iteration diverges.
    The paper's 1,000 steps down to t = 1e-3 end with dt ≈ t, which lands on ξ."""
    times = torch.linspace(1.0, t_min, steps, dtype=torch.float64)
    dt = float(times[0] - times[1]) if steps > 1 else 1.0 - t_min
    x = torch.randn(count, data_dim, generator=generator, dtype=torch.float64) * sigma
    mean = x
    for t in times:
        t_batch = torch.full((count,), float(t), dtype=torch.float64)
        mean = x + sigma**2 * score(x, t_batch) * dt
        noise = torch.randn(count, data_dim, generator=generator, dtype=torch.float64)
        x = mean + (dt**0.5) * sigma * noise
    return mean
