"""`memorization_tradeoff`: the exact memorization and accuracy formulas against
enumeration and Monte Carlo, the estimators against the exact formulas, bits decaying with
n at Ω(d) for small n, the accuracy–memorization frontier against the learner that outputs
nothing, and bad specs refused at the field to change."""

from __future__ import annotations

import doctest
import itertools
import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError

import core.data.clusters
import core.theory.cluster_learners
import core.theory.memorization_bits
import core.theory.mutual_information
from core.curves import MATRIX_DIM_SETTING, THEORY_CELLS_SETTING, replicate_generator
from core.data.clusters import GaussianClusters
from core.experiments.memorization_tradeoff import (
    MemorizationTradeoffSpec,
    cluster_problem,
    grid_points,
    measure_point,
    run_memorization_tradeoff,
)
from core.reporter import InMemoryReporter, RunCancelled
from core.stats import summarize, t_quantile
from core.theory.cluster_learners import noisy_gradient_descent
from core.theory.memorization_bits import (
    binary_entropy_bits,
    gaussian_mechanism_bits,
    gaussian_release_membership_error,
    gradient_descent_noise,
    majority_vote_bits_per_coordinate,
    majority_vote_error,
    regularized_incomplete_beta,
    vote_outcome,
)
from core.theory.mutual_information import (
    GaussianFitAccumulator,
    PlugInAccumulator,
    gaussian_fit_bits,
    plug_in_bits,
)


def spec(**fields: Any) -> MemorizationTradeoffSpec:
    return MemorizationTradeoffSpec.model_validate({"kind": "memorization_tradeoff", **fields})


def run(**fields: Any) -> dict[str, Any]:
    return run_memorization_tradeoff(spec(**fields), InMemoryReporter())


