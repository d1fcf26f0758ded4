"""S4D: a diagonal state-space model with fixed (input-independent) dynamics.

Per channel e, M = N/2 complex modes m: h_t = Ā h_{t-1} + B̄ u_t, y_t = 2·Re(C h_t) + D u_t,
with Ā = exp(Δ·A) and the zero-order-hold B̄ = (Ā − 1)/A · B (Gu et al., "On the
Parameterization and Initialization of Diagonal State Space Models", S4D-Lin init:
A_m = −1/2 + iπm). The modes come in conjugate pairs, so M complex modes hold a real
state of size N = 2M per channel: the N real numbers of state per channel that S6 and
Mamba-2 keep for the same `state_size`. Because the dynamics do not depend on the input,
the SSM is a causal convolution with kernel K_l = 2·Re(Σ_m C_m B̄_m Ā_m^l), computed by FFT.

Two layouts (`block` in SequenceModelSpec):
- "gated" (`S4D`): the block S6 and Mamba-2 share (gated_block.py), the SSM over its E
  inner channels.
- "per_mixer" (`S4DPerMixer`), as memlab built S4D before issue 10: the SSM over the C
  model channels, then GELU and an output projection; no gate, convolution or expansion.
Dimensions: B batch, T time, C width, E = expand · C inner width, M = N/2 complex modes.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from core.models.mixers.gated_block import DEFAULT_CONV_WIDTH, DEFAULT_EXPAND, GatedBlock
from core.models.mixers.scan import linear_recurrence_reference
from core.spec_model import SpecModel


class S4DSpec(SpecModel):
    type: Literal["s4d"] = "s4d"
    state_size: int = Field(
        16,
        ge=2,
        le=1024,
        description="State size N: real numbers of state per channel, held as N/2 complex "
        "conjugate-pair modes (even).",
    )
    dt_min: float = Field(1e-3, gt=0)
    dt_max: float = Field(1e-1, gt=0)
    expand: int | None = Field(
        None,
        ge=1,
        le=8,
        description=f"Inner width E / width C in the gated block (default {DEFAULT_EXPAND}); "
        "null in the per_mixer layout, which has none.",
    )
    conv_width: int | None = Field(
        None,
        ge=1,
        le=16,
        description=f"Convolution width in the gated block (default {DEFAULT_CONV_WIDTH}); "
        "null in the per_mixer layout, which has none.",
    )

    added_fields: ClassVar[frozenset[str]] = frozenset({"expand", "conv_width"})

    @field_validator("state_size")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("state_size must be even (complex conjugate pairs)")
        return value

    def gated_shape(self) -> tuple[int, int]:
        """(expand, conv_width) in the gated block, the block's defaults where unset."""
        expand = DEFAULT_EXPAND if self.expand is None else self.expand
        return expand, DEFAULT_CONV_WIDTH if self.conv_width is None else self.conv_width

    def in_gated_block(self) -> S4DSpec:
        """This spec with the gated block's expand and conv_width filled where unset."""
        expand, conv_width = self.gated_shape()
        return self.model_copy(update={"expand": expand, "conv_width": conv_width})


class _DiagonalSSM(nn.Module):
    """The S4D state-space model both layouts share, over `channels` channels."""

    def _init_ssm(self, spec: S4DSpec, channels: int) -> None:
        modes = spec.state_size // 2
        log_dt = torch.rand(channels) * (math.log(spec.dt_max) - math.log(spec.dt_min)) + math.log(
            spec.dt_min
        )
        self.log_dt = nn.Parameter(log_dt)  # (E,)
        self.log_neg_a_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))  # (E, M)
        self.a_imag = nn.Parameter(math.pi * torch.arange(modes).float().repeat(channels, 1))
        self.c = nn.Parameter(torch.randn(channels, modes, 2) * 0.5**0.5)  # (E, M) complex
        self.d = nn.Parameter(torch.randn(channels))  # (E,)

    def _continuous_a(self) -> torch.Tensor:
        """A: (E, M) complex, real part < 0."""
        return -torch.exp(self.log_neg_a_real) + 1j * self.a_imag

    def _discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ā and C·B̄ (B is fixed to 1), each (E, M) complex."""
        a = self._continuous_a()
        dt_a = a * torch.exp(self.log_dt)[:, None]
        a_bar = torch.exp(dt_a)
        c_b_bar = torch.view_as_complex(self.c) * (a_bar - 1.0) / a
        return a_bar, c_b_bar

    def kernel(self, length: int) -> torch.Tensor:
        """K: (E, T) with K[:, l] = 2·Re(Σ_m C_m B̄_m Ā_m^l)."""
        a_bar, c_b_bar = self._discrete()
        powers = torch.exp(torch.log(a_bar)[..., None] * torch.arange(length, device=a_bar.device))
        return 2 * torch.einsum("cm,cml->cl", c_b_bar, powers).real

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, E) → (B, T, E): the SSM as a causal convolution, plus D x."""
        seq = x.shape[1]
        u = x.transpose(1, 2)  # (B, E, T)
        k = self.kernel(seq)  # (E, T)
        size = 2 * seq  # zero-padded, so the circular FFT convolution is causal
        y = torch.fft.irfft(torch.fft.rfft(u, n=size) * torch.fft.rfft(k, n=size), n=size)[
            ..., :seq
        ]
        y = y + u * self.d[:, None]
        return y.transpose(1, 2)

    def _states(self, x: torch.Tensor) -> torch.Tensor:
        """h_t for every t, one step at a time: (B, T, E, M) complex."""
        a_bar, _ = self._discrete()
        b_bar = (a_bar - 1.0) / self._continuous_a()
        return linear_recurrence_reference(a_bar[None, None], b_bar * x[..., None])

    def _read(self, states: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y_t = 2·Re(C h_t) + D x_t: (B, T, E)."""
        return 2 * (torch.view_as_complex(self.c) * states).sum(-1).real + self.d * x


class S4D(GatedBlock[S4DSpec], _DiagonalSSM):
    """S4D's SSM in the gated block."""

    def __init__(self, spec: S4DSpec, width: int) -> None:
        super().__init__(spec, width, *spec.gated_shape())

    def _init_core(self, spec: S4DSpec, width: int) -> None:
        self._init_ssm(spec, self.inner)

    def _core(self, u: torch.Tensor) -> torch.Tensor:
        return self._convolve(u)

    def _core_states(self, u: torch.Tensor) -> torch.Tensor:
        return self._states(u)

    def _read_states(self, states: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self._read(states, u)


class S4DPerMixer(_DiagonalSSM):
    """S4D as a bare layer, the `per_mixer` layout (parameters and numbers as before)."""

    def __init__(self, spec: S4DSpec, width: int) -> None:
        super().__init__()
        self._init_ssm(spec, width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, T, C)."""
        return self.out(F.gelu(self._convolve(x)))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrence, one step at a time; slow, for tests."""
        return self.out(F.gelu(self._read(self._states(x), x)))

    def reference_states(self, x: torch.Tensor) -> torch.Tensor:
        """The states h_t the reference computes on x (B, T, C): (B, T, C, M) complex."""
        return self._states(x)
