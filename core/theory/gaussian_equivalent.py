"""The Gaussian-equivalent ("linear + chaos") surrogate of an entrywise kernel
f(M/√p)/√p: a reference computation that sees f only through its Hermite numbers
a_1, a_2 and ν (`core.theory.hermite`), which `attention_memorization` runs beside the
exact kernel.

The idea, replacing the nonlinear part of f applied to a Gram-type matrix by independent
Gaussian noise of the same variance, is from the kernel random-matrix literature
(El Karoui 2010, "The spectrum of kernel random matrices"; Cheng–Singer 2013;
Fan–Montanari 2019; cited from memory in shared/research/seed-details.md §1, not from the
seed paper). The form below, and in particular its low-rank He_2 term, is memlab's own
derivation for this setting. Off the diagonal, with M = Xᵀ W_Kᵀ W_Q X (n, n) and
δ_i = ‖x_i‖²/p − 1,

    f(M_ij/√p)/√p ≈ a_1·M_ij/p + (a_2/√2)·(δ_i + δ_j)/√p + √(ν − a_1²)·G_ij/√p,

G symmetric with N(0, 1) entries, independent of X. The first term is f's linear part.
The second is the mean of its He_2 part given the token norms: M_ij/√p has variance
about (1 + δ_i)(1 + δ_j) ≈ 1 + δ_i + δ_j, so E He_2(M_ij/√p) ≈ δ_i + δ_j. The third
stands in for everything else, of variance ν − a_1².

It assumes every off-diagonal argument M_ij/√p is close to N(0, 1) and independent of
the rest. That fails once W_Kᵀ W_Q's rank-one part is large or aligned with the
signal; see `attention_memorization` for how far it misses there.

>>> import torch
>>> from core.theory.hermite import hermite_constants
>>> x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
>>> linear = hermite_constants(lambda t: t)  # a_1 = 1, a_2 = 0, ν = 1: no He_2, no chaos
>>> exact = x.T @ x / 4  # f(M/√p)/√p for f(t) = t and W = I
>>> kernel = surrogate_kernel(linear, x.T @ x, x, torch.ones(3, 3), exact.diagonal())
>>> float((kernel - exact).abs().max()) < 1e-6
True
"""

from __future__ import annotations

import math

import torch

from core.theory.hermite import HermiteConstants


def surrogate_kernel(
    constants: HermiteConstants,
    scores: torch.Tensor,
    x: torch.Tensor,
    chaos: torch.Tensor,
    diagonal: torch.Tensor,
) -> torch.Tensor:
    """The surrogate kernel (n, n) of the module docstring, its diagonal set to `diagonal`.

    constants: f's Hermite numbers.
    scores:    M (n, n), the pre-activation scores times √p.
    x:         the tokens (p, n), for their norms.
    chaos:     G (n, n), symmetric with N(0, 1) entries off the diagonal.
    diagonal:  (n,) what the caller puts on the diagonal (the exact kernel's, usually).
    """
    p = x.shape[0]
    norm_excess = x.square().sum(dim=0) / p - 1  # (n,) δ_i
    low_rank = (norm_excess[:, None] + norm_excess[None, :]) / math.sqrt(2.0 * p)  # (n, n)
    kernel = (
        constants.a1 * scores / p
        + constants.a2 * low_rank
        + math.sqrt(constants.chaos_variance / p) * chaos
    )
    kernel.diagonal().copy_(diagonal)
    return kernel
