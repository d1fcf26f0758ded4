"""`associative_memory`: the Hebbian collapse near α_c ≈ 0.138 beside the AGS retrieval
overlap, dense and modern memories far above it; the stopped reverse diffusion of the
exact energy memorizing at small K and spreading over the ring at large K, the descent
collapsing onto modes; the saved samples a probe reads with the run's thresholds; the
opt-in trained score resuming to the same result; stops inside long loops; the spec's
refusals."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load

from core.catalog import build_target, check_applicable, get_kind, get_probe, parse_probe_spec
from core.curves import MATRIX_DIM_SETTING, THEORY_CELLS_SETTING
from core.experiments.associative_memory import (
    CAPACITY_REFUSAL,
    AssociativeMemorySpec,
    run_associative_memory,
)
from core.probes.attractors import AttractorThresholds, classify_samples
from core.probes.registry import ProbeInputs
from core.reporter import InMemoryReporter, RunCancelled
from core.spec_model import spec_hash
from core.stats import t_quantile
from core.theory.diffusion_memory import SAMPLES_FILE, _spurious_peak, exact_reverse_diffusion
from core.theory.empirical_energy import descend_empirical_energy, energy_step, ring_radius
from core.theory.hopfield import (
    ags_critical_load,
    ags_retrieval_overlap,
    dense_update,
    hebbian_update,
    polynomial_energy,
    random_patterns,
)
from tests.core.test_kind_contract import check_computed_kind

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spec(**fields: Any) -> AssociativeMemorySpec:
    return AssociativeMemorySpec.model_validate({"kind": "associative_memory", **fields})


def run(**fields: Any) -> dict[str, Any]:
    return run_associative_memory(spec(**fields), InMemoryReporter())


def curve(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in result["curves"] if c["name"] == name)


def at(result: dict[str, Any], name: str, x: float) -> float:
    found = curve(result, name)
    return found["mean"][found["x"].index(x)]


def standard_errors(found: dict[str, Any]) -> list[float]:
    """The standard error of each point's mean, from its 95% Student-t interval."""
    t = t_quantile(0.975, found["n_seeds"] - 1)
    return [(high - low) / 2 / t for low, high in found["ci95"]]


@pytest.fixture(scope="module")
def hebbian() -> dict[str, Any]:
    """The default run: N = 500, 10% of cue bits flipped, 30 synchronous updates, 5
    replicates, α = 0.05 … 0.25 by 0.01."""
    default = spec()
    assert default.capacity.units == 500 and default.capacity.update_count == 30
    assert default.capacity.cue_flip == 0.1 and default.replicates == 5
    assert len(default.capacity.load_grid) == 21 and default.capacity.load_grid[1] == 0.06
    return run_associative_memory(default, InMemoryReporter())


# ---------------------------------------------------------------- capacity


def test_the_hebbian_memory_collapses_near_the_critical_load(hebbian: dict[str, Any]) -> None:
    assert 0.12 <= hebbian["headline"]["alpha_collapse"] <= 0.17
    # Below it the patterns are retrieved; well above it they are not.
    assert at(hebbian, "overlap", 0.1) > 0.97 and at(hebbian, "retrieved", 0.1) > 0.9
    assert at(hebbian, "overlap", 0.25) < 0.6 and at(hebbian, "retrieved", 0.25) < 0.1
    assert abs(hebbian["headline"]["alpha_c_theory"] - 0.138) < 0.001


def test_the_final_overlap_follows_the_ags_retrieval_branch(hebbian: dict[str, Any]) -> None:
    """Where the cue lies well inside its basin (α ≤ 0.11), the overlap after 30 updates is
    the T = 0 retrieval overlap m(α), within 4 standard errors and 0.003 for N = 500's
    finite size; the theory is null from α_c on."""
    found = curve(hebbian, "overlap")
    errors = standard_errors(found)
    for alpha, mean, error, theory in zip(
        found["x"], found["mean"], errors, found["theory"], strict=True
    ):
        if alpha >= 0.14:
            assert theory is None
        elif alpha <= 0.11:
            assert abs(mean - theory) <= 4 * error + 0.003, (alpha, mean, theory)


