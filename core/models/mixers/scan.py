"""The scans behind the selective SSMs (S6, Mamba-2): h_t = a_t ⊙ h_{t-1} + b_t, read out by C_t.

Three ways to compute the same states, all plain PyTorch on CPU or CUDA:

- `diagonal_selective_scan` (S6's fast form): one step at a time over T, but each step
  builds its decays and drives from the factors (Δ, A, x, B) for that step only, so the
  working set is one (B, E, N) state that stays in cache; nothing of size (B, T, E, N)
  is built except the states autograd keeps for the backward pass.
- `chunked_scalar_decay_scan` (Mamba-2's fast form, SSD): with one scalar decay per head,
  a chunk of L steps is a masked attention-like matmul whose mask holds the decays between
  positions, exp(Σ log a) over each segment; P×N states carry between chunks.
- `linear_recurrence`, a Hillis–Steele doubling scan over materialised decays (log₂T
  vectorised steps); memlab's only scan before the two above. S6 keeps it on CUDA, where
  T sequential steps mean T kernel launches each way and memory bandwidth is plentiful;
  that choice is expected, not yet measured (bench/mixers.py --device cuda, arms
  `s6@fast` against `s6@doubling`).

Each uses only decays in (0, 1]: log-decays are summed, and a sum is exponentiated only
as a difference later − earlier, which is ≤ 0, so nothing overflows however strong the
decay. bench/mixers.py times the forms side by side.

    >>> a = torch.tensor([[0.5, 0.5, 0.5]]); b = torch.tensor([[1.0, 1.0, 1.0]])
    >>> linear_recurrence(a, b)
    tensor([[1.0000, 1.5000, 1.7500]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

ScanForm = Literal["auto", "fast", "doubling"]


def initial_step_bias(count: int, dt_min: float, dt_max: float) -> torch.Tensor:
    """Mamba's Δ initialisation: softplus⁻¹(Δ) for `count` steps Δ drawn log-uniformly in
    [dt_min, dt_max] from torch's global RNG, so that softplus(bias) = Δ at the start.

    Why: a bias near 0 gives Δ = softplus(0) ≈ 0.7, and with A_n = −n the per-step decay
    exp(Δ·A) starts far below 1, so the state forgets within a few steps and no gradient
    reaches back to early tokens. Δ ≤ 0.1 starts the decays near 1 (as S4D's dt_min/dt_max).
    softplus⁻¹(Δ) = Δ + log(1 − exp(−Δ)), written with expm1 for small Δ.
    """
    log_dt = torch.rand(count) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    dt = torch.exp(log_dt)
    return dt + torch.log(-torch.expm1(-dt))


@dataclass(frozen=True)
class SelectiveInputs:
    """What a selective SSM computes from its input before the scan (shapes per mixer's
    docstring).

    u: the scanned input; dt: the steps Δ; a: the (negative) continuous decay rates;
    b, c: the input and output matrices B_t, C_t, (B, T, N) each.
    """

    u: torch.Tensor
    dt: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor


class SelectiveScanMixer(nn.Module):
    """Base of the selective SSMs (S6, Mamba-2 in either layout). A subclass gives its fast
    scan (`_fast_scan`), its recurrence in materialised form (`_materialise`, for the
    doubling scan and the step-by-step reference) and how states are read out
    (`_read_out`); `_scan` and `_reference_states` run them.

    `scan` picks the form: "auto" takes the fast form, except the doubling scan for S6 on
    CUDA (`doubling_on_cuda`); "fast" and "doubling" force one. All forms give the same
    numbers up to rounding. On CPU the fast forms measured 4× (S6) and 8× (Mamba-2)
    faster per training step than doubling (docs/performance_mixers.md).
    """

    scan: ScanForm = "auto"
    doubling_on_cuda = False

    def _fast_scan(self, p: SelectiveInputs) -> torch.Tensor:
        raise NotImplementedError

    def _materialise(self, p: SelectiveInputs) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _read_out(self, states: torch.Tensor, p: SelectiveInputs) -> torch.Tensor:
        raise NotImplementedError

    def _uses_doubling(self, x: torch.Tensor) -> bool:
        if self.scan == "auto":
            return self.doubling_on_cuda and x.device.type == "cuda"
        return self.scan == "doubling"

    def _scan(self, p: SelectiveInputs) -> torch.Tensor:
        """The read-out states C_t · h_t, by the form `scan` picks (before any skip D)."""
        if self._uses_doubling(p.u):
            return self._read_out(linear_recurrence(*self._materialise(p)), p)
        return self._fast_scan(p)

    def _reference_states(self, p: SelectiveInputs) -> torch.Tensor:
        """Every state h_t, one step at a time over materialised decays; slow, for tests."""
        return linear_recurrence_reference(*self._materialise(p))


def diagonal_selective_scan(
    dt: torch.Tensor, a: torch.Tensor, x: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """S6's scan: y_t[e] = Σ_n c_t[n] h_t[e, n] with h_t = exp(Δ_t[e] a[e, n]) h_{t-1} +
    Δ_t[e] x_t[e] b_t[n], h_{-1} = 0, one step at a time.

    Args:
        dt: (B, T, E) steps Δ ≥ 0.   a: (E, N) rates ≤ 0.   x: (B, T, E) inputs.
        b, c: (B, T, N) input and output matrices.
    Returns:
        (B, T, E).
    """
    # unbind, not dt[:, t]: the backward of T unbound slices is one stack, whereas each
    # indexed slice's backward writes a zero-filled (B, T, E) gradient (O(T²) in all).
    steps, drives_in, b_rows, c_rows = dt.unbind(1), (dt * x).unbind(1), b.unbind(1), c.unbind(1)
    state: torch.Tensor | None = None
    outputs = []
    for step, drive_in, b_t, c_t in zip(steps, drives_in, b_rows, c_rows, strict=True):
        drive = drive_in[:, :, None] * b_t[:, None, :]  # (B, E, N)
        if state is None:
            state = drive
        else:
            state = torch.addcmul(drive, torch.exp(step[:, :, None] * a), state)
        # A multiply and a sum read the state out faster than a batched mat-vec (bmm).
        outputs.append((state * c_t[:, None, :]).sum(-1))  # (B, E)
    return torch.stack(outputs, dim=1)


def chunked_scalar_decay_scan(
    x: torch.Tensor, log_decay: torch.Tensor, b: torch.Tensor, c: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Mamba-2's scan (SSD): y_t = H_t c_t with H_t = exp(log_decay_t) H_{t-1} + x_t b_tᵀ
    per head, H_{-1} = 0, computed chunk by chunk.

    Within a chunk, y_t = Σ_{s≤t} exp(Λ_t − Λ_s) (c_t · b_s) x_s with Λ the running sum of
    log-decays: a causal matmul. Each chunk also leaves a P×N state that the next chunks
    see, decayed by exp(Λ_t) from the chunk's start. T need not be a multiple of `chunk`.

    Args:
        x: (B, T, H, P) drives (Δ · input).   log_decay: (B, T, H), ≤ 0.
        b, c: (B, T, N) shared by the heads.   chunk: steps per chunk L.
    Returns:
        (B, T, H, P).
    """
    batch, seq, heads, width = x.shape
    length = min(chunk, seq)
    pad = -seq % length
    if pad:  # padded steps come last and have zero drive, so they change no output
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        log_decay, b, c = (F.pad(t, (0, 0, 0, pad)) for t in (log_decay, b, c))
    chunks = (seq + pad) // length
    x = x.view(batch, chunks, length, heads, width).transpose(2, 3)  # (B, K, H, L, P)
    log_decay = log_decay.view(batch, chunks, length, heads).transpose(2, 3)  # (B, K, H, L)
    b = b.reshape(batch, chunks, length, -1)  # (B, K, L, N)
    c = c.reshape(batch, chunks, length, -1)
    cumulative = log_decay.cumsum(-1)  # Λ within each chunk, (B, K, H, L)

    # Inside chunks: weights[t, s] = exp(Λ_t − Λ_s) (c_t · b_s) for s ≤ t, else 0.
    gaps = cumulative[..., :, None] - cumulative[..., None, :]  # (B, K, H, L, L), ≤ 0 if s ≤ t
    causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
    decays = torch.exp(gaps.masked_fill(~causal, float("-inf")))
    weights = decays * (c @ b.transpose(-1, -2))[:, :, None]  # (B, K, H, L, L)
    y = weights @ x  # (B, K, H, L, P)

    if chunks > 1:
        # State each chunk ends with from its own steps, then carried across chunks.
        to_end = torch.exp(cumulative[..., -1:] - cumulative)  # (B, K, H, L)
        own = (x * to_end[..., None]).transpose(-1, -2) @ b[:, :, None]  # (B, K, H, P, N)
        chunk_decay = torch.exp(cumulative[..., -1])[..., None, None]  # (B, K, H, 1, 1)
        state = torch.zeros_like(own[:, 0])
        entering = []
        for k in range(chunks):
            entering.append(state)
            state = chunk_decay[:, k] * state + own[:, k]
        carried = torch.stack(entering, dim=1)  # (B, K, H, P, N) at each chunk's start
        y = y + (c[:, :, None] @ carried.transpose(-1, -2)) * torch.exp(cumulative)[..., None]

    return y.transpose(2, 3).reshape(batch, chunks * length, heads, width)[:, :seq]


def linear_recurrence(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """h_t = decay_t * h_{t-1} + inputs_t along dim 1, with h_{-1} = 0 (doubling scan).

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
