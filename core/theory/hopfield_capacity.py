"""Part "capacity" of `associative_memory`: how many patterns a memory retrieves from
corrupted cues, against the load α = P/N, with the closed forms beside the Monte Carlo.

P random patterns are stored in N units; each of up to `max_cues` patterns is cued with a
fraction `cue_flip` of its signs flipped, the memory runs `updates` synchronous updates
(`core.theory.hopfield`), and the run reports per load, over replicates:

- `overlap`: the mean overlap with the cued pattern after the last update; for the
  Hebbian memory beside the T = 0 retrieval overlap m(α) of Amit, Gutfreund & Sompolinsky
  (1985, from memory) up to α_c, null beyond (no retrieval solution there);
- `retrieved`: the share of cues retrieved after the last update: for the binary
  memories a final overlap above 0.95; for the modern (continuous) memory a final
  distance ‖ξ − ξ_μ‖ below 0.1·‖ξ_μ‖. The cosine overlap ignores length, so a state
  that is mostly the patterns' mean plus a little of ξ_μ can have a cosine near 1 while
  the softmax gives ξ_μ under a third of its weight (d = 64, P = 1024, β = 8); the
  distance only falls below 0.1·‖ξ_μ‖ once ξ_μ holds most of the weight;
- `distance`: the mean relative distance ‖ξ − ξ_μ‖/‖ξ_μ‖ after the last update (for ±1
  states √(2(1 − m)));
- `overlap_first_update`: the overlap after one update; for the Hebbian memory beside the
  textbook one-step signal-to-noise estimate 1 − 2Φ(−m₀/√α) (Hertz, Krogh & Palmer 1991,
  from memory).

The headline gives the first load where the memory has collapsed, the largest load up to
which every load keeps retrieving (with its interval over replicates), and for the
Hebbian memory α_c from the AGS equations. Collapsed means a mean overlap below 0.9 for
the binary memories, and a retrieved share below 0.9 for the modern memory (its
criterion is the distance, above).

Example: `run_capacity(CapacitySpec(), replicates=5, seed=0, reporter=InMemoryReporter())`
runs the Hebbian default (N = 500, α = 0.05 … 0.25 by 0.01, 30 updates); the modern
default is d = 64, β = 32, α = 1 … 128 doubling, 30 updates.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.curves import (
    Curve,
    check_finite_result,
    check_grid,
    curve_from_samples,
    mean_and_interval,
    replicate_generator,
    seeded_steps,
)
from core.reporter import Reporter
from core.spec_model import SpecModel
from core.theory.hopfield import (
    Memory,
    PatternKind,
    ags_critical_load,
    ags_retrieval_overlap,
    corrupt,
    first_update_overlap,
    memory_update,
    overlap,
    random_patterns,
    relative_distance,
    retrieve,
)

# A cue counts as retrieved above this overlap; the memory has collapsed at a load whose
# mean overlap falls below the second (the criteria; at α_c the Hebbian
# retrieval state still has m ≈ 0.967).
RETRIEVED_OVERLAP = 0.95
COLLAPSE_OVERLAP = 0.9
# The modern memory's cue counts as retrieved when its final state lies within this
# fraction of ‖ξ_μ‖ of ξ_μ; it has collapsed at a load where fewer than COLLAPSE_SHARE of
# its cues are retrieved.
RETRIEVED_DISTANCE = 0.1
COLLAPSE_SHARE = 0.9

# The largest load accepted: α·N patterns stay countable (and the server's limits on
# P·N then refuse what does not fit) for any N up to the field's 100,000.
MAX_LOAD = 1e6

# Each memory's default size, load grid and update count: where its collapse falls.
_HEBBIAN_LOADS = tuple(round(0.05 + 0.01 * i, 2) for i in range(21))  # 0.05 … 0.25
MEMORY_DEFAULTS: dict[str, dict[str, Any]] = {
    "hebbian": {"neurons": 500, "loads": _HEBBIAN_LOADS, "updates": 30},
    "dense": {
        "neurons": 50,
        "loads": (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0),
        "updates": 30,
    },
    "modern": {
        "neurons": 64,
        "loads": (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0),
        "updates": 30,
    },
}


def fill_memory_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """A capacity sub-spec with its memory's size, loads and updates where left null."""
    memory = raw.get("memory", "hebbian")
    if not isinstance(memory, str) or memory not in MEMORY_DEFAULTS:
        return raw  # the Literal check reports the bad memory
    filled = dict(raw)
    for name, value in MEMORY_DEFAULTS[memory].items():
        if filled.get(name) is None:
            filled[name] = value
    return filled


