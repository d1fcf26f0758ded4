"""The cluster problems of `memorization_tradeoff`: a hidden centre θ, and datasets of n
samples drawn around it.

- `GaussianClusters`: θ ~ N(0, s²I_d), X_i = θ + σZ_i with Z_i ~ N(0, I_d).
- `BooleanClusters`: θ uniform on {±1}^d, X_ij = θ_j with probability (1 + ρ)/2 and −θ_j
  otherwise, independently over i and j.

Both are memlab's instantiations of the problems of "Trade-offs in Data Memorization via
Strong Data Processing Inequalities" (Feldman, Kornowski & Lyu, COLT 2025), from
shared/research/seed-details.md §6; the paper's own definitions (its Appendices B and C)
were not read.

Every draw comes from the `torch.Generator` passed in, so a seed fixes θ and the data.
Shapes: d the dimension, C datasets, n samples each.

>>> problem = BooleanClusters(d=6, rho=0.5)
>>> theta = problem.draw_theta(torch.Generator().manual_seed(0))
>>> theta.tolist()
[-1.0, 1.0, 1.0, -1.0, 1.0, 1.0]
>>> datasets = problem.draw_datasets(theta, count=2, n=3, generator=torch.Generator())
>>> datasets.shape
torch.Size([2, 3, 6])
>>> bool(((datasets == theta) | (datasets == -theta)).all())  # each sample agrees or flips
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianClusters:
    """θ ~ N(0, s²I_d); each sample X_i = θ + σZ_i.

    prior_std:       s.
    sample_variance: σ², the noise of one sample around θ (per coordinate).
    """

    d: int
    prior_std: float
    sample_variance: float

    def draw_theta(self, generator: torch.Generator) -> torch.Tensor:
        """θ: (d,), float64."""
        return self.prior_std * torch.randn(self.d, generator=generator, dtype=torch.float64)

    def draw_datasets(
        self, theta: torch.Tensor, count: int, n: int, generator: torch.Generator
    ) -> torch.Tensor:
        """`count` datasets of n samples from P_θ: (count, n, d), float64."""
        noise = torch.randn(count, n, self.d, generator=generator, dtype=torch.float64)
        return theta + math.sqrt(self.sample_variance) * noise


@dataclass(frozen=True)
class BooleanClusters:
    """θ uniform on {±1}^d; each sample agrees with θ coordinate by coordinate with
    probability (1 + ρ)/2, so E[X_ij | θ] = ρ·θ_j."""

    d: int
    rho: float

    def draw_theta(self, generator: torch.Generator) -> torch.Tensor:
        """θ: (d,) in ±1, float64."""
        bits = torch.randint(0, 2, (self.d,), generator=generator)
        return bits.to(torch.float64) * 2 - 1

    def draw_datasets(
        self, theta: torch.Tensor, count: int, n: int, generator: torch.Generator
    ) -> torch.Tensor:
        """`count` datasets of n samples from P_θ: (count, n, d) in ±1, float64."""
        uniform = torch.rand(count, n, self.d, generator=generator, dtype=torch.float64)
        return torch.where(uniform < (1 + self.rho) / 2, theta, -theta)


ClusterProblem = GaussianClusters | BooleanClusters
