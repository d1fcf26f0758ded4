"""First-order linear recurrences h_t = a_t ⊙ h_{t-1} + b_t, computed in parallel.

The selective SSMs (S6, Mamba-2) reduce to this recurrence with input-dependent decays
a_t ∈ (0, 1]. `linear_recurrence` runs a Hillis–Steele doubling scan: log₂T vectorised
steps instead of T sequential ones, using only products of decays (never their
inverses), so it stays stable however strong the decay.

    >>> a = torch.tensor([[0.5, 0.5, 0.5]]); b = torch.tensor([[1.0, 1.0, 1.0]])
    >>> linear_recurrence(a, b)
    tensor([[1.0000, 1.5000, 1.7500]])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# What a selective SSM block computes before its scan: u, z, decay, drive, C.
ScanInputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class SelectiveScanMixer(nn.Module):
    """Base of S6 and Mamba-2: `_ssm_inputs` builds the recurrence h_t = decay_t h_{t-1} +
    drive_t, `_finish` reads the states out; the scan itself is shared, in its parallel
    form for `forward` and its step-by-step form for `reference` (tests)."""

    def _ssm_inputs(self, x: torch.Tensor) -> ScanInputs:
        raise NotImplementedError

    def _finish(
        self, states: torch.Tensor, u: torch.Tensor, z: torch.Tensor, c: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z, decay, drive, c = self._ssm_inputs(x)
        return self._finish(linear_recurrence(decay, drive), u, z, c)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The scan one step at a time; slow, for tests."""
        u, z, decay, drive, c = self._ssm_inputs(x)
        return self._finish(linear_recurrence_reference(decay, drive), u, z, c)


def linear_recurrence(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """h_t = decay_t * h_{t-1} + inputs_t along dim 1, with h_{-1} = 0.

    Args:
        decay: (B, T, ...) broadcastable against `inputs`.
        inputs: (B, T, ...).
    Returns:
        (B, T, ...) all states h_0 … h_{T-1}.
    """
    decay = decay.expand_as(inputs)
    state, carry = inputs, decay
    seq = inputs.shape[1]
    offset = 1
    while offset < seq:
        # Combine each position with the partial result `offset` steps earlier:
        # (a, b) ∘ (a', b') = (a·a', a·b' + b).
        shifted_state = _shift_right(state, offset, fill=0.0)
        shifted_carry = _shift_right(carry, offset, fill=1.0)
        state = state + carry * shifted_state
        carry = carry * shifted_carry
        offset *= 2
    return state


def linear_recurrence_reference(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The same recurrence, one step at a time; slow, for tests."""
    decay = decay.expand_as(inputs)
    state = torch.zeros_like(inputs[:, 0])
    states = []
    for t in range(inputs.shape[1]):
        state = decay[:, t] * state + inputs[:, t]
        states.append(state)
    return torch.stack(states, dim=1)


def _shift_right(x: torch.Tensor, offset: int, fill: float) -> torch.Tensor:
    """x moved `offset` steps later along dim 1, the first `offset` positions = fill."""
    pad = [0, 0] * (x.dim() - 2) + [offset, 0]
    return F.pad(x, pad, value=fill)[:, : x.shape[1]]