def test_the_first_update_follows_the_signal_to_noise_estimate(hebbian: dict[str, Any]) -> None:
    """One synchronous update from a cue of overlap 0.8: 1 − 2Φ(−0.8/√α) at every load,
    within 4 standard errors over the replicates and 1/N for the finite size."""
    found = curve(hebbian, "overlap_first_update")
    points = zip(found["mean"], standard_errors(found), found["theory"], strict=True)
    for mean, error, theory in points:
        assert abs(mean - theory) <= 4 * error + 1 / 500, (mean, theory)


def test_the_ags_equations_give_the_published_critical_load() -> None:
    alpha_c, overlap_c = ags_critical_load()
    assert alpha_c == pytest.approx(0.138, abs=0.0005)
    assert overlap_c == pytest.approx(0.967, abs=0.001)
    # The retrieval branch ends at (α_c, m_c), rises to 1 as the load vanishes, and is
    # absent beyond.
    assert ags_retrieval_overlap(alpha_c * (1 - 1e-9)) == pytest.approx(overlap_c, abs=1e-3)
    assert ags_retrieval_overlap(1e-3) == pytest.approx(1.0, abs=1e-12)
    assert ags_retrieval_overlap(alpha_c * 1.001) is None
    overlaps = [ags_retrieval_overlap(a / 100) for a in range(1, 14)]
    assert overlaps == sorted(overlaps, reverse=True)


def test_a_dense_memory_of_power_two_is_the_hebbian_memory() -> None:
    generator = torch.Generator().manual_seed(3)
    patterns = random_patterns(30, 64, "binary", generator)
    states = random_patterns(40, 64, "binary", generator)
    dense = dense_update(states, patterns, polynomial_energy(2))
    assert torch.equal(dense, hebbian_update(states, patterns))


def test_a_dense_memory_retrieves_where_the_hebbian_one_has_collapsed() -> None:
    at_load = {"neurons": 100, "loads": [0.3], "max_cues": 30}
    hebbian = run(replicates=2, capacity={"memory": "hebbian", **at_load})
    dense = run(replicates=2, capacity={"memory": "dense", "power": 3, **at_load})
    assert at(hebbian, "overlap", 0.3) < 0.8
    assert at(dense, "overlap", 0.3) > 0.99


def test_a_dense_memory_stores_more_as_its_power_grows() -> None:
    at_load = {"neurons": 50, "loads": [8.0], "max_cues": 30}
    cubic = run(replicates=2, capacity={"memory": "dense", "power": 3, **at_load})
    quartic = run(replicates=2, capacity={"memory": "dense", "power": 4, **at_load})
    assert at(cubic, "overlap", 8.0) < 0.6
    assert at(quartic, "overlap", 8.0) > 0.99


def test_the_modern_memory_retrieves_far_more_patterns_than_units() -> None:
    """d = 64 on the sphere, β = 32, 30 updates: 1,024 patterns, 16 per dimension, each
    cue ends within 0.1·‖ξ_μ‖ of its pattern (by distance: the cosine ignores length)."""
    modern = run(replicates=2, capacity={"memory": "modern", "loads": [16.0], "max_cues": 50})
    assert at(modern, "retrieved", 16.0) > 0.9
    assert at(modern, "distance", 16.0) < 0.05
    assert modern["headline"]["patterns_retrieved_max"] == 1024
    assert curve(modern, "overlap")["theory"] is None


def test_the_modern_memory_at_low_beta_is_not_retrieved_though_its_cosine_is_high() -> None:
    """β = 8, d = 64, P = 1024: after one update the cosine is high but the state is
    mostly the patterns' mean; the distance criterion refuses it."""
    low = {"memory": "modern", "loads": [16.0], "max_cues": 50, "beta": 8.0, "updates": 1}
    modern = run(replicates=1, capacity=low)
    assert at(modern, "overlap", 16.0) > 0.9
    assert at(modern, "retrieved", 16.0) < 0.5
    assert modern["headline"]["alpha_retrieved_max"] == 0.0


def test_each_memory_gets_its_own_size_loads_and_updates() -> None:
    dense = spec(capacity={"memory": "dense"}).capacity
    assert (dense.units, dense.update_count, dense.load_grid[-1]) == (50, 30, 64.0)
    modern = spec(capacity={"memory": "modern", "neurons": 32}).capacity
    assert (modern.units, modern.update_count, modern.load_grid[-1]) == (32, 30, 128.0)
    assert modern.beta == 32.0
    assert spec(capacity={"memory": "modern", "updates": 5}).capacity.update_count == 5


