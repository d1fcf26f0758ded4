"""S4D: a diagonal state-space model with fixed (input-independent) dynamics.

Per channel c, N/2 complex modes n: h_t = Ā h_{t-1} + B̄ x_t, y_t = 2·Re(C h_t) + D x_t,
with Ā = exp(Δ·A) and the zero-order-hold B̄ = (Ā − 1)/A · B (Gu et al., "On the
Parameterization and Initialization of Diagonal State Space Models", S4D-Lin init:
A_n = −1/2 + iπn). Because the dynamics do not depend on the input, the whole layer is
a causal convolution with kernel K_l = 2·Re(Σ_n C_n B̄_n Ā_n^l), computed by FFT.
Dimensions: B batch, T time, C width, M = N/2 complex modes.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from core.spec_model import SpecModel


class S4DSpec(SpecModel):
    type: Literal["s4d"] = "s4d"
    state_size: int = Field(16, ge=2, le=1024, description="Real state size N per channel (even).")
    dt_min: float = Field(1e-3, gt=0)
    dt_max: float = Field(1e-1, gt=0)

    @field_validator("state_size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("state_size must be even (complex conjugate pairs)")
        return value


class S4D(nn.Module):
    def __init__(self, spec: S4DSpec, width: int) -> None:
        super().__init__()
        modes = spec.state_size // 2
        log_dt = torch.rand(width) * (math.log(spec.dt_max) - math.log(spec.dt_min)) + math.log(
            spec.dt_min
        )
        self.log_dt = nn.Parameter(log_dt)  # (C,)
        self.log_neg_a_real = nn.Parameter(torch.full((width, modes), math.log(0.5)))  # (C, M)
        self.a_imag = nn.Parameter(math.pi * torch.arange(modes).float().repeat(width, 1))  # (C, M)
        self.c = nn.Parameter(torch.randn(width, modes, 2) * 0.5**0.5)  # (C, M) complex as pairs
        self.d = nn.Parameter(torch.randn(width))  # (C,)
        self.out = nn.Linear(width, width)

    def _discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ā and C·B̄ (B is fixed to 1), each (C, M) complex."""
        a = -torch.exp(self.log_neg_a_real) + 1j * self.a_imag
        dt_a = a * torch.exp(self.log_dt)[:, None]
        a_bar = torch.exp(dt_a)
        c_b_bar = torch.view_as_complex(self.c) * (a_bar - 1.0) / a
        return a_bar, c_b_bar

    def kernel(self, length: int) -> torch.Tensor:
        """K: (C, T) with K[:, l] = 2·Re(Σ_m C_m B̄_m Ā_m^l)."""
        a_bar, c_b_bar = self._discrete()
        powers = torch.exp(torch.log(a_bar)[..., None] * torch.arange(length, device=a_bar.device))
        return 2 * torch.einsum("cm,cml->cl", c_b_bar, powers).real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1]
        u = x.transpose(1, 2)  # (B, C, T)
        k = self.kernel(seq)  # (C, T)
        size = 2 * seq  # zero-padded, so the circular FFT convolution is causal
        y = torch.fft.irfft(torch.fft.rfft(u, n=size) * torch.fft.rfft(k, n=size), n=size)[
            ..., :seq
        ]
        y = y + u * self.d[:, None]
        return self.out(F.gelu(y.transpose(1, 2)))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrence, one step at a time; slow, for tests."""
        a_bar, c_b_bar = self._discrete()
        c = torch.view_as_complex(self.c)
        b_bar = c_b_bar / c
        state = torch.zeros(x.shape[0], *a_bar.shape, dtype=a_bar.dtype)
        outputs = []
        for t in range(x.shape[1]):
            state = a_bar * state + b_bar * x[:, t, :, None]
            outputs.append(2 * (c * state).sum(-1).real + self.d * x[:, t])
        return self.out(F.gelu(torch.stack(outputs, 1)))