def curves(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {curve["name"]: curve for curve in result["curves"]}


def assert_within_sampling_error(
    values: list[float], expected: float, slack: float, label: str
) -> None:
    """|mean − expected| ≤ 4·sem + slack, the sem from the replicates' spread."""
    summary = summarize(values)
    sem = (summary.std or 0.0) / math.sqrt(summary.n)
    assert abs(summary.mean - expected) <= 4 * sem + slack, (
        f"{label}: {summary.mean:.4f} ± {sem:.4f} (sem) against {expected:.4f}"
    )


def assert_curve_matches(
    curve: dict[str, Any], expected: list[float] | None = None, relative: float = 0.0
) -> None:
    """Each point's mean within 4 sem (from its 95% interval) plus `relative`·|expected|
    of `expected` (the curve's theory when not given): a slack relative to the value, so
    that a point with a fraction of a bit is held as tightly as one with many."""
    expected = curve["theory"] if expected is None else expected
    quantile = t_quantile(0.975, curve["n_seeds"] - 1)
    for x, mean, interval, value in zip(
        curve["x"], curve["mean"], curve["ci95"], expected, strict=True
    ):
        sem = (interval[1] - interval[0]) / 2 / quantile
        assert abs(mean - value) <= 4 * sem + relative * abs(value), (
            f"{curve['name']} at {curve['x_name']} = {x:g}: {mean:.4f} ± {sem:.4f} (sem) "
            f"against {value:.4f}"
        )


def test_the_modules_worked_examples_hold() -> None:
    for module in (
        core.data.clusters,
        core.theory.cluster_learners,
        core.theory.memorization_bits,
        core.theory.mutual_information,
    ):
        assert doctest.testmod(module).failed == 0, module.__name__


# --- the exact formulas --------------------------------------------------------------


def test_majority_vote_formula_matches_the_notes_table_at_rho_0_3() -> None:
    table = {  # seed-details.md §6, per coordinate, ρ = 0.3
        0.0: (0.934, 0.858, 0.662, 0.302, 0.028),
        0.1: (0.489, 0.441, 0.322, 0.123, 0.007),
    }
    for flip, row in table.items():
        for n, expected in zip((1, 3, 9, 27, 81), row, strict=True):
            assert round(majority_vote_bits_per_coordinate(n, 0.3, flip), 3) == expected
    assert round(majority_vote_error(1, 0.3, 0.0), 2) == 0.35
    assert round(majority_vote_error(81, 0.3, 0.0), 2) == 0.0
    assert round(majority_vote_error(1, 0.3, 0.1), 2) == 0.38
    assert round(majority_vote_error(81, 0.3, 0.1), 2) == 0.10


def _enumerated_majority_bits(n: int, rho: float, flip: float) -> float:
    """I(A; X | θ = +1) for one coordinate by enumerating all 2^n samples x: H(A|θ) −
    Σ_x P(x) H(A | x), with A the vote (a tie a fair coin) flipped with probability q."""
    agree = (1 + rho) / 2
    p_plus_total, conditional = 0.0, 0.0
    for sample in itertools.product((1, -1), repeat=n):
        plus = sum(1 for v in sample if v == 1)
        p_sample = agree**plus * (1 - agree) ** (n - plus)
        tally = sum(sample)
        p_plus = {1: 1 - flip, -1: flip, 0: 0.5}[(tally > 0) - (tally < 0)]  # P(A = +1 | x)
        p_plus_total += p_sample * p_plus
        conditional += p_sample * binary_entropy_bits(p_plus)
    return binary_entropy_bits(p_plus_total) - conditional


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("flip", [0.0, 0.1, 0.35])
def test_majority_vote_formula_matches_enumerating_the_joint_distribution(
    n: int, flip: float
) -> None:
    for rho in (0.1, 0.3, 0.8):
        assert majority_vote_bits_per_coordinate(n, rho, flip) == pytest.approx(
            _enumerated_majority_bits(n, rho, flip), abs=1e-12
        )


def test_the_vote_outcomes_are_a_distribution_and_ties_need_an_even_n() -> None:
    for n in (1, 2, 7, 8, 501, 2000):
        outcome = vote_outcome(n, 0.3)
        assert outcome.wrong + outcome.tie + outcome.right == pytest.approx(1.0, abs=1e-12)
        assert (outcome.tie > 0) == (n % 2 == 0)


def test_gaussian_mechanism_formula_matches_the_notes_table() -> None:
    sigma2 = math.sqrt(1000)
    table = {1: 500, 4: 96, 8: 47, 16: 23, 64: 5.7, 256: 1.4}
    for n, expected in table.items():
        bits = gaussian_mechanism_bits(1000, sigma2, n, 2 * sigma2 - sigma2 / n)
        assert bits == pytest.approx(expected, abs=0.5 if expected > 10 else 0.05)


def test_the_incomplete_beta_matches_its_closed_cases() -> None:
    for x in (0.01, 0.2, 0.5, 0.77, 0.99):
        assert regularized_incomplete_beta(x, 1.0, 1.0) == pytest.approx(x, abs=1e-13)
        arcsine = 2 / math.pi * math.asin(math.sqrt(x))  # Beta(1/2, 1/2)
        assert regularized_incomplete_beta(x, 0.5, 0.5) == pytest.approx(arcsine, abs=1e-12)
        # Beta(2, 3): I_x = 6x² − 8x³ + 3x⁴, by integrating 12 x (1 − x)².
        polynomial = 6 * x**2 - 8 * x**3 + 3 * x**4
        assert regularized_incomplete_beta(x, 2.0, 3.0) == pytest.approx(polynomial, abs=1e-12)
    for a in (3.0, 32.0, 2048.0):  # symmetric: one half at the middle
        assert regularized_incomplete_beta(0.5, a, a) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize(("d", "gain"), [(1, 1.0), (8, 1.0), (8, 0.6)])
def test_membership_error_formula_matches_simulating_the_test(d: int, gain: float) -> None:
    """θ, the release A ~ N(cθ, vI), a member X ~ P_θ and a non-member X' from a fresh
    cluster, all drawn: the share of pairs the test ⟨A, X − X'⟩ > 0 gets wrong."""
    prior, sample, release, draws = 1.5, 2.0, 3.0, 200_000
    g = torch.Generator().manual_seed(5)
    theta = math.sqrt(prior) * torch.randn(draws, d, generator=g, dtype=torch.float64)

    def normal() -> torch.Tensor:
        return torch.randn(draws, d, generator=g, dtype=torch.float64)

    outputs = gain * theta + math.sqrt(release) * normal()
    member = theta + math.sqrt(sample) * normal()
    non_member = math.sqrt(prior) * normal() + math.sqrt(sample) * normal()
    wrong = ((outputs * (member - non_member)).sum(dim=-1) <= 0).to(torch.float64)
    exact = gaussian_release_membership_error(d, prior, sample, release, gain)
    sem = math.sqrt(exact * (1 - exact) / draws)
    assert abs(float(wrong.mean()) - exact) <= 4 * sem
    if d == 1:  # a bivariate normal's sign disagreement: arccos(r)/π
        r = gain * prior / math.sqrt((gain**2 * prior + release) * 2 * (prior + sample))
        assert exact == pytest.approx(math.acos(r) / math.pi, abs=1e-12)


# --- the estimators against the exact formulas ---------------------------------------


def test_gaussian_fit_of_the_gaussian_mechanism_at_d_2_matches_the_formula() -> None:
    """The run's own estimator on the learner's own outputs, over 20 θ draws."""
    tiny = spec(dimension=2, n_grid=(3,), budget=0.5 + 1 / 3, inner_resamples=400, reruns=4)
    point = grid_points(tiny)[0]
    assert point.noise_variance == pytest.approx(0.5 * tiny.sample_variance)
    fits, bounds = [], []
    for replicate in range(20):
        theta = cluster_problem(tiny).draw_theta(replicate_generator(11, replicate))
        measured = measure_point(tiny, theta, point, replicate)
        fits.append(measured.bits["gaussian_mechanism"])
        bounds.append(measured.bits_lower["gaussian_mechanism"])
    exact = gaussian_mechanism_bits(2, tiny.sample_variance, 3, point.noise_variance)
    assert exact == pytest.approx(math.log2(1 + 2 / 3))  # (2/2)·log₂(1 + σ²/(3·σ²/2))
    assert_within_sampling_error(fits, exact, slack=0.01, label="Gaussian fit, d = 2")
    assert_within_sampling_error(bounds, exact, slack=0.01, label="linear bound, d = 2")


def test_gaussian_run_estimates_bounds_and_errors_match_their_exact_values() -> None:
    result = run(dimension=16, n_grid=(1, 4, 16), inner_resamples=128, budget=2.0)
    by_name = curves(result)
    assert_curve_matches(by_name["bits_gaussian_mechanism"], relative=0.02)
    assert_curve_matches(by_name["bits_lower_gaussian_mechanism"], relative=0.02)
    assert_curve_matches(by_name["error_gaussian_mechanism"], relative=0.02)
    assert_curve_matches(by_name["mse_gaussian_mechanism"], relative=0.02)
    # A fixed budget fixes the mechanism's MSE (b·σ²) and its membership error at every n.
    assert set(by_name["mse_gaussian_mechanism"]["theory"]) == {2.0 * 4.0}
    assert len(set(by_name["error_gaussian_mechanism"]["theory"])) == 1
    for name in ("bits", "bits_lower", "error", "mse"):  # clipped: no closed form
        assert by_name[f"{name}_noisy_gd"]["theory"] is None


def test_the_trained_learner_unclipped_matches_its_closed_form() -> None:
    """Without clipping noisy_gd releases c·(X̄ + τW): the estimators that read the
    clipped learner agree with its exact bits, and its error is the mechanism's."""
    result = run(dimension=16, n_grid=(1, 4, 16), inner_resamples=128, clip=None)
    by_name = curves(result)
    for name in ("bits", "bits_lower", "error", "mse"):
        assert_curve_matches(by_name[f"{name}_noisy_gd"], relative=0.02)
    mechanism = by_name["error_gaussian_mechanism"]["theory"]
    assert by_name["error_noisy_gd"]["theory"] == pytest.approx(mechanism, abs=1e-12)


def test_noisy_gd_with_a_clip_that_never_binds_matches_the_c_squared_formula() -> None:
    """The clipped code path with a clip of 10³·σ√d, far above any gradient, at a noise
    NOT matched to the mechanism: bits (d/2)·log₂(1 + c²σ²/(nτ²)) with c = 1 − (1 − η)^T."""
    d, n, steps, lr = 4, 2, 2, 0.5
    problem = GaussianClusters(d, 1.0, 2.0)
    noise = gradient_descent_noise(1.5, steps, lr)  # output noise τ² = 1.5
    assert noise.gain == pytest.approx(0.75)
    exact = gaussian_mechanism_bits(d, 2.0, n, 1.5, noise.gain)
    unscaled = gaussian_mechanism_bits(d, 2.0, n, 1.5)
    assert exact < unscaled - 0.3  # the c² factor matters here
    fits, bounds = [], []
    for replicate in range(8):
        generator = replicate_generator(3, replicate)
        theta = problem.draw_theta(generator)
        datasets = problem.draw_datasets(theta, 600, n, generator)
        outputs = noisy_gradient_descent(
            datasets, steps, lr, noise.step_std, 1e3 * math.sqrt(2.0 * d), 4, generator
        )
        fit = GaussianFitAccumulator(d, 4, theta)
        fit.add(outputs, datasets.mean(dim=1))
        fits.append(fit.fit_bits())
        bounds.append(fit.lower_bound_bits())
    assert_within_sampling_error(fits, exact, slack=0.01, label="fit, clip never binding")
    assert_within_sampling_error(bounds, exact, slack=0.01, label="bound, clip never binding")


def test_the_run_with_a_clip_that_never_binds_matches_the_unclipped_theory() -> None:
    clipped = curves(run(dimension=16, n_grid=(1, 4), inner_resamples=128, clip=1e3))
    exact = curves(run(dimension=16, n_grid=(1, 4), inner_resamples=34, replicates=2, clip=None))
    for name in ("bits", "bits_lower", "error"):
        assert_curve_matches(clipped[f"{name}_noisy_gd"], exact[f"{name}_noisy_gd"]["theory"], 0.02)


def test_plug_in_estimate_of_majority_vote_matches_the_formula() -> None:
    result = run(problem="boolean", dimension=16, n_grid=(1, 3, 9, 27), inner_resamples=256)
    by_name = curves(result)
    assert_curve_matches(by_name["bits_majority_vote"], relative=0.03)
    assert_curve_matches(by_name["error_majority_vote"], relative=0.03)


def test_miller_madow_removes_the_plug_ins_bias_from_few_reruns() -> None:
    """A fresh coin per rerun carries nothing about X; its conditional entropy from R = 8
    draws is biased low by about 1/(2·8) nats per coordinate without the correction,
    which would read as about 1.4 bits over 16 coordinates."""
    g = torch.Generator().manual_seed(2)
    coin = torch.randint(0, 2, (2000, 8, 16), generator=g).to(torch.float64) * 2 - 1
    assert abs(plug_in_bits(coin)) < 0.3


def test_the_accumulators_give_the_same_estimate_chunked_or_whole() -> None:
    g = torch.Generator().manual_seed(4)
    means = torch.randn(300, 3, generator=g, dtype=torch.float64)
    outputs = means[:, None, :] + torch.randn(300, 4, 3, generator=g, dtype=torch.float64)
    whole, chunked = GaussianFitAccumulator(3, 4), GaussianFitAccumulator(3, 4)
    whole.add(outputs, means)
    for start in range(0, 300, 70):
        chunked.add(outputs[start : start + 70], means[start : start + 70])
    assert chunked.fit_bits() == pytest.approx(whole.fit_bits(), abs=1e-9)
    assert chunked.lower_bound_bits() == pytest.approx(whole.lower_bound_bits(), abs=1e-9)
    assert whole.fit_bits() == pytest.approx(gaussian_fit_bits(outputs), abs=1e-9)
    votes = torch.sign(outputs)
    counts = PlugInAccumulator((-1.0, 1.0), 4, 3)
    for start in range(0, 300, 70):
        counts.add(votes[start : start + 70])
    assert counts.bits() == pytest.approx(plug_in_bits(votes), abs=1e-9)


# --- the effects ----------------------------------------------------------------------


def test_bits_are_order_d_at_n_1_and_decay_with_n_at_the_mechanisms_rate() -> None:
    for d in (8, 32):
        result = run(dimension=d, n_grid=(1, 2, 4, 8, 64), inner_resamples=4 * d)
        headline = result["headline"]
        # Exact: d/2 bits at n = 1 (b = 2σ²), whatever d.
        assert_curve_matches(curves(result)["bits_gaussian_mechanism"], relative=0.02)
        assert headline["gaussian_mechanism_bits_per_d_at_n_min_theory"] == 0.5
        # The trained learner's valid lower bound alone shows Ω(d) at n = 1: a fixed
        # share of d (clipping costs it a little of the mechanism's 1/2).
        assert headline["noisy_gd_bits_lower_per_d_at_n_min_ci95_low"] > 0.3
        # Its error is not held fixed: clipping costs it accuracy as the noise grows with n,
        # which the headline reports beside its decay.
        assert headline["noisy_gd_error_change_ci95_low"] > 0
        for learner in ("gaussian_mechanism", "noisy_gd"):
            assert headline[f"{learner}_decay_ratio_ci95_high"] < 0.1
        # memlab's rate: the log-log slope over the points with ≥ 1 exact bit is near −1.
        slope = headline["gaussian_mechanism_log_log_slope"]
        theory = headline["gaussian_mechanism_log_log_slope_theory"]
        assert -1.3 < theory < -1.0  # steeper than 1/n only at the smallest n
        half_width = headline["gaussian_mechanism_log_log_slope_ci95_high"] - slope
        assert abs(slope - theory) <= 4 * half_width / t_quantile(0.975, 4)


def test_boolean_bits_decay_with_n() -> None:
    result = run(problem="boolean", dimension=16, n_grid=(1, 9, 81), inner_resamples=128)
    means = curves(result)["bits_majority_vote"]["mean"]
    assert means[0] > means[1] > means[2]
    assert result["headline"]["majority_vote_decay_ratio_ci95_high"] < 0.1


@pytest.mark.parametrize("problem", ["gaussian", "boolean"])
def test_the_frontier_beats_the_learner_that_outputs_nothing(problem: str) -> None:
    result = run(problem=problem, sweep="noise", dimension=16, inner_resamples=128)
    headline = result["headline"]
    assert headline["output_nothing_bits"] == 0.0
    assert headline["output_nothing_error"] == 0.5
    learners = ("gaussian_mechanism", "noisy_gd") if problem == "gaussian" else ("majority_vote",)
    for learner in learners:
        assert curves(result)[f"bits_{learner}"]["x_name"] == (
            "budget" if problem == "gaussian" else "flip"
        )
        # Below chance at the least noise, with bits to show for it.
        assert headline[f"{learner}_error_least_noise_ci95_high"] < 0.5
        assert headline[f"{learner}_bits_per_d_least_noise_ci95_low"] > 0.5
    exact_learner = "gaussian_mechanism" if problem == "gaussian" else "majority_vote"
    assert_curve_matches(curves(result)[f"error_{exact_learner}"], relative=0.03)
    assert_curve_matches(curves(result)[f"bits_{exact_learner}"], relative=0.03)


def test_a_grid_points_values_do_not_depend_on_the_rest_of_the_grid() -> None:
    first = curves(run(dimension=4, n_grid=(1, 4), inner_resamples=32, replicates=2))
    second = curves(run(dimension=4, n_grid=(4, 16), inner_resamples=32, replicates=2))
    for name, curve in first.items():
        assert curve["mean"][1] == second[name]["mean"][0], name


def test_a_stop_request_ends_the_run_inside_a_grid_point() -> None:
    """One replicate, one grid point: the step loop checks once before it, so only the
    check before each chunk of datasets can end it."""
    one_point = spec(dimension=64, n_grid=(256,), inner_resamples=512, replicates=1)
    with pytest.raises(RunCancelled):
        run_memorization_tradeoff(one_point, InMemoryReporter(stop_after_checks=1))


def test_result_records_what_is_whose_and_the_noise() -> None:
    result = run(dimension=4, n_grid=(1, 2), inner_resamples=32, replicates=2)
    settings = result["settings"]
    assert "not found" in settings["sources"]["paper"]
    assert "1/n" in settings["sources"]["memlab"]
    # σ² = √4 = 2; τ² = (b − 1/n)·σ² with b = 2; noisy_gd matched: c²τ².
    assert settings["noise_variance"] == pytest.approx([2.0 * (2.0 - 1.0), 2.0 * (2.0 - 0.5)])
    gain = settings["noisy_gd"]["gain"]
    assert settings["noisy_gd"]["output_noise_variance"] == pytest.approx(
        [gain**2 * v for v in settings["noise_variance"]]
    )


# --- the spec ----------------------------------------------------------------------


def test_boolean_defaults_use_odd_sample_sizes_and_many_reruns() -> None:
    boolean = spec(problem="boolean")
    assert boolean.n_grid == (1, 3, 9, 27, 81, 243)
    assert boolean.reruns == 64
    assert spec().reruns == 4
    template = MemorizationTradeoffSpec.template()
    assert template["n_grid"] is None and template["reruns"] is None


def test_compute_limits_name_every_size_the_run_allocates() -> None:
    limits = {(limit.path, limit.setting): limit for limit in spec().compute_limits()}
    assert {
        ("spec.dimension", MATRIX_DIM_SETTING),
        ("spec.n_grid", MATRIX_DIM_SETTING),
        ("spec.frontier_n", MATRIX_DIM_SETTING),
        ("spec.inner_resamples", THEORY_CELLS_SETTING),
        ("spec.dimension", THEORY_CELLS_SETTING),
    } <= set(limits)
    assert limits[("spec.n_grid", MATRIX_DIM_SETTING)].value == 256
    assert limits[("spec.inner_resamples", THEORY_CELLS_SETTING)].value == 256 * 4 * 64
    boolean = {(x.path, x.setting): x for x in spec(problem="boolean").compute_limits()}
    assert boolean[("spec.inner_resamples", THEORY_CELLS_SETTING)].value == 256 * 64 * 64


def test_a_large_d_is_named_in_the_limits_the_server_checks() -> None:
    large = spec(dimension=10_000, inner_resamples=20_002, n_grid=(1,))
    limits = {(limit.path, limit.setting): limit for limit in large.compute_limits()}
    matrix = limits[("spec.dimension", MATRIX_DIM_SETTING)]
    assert matrix.value == 10_000 > matrix.default
    cells = limits[("spec.inner_resamples", THEORY_CELLS_SETTING)]
    assert cells.value == 20_002 * 4 * 10_000 > cells.default
    held = limits[("spec.dimension", THEORY_CELLS_SETTING)]
    assert held.value == 2 * (2 * 4 + 2) * 10_000**2 > held.default


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"budget": 0.5}, ("budget",)),  # τ² = (b − 1/n)σ² ≤ 0 at n = 1
        ({"budget": 1.0}, ("budget",)),
        ({"sweep": "noise", "frontier_n": 2, "budget_grid": (0.5, 1.0)}, ("budget_grid", 0)),
        ({"rho": 0.0}, ("rho",)),
        ({"rho": 1.0}, ("rho",)),
        ({"n_grid": ()}, ("n_grid",)),
        ({"n_grid": (1, 4, 2)}, ("n_grid", 2)),
        ({"n_grid": (0, 4)}, ("n_grid", 0)),
        ({"flip": 0.6}, ("flip",)),
        ({"flip_grid": (0.1, 0.7)}, ("flip_grid", 1)),
        ({"budget_grid": (1.0, -2.0)}, ("budget_grid", 1)),
        ({"dimension": 200, "inner_resamples": 256}, ("inner_resamples",)),
        ({"dimension": 64, "inner_resamples": 129}, ("inner_resamples",)),  # below 2·d + 2
        ({"dimension": 4, "inner_resamples": 16}, ("inner_resamples",)),  # below 32
        ({"problem": "boolean", "inner_resamples": 16}, ("inner_resamples",)),
        ({"problem": "boolean", "reruns": 2}, ("reruns",)),
        ({"problem": "boolean", "reruns": 31}, ("reruns",)),
        ({"clip": 0.0}, ("clip",)),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(
    fields: dict[str, Any], location: tuple[str | int, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(**fields)
    assert raised.value.errors()[0]["loc"] == location


def test_a_boolean_run_does_not_need_inner_resamples_above_2d() -> None:
    assert spec(problem="boolean", dimension=200, inner_resamples=64).dimension == 200
    assert spec(problem="boolean", reruns=32).reruns == 32


def test_the_budget_rule_leaves_positive_noise_at_every_grid_point() -> None:
    result = run(dimension=4, n_grid=(4, 8), budget=0.3, inner_resamples=32, replicates=2)
    sigma2 = 2.0  # √4
    assert result["settings"]["noise_variance"] == pytest.approx(
        [(0.3 - 1 / 4) * sigma2, (0.3 - 1 / 8) * sigma2]
    )