class CapacitySmokeSpec(AssociativeMemorySpec):
    """The kind's spec with a capacity smoke run (its own smoke run is the diffusion part)."""

    smoke_fields: ClassVar[dict[str, Any]] = {
        "replicates": 2,
        "capacity": {"neurons": 100, "loads": [0.05, 0.2], "updates": 5},
    }


def test_a_capacity_run_is_deterministic_reports_progress_and_stops(tmp_path: Path) -> None:
    kind = dataclasses.replace(get_kind("associative_memory"), spec_class=CapacitySmokeSpec)
    check_computed_kind(kind, tmp_path)


def test_a_stop_request_ends_the_updates_of_a_load() -> None:
    """Hundreds of updates of one load: the loop itself asks whether to stop."""
    reporter = InMemoryReporter(stop_after_checks=1)
    modern = spec(capacity={"memory": "modern", "loads": [1.0], "updates": 500})
    with pytest.raises(RunCancelled):
        run_associative_memory(modern, reporter)
    assert reporter.stop_checks == 2 and not reporter.progress_log


def test_the_unused_parts_do_not_change_the_hash() -> None:
    base = spec()
    assert spec_hash(base) == spec_hash(spec(diffusion={"beta": 50.0}))
    assert spec_hash(base) != spec_hash(spec(capacity={"cue_flip": 0.2}))
    diffusion = spec(part="diffusion")
    assert spec_hash(diffusion) == spec_hash(spec(part="diffusion", capacity={"memory": "dense"}))
    # The exact reverse diffusion reads neither the trained network nor the descent.
    unused = {"trained": {"hidden": 32}, "iterations": 10, "start_std": 2.0}
    assert spec_hash(diffusion) == spec_hash(spec(part="diffusion", diffusion=unused))
    assert spec_hash(diffusion) != spec_hash(spec(part="diffusion", diffusion={"steps": 400}))
    descent = spec(part="diffusion", diffusion={"dynamics": "descent"})
    assert spec_hash(descent) == spec_hash(
        spec(part="diffusion", diffusion={"dynamics": "descent", "steps": 400})
    )
    trained = {"energy": "trained", "trained": {"hidden": 32}}
    assert spec_hash(spec(part="diffusion", diffusion=trained)) != spec_hash(
        spec(part="diffusion", diffusion={**trained, "trained": {"hidden": 64}})
    )


def test_every_size_the_run_allocates_is_capped_by_the_server() -> None:
    limits = spec().compute_limits()
    sides = {limit.path: limit.value for limit in limits if limit.setting == MATRIX_DIM_SETTING}
    cells = {limit.path: limit.value for limit in limits if limit.setting == THEORY_CELLS_SETTING}
    assert {limit.setting for limit in limits} == {MATRIX_DIM_SETTING, THEORY_CELLS_SETTING}
    assert sides == {
        "spec.capacity.neurons": 500,
        "spec.capacity.loads": 125,  # round(0.25 · 500) patterns
        "spec.capacity.max_cues": 100,
    }
    assert cells == {"spec.capacity.loads": 125 * 500, "spec.capacity.max_cues": 100 * 125}
    diffusion = spec(part="diffusion").compute_limits()
    assert {limit.path: limit.value for limit in diffusion} == {
        "spec.diffusion.samples": 1000 * 1000,  # the cells limit; the side is 1000
        "spec.diffusion.k_grid": 1000,
    }


def test_the_trained_path_s_networks_count_against_the_step_limit() -> None:
    trained = {"energy": "trained", "k_grid": [2, 8, 64]}
    limits = spec(part="diffusion", replicates=4, diffusion=trained).compute_limits()
    steps = [limit for limit in limits if limit.setting == "MEMLAB_MAX_STEPS"]
    assert [(limit.path, limit.value) for limit in steps] == [
        ("spec.diffusion.trained.train.steps", 20_000 * 3 * 4)
    ]


def test_a_load_too_large_to_count_is_a_field_error_not_an_overflow() -> None:
    with pytest.raises(ValidationError) as error:
        spec(capacity={"loads": [1e308]})
    assert error.value.errors()[0]["loc"][:2] == ("capacity", "loads")


