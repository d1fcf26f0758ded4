"""`generation_copy`: copies are memorized, a spread ring far from the training points is
generalized, a recurring state between them spurious and a stray sample lone; the
nearest training point is the nearest (not the farthest, as the seed paper's
inverse-distance L2 path had it); thresholds come from the probe, else the run, else the
defaults; a capacity run is refused with what to submit."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from core.catalog import check_applicable, get_kind, get_probe, parse_probe_spec
from core.experiments.associative_memory import CAPACITY_REFUSAL
from core.probes.attractors import THRESHOLDS_NOTE, nearest_training_points
from core.probes.features import ItemType
from core.probes.generation_copy import GenerationCopySpec, distance_histogram
from core.probes.registry import ProbeInputs, ProbeNotApplicableError
from core.probes.target import ArraySet, ProbeTarget
from core.reporter import InMemoryReporter

# Three training points on the unit circle, 120° apart.
TRAINING = torch.tensor(
    [[math.cos(a), math.sin(a)] for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)],
    dtype=torch.float64,
)


def target(
    samples: torch.Tensor, training: torch.Tensor = TRAINING, notes: dict[str, str] | None = None
) -> ProbeTarget:
    return ProbeTarget(
        model=None,
        n_parameters=0,
        vocab_size=0,
        vocabulary="test",
        members=ArraySet(training, ItemType.samples),
        generated=ArraySet(samples, ItemType.samples),
        notes=notes or {},
    )


def probe(
    samples: torch.Tensor, notes: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    spec = GenerationCopySpec.model_validate({"kind": "generation_copy", **fields})
    inputs = ProbeInputs(target(samples, notes=notes), {})
    return get_probe("generation_copy").run(spec, inputs, InMemoryReporter())


def test_samples_on_the_training_points_are_memorized() -> None:
    samples = TRAINING.repeat(50, 1)  # (150, 2): each point 50 times
    found = probe(samples)
    assert found["fractions"] == {"memorized": 1.0, "spurious": 0.0, "generalized": 0.0}
    assert found["lone"] == 0.0
    assert found["counts"] == {"copied_points": 3, "spurious": 0, "generalized": 0, "lone": 0}
    assert found["nearest_distance"]["max"] == 0.0
    assert found["within_memorized_radius"] == 1.0


def test_samples_spread_on_a_ring_far_from_the_training_points_are_generalized() -> None:
    """500 samples on a circle of radius 0.5, 0.006 apart: one extended cluster. The
    per-sample rule would call each of them spurious (each has a neighbour 0.006 away)."""
    angles = 2 * math.pi * torch.arange(500, dtype=torch.float64) / 500
    samples = 0.5 * torch.stack([angles.cos(), angles.sin()], dim=1)
    found = probe(samples)
    assert found["fractions"] == {"memorized": 0.0, "spurious": 0.0, "generalized": 1.0}
    assert found["lone"] == 0.0
    assert found["counts"]["generalized"] == 1
    assert found["nearest_distance"]["min"] == pytest.approx(0.5)
    assert found["within_memorized_radius"] == 0.0


def test_a_recurring_state_between_training_points_is_spurious_and_a_stray_one_lone() -> None:
    midpoint = (TRAINING[0] + TRAINING[1]) / 2  # 0.5 from the centre, far from both
    stray = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    samples = torch.cat([midpoint.repeat(40, 1), TRAINING[2].repeat(59, 1), stray])
    found = probe(samples)
    assert found["fractions"] == {"memorized": 0.59, "spurious": 0.4, "generalized": 0.01}
    assert found["lone"] == 0.01  # the stray sample, counted within generalized


def test_a_sample_near_two_training_points_copies_neither() -> None:
    """Within δ_m of the nearer, but not twice as close to it as to the other: the ratio
    test refuses the copy, however close the pair."""
    training = torch.tensor([[1.0, 0.0], [1.0, 0.012]], dtype=torch.float64)
    near_both = torch.tensor([[1.0, 0.005]], dtype=torch.float64).repeat(10, 1)
    found = get_probe("generation_copy").run(
        GenerationCopySpec.model_validate({"kind": "generation_copy"}),
        ProbeInputs(target(near_both, training), {}),
        InMemoryReporter(),
    )
    assert found["fractions"]["memorized"] == 0.0 and found["within_memorized_radius"] == 1.0


def test_the_nearest_training_point_is_the_one_at_the_smallest_distance() -> None:
    """A sample at (1, 0) between training points at (0, 0) and (10, 0): nearest is the
    first, at distance 1 (inverse distances would pick the second, at 9)."""
    training = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    distance, index = nearest_training_points(torch.tensor([[1.0, 0.0]]).double(), training)
    assert (float(distance[0]), int(index[0])) == (1.0, 0)
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(300, 3, generator=generator, dtype=torch.float64)
    points = torch.randn(40, 3, generator=generator, dtype=torch.float64)
    distance, index = nearest_training_points(samples, points)
    brute = ((samples[:, None, :] - points[None, :, :]) ** 2).sum(dim=2).sqrt()  # (300, 40)
    assert torch.equal(index, brute.argmin(dim=1))
    assert torch.allclose(distance, brute.min(dim=1).values, atol=1e-12)
    assert bool((distance[:, None] <= brute + 1e-12).all())


def test_the_distance_summary_and_histogram_count_every_sample() -> None:
    samples = 1.5 * TRAINING.repeat(10, 1)  # every sample 0.5 from its training point
    found = probe(samples, histogram_bins=5)
    histogram = found["histogram"]
    assert len(histogram["edges"]) == 6 and sum(histogram["counts"]) == 30
    assert found["nearest_distance"]["median"] == pytest.approx(0.5)
    spread = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    assert distance_histogram(spread, 4)["counts"] == [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("field", ["link_distance", "memorized_radius", "compact_spread"])
def test_a_threshold_that_is_not_positive_is_refused_at_its_field(field: str) -> None:
    with pytest.raises(ValidationError) as error:
        GenerationCopySpec.model_validate({"kind": "generation_copy", field: 0.0})
    assert error.value.errors()[0]["loc"] == (field,)


def test_thresholds_come_from_the_probe_else_the_run_else_the_defaults() -> None:
    """The run carries δ_m = 0.6 (every sample 0.5 from its point copies it); the probe
    leaves δ_m null, so the run's applies; a probe's own δ_m wins over it."""
    samples = 1.5 * TRAINING.repeat(10, 1)
    notes = {THRESHOLDS_NOTE: json.dumps({"memorized_radius": 0.6, "copy_ratio": 0.9})}
    by_run = probe(samples, notes=notes)
    assert by_run["fractions"]["memorized"] == 1.0
    assert by_run["thresholds_from"] == {
        "memorized_radius": "run",
        "copy_ratio": "run",
        "link_distance": "default",
        "compact_spread": "default",
    }
    by_probe = probe(samples, notes=notes, memorized_radius=0.1)
    assert by_probe["thresholds"]["memorized_radius"] == 0.1
    assert by_probe["thresholds_from"]["memorized_radius"] == "probe"
    assert by_probe["fractions"]["memorized"] == 0.0


def test_at_most_max_samples_are_classified() -> None:
    found = probe(TRAINING.repeat(50, 1), max_samples=30)
    assert (found["n_samples"], found["n_classified"]) == (150, 30)
    assert sum(found["histogram"]["counts"]) == 30


def test_it_applies_to_runs_that_save_samples_only() -> None:
    copy_probe = parse_probe_spec({"kind": "generation_copy"})
    kind = get_kind("associative_memory").spec_class
    diffusion = kind.model_validate({"kind": "associative_memory", "part": "diffusion"})
    check_applicable(copy_probe, diffusion)
    with pytest.raises(ProbeNotApplicableError, match="reads samples"):
        check_applicable(copy_probe, get_kind("capacity_tradeoff").default_spec())
    capacity = kind.model_validate({"kind": "associative_memory", "part": "capacity"})
    assert copy_probe.inapplicability(capacity) == CAPACITY_REFUSAL


def test_a_target_without_samples_is_an_error() -> None:
    bare = ProbeTarget(
        model=None,
        n_parameters=0,
        vocab_size=0,
        vocabulary="test",
        members=ArraySet(TRAINING, ItemType.samples),
    )
    spec = GenerationCopySpec.model_validate({"kind": "generation_copy"})
    with pytest.raises(ValueError, match="no generated samples"):
        get_probe("generation_copy").run(spec, ProbeInputs(bare, {}), InMemoryReporter())
