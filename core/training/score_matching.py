"""Denoising score matching and Euler–Maruyama sampling for a variance-exploding SDE with
constant diffusion g(t) = σ (Brownian motion: the marginal at t is x₀ + σ√t·z), the SDE
of the diffusion toy in "Memorization to Generalization" (its code's `VESDETerms`,
σ = 1, t ∈ [eps, 1]).

The objective is the Trainer's (`core.training.trainer.Objective`): for a batch of
training points x₀, t ~ U(eps, 1), z ~ N(0, I), it is the mean over the batch of
‖s(x₀ + σ_t z, t)·σ_t + z‖², which the true score of the noised data minimises.

The sampler takes any score function, a trained network or the exact score of the
training points' noised empirical distribution, and integrates the reverse SDE from
t = 1 to t_min. By default it takes one step at each of `steps` times down to t_min and
returns the last step's noiseless mean, as the paper's code does (so its state ends one
step below t_min); with `noisy_at_t_min` it integrates the `steps − 1` intervals down to
t_min exactly and returns the noisy state there, for the caller to denoise (Tweedie).

Dimensions: B batch, D data dimension, K training points, M samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from core.reporter import RunCancelled

# (x (M, D), t (M,)) → the score at x (M, D).
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

EPS_TIME = 1e-5  # the smallest training time, as in the paper's code
# The sampler asks whether to stop every this many steps.
STOP_CHECK_EVERY = 50


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

    half_norms = 0.5 * points.square().sum(dim=1)  # (K,)

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        variance = (sigma**2 * t)[:, None]  # (M, 1)
        # −‖x − ξ‖²/(2v) = (x·ξ − ½‖ξ‖²)/v − ‖x‖²/(2v), and the last term is the same for
        # every ξ: the softmax needs one (M, D)·(D, K) product, no distance matrix.
        weights = torch.softmax((x @ points.T - half_norms) / variance, dim=-1)  # (M, K)
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
    *,
    noisy_at_t_min: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """`count` samples (M, D) of the reverse SDE from x ~ N(0, σ² I) at t = 1 towards
    t_min on the grid linspace(1, t_min, steps), each step x ← x + σ²·s(x, t)·dt + σ√dt·z.

    By default (the paper's sampler) a step is taken at every grid time, t_min included,
    and the last step's noiseless mean is returned. With `noisy_at_t_min` the steps are
    taken at every grid time but the last, so the state ends exactly at t_min, and that
    noisy state is returned (denoise it with the Tweedie mean x + σ²t_min·s(x, t_min)).
    Raises RunCancelled when `should_stop()` says so (asked every STOP_CHECK_EVERY steps).

    Near a training point the exact score is −(x − ξ)/(σ²t), so a step moves x by
    dt/t of its distance to ξ: the step must stay below 2t or the iteration diverges.
    The paper's 1,000 steps down to t = 1e-3 end with dt ≈ t, which lands on ξ."""
    grid = torch.linspace(1.0, t_min, steps, dtype=torch.float64).tolist()
    dt = grid[0] - grid[1] if steps > 1 else 1.0 - t_min
    times = grid[:-1] if noisy_at_t_min else grid
    x = torch.randn(count, data_dim, generator=generator, dtype=torch.float64) * sigma
    mean = x
    for step, t in enumerate(times):
        asking = should_stop is not None and step % STOP_CHECK_EVERY == STOP_CHECK_EVERY - 1
        if asking and should_stop is not None and should_stop():
            raise RunCancelled(step)
        t_batch = torch.full((count,), t, dtype=torch.float64)
        mean = x + sigma**2 * score(x, t_batch) * dt
        noise = torch.randn(count, data_dim, generator=generator, dtype=torch.float64)
        x = mean + (dt**0.5) * sigma * noise
    return x if noisy_at_t_min else mean
