"""S6: Mamba's selective state-space model, in plain PyTorch.

Input-dependent step Δ_t, input matrix B_t and output matrix C_t make the dynamics
selective (Gu & Dao 2023): for each inner channel e and state index n,
    h_t[e, n] = exp(Δ_t[e] A[e, n]) h_{t-1}[e, n] + Δ_t[e] B_t[n] u_t[e],
    y_t[e] = Σ_n C_t[n] h_t[e, n] + D[e] u_t[e],
with A = −exp(A_log) real and negative, and Δ_t, B_t, C_t linear in u_t. State per inner
channel: N real numbers, h_t[e, :].

S6 sits in the gated block (gated_block.py), which is Mamba's own: its layout is the same
under `block` "gated" and "per_mixer". The scan runs step by step over T on each (B, E, N)
state, built from the factors of that step only (`diagonal_selective_scan`); on CUDA, the
doubling scan over materialised decays (see scan.py).
Dimensions: B batch, T time, C width, E = expand · C inner width, N state size, R the
rank of the Δ projection.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from core.models.mixers.gated_block import DEFAULT_CONV_WIDTH, DEFAULT_EXPAND, GatedBlock
from core.models.mixers.scan import (
    SelectiveInputs,
    SelectiveScanMixer,
    diagonal_selective_scan,
    initial_step_bias,
)
from core.spec_model import SpecModel


class S6Spec(SpecModel):
    type: Literal["s6"] = "s6"
    state_size: int = Field(
        16, ge=1, le=1024, description="State size N: real numbers of state per inner channel."
    )
    expand: int = Field(DEFAULT_EXPAND, ge=1, le=8, description="Inner width E / width C.")
    conv_width: int = Field(DEFAULT_CONV_WIDTH, ge=1, le=16)
    dt_rank: int | None = Field(None, ge=1, description="Rank of the Δ projection; null = ⌈C/16⌉.")
    dt_min: float = Field(1e-3, gt=0, description="Initial Δ is log-uniform in [dt_min, dt_max].")
    dt_max: float = Field(1e-1, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> S6Spec:
        if self.dt_min > self.dt_max:
            raise ValueError(f"dt_min {self.dt_min} exceeds dt_max {self.dt_max}")
        return self


class S6(GatedBlock[S6Spec], SelectiveScanMixer):
    """S6's SSM in the gated block, which is also its own (per-mixer) layout."""

    # Expected faster on CUDA (no per-step launches), not yet measured: see scan.py.
    doubling_on_cuda = True

    def __init__(self, spec: S6Spec, width: int) -> None:
        super().__init__(spec, width, spec.expand, spec.conv_width)

    def _init_core(self, spec: S6Spec, width: int) -> None:
        inner = self.inner
        self.state_size = spec.state_size
        self.dt_rank = spec.dt_rank or math.ceil(width / 16)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * spec.state_size, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        # Mamba's Δ initialisation: weights U(±R^(-1/2)), so the input-dependent part of
        # Δ's pre-activation has about unit scale; bias softplus⁻¹(Δ₀), Δ₀ log-uniform in
        # [dt_min, dt_max] (see `initial_step_bias`).
        with torch.no_grad():
            bound = self.dt_rank**-0.5
            self.dt_proj.weight.uniform_(-bound, bound)
            self.dt_proj.bias.copy_(initial_step_bias(inner, spec.dt_min, spec.dt_max))
        # S4D-Real init: A_n = −(n + 1).
        a = torch.arange(1, spec.state_size + 1, dtype=torch.float32).repeat(inner, 1)
        self.a_log = nn.Parameter(torch.log(a))  # (E, N)
        self.d = nn.Parameter(torch.ones(inner))

    def _inputs(self, u: torch.Tensor) -> SelectiveInputs:
        """From u (B, T, E): dt (B, T, E); a (E, N); b, c (B, T, N)."""
        dt_low, b, c = self.x_proj(u).split([self.dt_rank, self.state_size, self.state_size], -1)
        dt = F.softplus(self.dt_proj(dt_low))  # (B, T, E)
        return SelectiveInputs(u=u, dt=dt, a=-torch.exp(self.a_log), b=b, c=c)

    def _core(self, u: torch.Tensor) -> torch.Tensor:
        p = self._inputs(u)
        return self._scan(p) + p.u * self.d

    def _core_states(self, u: torch.Tensor) -> torch.Tensor:
        """h_t: (B, T, E, N)."""
        return self._reference_states(self._inputs(u))

    def _read_states(self, states: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self._read_out(states, self._inputs(u)) + u * self.d

    def _fast_scan(self, p: SelectiveInputs) -> torch.Tensor:
        return diagonal_selective_scan(p.dt, p.a, p.u, p.b, p.c)

    def _materialise(self, p: SelectiveInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """decay and drive, (B, T, E, N) each."""
        decay = torch.exp(p.dt[..., None] * p.a)
        drive = (p.dt * p.u)[..., None] * p.b[:, :, None, :]
        return decay, drive

    def _read_out(self, states: torch.Tensor, p: SelectiveInputs) -> torch.Tensor:
        return torch.einsum("bten,btn->bte", states, p.c)
