"""A kind that computes without training, for tests of the contract such kinds keep:
a seeded Monte Carlo estimate of π, in chunks, reporting progress and stopping on request.
It is registered only inside the tests that use it (`registered_example_kind`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from core.registry import ExperimentKind, register_kind, registered_kinds, unregister_kind
from core.reporter import Reporter, RunCancelled
from core.specs import ComputedSpec, ComputeLimit

EXAMPLE_KIND = "example_monte_carlo_pi"


class MonteCarloPiSpec(ComputedSpec):
    kind: Literal["example_monte_carlo_pi"] = "example_monte_carlo_pi"
    samples: int = Field(100_000, ge=1, le=10**9)
    chunks: int = Field(10, ge=1, le=1000)

    smoke_fields: ClassVar[dict[str, Any]] = {"samples": 20_000, "chunks": 4}

    def compute_limits(self) -> tuple[ComputeLimit, ...]:
        return (ComputeLimit(self.samples, "spec.samples", "MEMLAB_MAX_EXAMPLE_SAMPLES", 10**7),)


def run_monte_carlo_pi(spec: MonteCarloPiSpec, reporter: Reporter) -> dict[str, Any]:
    """π ≈ 4 · (points of the unit square inside the quarter circle) / samples."""
    rng = torch.Generator().manual_seed(spec.seed)
    inside, drawn = 0, 0
    per_chunk = math.ceil(spec.samples / spec.chunks)
    while drawn < spec.samples:
        if reporter.should_stop():
            raise RunCancelled(drawn)
        count = min(per_chunk, spec.samples - drawn)
        points = torch.rand(count, 2, generator=rng)  # (count, 2) in [0, 1)²
        inside += int((points.square().sum(dim=1) <= 1).sum())
        drawn += count
        reporter.progress(drawn / spec.samples, f"{drawn}/{spec.samples} samples")
    estimate = 4 * inside / spec.samples
    # The estimate's standard error: 4·sqrt(p(1−p)/n), with p = π/4.
    p = math.pi / 4
    return {"pi": estimate, "standard_error": 4 * math.sqrt(p * (1 - p) / spec.samples)}


@contextmanager
def registered_example_kind() -> Iterator[ExperimentKind[Any]]:
    """The example kind registered for the duration of a test, then removed."""
    register_kind(MonteCarloPiSpec, "Example: Monte Carlo estimate of π.")(run_monte_carlo_pi)
    try:
        yield registered_kinds()[EXAMPLE_KIND]
    finally:
        unregister_kind(EXAMPLE_KIND)
