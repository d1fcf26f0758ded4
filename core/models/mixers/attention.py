"""Causal softmax attention (multi-head), the reference mixer for associative recall.

Dimensions: B batch, T time, C width, H heads, D = C / H head width.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from core.spec_model import SpecModel


def apply_rotary(x: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) on (B, H, T, D), D even: each pair of
    features is rotated by an angle proportional to the position."""
    seq, dim = x.shape[-2], x.shape[-1]
    if dim % 2:
        raise ValueError(f"rotary positions need an even head width, got {dim}")
    inv_freq = base ** (-torch.arange(0, dim, 2, device=x.device, dtype=x.dtype) / dim)  # (D/2,)
    angles = torch.arange(seq, device=x.device, dtype=x.dtype)[:, None] * inv_freq  # (T, D/2)
    cos, sin = angles.cos(), angles.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class AttentionSpec(SpecModel):
    type: Literal["attention"] = "attention"
    n_head: int = Field(1, ge=1, le=64)


class SoftmaxAttention(nn.Module):
    def __init__(self, spec: AttentionSpec, width: int, rotary: bool = False) -> None:
        super().__init__()
        if width % spec.n_head:
            raise ValueError(f"width {width} is not divisible by n_head {spec.n_head}")
        self.n_head = spec.n_head
        self.rotary = rotary
        # The fused kernel has no vmap batching rule (batched ensembles), so Ensemble
        # switches to the explicit form, which vmap batches natively.
        self.fused = True
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)
        q, k, v = (t.view(batch, seq, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        if self.rotary:
            q, k = apply_rotary(q), apply_rotary(k)
        return q, k, v  # (B, H, T, D) each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape  # (B, T, C)
        q, k, v = self._heads(x)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        else:
            scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, T, T)
            causal = torch.ones(seq, seq, dtype=torch.bool, device=x.device).tril()
            y = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        return self.out(y.transpose(1, 2).reshape(batch, seq, width))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """Step-by-step attention over the prefix; slow, for tests."""
        batch, seq, width = x.shape
        q, k, v = (t.transpose(1, 2) for t in self._heads(x))  # (B, T, H, D)
        outputs = []
        for t in range(seq):
            scores = torch.einsum("bhd,bshd->bhs", q[:, t], k[:, : t + 1]) / q.shape[-1] ** 0.5
            outputs.append(torch.einsum("bhs,bshd->bhd", scores.softmax(-1), v[:, : t + 1]))
        return self.out(torch.stack(outputs, 1).reshape(batch, seq, width))