class CapacitySpec(SpecModel):
    """Part "capacity": retrieval from corrupted cues against the load α = P/N."""

    memory: Memory = Field(
        "hebbian",
        description="hebbian: classical Hopfield, W = (1/N)Σξξᵀ, zero diagonal; dense: "
        "E = −Σ F(ξ·σ) with F(x) = x^power; modern: ξ ← X softmax(β Xᵀξ).",
    )
    neurons: int | None = Field(
        None,
        ge=8,
        le=100_000,
        description="N, the units (the pattern dimension d of the modern memory). "
        "Null = 500 (hebbian), 50 (dense), 64 (modern).",
    )
    loads: tuple[float, ...] | None = Field(
        None,
        description="The load grid α = P/N, increasing; P = round(α·N). Null = 0.05 … 0.25 "
        "by 0.01 (hebbian), 0.5 … 64 (dense), 1 … 128 doubling (modern).",
    )
    updates: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Synchronous updates from the cue (binary memories stop early at a "
        "fixed point). Null = 30 for every memory (the modern memory's first update is "
        "reported too, as overlap_first_update).",
    )
    update_mode: Literal["synchronous"] = Field(
        "synchronous", description="Every unit updates from the same previous state."
    )
    cue_flip: float = Field(
        0.1, ge=0, lt=0.5, description="Fraction of each cue's signs flipped (rounded to units)."
    )
    max_cues: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Patterns cued per load (the first min(P, max_cues); patterns are "
        "exchangeable).",
    )
    power: int = Field(3, ge=2, le=10, description="n of the dense memory's F(x) = xⁿ.")
    beta: float = Field(
        32.0,
        gt=0,
        le=10_000,
        description="β of the modern memory's softmax (at 8, d = 64 the softmax spreads "
        "over many patterns and iterated updates drift to their mean).",
    )
    modern_patterns: PatternKind = Field(
        "sphere",
        description="The modern memory's patterns: binary (±1) or sphere (Gaussian, unit "
        "norm). The binary memories always store ±1 patterns.",
    )

    @model_validator(mode="before")
    @classmethod
    def _memory_defaults(cls, raw: Any) -> Any:
        return fill_memory_defaults(raw) if isinstance(raw, dict) else raw

    @field_validator("loads")
    @classmethod
    def _check_loads(cls, loads: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if loads is None:
            return loads
        check_grid(loads)
        if any(not math.isfinite(a) or a <= 0 for a in loads):
            raise ValueError("every load α must be a positive number")
        if loads[-1] > MAX_LOAD:
            raise ValueError(
                f"load {loads[-1]:g} is above {MAX_LOAD:g}; P = α·N patterns must fit in memory"
            )
        return loads

    @property
    def hash_exclude(self) -> frozenset[str]:  # type: ignore[override]
        """The fields this memory does not read cannot change the numbers."""
        if self.memory == "modern":
            return frozenset({"power"})
        if self.memory == "dense":
            return frozenset({"beta", "modern_patterns"})
        return frozenset({"power", "beta", "modern_patterns"})

    @property
    def pattern_kind(self) -> PatternKind:
        return self.modern_patterns if self.memory == "modern" else "binary"

    def pattern_counts(self) -> list[int]:
        """P = round(α·N) at each load."""
        return [round(alpha * self.units) for alpha in self.load_grid]

    @property
    def units(self) -> int:
        assert self.neurons is not None  # filled by `_memory_defaults`
        return self.neurons

    @property
    def load_grid(self) -> tuple[float, ...]:
        assert self.loads is not None  # filled by `_memory_defaults`
        return self.loads

    @property
    def update_count(self) -> int:
        assert self.updates is not None  # filled by `_memory_defaults`
        return self.updates


def run_capacity(
    capacity: CapacitySpec, replicates: int, seed: int, reporter: Reporter
) -> dict[str, Any]:
    """The capacity part's result: curves against α, headline and settings."""
    units, loads, counts = capacity.units, capacity.load_grid, capacity.pattern_counts()
    flips = round(capacity.cue_flip * units)
    cue_overlap = 1.0 - 2.0 * flips / units
    final = [[0.0] * len(loads) for _ in range(replicates)]
    retrieved = [[0.0] * len(loads) for _ in range(replicates)]
    first = [[0.0] * len(loads) for _ in range(replicates)]
    distance = [[0.0] * len(loads) for _ in range(replicates)]
    modern = capacity.memory == "modern"
    grid = [(r, i) for r in range(replicates) for i in range(len(loads))]
    generator = replicate_generator(seed, 0)

    def describe(item: tuple[int, int]) -> str:
        return f"replicate {item[0] + 1}/{replicates}, α = {loads[item[1]]:g}"

    for _, (replicate, index) in seeded_steps(grid, reporter, describe):
        if index == 0:
            generator = replicate_generator(seed, replicate)
        patterns = random_patterns(counts[index], units, capacity.pattern_kind, generator)
        targets = patterns[: min(counts[index], capacity.max_cues)]  # (C, N)
        cues = corrupt(targets, flips, generator)
        update = memory_update(capacity.memory, patterns, capacity.power, capacity.beta)
        after_one, after_all = retrieve(
            cues,
            patterns,
            update,
            capacity.update_count,
            binary=capacity.memory != "modern",
            should_stop=reporter.should_stop,
        )
        overlaps = overlap(after_all, targets)  # (C,)
        distances = relative_distance(after_all, targets)  # (C,)
        hits = distances < RETRIEVED_DISTANCE if modern else overlaps > RETRIEVED_OVERLAP
        final[replicate][index] = float(overlaps.mean())
        distance[replicate][index] = float(distances.mean())
        retrieved[replicate][index] = float(hits.double().mean())
        first[replicate][index] = float(overlap(after_one, targets).mean())

    hebbian = capacity.memory == "hebbian"
    first_theory = None
    if hebbian:
        first_theory = [first_update_overlap(count / units, cue_overlap) for count in counts]
    # The AGS retrieval branch exists below α_c only (None above it).
    branch = [ags_retrieval_overlap(c / units) for c in counts] if hebbian else None
    overlap_curve = curve_from_samples("overlap", "alpha", loads, final, branch)
    first_curve = curve_from_samples("overlap_first_update", "alpha", loads, first, first_theory)
    curves = [
        overlap_curve.as_json(),
        curve_from_samples("retrieved", "alpha", loads, retrieved).as_json(),
        curve_from_samples("distance", "alpha", loads, distance).as_json(),
        first_curve.as_json(),
    ]
    # What decides collapse: the overlap for the binary memories, the retrieved share
    # (a distance criterion) for the modern one.
    kept = retrieved if modern else final
    result = {
        "part": "capacity",
        "curves": curves,
        "headline": _headline(capacity, loads, kept, first_curve),
        "settings": {
            "memory": capacity.memory,
            "neurons": units,
            "patterns": counts,
            "cues": [min(count, capacity.max_cues) for count in counts],
            "pattern_kind": capacity.pattern_kind,
            "cue_flip": capacity.cue_flip,
            "flipped_units": flips,
            "cue_overlap": cue_overlap,
            "updates": capacity.update_count,
            "update_mode": capacity.update_mode,
            "power": capacity.power if capacity.memory == "dense" else None,
            "beta": capacity.beta if capacity.memory == "modern" else None,
            "retrieved": (
                f"final distance below {RETRIEVED_DISTANCE:g}·‖ξ_μ‖"
                if modern
                else f"final overlap above {RETRIEVED_OVERLAP:g}"
            ),
            "collapse": (
                f"retrieved share below {COLLAPSE_SHARE:g}"
                if modern
                else f"mean overlap below {COLLAPSE_OVERLAP:g}"
            ),
            "replicates": replicates,
            "theory": (
                "overlap: m(α) of the T = 0 retrieval branch (Amit, Gutfreund & Sompolinsky "
                "1985, from memory), the fixed point a cue inside its basin reaches, null "
                "at and above α_c; overlap_first_update: 1 − 2Φ(−m₀/√α), the one-step "
                "signal-to-noise estimate (Hertz, Krogh & Palmer 1991, from memory); "
                "alpha_c_theory: the largest load with a retrieval solution"
                if hebbian
                else "none for this memory"
            ),
        },
    }
    return check_finite_result(result)


def _retrieved_up_to(loads: tuple[float, ...], kept: list[float], threshold: float) -> float:
    """The largest load up to which every grid load keeps `kept` (the mean overlap, or the
    modern memory's retrieved share) at least `threshold`; 0 when the first falls below."""
    reached = 0.0
    for alpha, value in zip(loads, kept, strict=True):
        if value < threshold:
            break
        reached = alpha
    return reached


def _headline(
    capacity: CapacitySpec,
    loads: tuple[float, ...],
    kept: list[list[float]],
    first_curve: Curve,
) -> dict[str, float]:
    """`kept` (replicates × loads): the mean overlap (binary memories) or the retrieved
    share (modern), against COLLAPSE_OVERLAP or COLLAPSE_SHARE."""
    threshold = COLLAPSE_SHARE if capacity.memory == "modern" else COLLAPSE_OVERLAP
    means = [sum(column) / len(column) for column in zip(*kept, strict=True)]
    headline: dict[str, float] = {}
    collapse = next((a for a, m in zip(loads, means, strict=True) if m < threshold), None)
    if collapse is not None:
        headline["alpha_collapse"] = float(collapse)
    reached = _retrieved_up_to(loads, means, threshold)
    headline["alpha_retrieved_max"] = reached
    headline["patterns_retrieved_max"] = float(round(reached * capacity.units))
    headline |= mean_and_interval(
        "alpha_retrieved_max", [_retrieved_up_to(loads, row, threshold) for row in kept]
    )
    if capacity.memory == "hebbian":
        alpha_c, overlap_c = ags_critical_load()
        headline["alpha_c_theory"] = alpha_c
        headline["overlap_at_alpha_c_theory"] = overlap_c
        assert first_curve.theory is not None
        headline["first_update_max_abs_gap"] = max(
            abs(m - t) for m, t in zip(first_curve.mean, first_curve.theory, strict=True)
        )
    return headline
