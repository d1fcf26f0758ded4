"""Associative memories that store P patterns in N units, their retrieval dynamics, and
the closed forms that `associative_memory` (part "capacity") draws beside its Monte Carlo.

Three memories, each run from C corrupted cues at once (the cue of pattern μ is pattern μ
with a fraction of its signs flipped):

- **Hebbian (classical Hopfield)**: W = (1/N) Σ_μ ξ_μ ξ_μᵀ with zero diagonal, zero
  temperature sign dynamics σ ← sign(Wσ), a unit whose field is exactly zero keeping its
  state (Hopfield 1982; Amit, Gutfreund & Sompolinsky 1985, from memory, as the research
  notes record).
- **Dense associative memory** (Krotov & Hopfield 2016, arXiv 1606.01164; the update rule
  from memory): energy E = −Σ_μ F(ξ_μ·σ) with F(x) = xⁿ; unit i takes the sign that lowers
  E, σ_i ← sign Σ_μ [F(ξ_μi + Σ_{j≠i} ξ_μj σ_j) − F(−ξ_μi + Σ_{j≠i} ξ_μj σ_j)]. For n = 2
  this is the Hebbian rule exactly (the difference is 4ξ_μi Σ_{j≠i} ξ_μj σ_j).
- **Modern continuous Hopfield** (Ramsauer et al. 2020, arXiv 2008.02217; from memory):
  ξ ← X softmax(β Xᵀ ξ), patterns the columns of X (here the rows of a (P, N) tensor).

All updates are synchronous (every unit from the same previous state), so the binary
memories can end in a 2-cycle rather than a fixed point; the overlap is read after the
last update either way.

Closed forms (Hebbian only):

- the first synchronous update from a cue with overlap m₀ = 1 − 2·flip has overlap
  m₁ = 1 − 2Φ(−m₀/√α) in the limit N → ∞ (signal m₀ against the crosstalk of the P − 1
  other patterns, Gaussian with variance α): the textbook one-step signal-to-noise
  estimate (Hertz, Krogh & Palmer 1991, from memory), not the fixed point of the dynamics;
- the retrieval state of the T = 0 replica-symmetric theory (Amit, Gutfreund &
  Sompolinsky 1985; the equations as in Hertz, Krogh & Palmer 1991, both from memory):
  with y = m/√(2αr), m = erf(y) and √(2α)·y = erf(y) − (2/√π)·y·e^{−y²}. A solution
  exists up to the critical load α_c, the maximum of α(y); below it the retrieval branch
  is the root with y above the maximum's, where m is close to 1 (`ags_retrieval_overlap`).
  Solved here, α_c = 0.1379 with m = 0.967 (the published 0.138 and 0.967, which checks
  the equations as remembered).

>>> alpha_c, overlap_c = ags_critical_load()
>>> round(alpha_c, 4), round(overlap_c, 3)
(0.1379, 0.967)
>>> round(ags_retrieval_overlap(0.1), 4)
0.998
>>> ags_retrieval_overlap(0.2) is None
True
>>> round(first_update_overlap(alpha=0.1, cue_overlap=0.8), 4)
0.9886

Dimensions: C cues, P patterns, N units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from core.reporter import RunCancelled

Memory = Literal["hebbian", "dense", "modern"]
# The update loop asks whether to stop every this many updates.
STOP_CHECK_EVERY = 50
PatternKind = Literal["binary", "sphere"]


def random_patterns(
    count: int, units: int, kind: PatternKind, generator: torch.Generator
) -> torch.Tensor:
    """(P, N) float64 patterns: independent ±1 signs ("binary") or standard Gaussian rows
    scaled to unit norm, i.e. uniform on the sphere ("sphere")."""
    gaussian = torch.randn(count, units, generator=generator, dtype=torch.float64)
    if kind == "binary":
        return torch.where(gaussian >= 0, 1.0, -1.0).to(torch.float64)
    return gaussian / gaussian.norm(dim=1, keepdim=True)


def corrupt(patterns: torch.Tensor, flips: int, generator: torch.Generator) -> torch.Tensor:
    """(C, N) cues: each row of `patterns` (C, N) with exactly `flips` of its signs flipped,
    at positions drawn independently per row."""
    cues, units = patterns.shape
    order = torch.rand(cues, units, generator=generator).argsort(dim=1)  # (C, N) random perms
    signs = torch.ones(cues, units, dtype=patterns.dtype)
    signs.scatter_(1, order[:, :flips], -1.0)
    return patterns * signs


def hebbian_update(states: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """One synchronous update of (C, N) ±1 states under W = (1/N) Σξξᵀ with zero diagonal.

    N·Wσ = Σ_μ ξ_μ (ξ_μ·σ) − P·σ (the diagonal of Σ ξξᵀ is P for ±1 patterns): two
    (C, P)·(P, N) products instead of an N × N matrix, exact in float64 (integers).
    """
    count = patterns.shape[0]
    fields = (states @ patterns.T) @ patterns - count * states  # (C, N), N times the field
    return _sign_keeping_ties(fields, states)


def dense_update(
    states: torch.Tensor, patterns: torch.Tensor, energy: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """One synchronous update of (C, N) ±1 states of a dense memory with E = −Σ_μ F(ξ_μ·σ).

    With h = ξ_μ·σ and s = ξ_μi σ_i ∈ ±1, the rest of the sum is u = h − s, so the term of
    pattern μ in unit i's field is ξ_μi [F(u + 1) − F(u − 1)]: F(h) − F(h − 2) where unit i
    agrees with the pattern (s = 1), F(h + 2) − F(h) where it does not. Splitting on s
    gives two (C, P)·(P, N) products, never a (C, P, N) tensor.
    """
    overlaps = states @ patterns.T  # (C, P) h = ξ_μ·σ
    agree = energy(overlaps) - energy(overlaps - 2)  # (C, P) term where s = +1
    disagree = energy(overlaps + 2) - energy(overlaps)  # (C, P) term where s = −1
    # Σ_μ ξ_μi [agree (1 + s)/2 + disagree (1 − s)/2], using ξ_μi² = 1.
    fields = 0.5 * ((agree + disagree) @ patterns) + 0.5 * states * (agree - disagree).sum(
        dim=1, keepdim=True
    )
    return _sign_keeping_ties(fields, states)


def polynomial_energy(power: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """F(x) = xⁿ, Krotov & Hopfield's polynomial interaction."""
    return lambda overlaps: overlaps.pow(power)


