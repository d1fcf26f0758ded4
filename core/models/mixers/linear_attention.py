"""Causal linear attention with the elu(x)+1 feature map (Katharopoulos et al. 2020).

y_t = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t with S_t = Σ_{s≤t} φ(k_s) v_sᵀ and z_t = Σ_{s≤t} φ(k_s):
a recurrent state of fixed size D×D per head, computed here in parallel with a causal
mask (quadratic in T, fine for memlab's sequence lengths).
Dimensions: B batch, T time, C width, H heads, D = C / H.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from core.spec_model import SpecModel

_EPS = 1e-6


class LinearAttentionSpec(SpecModel):
    type: Literal["linear_attention"] = "linear_attention"
    n_head: int = Field(1, ge=1, le=64)


def _feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


class LinearAttention(nn.Module):
    """`rotary` is accepted for a uniform interface but not applied: rotating φ(q), φ(k)
    would make scores negative and break the normaliser."""

    def __init__(self, spec: LinearAttentionSpec, width: int, rotary: bool = False) -> None:
        super().__init__()
        if width % spec.n_head:
            raise ValueError(f"width {width} is not divisible by n_head {spec.n_head}")
        self.n_head = spec.n_head
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)
        q, k, v = (t.view(batch, seq, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        return _feature_map(q), _feature_map(k), v  # (B, H, T, D) each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = self._heads(x)
        causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()
        scores = (q @ k.transpose(-1, -2)).masked_fill(~causal, 0.0)  # (B, H, T, T)
        y = (scores @ v) / (scores.sum(-1, keepdim=True) + _EPS)
        return self.out(y.transpose(1, 2).reshape(batch, seq, width))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrent form, one step at a time; slow, for tests."""
        batch, seq, width = x.shape
        q, k, v = self._heads(x)
        state = torch.zeros(batch, self.n_head, q.shape[-1], v.shape[-1], dtype=x.dtype)
        norm = torch.zeros(batch, self.n_head, q.shape[-1], dtype=x.dtype)
        outputs = []
        for t in range(seq):
            state = state + k[:, :, t, :, None] * v[:, :, t, None, :]
            norm = norm + k[:, :, t]
            numerator = torch.einsum("bhd,bhde->bhe", q[:, :, t], state)
            denominator = torch.einsum("bhd,bhd->bh", q[:, :, t], norm)[..., None] + _EPS
            outputs.append(numerator / denominator)
        y = torch.stack(outputs, 2)  # (B, H, T, D)
        return self.out(y.transpose(1, 2).reshape(batch, seq, width))
