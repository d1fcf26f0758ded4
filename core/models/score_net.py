"""The score network of the diffusion toy in "Memorization to Generalization: Emergence of
Diffusion Models from Associative Memory" (Pham et al. 2025): an MLP that maps a noisy
point and its noise time to the score ∇ log p_t(x).

Its layout follows the paper's code (`toy_example.py`, `ScoreNet`, read in the
Lemon-cmd/Diffusion-Models-and-Associative-Memory repository): a Fourier embedding of t
with frozen random frequencies ~ N(0, scale²), two Linear + SiLU layers on it, then a
trunk on [x, embedding] of `layers` Linear layers with SiLU between and a last Linear
back to the data dimension; the output is divided by the marginal standard deviation
σ_t, so the net learns the score times σ_t, which stays O(1) as t → 0.

Dimensions: B batch, D data dimension (2 for the circle), E embedding width, H hidden.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FourierTimeEmbedding(nn.Module):
    """t (B,) → [cos, sin](2π f t) (B, E), with E/2 frequencies f ~ N(0, scale²) drawn once
    and never trained (a buffer, so a checkpoint keeps them)."""

    def __init__(self, width: int, scale: float, generator: torch.Generator) -> None:
        super().__init__()
        frequencies = torch.randn(width // 2, generator=generator) * scale
        self.register_buffer("frequencies", frequencies)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * t[:, None] * self.frequencies[None, :]  # (B, E/2)
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


class ScoreNet(nn.Module):
    """(x (B, D), t (B,)) → the score estimate (B, D), for a VE SDE whose marginal standard
    deviation at t is `sigma`·√t."""

    def __init__(
        self,
        data_dim: int,
        hidden: int,
        layers: int,
        sigma: float,
        embedding_scale: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.sigma = sigma
        self.time = nn.Sequential(
            FourierTimeEmbedding(hidden, embedding_scale, generator),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
        )
        trunk: list[nn.Module] = [nn.Linear(data_dim + hidden, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            trunk += [nn.Linear(hidden, hidden), nn.SiLU()]
        trunk.append(nn.Linear(hidden, data_dim))
        self.trunk = nn.Sequential(*trunk)
        self._initialise(generator)

    def _initialise(self, generator: torch.Generator) -> None:
        """torch's default Linear init, drawn from `generator`, so a seed gives one net."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                with torch.no_grad():
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.uniform_(-bound, bound, generator=generator)

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        """σ_t = σ√t, the noise level at time t (B,)."""
        return self.sigma * t.sqrt()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        features = torch.cat([x, self.time(t)], dim=-1)  # (B, D + H)
        return self.trunk(features) / self.marginal_std(t)[:, None]
