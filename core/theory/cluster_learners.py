"""The learners `memorization_tradeoff` runs on cluster datasets: each maps datasets
(C, n, d) to R independent releases per dataset, (C, R, d), drawing its internal noise from
the generator passed in (R reruns on the same data measure that noise, which the
memorization estimates need).

- `gaussian_mechanism`: A = X̄ + τW, W ~ N(0, I_d); its bits and accuracy have closed
  forms (`core.theory.memorization_bits`).
- `noisy_gradient_descent`: T full-batch steps of gradient descent on ½‖w − X_i‖² from
  w = 0, each example's gradient clipped to a norm, Gaussian noise added after each step.
  A trained model with no closed form once the clip binds. Unclipped it releases
  c·X̄ + noise with c = 1 − (1 − η)^T. Its noise is set by the caller; nothing here
  calibrates it to the clip, so it carries no differential-privacy guarantee.
- `majority_vote`: each coordinate's majority of n ±1 votes (a tie: a fair coin), each
  output coordinate flipped with probability q (randomized response).

The learners and their exact values are memlab's instantiation of the notes
(shared/research/seed-details.md §6), not the paper's.

>>> datasets = torch.tensor([[[1.0, 3.0], [3.0, 5.0]]], dtype=torch.float64)  # n = 2, d = 2
>>> gaussian_mechanism(datasets, 0.0, 1, torch.Generator()).tolist()  # τ = 0: the mean
[[[2.0, 4.0]]]
>>> one_step = noisy_gradient_descent(datasets, 1, 1.0, 0.0, None, 1, torch.Generator())
>>> one_step.tolist()  # one full step from 0, no noise, no clip: the mean again
[[[2.0, 4.0]]]
>>> clipped = noisy_gradient_descent(datasets, 1, 1.0, 0.0, 1.0, 1, torch.Generator())
>>> [round(v, 3) for v in clipped[0, 0].tolist()]  # each sample's pull cut to norm 1
[0.415, 0.903]
"""

from __future__ import annotations

import torch


def gaussian_mechanism(
    datasets: torch.Tensor, tau: float, reruns: int, generator: torch.Generator
) -> torch.Tensor:
    """X̄ + τW for each dataset (C, n, d), `reruns` times: (C, R, d)."""
    count, _, d = datasets.shape
    noise = torch.randn(count, reruns, d, generator=generator, dtype=torch.float64)
    return datasets.mean(dim=1, keepdim=True) + tau * noise


def noisy_gradient_descent(
    datasets: torch.Tensor,
    steps: int,
    lr: float,
    step_std: float,
    clip_norm: float | None,
    reruns: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """T steps of w ← w − η·mean_i clip(w − X_i) + step_std·W from w = 0, on each dataset
    (C, n, d), `reruns` times: (C, R, d). `clip_norm` None skips clipping (then the mean
    gradient is w − X̄, computed as such).

    The clipped mean gradient is mean_i s_i·(w − X_i) = mean_i(s_i)·w − (Σ_i s_i X_i)/n with
    s_i = min(1, clip/‖w − X_i‖), and ‖w − X_i‖² = ‖w‖² − 2 w·X_i + ‖X_i‖²: two batched
    matrix products, never the (C, R, n, d) residuals."""
    count, n, d = datasets.shape
    weights = torch.zeros(count, reruns, d, dtype=torch.float64)
    sample_mean = datasets.mean(dim=1)[:, None, :]  # (C, 1, d)
    sample_square_norms = datasets.square().sum(dim=-1)[:, None, :]  # (C, 1, n)
    for _ in range(steps):
        if clip_norm is None:
            gradient = weights - sample_mean
        else:
            cross = weights @ datasets.transpose(1, 2)  # (C, R, n): w·X_i
            square_norms = weights.square().sum(dim=-1, keepdim=True) - 2 * cross
            norms = (square_norms + sample_square_norms).clamp_min(0.0).sqrt()  # (C, R, n)
            scale = (clip_norm / norms.clamp_min(1e-300)).clamp(max=1.0)  # (C, R, n)
            gradient = scale.mean(dim=-1, keepdim=True) * weights - (scale @ datasets) / n
        noise = torch.randn(count, reruns, d, generator=generator, dtype=torch.float64)
        weights = weights - lr * gradient + step_std * noise
    return weights


def majority_vote(
    datasets: torch.Tensor, flip: float, reruns: int, generator: torch.Generator
) -> torch.Tensor:
    """Each coordinate's majority over n ±1 votes (a tie: a fair coin), flipped with
    probability q, for each dataset (C, n, d), `reruns` times: (C, R, d) in ±1."""
    count, _, d = datasets.shape
    tally = datasets.sum(dim=1)[:, None, :]  # (C, 1, d)
    coin = torch.randint(0, 2, (count, reruns, d), generator=generator).to(torch.float64) * 2 - 1
    vote = torch.where(tally == 0, coin, torch.sign(tally))  # (C, R, d)
    flipped = torch.rand(count, reruns, d, generator=generator, dtype=torch.float64) < flip
    return torch.where(flipped, -vote, vote)
