"""Causal softmax attention (multi-head), the reference mixer for associative recall.

Dimensions: B batch, T time, C width, H heads, D = C / H head width.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from core.specs import SpecModel


class AttentionSpec(SpecModel):
    type: Literal["attention"] = "attention"
    n_head: int = Field(1, ge=1, le=64)


class SoftmaxAttention(nn.Module):
    def __init__(self, spec: AttentionSpec, width: int) -> None:
        super().__init__()
        if width % spec.n_head:
            raise ValueError(f"width {width} is not divisible by n_head {spec.n_head}")
        self.n_head = spec.n_head
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(width, dim=-1)
        q, k, v = (
            t.view(batch, seq, self.n_head, -1).transpose(1, 2) for t in (q, k, v)
        )  # (B,H,T,D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, seq, width))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """Step-by-step attention over the prefix; slow, for tests."""
        batch, seq, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)
        q, k, v = (t.view(batch, seq, self.n_head, -1) for t in (q, k, v))  # (B,T,H,D)
        outputs = []
        for t in range(seq):
            scores = torch.einsum("bhd,bshd->bhs", q[:, t], k[:, : t + 1]) / q.shape[-1] ** 0.5
            outputs.append(torch.einsum("bhs,bshd->bhd", scores.softmax(-1), v[:, : t + 1]))
        return self.out(torch.stack(outputs, 1).reshape(batch, seq, width))
