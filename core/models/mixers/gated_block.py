"""The gated block that the recurrent mixers (S4D, S6, Mamba-2) share, as Mamba's:

    u, z = in_proj(x)                      two (B, T, E) halves, E = expand · C
    u ← SiLU(causal depthwise conv(u))     kernel of K steps per channel
    y = core(u)                            (B, T, E): the mixer's state-space model
    out = out_proj(y · SiLU(z))            (B, T, C)

Given the same width, `expand` and `conv_width`, everything but the core has the same
shapes whichever the mixer, so a comparison of mixers in this block compares their
state-space cores alone. Each core keeps N real numbers of state per inner channel for
`state_size` N (each mixer's docstring says how), so the recurrent state is E · N
numbers per sequence for all three.

Dimensions: B batch, T time, C width, E = expand · C inner width, K conv_width.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from core.models.mixers.causal_conv import causal_depthwise_conv
from core.spec_model import SpecModel

# The block's shape unless a mixer's spec says otherwise (Mamba's defaults).
DEFAULT_EXPAND = 2
DEFAULT_CONV_WIDTH = 4

SpecT = TypeVar("SpecT", bound=SpecModel)


class GatedBlock(nn.Module, Generic[SpecT]):
    """Base of the recurrent mixers in the gated block. A subclass creates its core's
    parameters (`_init_core`) and maps u to y with them: in its fast form (`_core`), and
    as the explicit recurrence (`_core_states`, then `_read_states`) for tests."""

    def __init__(self, spec: SpecT, width: int, expand: int, conv_width: int) -> None:
        super().__init__()
        self.inner = expand * width
        self.in_proj = nn.Linear(width, 2 * self.inner)
        self.conv = nn.Conv1d(
            self.inner, self.inner, conv_width, groups=self.inner, padding=conv_width - 1
        )
        # The core's parameters are drawn between the conv and out_proj: the order S6 drew
        # its weights in before this block was shared, so a stored S6 rebuilds the same.
        self._init_core(spec, width)
        self.out_proj = nn.Linear(self.inner, width)

    def _init_core(self, spec: SpecT, width: int) -> None:
        raise NotImplementedError

    def _core(self, u: torch.Tensor) -> torch.Tensor:
        """(B, T, E) → (B, T, E), the state-space model in its fast form."""
        raise NotImplementedError

    def _core_states(self, u: torch.Tensor) -> torch.Tensor:
        """Every recurrent state h_t, one step at a time: (B, T, ...) per mixer."""
        raise NotImplementedError

    def _read_states(self, states: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(B, T, E) outputs from the states `_core_states(u)` returned."""
        raise NotImplementedError

    def _open(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) → the core's input u and the gate z, (B, T, E) each."""
        u, z = self.in_proj(x).chunk(2, dim=-1)
        return F.silu(causal_depthwise_conv(u, self.conv.weight, self.conv.bias)), z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, T, C)."""
        u, z = self._open(x)
        return self.out_proj(self._core(u) * F.silu(z))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same block with the core's recurrence run one step at a time; slow, for tests."""
        u, z = self._open(x)
        return self.out_proj(self._read_states(self._core_states(u), u) * F.silu(z))

    def reference_states(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrent states of the core on input x (B, T, C): (B, T, ...) per mixer,
        complex where the mixer's state is."""
        return self._core_states(self._open(x)[0])
