"""Mamba-2: a selective SSM whose decay is one scalar per head (state-space duality, SSD).

Per head h with head width P and state size N (Dao & Gu 2024):
    H_t = exp(Δ_t a_h) H_{t-1} + Δ_t x_t B_tᵀ,    y_t = H_t C_t + D x_t,
with H_t a P×N matrix, a_h = −exp(A_log_h) a scalar, and B_t, C_t shared by the heads.
The scalar decay is what lets Mamba-2 be computed like masked attention; memlab uses
the same parallel scan as S6 (scan.py). The block: input projection to x, z, B, C and
Δ; a causal depthwise convolution and SiLU on x, B, C; the SSM; y · SiLU(z); output
projection. Dimensions: B batch, T time, C width, E = expand · C, H heads, P = E / H, N.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from core.models.mixers.scan import SelectiveScanMixer
from core.specs import SpecModel


class Mamba2Spec(SpecModel):
    type: Literal["mamba2"] = "mamba2"
    n_head: int = Field(2, ge=1, le=64)
    state_size: int = Field(16, ge=1, le=1024)
    expand: int = Field(2, ge=1, le=8)
    conv_width: int = Field(4, ge=1, le=16)


class Mamba2(SelectiveScanMixer):
    def __init__(self, spec: Mamba2Spec, width: int) -> None:
        super().__init__()
        inner = spec.expand * width
        if inner % spec.n_head:
            raise ValueError(f"expand·width {inner} is not divisible by n_head {spec.n_head}")
        self.n_head = spec.n_head
        self.state_size = spec.state_size
        self.inner = inner
        conv_channels = inner + 2 * spec.state_size
        self.in_proj = nn.Linear(width, 2 * inner + 2 * spec.state_size + spec.n_head)
        self.conv = nn.Conv1d(
            conv_channels,
            conv_channels,
            spec.conv_width,
            groups=conv_channels,
            padding=spec.conv_width - 1,
        )
        self.a_log = nn.Parameter(torch.log(torch.arange(1, spec.n_head + 1).float()))  # (H,)
        self.dt_bias = nn.Parameter(torch.zeros(spec.n_head))
        self.d = nn.Parameter(torch.ones(spec.n_head))
        self.out_proj = nn.Linear(inner, width)

    def _ssm_inputs(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (B,T,H,P), z (B,T,E), decay (B,T,H,1,1), drive (B,T,H,P,N), C (B,T,N)."""
        batch, seq, _ = x.shape
        z, xbc, dt = self.in_proj(x).split(
            [self.inner, self.inner + 2 * self.state_size, self.n_head], dim=-1
        )
        xbc = F.silu(self.conv(xbc.transpose(1, 2))[..., :seq].transpose(1, 2))
        u, b, c = xbc.split([self.inner, self.state_size, self.state_size], dim=-1)
        u = u.view(batch, seq, self.n_head, -1)  # (B, T, H, P)
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        decay = torch.exp(dt * -torch.exp(self.a_log))[..., None, None]  # (B, T, H, 1, 1)
        drive = (dt[..., None] * u)[..., None] * b[:, :, None, None, :]  # (B, T, H, P, N)
        return u, z, decay, drive, c

    def _finish(
        self, states: torch.Tensor, u: torch.Tensor, z: torch.Tensor, c: torch.Tensor
    ) -> torch.Tensor:
        y = torch.einsum("bthpn,btn->bthp", states, c) + u * self.d[:, None]
        y = y.reshape(*z.shape)
        return self.out_proj(y * F.silu(z))
