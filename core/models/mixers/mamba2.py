"""Mamba-2: a selective SSM whose decay is one scalar per head (state-space duality, SSD).

Per head h with head width P and state size N (Dao & Gu 2024):
    H_t = exp(Δ_t a_h) H_{t-1} + Δ_t u_t B_tᵀ,    y_t = H_t C_t + D_h u_t,
with H_t a P×N matrix, a_h = −exp(A_log_h) a scalar, and B_t, C_t shared by the heads.
State per inner channel: N real numbers, one row of its head's H_t, as S6 keeps; only
the decay is shared (by the P channels of a head), not the state.

The scalar decay is what lets Mamba-2 be computed like masked attention: memlab scans it
in chunks of `chunk_size` steps, a causal matmul inside each chunk and P×N states carried
between chunks (`chunked_scalar_decay_scan`, scan.py).

Two layouts (`block` in SequenceModelSpec):
- "gated" (`Mamba2`): the block S4D and S6 share (gated_block.py), Δ, B and C projected
  from the convolved u as S6 does. It differs from Mamba-2's own block, which projects
  them from the layer input beside u and convolves B and C with it.
- "per_mixer" (`Mamba2PerMixer`), Mamba-2's own block as memlab built it before issue 10:
  one input projection to z, u, B, C and Δ; the causal depthwise convolution and SiLU on
  u, B and C together; the SSM; y · SiLU(z); output projection.
Dimensions: B batch, T time, C width, E = expand · C, H heads, P = E / H, N state size.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F

from core.models.mixers.causal_conv import causal_depthwise_conv
from core.models.mixers.gated_block import DEFAULT_CONV_WIDTH, DEFAULT_EXPAND, GatedBlock
from core.models.mixers.scan import (
    SelectiveInputs,
    SelectiveScanMixer,
    chunked_scalar_decay_scan,
    initial_step_bias,
)
from core.spec_model import SpecModel


class Mamba2Spec(SpecModel):
    type: Literal["mamba2"] = "mamba2"
    n_head: int = Field(2, ge=1, le=64)
    state_size: int = Field(
        16,
        ge=1,
        le=1024,
        description="State size N: each head keeps a P×N state, N real numbers per inner channel.",
    )
    expand: int = Field(DEFAULT_EXPAND, ge=1, le=8, description="Inner width E / width C.")
    conv_width: int = Field(DEFAULT_CONV_WIDTH, ge=1, le=16)
    dt_min: float = Field(1e-3, gt=0, description="Initial Δ is log-uniform in [dt_min, dt_max].")
    dt_max: float = Field(1e-1, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Mamba2Spec:
        if self.dt_min > self.dt_max:
            raise ValueError(f"dt_min {self.dt_min} exceeds dt_max {self.dt_max}")
        return self


def _check_heads(inner: int, heads: int) -> None:
    if inner % heads:
        raise ValueError(f"expand·width {inner} is not divisible by n_head {heads}")


class _ScalarDecaySSM(SelectiveScanMixer):
    """The scan and read-out both layouts share; a subclass sets n_head, a_log, dt_bias, d."""

    # Steps per SSD chunk: the matmul inside a chunk costs O(L²), the carry between
    # chunks a Python step each. On CPU, 64 (one chunk) beat 16 and 8 at T = 32; at
    # T = 128, 16 and 64 were within noise of each other.
    chunk_size = 64
    d: nn.Parameter

    def _fast_scan(self, p: SelectiveInputs) -> torch.Tensor:
        drive = p.dt[..., None] * p.u  # (B, T, H, P)
        return chunked_scalar_decay_scan(drive, p.dt * p.a, p.b, p.c, self.chunk_size)

    def _materialise(self, p: SelectiveInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """decay (B, T, H, 1, 1) and drive (B, T, H, P, N)."""
        decay = torch.exp(p.dt * p.a)[..., None, None]
        drive = (p.dt[..., None] * p.u)[..., None] * p.b[:, :, None, None, :]
        return decay, drive

    def _read_out(self, states: torch.Tensor, p: SelectiveInputs) -> torch.Tensor:
        return torch.einsum("bthpn,btn->bthp", states, p.c)

    def _skip(self, y: torch.Tensor, p: SelectiveInputs) -> torch.Tensor:
        """y + D u per head, (B, T, H, P) → (B, T, E)."""
        return (y + p.u * self.d[:, None]).flatten(-2)


class Mamba2(GatedBlock[Mamba2Spec], _ScalarDecaySSM):
    """Mamba-2's SSM in the gated block."""

    def __init__(self, spec: Mamba2Spec, width: int) -> None:
        _check_heads(spec.expand * width, spec.n_head)
        super().__init__(spec, width, spec.expand, spec.conv_width)

    def _init_core(self, spec: Mamba2Spec, width: int) -> None:
        self.n_head = spec.n_head
        self.state_size = spec.state_size
        self.x_proj = nn.Linear(self.inner, 2 * spec.state_size + spec.n_head, bias=False)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, spec.n_head + 1).float()))  # (H,)
        # Mamba's Δ initialisation, one Δ₀ per head (see `initial_step_bias`).
        self.dt_bias = nn.Parameter(initial_step_bias(spec.n_head, spec.dt_min, spec.dt_max))
        self.d = nn.Parameter(torch.ones(spec.n_head))

    def _inputs(self, u: torch.Tensor) -> SelectiveInputs:
        """From u (B, T, E): u per head (B, T, H, P), dt (B, T, H), a (H,), b, c (B, T, N)."""
        batch, seq, _ = u.shape
        b, c, dt = self.x_proj(u).split([self.state_size, self.state_size, self.n_head], -1)
        dt = F.softplus(dt + self.dt_bias)
        heads = u.view(batch, seq, self.n_head, -1)
        return SelectiveInputs(u=heads, dt=dt, a=-torch.exp(self.a_log), b=b, c=c)

    def _core(self, u: torch.Tensor) -> torch.Tensor:
        p = self._inputs(u)
        return self._skip(self._scan(p), p)

    def _core_states(self, u: torch.Tensor) -> torch.Tensor:
        """H_t: (B, T, H, P, N)."""
        return self._reference_states(self._inputs(u))

    def _read_states(self, states: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        p = self._inputs(u)
        return self._skip(self._read_out(states, p), p)


class Mamba2PerMixer(_ScalarDecaySSM):
    """Mamba-2's own block, the `per_mixer` layout (parameters and numbers as before)."""

    def __init__(self, spec: Mamba2Spec, width: int) -> None:
        super().__init__()
        inner = spec.expand * width
        _check_heads(inner, spec.n_head)
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
        self.dt_bias = nn.Parameter(initial_step_bias(spec.n_head, spec.dt_min, spec.dt_max))
        self.d = nn.Parameter(torch.ones(spec.n_head))
        self.out_proj = nn.Linear(inner, width)

    def _project(self, x: torch.Tensor) -> tuple[SelectiveInputs, torch.Tensor]:
        """The scan's inputs (u per head (B, T, H, P), dt (B, T, H), a (H,), b and c
        (B, T, N)) and the gate z (B, T, E), from x (B, T, C)."""
        batch, seq, _ = x.shape
        z, xbc, dt = self.in_proj(x).split(
            [self.inner, self.inner + 2 * self.state_size, self.n_head], dim=-1
        )
        xbc = F.silu(causal_depthwise_conv(xbc, self.conv.weight, self.conv.bias))
        u, b, c = xbc.split([self.inner, self.state_size, self.state_size], dim=-1)
        u = u.view(batch, seq, self.n_head, -1)  # (B, T, H, P)
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        return SelectiveInputs(u=u, dt=dt, a=-torch.exp(self.a_log), b=b, c=c), z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, T, C)."""
        p, z = self._project(x)
        return self.out_proj(self._skip(self._scan(p), p) * F.silu(z))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The scan one step at a time over materialised decays; slow, for tests."""
        p, z = self._project(x)
        y = self._read_out(self._reference_states(p), p)
        return self.out_proj(self._skip(y, p) * F.silu(z))

    def reference_states(self, x: torch.Tensor) -> torch.Tensor:
        """The states H_t the reference computes on x (B, T, C): (B, T, H, P, N)."""
        return self._reference_states(self._project(x)[0])