def test_a_trained_sampler_too_coarse_for_its_t_min_is_refused() -> None:
    coarse = {"energy": "trained", "trained": {"sampler_steps": 100, "t_min": 1e-3}}
    with pytest.raises(ValidationError, match="use at least 501 steps") as error:
        spec(part="diffusion", diffusion=coarse)
    assert error.value.errors()[0]["loc"][:3] == ("diffusion", "trained", "sampler_steps")
    assert spec(part="diffusion", diffusion={"energy": "trained"}).diffusion.trained.t_min == 1e-3


def test_the_capacity_fields_a_memory_does_not_read_do_not_change_the_hash() -> None:
    hebbian = spec()
    assert spec_hash(hebbian) == spec_hash(spec(capacity={"power": 5, "beta": 2.0}))
    dense = spec(capacity={"memory": "dense"})
    assert spec_hash(dense) == spec_hash(spec(capacity={"memory": "dense", "beta": 2.0}))
    assert spec_hash(dense) != spec_hash(spec(capacity={"memory": "dense", "power": 4}))
    modern = spec(capacity={"memory": "modern"})
    assert spec_hash(modern) == spec_hash(spec(capacity={"memory": "modern", "power": 5}))
    assert spec_hash(modern) != spec_hash(spec(capacity={"memory": "modern", "beta": 8.0}))


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"diffusion": {"memorized_radius": 2.5}}, ("diffusion", "memorized_radius")),
        ({"diffusion": {"link_distance": 0.0}}, ("diffusion", "link_distance")),
        ({"diffusion": {"compact_spread": -0.1}}, ("diffusion", "compact_spread")),
        ({"diffusion": {"copy_ratio": 1.5}}, ("diffusion", "copy_ratio")),
        ({"diffusion": {"k_grid": [8, 4]}}, ("diffusion", "k_grid")),
        ({"diffusion": {"probe_k": 5}}, ("diffusion", "probe_k")),
        ({"diffusion": {"steps": 30}}, ("diffusion", "steps")),
        ({"diffusion": {"beta": 0.4}}, ("diffusion", "beta")),
        ({"diffusion": {"energy": "learned"}}, ("diffusion", "energy")),
        ({"capacity": {"loads": []}}, ("capacity", "loads")),
        ({"capacity": {"loads": [0.2, 0.1]}}, ("capacity", "loads")),
        ({"capacity": {"neurons": 10, "loads": [0.01]}}, ("capacity", "loads")),
        ({"capacity": {"cue_flip": 0.5}}, ("capacity", "cue_flip")),
        ({"capacity": {"memory": "boltzmann"}}, ("capacity", "memory")),
        ({"replicates": 0}, ("replicates",)),
    ],
)
def test_a_bad_spec_is_refused_at_the_field_to_change(
    fields: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as error:
        spec(**fields)
    assert error.value.errors()[0]["loc"][: len(location)] == location


def test_refusals_say_what_to_change() -> None:
    with pytest.raises(ValidationError, match="below 2, the unit circle's diameter"):
        spec(diffusion={"memorized_radius": 3.0})
    with pytest.raises(ValidationError, match="use at least 40 steps"):
        spec(diffusion={"steps": 30})  # t_min = 0.025 at β = 20
    # The descent takes no SDE steps, so it is not held to that.
    assert spec(diffusion={"dynamics": "descent", "steps": 30}).diffusion.steps == 30


# ---------------------------------------------------------------- diffusion


def spaced_circle_points(count: int, offset: float) -> torch.Tensor:
    angles = offset + 2 * math.pi * torch.arange(count, dtype=torch.float64) / count
    return torch.stack([angles.cos(), angles.sin()], dim=1)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_exact_energy_returns_training_points_at_small_k(count: int) -> None:
    """Points far apart next to the kernel width 1/√(2β) ≈ 0.16: the stopped reverse
    diffusion lands every sample within 5e-3 of one of them (the Tweedie mean of a noisy
    state at t_min, half of δ_m = 0.01), the descent within 1e-4, and the rule
    calls every sample memorized."""
    generator = torch.Generator().manual_seed(count)
    training = spaced_circle_points(count, offset=float(torch.rand(1, generator=generator)))
    noisy = exact_reverse_diffusion(training, 500, 200, 0.025, generator)
    denoised = energy_step(noisy, training, 20.0)
    starts = torch.randn(500, 2, generator=generator, dtype=torch.float64)
    descended = descend_empirical_energy(starts, training, 20.0, 200, 1e-9)
    for samples, tolerance in ((denoised, 5e-3), (descended, 1e-4)):
        nearest = torch.cdist(samples, training).min(dim=1).values
        assert float(nearest.max()) < tolerance
        fractions = classify_samples(samples, training, AttractorThresholds()).fractions()
        assert fractions["memorized"] == 1.0


def test_two_close_training_points_merge_into_one_spurious_state() -> None:
    """0.2 apart, below √(2/β) ≈ 0.32: the energy has one minimum, between them, 0.1 from
    each, which every start of the descent reaches: a recurring state copying neither."""
    training = torch.tensor([[1.0, 0.1], [1.0, -0.1]], dtype=torch.float64)
    starts = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = descend_empirical_energy(starts, training, beta=20.0, iterations=500, tolerance=1e-10)
    assert torch.allclose(samples[:, 1], torch.zeros(200, dtype=torch.float64), atol=1e-6)
    fractions = classify_samples(samples, training, AttractorThresholds()).fractions()
    assert fractions == {"memorized": 0.0, "spurious": 1.0, "generalized": 0.0}


def test_a_dense_ring_of_training_points_gives_the_continuum_radius() -> None:
    """K = 2,000 evenly spaced points approximate the K → ∞ energy: the descent settles on
    the ring of radius R*(β), I₁(2βR)/I₀(2βR) = R (the paper's Eq. 18)."""
    training = spaced_circle_points(2000, offset=0.0)
    starts = torch.randn(100, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = descend_empirical_energy(starts, training, beta=20.0, iterations=100, tolerance=1e-12)
    radii = samples.norm(dim=1)
    assert float((radii - ring_radius(20.0)).abs().max()) < 1e-6


@pytest.fixture(scope="module")
def diffusion_run() -> tuple[AssociativeMemorySpec, dict[str, Any], InMemoryReporter]:
    small = spec(
        part="diffusion",
        replicates=3,
        diffusion={"k_grid": [2, 8, 16, 128, 1000], "probe_k": 16},
    )
    reporter = InMemoryReporter()
    return small, run_associative_memory(small, reporter), reporter


def test_memorized_falls_and_generalized_rises_with_k(
    diffusion_run: tuple[AssociativeMemorySpec, dict[str, Any], InMemoryReporter],
) -> None:
    """At K = 1,000 the samples spread over the ring as one extended cluster (none is a
    compact state); at K = 2 most copy one of the two points; at K = 128 a sample could
    still land on a point (its neighbours are 0.05 apart, δ_m is smaller), few do."""
    _, result, _ = diffusion_run
    assert at(result, "memorized", 2) > 0.6 > at(result, "memorized", 16)
    assert at(result, "memorized", 16) > at(result, "memorized", 128)
    assert at(result, "generalized", 1000) > 0.95 > 0.6 > at(result, "generalized", 8)
    assert at(result, "spurious", 1000) < 0.02
    # The softmax weight at β on one point: near 1 at K = 2, falling across the transition.
    weight = [at(result, "copies_by_weight", k) for k in (2, 8, 16)]
    assert weight[0] > 0.6 and weight[0] > weight[1] > weight[2]
    for k in (2, 8, 16, 128, 1000):
        total = sum(at(result, name, k) for name in ("memorized", "spurious", "generalized"))
        assert total == pytest.approx(1.0)
        assert at(result, "lone", k) <= at(result, "generalized", k)
    headline = result["headline"]
    assert headline["memorized_drop_ci95_low"] > 0 and headline["generalized_rise_ci95_low"] > 0
    # Chosen among the interior K 8, 16, 128 on the even replicates: at the transition.
    assert headline["K_spurious_peak"] in (8.0, 16.0)


def test_at_large_k_the_samples_lie_on_the_continuum_ring(
    diffusion_run: tuple[AssociativeMemorySpec, dict[str, Any], InMemoryReporter],
) -> None:
    """The Tweedie means at t_min = 1/(2β) sit on R*(β) (the paper's Eq. 18), within 0.002,
    and 1 − R* from the circle: the median nearest distance. Not an independent check of
    the ring: the Tweedie step at β maps any noisy radius 0.7–1.5 near R*; it checks that
    the samples are the denoised means at β."""
    _, result, _ = diffusion_run
    ring = ring_radius(20.0)
    assert result["headline"]["ring_radius_theory"] == pytest.approx(ring)
    assert abs(at(result, "radius", 1000) - ring) < 0.002
    assert curve(result, "radius")["theory"] == [ring] * 5
    assert abs(at(result, "nearest_median", 1000) - (1 - ring)) < 0.002
    assert result["settings"]["t_min"] == pytest.approx(0.025)


def test_the_descent_collapses_onto_modes_and_shows_no_generalization() -> None:
    descent = run(
        part="diffusion",
        replicates=1,
        diffusion={"dynamics": "descent", "k_grid": [2, 1000], "samples": 300},
    )
    assert at(descent, "generalized", 1000) < 0.05
    assert at(descent, "spurious", 1000) > 0.9


def test_the_spurious_peak_is_chosen_on_half_the_replicates_and_measured_on_the_other() -> None:
    """Even replicates peak at K = 4, odd ones at K = 8: the peak is K = 4, and its excess
    is read from the odd replicates at K = 4 alone."""
    k_grid = (2, 4, 8, 16)
    spurious = [
        [0.0, 0.5, 0.1, 0.0],  # replicate 0 (chooses)
        [0.1, 0.2, 0.9, 0.0],  # replicate 1 (measures)
        [0.0, 0.4, 0.2, 0.0],  # replicate 2 (chooses)
        [0.0, 0.3, 0.8, 0.1],  # replicate 3 (measures)
    ]
    found = _spurious_peak(k_grid, spurious)
    assert found["K_spurious_peak"] == 4.0
    assert found["spurious_excess_mean"] == pytest.approx(((0.2 - 0.1) + (0.3 - 0.1)) / 2)
    assert "spurious_excess_mean" not in _spurious_peak(k_grid, spurious[:1])


def test_a_stop_request_ends_the_reverse_diffusion_of_a_set() -> None:
    """500 SDE steps of one K: the loop itself asks whether to stop, every 50 steps."""
    reporter = InMemoryReporter(stop_after_checks=1)
    with pytest.raises(RunCancelled):
        run_associative_memory(spec(part="diffusion", diffusion={"k_grid": [1000]}), reporter)
    assert reporter.stop_checks == 2 and not reporter.progress_log


def test_the_samples_are_saved_and_a_probe_reads_them_back(
    diffusion_run: tuple[AssociativeMemorySpec, dict[str, Any], InMemoryReporter],
) -> None:
    small, _, reporter = diffusion_run
    tensors = load(reporter.artifacts[SAMPLES_FILE])
    names = {f"{kind}.K{k}" for kind in ("samples", "training") for k in (2, 8, 16, 128, 1000)}
    assert set(tensors) == names
    assert tensors["samples.K16"].shape == (1000, 2)
    assert tensors["training.K1000"].shape == (1000, 2)
    target = build_target(small, reporter.checkpoint_dir(), torch.device("cpu"))
    assert target.model is None and target.generated is not None
    assert torch.equal(target.members.values, tensors["training.K16"])  # type: ignore[union-attr]
    assert torch.equal(target.generated.values, tensors["samples.K16"])
    probe = parse_probe_spec({"kind": "generation_copy"})
    check_applicable(probe, small)
    found = get_probe("generation_copy").run(probe, ProbeInputs(target, {}), InMemoryReporter())
    # The probe applies the kind's rule: replicate 0's fractions, the same samples.
    expected = classify_samples(
        tensors["samples.K16"], tensors["training.K16"], small.diffusion.thresholds
    )
    assert found["fractions"] == expected.fractions()
    assert found["n_training"] == 16 and found["n_samples"] == 1000


def test_the_probe_takes_the_run_s_thresholds_unless_given_its_own() -> None:
    """One replicate: the run's curve at probe_k is replicate 0's, the probe's input. A run
    with δ_m = 0.03 carries it to the probe; a probe's own δ_m wins over it."""
    single = spec(
        part="diffusion",
        replicates=1,
        diffusion={"k_grid": [2, 16], "memorized_radius": 0.03},
    )
    reporter = InMemoryReporter()
    result = run_associative_memory(single, reporter)
    target = build_target(single, reporter.checkpoint_dir(), torch.device("cpu"))
    copy_probe = get_probe("generation_copy")
    by_run = copy_probe.run(
        parse_probe_spec({"kind": "generation_copy"}), ProbeInputs(target, {}), InMemoryReporter()
    )
    assert by_run["thresholds"]["memorized_radius"] == 0.03
    assert by_run["thresholds_from"]["memorized_radius"] == "run"
    for name in ("memorized", "spurious", "generalized"):
        assert by_run["fractions"][name] == at(result, name, 16)
    assert by_run["lone"] == at(result, "lone", 16)
    own = parse_probe_spec({"kind": "generation_copy", "memorized_radius": 0.001})
    by_probe = copy_probe.run(own, ProbeInputs(target, {}), InMemoryReporter())
    assert by_probe["thresholds_from"]["memorized_radius"] == "probe"
    assert by_probe["fractions"]["memorized"] < by_run["fractions"]["memorized"]


def test_a_capacity_run_is_refused_by_the_copy_probe_with_what_to_submit() -> None:
    probe = parse_probe_spec({"kind": "generation_copy"})
    assert probe.inapplicability(spec()) == CAPACITY_REFUSAL
    assert probe.inapplicability(spec(part="diffusion")) is None
    with pytest.raises(ValidationError, match='submit part = "diffusion"') as error:
        spec(probes=[{"kind": "generation_copy"}])
    assert error.value.errors()[0]["loc"][:2] == ("probes", 0)
    # Both parts still say what items they are; token probes are refused by item type.
    assert spec().probe_features() == frozenset() == spec(part="diffusion").probe_features()
    assert "reads tokens items" in (
        parse_probe_spec({"kind": "loss_mia"}).inapplicability(spec()) or ""
    )


# ---------------------------------------------------------------- trained score


def test_one_form_of_a_schedule_length_replaces_the_default_s_other() -> None:
    """The score network's default training names warmup_steps = 0; a spec naming
    warmup_fraction gets that alone, as a top-level train spec would."""
    train = spec(
        part="diffusion",
        diffusion={"energy": "trained", "trained": {"train": {"warmup_fraction": 0.1}}},
    ).diffusion.trained.train
    assert (train.warmup_steps, train.warmup_fraction) == (None, 0.1)


TINY_TRAINED = {
    "part": "diffusion",
    "replicates": 1,
    "diffusion": {
        "energy": "trained",
        "k_grid": [2, 8],
        "samples": 50,
        "trained": {
            "hidden": 16,
            "layers": 2,
            "sampler_steps": 50,
            "t_min": 0.02,  # dt = 0.02 ≤ 2·t_min: not stiff
            "train": {"steps": 30, "checkpoint_every": 10},
        },
    },
}


def test_a_trained_score_run_resumes_to_the_result_of_an_uninterrupted_one(tmp_path: Path) -> None:
    """One ScoreNet per K in its own folder: a run stopped while training the second
    resumes in its directory (the first from its last checkpoint, the second from the
    one written at the stop) to the numbers and samples of a run never stopped."""
    tiny = spec(**TINY_TRAINED)
    whole = InMemoryReporter(directory=tmp_path / "whole")
    uninterrupted = run_associative_memory(tiny, whole)
    assert {key.split("/")[0] for _, key, _ in whole.metrics} == {"K2", "K8"}
    assert curve(uninterrupted, "radius")["theory"] is None
    assert uninterrupted["settings"]["energy"] == "trained"

    folder = tmp_path / "stopped"
    # 1 check before K = 2, 30 in its training, 1 before K = 8: stop 15 steps into K = 8.
    with pytest.raises(RunCancelled):
        run_associative_memory(tiny, InMemoryReporter(directory=folder, stop_after_checks=47))
    assert (folder / "checkpoints" / "score_K8_r0").is_dir()
    again = InMemoryReporter(directory=folder)
    resumed = run_associative_memory(tiny, again)
    assert resumed == uninterrupted
    assert again.artifacts[SAMPLES_FILE] == whole.artifacts[SAMPLES_FILE]
    fractions = [fraction for fraction, _ in again.progress_log]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