def modern_update(states: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """One update ξ ← X softmax(β Xᵀ ξ) of (C, N) continuous states, patterns (P, N)."""
    weights = torch.softmax(beta * (states @ patterns.T), dim=1)  # (C, P)
    return weights @ patterns


def retrieve(
    cues: torch.Tensor,
    patterns: torch.Tensor,
    update: Callable[[torch.Tensor], torch.Tensor],
    updates: int,
    binary: bool,
    should_stop: Callable[[], bool],
) -> tuple[torch.Tensor, torch.Tensor]:
    """((C, N) states after the first update, (C, N) states after `updates` of them) from
    `cues` (C, N) under `update`. Binary memories stop early at a fixed point (sign
    dynamics never leave one); RunCancelled when `should_stop()` says so (asked every
    STOP_CHECK_EVERY updates)."""
    first = update(cues)
    states = first
    for index in range(1, updates):
        if index % STOP_CHECK_EVERY == 0 and should_stop():
            raise RunCancelled(index)
        following = update(states)
        if binary and torch.equal(following, states):
            break
        states = following
    return first, states


def memory_update(
    memory: Memory, patterns: torch.Tensor, power: int, beta: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The synchronous update of `memory` storing `patterns` (P, N): dense with
    F(x) = x^power, modern at inverse temperature `beta`."""
    if memory == "modern":
        return lambda states: modern_update(states, patterns, beta)
    if memory == "dense":
        energy = polynomial_energy(power)
        return lambda states: dense_update(states, patterns, energy)
    return lambda states: hebbian_update(states, patterns)


def overlap(states: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """(C,) cosine similarity of each state with its own pattern: for ±1 vectors the usual
    overlap m = ξ·σ/N, 1 when retrieved exactly."""
    return torch.nn.functional.cosine_similarity(states, patterns, dim=1)


def relative_distance(states: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """(C,) ‖state − ξ‖/‖ξ‖ of each state with its own pattern: unlike the overlap it sees
    the state's length, so a state that is mostly the patterns' mean is not retrieved."""
    return (states - patterns).norm(dim=1) / patterns.norm(dim=1)


def _sign_keeping_ties(fields: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """sign(field), a unit whose field is exactly zero keeping its state."""
    return torch.where(fields > 0, 1.0, torch.where(fields < 0, -1.0, states)).to(states.dtype)


def standard_normal_cdf(x: float) -> float:
    """Φ(x)."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def first_update_overlap(alpha: float, cue_overlap: float) -> float:
    """m₁ = 1 − 2Φ(−m₀/√α): the Hebbian overlap after ONE synchronous update from a cue of
    overlap m₀ at load α (N → ∞), the signal-to-noise estimate, not the fixed point."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    return 1.0 - 2.0 * standard_normal_cdf(-cue_overlap / math.sqrt(alpha))


def ags_load(y: float) -> float:
    """α(y) on the T = 0 retrieval branch: √(2α)·y = erf(y) − (2/√π)·y·e^{−y²}."""
    root = (math.erf(y) - 2.0 / math.sqrt(math.pi) * y * math.exp(-y * y)) / (math.sqrt(2.0) * y)
    return root * root


def ags_critical_load() -> tuple[float, float]:
    """(α_c, m at α_c): the largest load with a retrieval solution, the maximum of α(y)."""
    y = _ags_critical_y()
    return ags_load(y), math.erf(y)


def ags_retrieval_overlap(alpha: float) -> float | None:
    """m(α) on the T = 0 retrieval branch: erf(y) at the root of α(y) = α with y above the
    critical point's (α(y) falls from α_c towards 0 there, so bisection finds it); None
    at or above α_c, where no retrieval solution exists."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    low = _ags_critical_y()
    if alpha >= ags_load(low):
        return None
    high = low
    while ags_load(high) > alpha:  # α(y) ≈ 1/(πy²)·… → 0 as y grows
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if ags_load(middle) > alpha:
            low = middle
        else:
            high = middle
    return math.erf((low + high) / 2)


def _ags_critical_y() -> float:
    """The y of the maximum of α(y), by golden-section search on y ∈ [0.5, 3] (α(y) is
    unimodal there)."""
    low, high = 0.5, 3.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(200):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if ags_load(left) < ags_load(right):
            low = left
        else:
            high = right
    return (low + high) / 2
