"""`memorization_tradeoff`: how many bits about its own training sample a learner must
keep to be accurate, I(A(X₁:ₙ); X₁:ₙ | θ), against the sample size n and against its
noise, measured beside the exact value wherever one exists.

Reproduces "Trade-offs in Data Memorization via Strong Data Processing Inequalities"
(Feldman, Kornowski & Lyu, COLT 2025, arXiv 2506.01855). The paper is theory and has no
code. **The paper's** statement, from its abstract: learners accurate enough on these
problems must memorize Ω(d) bits of their sample when n = O(1), decaying at a
problem-specific rate that simple learners match up to log factors. Its rates per problem
(its Section 4, Appendices B–D) were **not found** in the notes, so memlab does not quote
them. **memlab's own** derivation (shared/research/seed-details.md §6; formulas in
`core.theory.memorization_bits`, problems in `core.data.clusters`, learners in
`core.theory.cluster_learners`) instantiates two problems with learners whose
memorization is exact, and one whose memorization has no closed form:

- `problem: gaussian`, clustering in d dimensions: θ ~ N(0, s²I_d), X_i = θ + σZ_i,
  σ² = `variance_per_sqrt_d`·√d (the notes' regime σ² ≍ √d, where O(1) samples already
  tell θ's cluster from another's). Learners:
    - `gaussian_mechanism`: A = X̄ + τW with τ² = (b − 1/n)·σ², b = `budget`: exactly
      (d/2)·log₂(b/(b − 1/n)) bits, about d/(2 ln2·n·b) for large n: a 1/n decay, the
      rate memlab derives for this learner (the `log_log_slope` headline checks it).
    - `noisy_gd`, a trained model with **no closed form**: `gd_steps` full-batch steps
      of gradient descent of size `gd_lr` from w = 0 on ½‖w − X_i‖², each example's
      gradient clipped to norm `clip`·σ√d (the norm of one sample's noise), Gaussian noise
      added after each step. Its noise is *matched to the mechanism*: unclipped it would
      release c·(X̄ + τW), c = 1 − (1 − η)^T, the mechanism scaled (same bits, same
      membership error); with `clip: null` its theory curves are drawn. Clipped, it
      departs from both, and its curves show by how much: where its error rises above
      the mechanism's (the `noisy_gd_excess_error_*` headlines), its decay with n
      compares learners of different accuracy. The noise is set by the accuracy budget,
      not calibrated to the clip, so no differential-privacy guarantee is claimed.
  **Accuracy** is the cluster-membership test (the reason for σ² ≍ √d): `error_<learner>`
  is the probability that "⟨A, X − X'⟩ > 0 means X is θ's" mislabels a fresh X ~ P_θ
  against X' from another cluster θ' ~ N(0, s²I), Φ(−⟨A, θ⟩/(‖A‖·√(2σ² + s²))) given A and
  θ, averaged over the learner's outputs; 1/2 is chance, what A = 0 (output nothing: 0
  bits) scores. Its theory is the closed form I_{(1−r)/2}(d/2, d/2) averaged over θ
  (exact, not a mean-field value). At a fixed budget b the mechanism's error is the same
  at every n. `mse_<learner>` is the per-coordinate squared error ‖A − θ‖²/d, kept as a
  second curve: at σ² ≍ √d the mechanism's MSE b·σ² exceeds s², the MSE of A = 0, which
  keeps 0 bits; that is why the MSE is not the accuracy here.
- `problem: boolean`, Boolean clustering: θ uniform on {±1}^d, X_ij = θ_j with probability
  (1 + ρ)/2. Learner `majority_vote`: the per-coordinate majority (a tie gives a fair
  coin), each coordinate flipped with probability q (`flip`, randomized response); exact
  bits h₂(P_err) − [P_tie + (1 − P_tie)·h₂(q)] per coordinate by binomial enumeration.
  `error_majority_vote` is the coordinate error rate P(A_j ≠ θ_j) (q = 1/2 outputs
  nothing: 0 bits, error 1/2).

**Measured, not evaluated.** Every `bits_<learner>` curve is an *estimate* computed from
the learner's outputs (`core.theory.mutual_information`); the exact value, where one
exists, is the curve's `theory`, so the exact learners are the estimators' cross-check:
- continuous outputs (gaussian): the Gaussian fit ½ log det Σ_A − ½ log det Σ_{A|X},
  Wishart-bias-corrected; unbiased for the Gaussian mechanism, an estimate (neither
  bound) for clipped `noisy_gd`. Beside it, `bits_lower_<learner>`: the linear-decoder
  (Barber–Agakov) lower bound ½ log det Σ_X̄ − ½ log det Σ_{X̄|A}, joint over the d
  coordinates, a valid lower bound for any learner and tight for the mechanism (its own
  cross-check);
- binary outputs (boolean): the per-coordinate plug-in Ĥ(A_j|θ) − Ĥ(A_j|X) with
  Miller–Madow's correction, summed over coordinates (exact for a coordinatewise learner).
Each replicate draws its own θ (the outer loop) and, at every grid point, conditions on
it: `inner_resamples` datasets X ~ P_θ^n, each run through every learner `reruns` times
(the learner's internal noise, for Σ_{A|X} or Ĥ(A|X)). Every learner of a grid point sees
the same datasets. The estimators keep running sums (d×d scatters, per-coordinate counts),
never the outputs.

Pitfalls kept: every continuous output carries noise (τ² > 0 is required; a noiseless
X̄ memorizes infinitely many bits); everything is conditioned on θ; estimates carry
their sampling error (the curves' intervals), which is about the same in bits whatever
the true value, so relative agreement means something only where the exact bits are
several; the Gaussian fit and the bound need `inner_resamples` ≥ 2d + 2; the plug-in's
conditional entropies come from `reruns` draws each, so it refuses fewer than 32.

`sweep: n` draws bits and error against n (`n_grid`) at a fixed noise (`budget` or
`flip`): the headline is bits/d at the smallest n (Ω(d): exactly 1/2 for b = 2 at n = 1),
the decay ratio bits(n_max)/bits(n_min), the log-log slope of the mechanism's bits against
n over the grid points with ≥ 1 exact bit (memlab's derived rate, −1 for large n), the
error's change over the grid (0 for the mechanism at a fixed budget), noisy_gd's error
minus the mechanism's at n_min and n_max (paired), and the cross-check (also of the
linear-decoder bound, `crosscheck_lower_*`): (estimate − exact)/exact at the grid point
where it is largest in size among those with ≥ 1 exact bit, and estimate − exact in bits
where that is largest (each the worst of several points, so its interval may miss 0 by
selection alone; each point's own interval is in the curve). `sweep: noise` draws them
against the noise (`budget_grid` or `flip_grid`) at n = `frontier_n`: plotted as bits
against error, the accuracy–memorization frontier of the learners actually run, with the
learner that outputs nothing (0 bits, error 1/2) as the headline's reference point.
Example: `{"kind": "memorization_tradeoff", "problem": "boolean", "sweep": "noise"}`.

Seeding: replicate r draws θ from `replicate_generator(seed, r)`; the datasets of a grid
point from a stream derived from (seed, r, n), and each learner's noise from one derived
from (seed, r, learner, grid value), so a grid point's values do not depend on the rest of
the grid (and a noise sweep's budgets share their datasets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from core.curves import (
    MATRIX_DIM_DEFAULT,
    MATRIX_DIM_SETTING,
    MAX_GRID_POINTS,
    THEORY_CELLS_DEFAULT,
    THEORY_CELLS_SETTING,
    Curve,
    check_finite_result,
    curve_from_samples,
    mean_and_interval,
    replicate_generator,
    seeded_steps,
)
from core.data.clusters import BooleanClusters, ClusterProblem, GaussianClusters
from core.registry import register_kind
from core.reporter import Reporter, RunCancelled
from core.specs import ComputedSpec, ComputeLimit, field_error
from core.stats import summarize
from core.theory.cluster_learners import gaussian_mechanism, majority_vote, noisy_gradient_descent
from core.theory.memorization_bits import (
    GradientDescentNoise,
    budget_noise_variance,
    gaussian_mechanism_bits,
    gaussian_mechanism_mse,
    gaussian_release_membership_error,
    majority_vote_bits_per_coordinate,
    majority_vote_error,
    matched_gradient_descent_noise,
    membership_test_error,
)
from core.theory.mutual_information import GaussianFitAccumulator, PlugInAccumulator

Problem = Literal["gaussian", "boolean"]
Sweep = Literal["n", "noise"]

# Reruns per dataset when the spec leaves them out: the Gaussian fit pools its conditional
# covariance over all datasets, so a few suffice; the plug-in estimates each dataset's
# conditional entropy from its own reruns, so it needs many.
DEFAULT_RERUNS = {"gaussian": 4, "boolean": 64}
# The plug-in's Ĥ(A_j | X) comes from `reruns` draws per dataset: with a handful, a flipped
# coordinate's entropy is badly underestimated and the bits come out far too high.
MIN_BOOLEAN_RERUNS = 32
# Every estimate reads each coordinate's spread over the datasets: fewer than this many
# leave it to chance.
MIN_INNER_RESAMPLES = 32
# Sample sizes of an n sweep when the spec leaves them out: doublings for gaussian; odd n
# for boolean (an even n lets the vote tie, which adds a fair coin and makes the exact
# bits zig-zag), the notes' table's 1, 3, 9, 27, 81 and one more tripling.
DEFAULT_N_GRIDS = {
    "gaussian": (1, 2, 4, 8, 16, 32, 64, 128, 256),
    "boolean": (1, 3, 9, 27, 81, 243),
}
# Elements of one chunk's largest tensors (datasets × max(n, R) × d), 8 MiB: small enough
# that its buffers are reused rather than mapped and unmapped at every chunk.
CHUNK_ELEMENTS = 1 << 20
# The cross-check reads relative differences, and the log-log slope reads logarithms,
# only where the exact value is at least this many bits: below it, the estimators'
# absolute sampling error swamps the ratio.
CROSSCHECK_MIN_BITS = 1.0
# What the learner that outputs nothing (A = 0, or a fair coin per coordinate) scores.
CHANCE_ERROR = 0.5

# This kind's headline values are keyed by their name alone (`…_at_n_min`, not
# `…_at_n_min_mean`), as its sweep files' claims and docs/data name them.
_headline_value = partial(mean_and_interval, mean_suffix="")

LEARNERS: dict[str, tuple[str, ...]] = {
    "gaussian": ("gaussian_mechanism", "noisy_gd"),
    "boolean": ("majority_vote",),
}
# The learner of each problem whose bits are exact, checked against its estimate.
EXACT_LEARNER = {"gaussian": "gaussian_mechanism", "boolean": "majority_vote"}


class MemorizationTradeoffSpec(ComputedSpec):
    """One problem, one sweep: bits and error of each learner against n or the noise."""

    kind: Literal["memorization_tradeoff"] = "memorization_tradeoff"
    problem: Problem = Field(
        "gaussian",
        description="gaussian: clustering in d dimensions (Gaussian mechanism and noisy "
        "clipped gradient descent, scored by a cluster-membership test); boolean: Boolean "
        "clustering (majority vote with randomized response).",
    )
    sweep: Sweep = Field(
        "n",
        description="n: against the sample size (n_grid) at a fixed noise; noise: against "
        "the noise (budget_grid or flip_grid) at n = frontier_n, the accuracy–memorization "
        "frontier.",
    )
    dimension: int = Field(64, ge=1, le=1_000_000, description="Dimension d of θ.")
    n_grid: tuple[int, ...] | None = Field(
        None,
        description="Sample sizes n of a `sweep: n` run, strictly increasing; null = 1, 2, "
        "4, …, 256 for gaussian and 1, 3, 9, 27, 81, 243 for boolean.",
    )
    frontier_n: int = Field(
        5,
        ge=1,
        le=1_000_000,
        description="n of a `sweep: noise` run (odd: a boolean vote cannot tie).",
    )
    prior_std: float = Field(1.0, gt=0, le=1e3, description="gaussian: θ ~ N(0, s²I), s.")
    variance_per_sqrt_d: float = Field(
        1.0,
        gt=0,
        le=1e6,
        description="gaussian: the sample noise σ² = this × √d (the notes' σ² ≍ √d).",
    )
    budget: float = Field(
        2.0,
        gt=0,
        le=1e6,
        description="gaussian, sweep n: the Gaussian mechanism's per-coordinate MSE b in "
        "units of σ²; it adds noise τ² = (b − 1/n)·σ², which must be positive: b > "
        "1/min(n_grid). At a fixed b its membership-test error is the same at every n. "
        "noisy_gd's noise is matched to it (unclipped it would release c·(X̄ + τW): the "
        "same error and bits); clipped, its error is measured, not fixed.",
    )
    budget_grid: tuple[float, ...] = Field(
        (0.3, 0.5, 1.0, 2.0, 4.0, 8.0),
        description="gaussian, sweep noise: budgets b (units of σ²), strictly increasing, "
        "each > 1/frontier_n.",
    )
    rho: float = Field(
        0.3, gt=0, lt=1, description="boolean: X_ij = θ_j with probability (1 + ρ)/2."
    )
    flip: float = Field(
        0.1, ge=0, le=0.5, description="boolean, sweep n: randomized-response flip q."
    )
    flip_grid: tuple[float, ...] = Field(
        (0.0, 0.05, 0.1, 0.2, 0.3, 0.4),
        description="boolean, sweep noise: flips q in [0, 0.5], strictly increasing.",
    )
    gd_steps: int = Field(4, ge=1, le=100, description="noisy_gd: gradient steps T from w = 0.")
    gd_lr: float = Field(0.5, gt=0, le=1, description="noisy_gd: step size η.")
    clip: float | None = Field(
        1.0,
        gt=0,
        le=1e3,
        description="noisy_gd: per-example gradient norm clip, in units of σ√d (one "
        "sample's noise norm); null = no clipping (then it releases c·(X̄ + τW) and its "
        "theory curves are drawn).",
    )
    inner_resamples: int = Field(
        256,
        ge=2,
        le=1_000_000,
        description=f"Datasets X ~ P_θ^n drawn at each grid point for the estimates: at "
        f"least {MIN_INNER_RESAMPLES}, and for gaussian at least 2·d + 2 (the Gaussian fit "
        "and the linear-decoder bound).",
    )
    reruns: int | None = Field(
        None,
        ge=2,
        le=1024,
        description=f"Runs of each learner on each dataset (its internal noise); null = 4 "
        f"for gaussian (the Gaussian fit pools them), 64 for boolean (the plug-in does not; "
        f"at least {MIN_BOOLEAN_RERUNS}).",
    )
    replicates: int = Field(
        5,
        ge=1,
        le=100,
        description="Monte Carlo replicates per grid point, each seeded from `seed`; each "
        "draws its own θ.",
    )

    derived_fields: ClassVar[tuple[str, ...]] = ("n_grid", "reruns")
    smoke_fields: ClassVar[dict[str, Any]] = {
        "dimension": 8,
        "n_grid": (1, 4, 16),
        "inner_resamples": 32,
        "replicates": 2,
    }

    @classmethod
    def fill_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """n_grid and reruns left out (or null) are the problem's defaults."""
        problem = raw.get("problem", "gaussian")
        if not isinstance(problem, str) or problem not in DEFAULT_RERUNS:
            return raw  # the Literal check reports the bad problem
        if raw.get("n_grid") is None:
            raw["n_grid"] = DEFAULT_N_GRIDS[problem]
        if raw.get("reruns") is None:
            raw["reruns"] = DEFAULT_RERUNS[problem]
        return raw

    @model_validator(mode="after")
    def _check(self) -> MemorizationTradeoffSpec:
        _check_increasing("n_grid", self.sample_sizes, low=1, high=1_000_000)
        _check_increasing("budget_grid", self.budget_grid, low=0.0, high=1e6, open_low=True)
        _check_increasing("flip_grid", self.flip_grid, low=0.0, high=0.5)
        if self.inner_resamples < MIN_INNER_RESAMPLES:
            raise field_error(
                "inner_resamples",
                f"{self.inner_resamples} datasets leave each coordinate's spread over "
                f"datasets to chance; give at least {MIN_INNER_RESAMPLES}",
            )
        if self.problem == "boolean":
            if self.rerun_count < MIN_BOOLEAN_RERUNS:
                raise field_error(
                    "reruns",
                    f"the plug-in estimates each dataset's conditional entropy from its "
                    f"{self.rerun_count} reruns, too few to be right (it overstates the "
                    f"bits); give at least {MIN_BOOLEAN_RERUNS}",
                )
            return self
        smallest = self.sample_sizes[0]
        if self.sweep == "n" and self.budget * smallest <= 1:
            raise field_error(
                "budget",
                f"budget {self.budget:g} leaves no noise at n = {smallest}: the learners add "
                f"τ² = (b − 1/n)·σ² ≤ 0 and a noiseless mean memorizes infinitely many bits; "
                f"give a budget above {1 / smallest:g}",
            )
        if self.sweep == "noise" and self.budget_grid[0] * self.frontier_n <= 1:
            raise field_error(
                ("budget_grid", 0),
                f"budget {self.budget_grid[0]:g} leaves no noise at n = {self.frontier_n}: "
                f"τ² = (b − 1/n)·σ² ≤ 0; every budget must exceed {1 / self.frontier_n:g}",
            )
        if self.inner_resamples < 2 * self.dimension + 2:
            raise field_error(
                "inner_resamples",
                f"the Gaussian fit and the linear-decoder bound of a {self.dimension}-dimensional "
                f"output need at least 2·d + 2 = {2 * self.dimension + 2} inner resamples, got "
                f"{self.inner_resamples}",
            )
        return self

    @property
    def sample_sizes(self) -> tuple[int, ...]:
        """n_grid, resolved (never None once validated)."""
        return self.n_grid if self.n_grid is not None else DEFAULT_N_GRIDS[self.problem]

    @property
    def rerun_count(self) -> int:
        """reruns, resolved (never None once validated)."""
        return self.reruns if self.reruns is not None else DEFAULT_RERUNS[self.problem]

    @property
    def x_name(self) -> str:
        if self.sweep == "n":
            return "n"
        return "budget" if self.problem == "gaussian" else "flip"

    @property
    def grid(self) -> tuple[float, ...]:
        """The swept values: n, budgets or flips."""
        if self.sweep == "n":
            return tuple(float(n) for n in self.sample_sizes)
        return self.budget_grid if self.problem == "gaussian" else self.flip_grid

    @property
    def sample_variance(self) -> float:
        """gaussian: σ² = variance_per_sqrt_d·√d."""
        return self.variance_per_sqrt_d * math.sqrt(self.dimension)

    def compute_limits(self) -> tuple[ComputeLimit, ...]:
        # Matrix sides: a dataset is n×d, and the Gaussian fit factors d×d scatters.
        sides = tuple(
            ComputeLimit(value, path, MATRIX_DIM_SETTING, MATRIX_DIM_DEFAULT)
            for value, path in (
                (self.dimension, "spec.dimension"),
                (max(self.sample_sizes), "spec.n_grid"),
                (self.frontier_n, "spec.frontier_n"),
            )
        )
        # Products, per grid point, capped in float64 cells: the outputs drawn (M × R × d per
        # learner, streamed into the estimators), and the statistics held (d×d scatters or
        # counts).
        if self.problem == "gaussian":
            held = len(LEARNERS["gaussian"]) * (2 * self.rerun_count + 2) * self.dimension**2
        else:
            held = (2 * self.rerun_count + 1) * self.dimension
        cells = tuple(
            ComputeLimit(value, path, THEORY_CELLS_SETTING, THEORY_CELLS_DEFAULT)
            for value, path in (
                (self.inner_resamples * self.rerun_count * self.dimension, "spec.inner_resamples"),
                (held, "spec.dimension"),
            )
        )
        return sides + cells


def _check_increasing(
    field: str,
    values: tuple[float, ...],
    *,
    low: float,
    high: float,
    open_low: bool = False,
) -> None:
    """A grid is non-empty, at most MAX_GRID_POINTS long, strictly increasing, in range."""
    if not values:
        raise field_error(field, f"{field} needs at least one value")
    if len(values) > MAX_GRID_POINTS:
        raise field_error(field, f"at most {MAX_GRID_POINTS} grid points, got {len(values)}")
    for index, value in enumerate(values):
        if value < low or value > high or (open_low and value == low):
            bracket = "(" if open_low else "["
            raise field_error((field, index), f"{value:g} lies outside {bracket}{low:g}, {high:g}]")
        if index and value <= values[index - 1]:
            raise field_error((field, index), f"{field} must be strictly increasing")


# --- one grid point ----------------------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    """The sample size and noise of one grid point.

    value:          the swept value (n, budget or flip), which keys the learners' noise.
    noise_variance: τ², the Gaussian mechanism's output noise (gaussian; 0 for boolean).
    gradient_noise: noisy_gd's gain and per-step noise, matched to τ² (gaussian).
    flip:           q, the vote's flip probability (boolean; 0 for gaussian).
    """

    value: float
    n: int
    noise_variance: float
    gradient_noise: GradientDescentNoise | None
    flip: float


def grid_points(spec: MemorizationTradeoffSpec) -> list[GridPoint]:
    """Each grid point's (n, τ², noisy_gd's noise, q)."""
    points = []
    for value in spec.grid:
        n = int(value) if spec.sweep == "n" else spec.frontier_n
        if spec.problem == "gaussian":
            budget = spec.budget if spec.sweep == "n" else value
            # The budget is in units of σ²: τ² = b·σ² − σ²/n.
            tau2 = budget_noise_variance(budget * spec.sample_variance, spec.sample_variance, n)
            gradient = matched_gradient_descent_noise(tau2, spec.gd_steps, spec.gd_lr)
            points.append(GridPoint(value, n, tau2, gradient, 0.0))
        else:
            flip = spec.flip if spec.sweep == "n" else value
            points.append(GridPoint(value, n, 0.0, None, flip))
    return points


def cluster_problem(spec: MemorizationTradeoffSpec) -> ClusterProblem:
    """The spec's θ prior and sampling distribution."""
    if spec.problem == "gaussian":
        return GaussianClusters(spec.dimension, spec.prior_std, spec.sample_variance)
    return BooleanClusters(spec.dimension, spec.rho)


Learner = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def learners_at(spec: MemorizationTradeoffSpec, point: GridPoint) -> dict[str, Learner]:
    """Each learner of the problem at this grid point: datasets (C, n, d) → outputs (C, R, d)."""
    reruns = spec.rerun_count
    if spec.problem == "boolean":
        return {"majority_vote": lambda x, g: majority_vote(x, point.flip, reruns, g)}
    assert point.gradient_noise is not None  # every gaussian point has one
    tau = math.sqrt(point.noise_variance)
    step_std = point.gradient_noise.step_std
    clip_norm = (
        None if spec.clip is None else spec.clip * math.sqrt(spec.sample_variance * spec.dimension)
    )
    return {
        "gaussian_mechanism": lambda x, g: gaussian_mechanism(x, tau, reruns, g),
        "noisy_gd": lambda x, g: noisy_gradient_descent(
            x, spec.gd_steps, spec.gd_lr, step_std, clip_norm, reruns, g
        ),
    }


@dataclass(frozen=True)
class Measured:
    """One replicate at one grid point, per learner: estimated bits, the linear-decoder
    lower bound (gaussian), the error (membership test or coordinate error rate) and the
    per-coordinate MSE (gaussian)."""

    bits: dict[str, float]
    bits_lower: dict[str, float]
    error: dict[str, float]
    mse: dict[str, float]


def measure_point(
    spec: MemorizationTradeoffSpec,
    theta: torch.Tensor,
    point: GridPoint,
    replicate: int,
    stop: Callable[[], bool] = lambda: False,
) -> Measured:
    """Draw `inner_resamples` datasets from P_θ^n, run every learner `reruns` times on
    each, stream the outputs into the estimators, and return each learner's bits at this
    θ and its error. `stop` is asked before each chunk (RunCancelled when it says so)."""
    problem = cluster_problem(spec)
    learners = learners_at(spec, point)
    reruns = spec.rerun_count
    data_stream = replicate_generator(spec.seed, replicate, f"data:n={point.n}")
    noise_streams = {
        name: replicate_generator(spec.seed, replicate, f"{name}:{spec.x_name}={point.value!r}")
        for name in learners
    }
    gaussian = spec.problem == "gaussian"
    # Each learner's running statistics: d×d scatters (gaussian) or counts (boolean).
    fits = {n: GaussianFitAccumulator(spec.dimension, reruns, theta) for n in learners if gaussian}
    plug_ins = {
        n: PlugInAccumulator((-1.0, 1.0), reruns, spec.dimension) for n in learners if not gaussian
    }
    error_sum = dict.fromkeys(learners, 0.0)
    square_error_sum = dict.fromkeys(learners, 0.0)
    chunk = max(1, CHUNK_ELEMENTS // (max(point.n, reruns) * spec.dimension))
    for start in range(0, spec.inner_resamples, chunk):
        if stop():
            raise RunCancelled(start)
        count = min(chunk, spec.inner_resamples - start)
        datasets = problem.draw_datasets(theta, count, point.n, data_stream)  # (C, n, d)
        sample_means = datasets.mean(dim=1)  # (C, d)
        for name, learner in learners.items():
            outputs = learner(datasets, noise_streams[name])  # (C, R, d)
            if gaussian:
                fits[name].add(outputs, sample_means)
                error = membership_test_error(
                    outputs, theta, spec.sample_variance, spec.prior_std**2
                )  # (C, R)
                error_sum[name] += float(error.sum())
                square_error_sum[name] += float((outputs - theta).square().sum())
            else:
                plug_ins[name].add(outputs)
                error_sum[name] += float((outputs != theta).sum())
    releases = spec.inner_resamples * reruns
    if not gaussian:
        return Measured(
            bits={name: plug_ins[name].bits() for name in learners},
            bits_lower={},
            error={name: error_sum[name] / (releases * spec.dimension) for name in learners},
            mse={},
        )
    return Measured(
        bits={name: fits[name].fit_bits() for name in learners},
        bits_lower={name: fits[name].lower_bound_bits() for name in learners},
        error={name: error_sum[name] / releases for name in learners},
        mse={name: square_error_sum[name] / (releases * spec.dimension) for name in learners},
    )


# --- exact values ------------------------------------------------------------------------


def _release_gain_and_noise(learner: str, point: GridPoint) -> tuple[float, float] | None:
    """(c, output noise variance) of a Gaussian learner whose release is c·X̄ + noise."""
    if learner == "gaussian_mechanism":
        return 1.0, point.noise_variance
    if point.gradient_noise is None:
        return None
    return point.gradient_noise.gain, point.gradient_noise.output_noise_variance


def _has_closed_form(spec: MemorizationTradeoffSpec, learner: str) -> bool:
    return learner != "noisy_gd" or spec.clip is None


def exact_bits(spec: MemorizationTradeoffSpec, learner: str, point: GridPoint) -> float | None:
    """The learner's exact memorization at this grid point, or None where none is known."""
    if learner == "majority_vote":
        return spec.dimension * majority_vote_bits_per_coordinate(point.n, spec.rho, point.flip)
    release = _release_gain_and_noise(learner, point)
    if release is None or not _has_closed_form(spec, learner):
        return None
    gain, noise_variance = release
    return gaussian_mechanism_bits(
        spec.dimension, spec.sample_variance, point.n, noise_variance, gain
    )


def exact_error(spec: MemorizationTradeoffSpec, learner: str, point: GridPoint) -> float | None:
    """The learner's exact membership-test error (gaussian) or coordinate error rate
    (boolean), averaged over θ, or None where none is known."""
    if learner == "majority_vote":
        return majority_vote_error(point.n, spec.rho, point.flip)
    release = _release_gain_and_noise(learner, point)
    if release is None or not _has_closed_form(spec, learner):
        return None
    gain, noise_variance = release
    spread = gain * gain * spec.sample_variance / point.n + noise_variance
    return gaussian_release_membership_error(
        spec.dimension, spec.prior_std**2, spec.sample_variance, spread, gain
    )


def exact_mse(spec: MemorizationTradeoffSpec, learner: str, point: GridPoint) -> float | None:
    """The Gaussian learner's exact per-coordinate MSE averaged over θ, or None."""
    release = _release_gain_and_noise(learner, point)
    if release is None or not _has_closed_form(spec, learner):
        return None
    gain, noise_variance = release
    return gaussian_mechanism_mse(
        spec.sample_variance, point.n, noise_variance, gain, spec.prior_std**2
    )


# --- the run -----------------------------------------------------------------------------

# samples[learner][r][i]: replicate r at grid point i.
Samples = dict[str, list[list[float]]]


@register_kind(
    MemorizationTradeoffSpec,
    "Memorized bits I(A; X | θ) and accuracy of learners against n and their noise "
    "(Gaussian and Boolean clustering), estimated beside the exact values.",
)
def run_memorization_tradeoff(spec: MemorizationTradeoffSpec, reporter: Reporter) -> dict[str, Any]:
    """Every learner's bits and error at every grid point and replicate."""
    points = grid_points(spec)
    problem = cluster_problem(spec)

    def empty() -> Samples:
        return {
            name: [[0.0] * len(points) for _ in range(spec.replicates)]
            for name in LEARNERS[spec.problem]
        }

    bits, bits_lower, error, mse = empty(), empty(), empty(), empty()
    steps = [(r, i) for r in range(spec.replicates) for i in range(len(points))]
    thetas: dict[int, torch.Tensor] = {}

    def describe(step: tuple[int, int]) -> str:
        r, i = step
        return f"replicate {r + 1}/{spec.replicates}, {spec.x_name} = {spec.grid[i]:g}"

    for _, (r, i) in seeded_steps(steps, reporter, describe):
        if r not in thetas:  # a replicate's θ: the outer loop
            thetas[r] = problem.draw_theta(replicate_generator(spec.seed, r))
        measured = measure_point(spec, thetas[r], points[i], r, reporter.should_stop)
        for name in LEARNERS[spec.problem]:
            bits[name][r][i] = measured.bits[name]
            error[name][r][i] = measured.error[name]
            if spec.problem == "gaussian":
                bits_lower[name][r][i] = measured.bits_lower[name]
                mse[name][r][i] = measured.mse[name]
    return _result(spec, points, bits, bits_lower, error, mse)


def _theory(
    spec: MemorizationTradeoffSpec,
    learner: str,
    points: list[GridPoint],
    exact: Callable[[MemorizationTradeoffSpec, str, GridPoint], float | None],
) -> list[float] | None:
    values = [exact(spec, learner, point) for point in points]
    return [v for v in values if v is not None] if None not in values else None


def _result(
    spec: MemorizationTradeoffSpec,
    points: list[GridPoint],
    bits: Samples,
    bits_lower: Samples,
    error: Samples,
    mse: Samples,
) -> dict[str, Any]:
    curves: list[Curve] = []
    x_name, grid = spec.x_name, spec.grid
    for name in LEARNERS[spec.problem]:
        exact = _theory(spec, name, points, exact_bits)
        curves.append(curve_from_samples(f"bits_{name}", x_name, grid, bits[name], exact))
        if spec.problem == "gaussian":
            # The bound is tight where the release is c·X̄ + Gaussian noise: its theory is
            # the exact bits there.
            curves.append(
                curve_from_samples(f"bits_lower_{name}", x_name, grid, bits_lower[name], exact)
            )
        error_theory = _theory(spec, name, points, exact_error)
        curves.append(curve_from_samples(f"error_{name}", x_name, grid, error[name], error_theory))
        if spec.problem == "gaussian":
            mse_theory = _theory(spec, name, points, exact_mse)
            curves.append(curve_from_samples(f"mse_{name}", x_name, grid, mse[name], mse_theory))
    headline = _headline(spec, points, bits, bits_lower, error)
    result = {
        "curves": [curve.as_json() for curve in curves],
        "headline": headline,
        "settings": _settings(spec, points),
    }
    return check_finite_result(result)


def _headline(
    spec: MemorizationTradeoffSpec,
    points: list[GridPoint],
    bits: Samples,
    bits_lower: Samples,
    error: Samples,
) -> dict[str, float]:
    """sweep n: bits/d at the smallest n, bits(n_max)/bits(n_min), the error's change over
    the grid and (gaussian) the log-log slope; sweep noise: bits/d and error at the least
    noise, beside the learner that outputs nothing; both: (gaussian) noisy_gd's excess
    error over the mechanism, and the estimator against the exact learner's bits, at the
    grid point where they differ most."""
    headline: dict[str, float] = {}
    last = len(points) - 1
    where = "at_n_min" if spec.sweep == "n" else "least_noise"
    for name in LEARNERS[spec.problem]:
        rows, errors = bits[name], error[name]
        headline |= _headline_value(
            f"{name}_bits_per_d_{where}", [r[0] / spec.dimension for r in rows]
        )
        headline |= _headline_value(f"{name}_error_{where}", [e[0] for e in errors])
        exact_first = exact_bits(spec, name, points[0])
        if exact_first is not None:
            headline[f"{name}_bits_per_d_{where}_theory"] = exact_first / spec.dimension
        exact_first_error = exact_error(spec, name, points[0])
        if exact_first_error is not None:
            headline[f"{name}_error_{where}_theory"] = exact_first_error
        if spec.problem == "gaussian":
            headline |= _headline_value(
                f"{name}_bits_lower_per_d_{where}",
                [r[0] / spec.dimension for r in bits_lower[name]],
            )
        if spec.sweep == "n":
            if all(r[0] > 0 for r in rows):  # a ratio to a non-positive estimate means nothing
                headline |= _headline_value(f"{name}_decay_ratio", [r[last] / r[0] for r in rows])
            headline |= _headline_value(f"{name}_error_change", [e[last] - e[0] for e in errors])
    if spec.problem == "gaussian":
        headline |= _excess_error(spec, error)
    if spec.sweep == "n" and spec.problem == "gaussian":
        headline |= _log_log_slopes(spec, points, bits)
    if spec.sweep == "noise":
        headline["output_nothing_bits"] = 0.0
        headline["output_nothing_error"] = CHANCE_ERROR
    exact_learner = EXACT_LEARNER[spec.problem]
    headline |= _crosscheck(spec, points, bits[exact_learner], "crosscheck")
    if spec.problem == "gaussian":
        headline |= _crosscheck(spec, points, bits_lower[exact_learner], "crosscheck_lower")
    return headline


def _excess_error(spec: MemorizationTradeoffSpec, error: Samples) -> dict[str, float]:
    """noisy_gd's error minus the mechanism's, paired per replicate (same θ, same
    datasets): 0 where it is as accurate, at the first grid point and (sweep n) the last."""
    trained, mechanism = error["noisy_gd"], error["gaussian_mechanism"]
    last = len(spec.grid) - 1
    where = {"at_n_min": 0, "at_n_max": last} if spec.sweep == "n" else {"least_noise": 0}
    entry: dict[str, float] = {}
    for label, i in where.items():
        excess = [t[i] - m[i] for t, m in zip(trained, mechanism, strict=True)]
        entry |= _headline_value(f"noisy_gd_excess_error_{label}", excess)
    return entry


def _log_log_slopes(
    spec: MemorizationTradeoffSpec, points: list[GridPoint], bits: Samples
) -> dict[str, float]:
    """The least-squares slope of log bits against log n, per replicate, over the grid
    points where the mechanism's exact bits are at least CROSSCHECK_MIN_BITS (memlab's
    derived rate: −1 for large n), for each learner whose estimates are all positive
    there; the exact curve's slope over the same points as `..._theory`."""
    exact = _exact_learner_bits(spec, points)
    used = [i for i, value in enumerate(exact) if value >= CROSSCHECK_MIN_BITS]
    if len(used) < 2:
        return {}
    log_n = [math.log(points[i].n) for i in used]
    entry = {"log_log_slope_points": float(len(used))}
    entry["gaussian_mechanism_log_log_slope_theory"] = _slope(
        log_n, [math.log(exact[i]) for i in used]
    )
    for name, rows in bits.items():
        if all(row[i] > 0 for row in rows for i in used):
            slopes = [_slope(log_n, [math.log(row[i]) for i in used]) for row in rows]
            entry |= _headline_value(f"{name}_log_log_slope", slopes)
    return entry


def _exact_learner_bits(spec: MemorizationTradeoffSpec, points: list[GridPoint]) -> list[float]:
    """The exact bits of the problem's exact learner at every grid point."""
    values = [exact_bits(spec, EXACT_LEARNER[spec.problem], point) for point in points]
    if None in values:
        raise AssertionError(f"{EXACT_LEARNER[spec.problem]} has a closed form at every point")
    return [v for v in values if v is not None]


def _slope(x: list[float], y: list[float]) -> float:
    """The least-squares slope of y on x."""
    x_mean, y_mean = math.fsum(x) / len(x), math.fsum(y) / len(y)
    covariance = math.fsum((a - x_mean) * (b - y_mean) for a, b in zip(x, y, strict=True))
    return covariance / math.fsum((a - x_mean) ** 2 for a in x)


def _crosscheck(
    spec: MemorizationTradeoffSpec,
    points: list[GridPoint],
    estimates: list[list[float]],
    prefix: str,
) -> dict[str, float]:
    """The estimate against the exact learner's exact bits, per replicate: the relative
    difference (estimate − exact)/exact where its mean is largest in size among the grid
    points with at least CROSSCHECK_MIN_BITS exact bits, and the difference in bits where
    it is largest in size over the whole grid; each with its interval and grid value."""
    exact = _exact_learner_bits(spec, points)
    eligible = [i for i, value in enumerate(exact) if value >= CROSSCHECK_MIN_BITS]
    if not eligible:  # every point below the threshold: read the largest one, if any
        eligible = [i for i in range(len(exact)) if exact[i] == max(exact) > 0][:1]
    entry: dict[str, float] = {}
    if eligible:
        relative = {i: [(row[i] - exact[i]) / exact[i] for row in estimates] for i in eligible}
        worst = max(eligible, key=lambda i: abs(summarize(relative[i]).mean))
        entry |= _headline_value(f"{prefix}_max_rel_diff", relative[worst])
        entry[f"{prefix}_rel_at"] = spec.grid[worst]
        entry[f"{prefix}_rel_exact_bits"] = exact[worst]
    absolute = [[row[i] - exact[i] for row in estimates] for i in range(len(points))]
    worst = max(range(len(points)), key=lambda i: abs(summarize(absolute[i]).mean))
    entry |= _headline_value(f"{prefix}_max_abs_diff_bits", absolute[worst])
    entry[f"{prefix}_abs_at"] = spec.grid[worst]
    return entry


def _settings(spec: MemorizationTradeoffSpec, points: list[GridPoint]) -> dict[str, Any]:
    """The choices that decide whether the effect shows, and what is whose."""
    settings: dict[str, Any] = {
        "problem": spec.problem,
        "sweep": spec.sweep,
        "x_name": spec.x_name,
        "d": spec.dimension,
        "n": [point.n for point in points],
        "learners": list(LEARNERS[spec.problem]),
        "inner_resamples": spec.inner_resamples,
        "reruns": spec.rerun_count,
        "replicates": spec.replicates,
        "theta_draws": "one θ per replicate; every estimate conditions on it",
        "seeding": "θ from replicate_generator(seed, r); a grid point's datasets from "
        "(seed, r, n), each learner's noise from (seed, r, learner, grid value)",
        "output_nothing": {"bits": 0.0, "error": CHANCE_ERROR},
        "sources": {
            "paper": "Ω(d) bits at n = O(1), decaying at a problem-specific rate (abstract); "
            "the paper's per-problem rates were not found and are not quoted",
            "memlab": "the Gaussian and Boolean instantiations, their learners, their exact "
            "bits and errors, the membership-test accuracy and the Gaussian mechanism's 1/n "
            "rate (the log_log_slope headline) (core.theory.memorization_bits)",
        },
    }
    if spec.problem == "gaussian":
        clip_norm = (
            None
            if spec.clip is None
            else spec.clip * math.sqrt(spec.sample_variance * spec.dimension)
        )
        settings |= {
            "sample_variance": spec.sample_variance,
            "prior_std": spec.prior_std,
            "budget": spec.budget if spec.sweep == "n" else None,
            "noise_variance": [point.noise_variance for point in points],
            "noise": "τ² = (b − 1/n)·σ² > 0 on every continuous output (a noiseless "
            "mean memorizes infinitely many bits)",
            "noisy_gd": {
                "steps": spec.gd_steps,
                "lr": spec.gd_lr,
                "clip_norm": clip_norm,
                "gain": points[0].gradient_noise.gain if points[0].gradient_noise else None,
                "output_noise_variance": [
                    p.gradient_noise.output_noise_variance for p in points if p.gradient_noise
                ],
                "step_std": [p.gradient_noise.step_std for p in points if p.gradient_noise],
                "noise": "matched to the mechanism: unclipped it releases c·(X̄ + τW), the "
                "same bits and membership error; not calibrated to the clip (no DP "
                "guarantee)",
            },
            "estimator": "Gaussian fit, Wishart-corrected log-determinants: unbiased for "
            "gaussian_mechanism, an estimate (neither bound) for clipped noisy_gd",
            "lower_bound": "linear-decoder Barber–Agakov bound ½ log det Σ_X̄ − ½ log det "
            "Σ_{X̄|A}, joint over the d coordinates, per rerun index and averaged; a valid "
            "lower bound for any learner, tight for the mechanism",
            "error": "membership test: P(⟨A, X − X'⟩ ≤ 0 | A, θ) = Φ(−⟨A, θ⟩/(‖A‖·√(2σ² + "
            "s²))) for X ~ P_θ and X' from a fresh cluster, averaged over outputs; theory "
            "I_{(1−r)/2}(d/2, d/2) averaged over θ; 1/2 is chance",
            "mse": "per-coordinate squared error ‖A − θ‖²/d over all outputs",
        }
    else:
        settings |= {
            "rho": spec.rho,
            "flip": [point.flip for point in points],
            "estimator": "per-coordinate plug-in with Miller–Madow, summed over coordinates "
            "(exact for a coordinatewise learner); an estimate, biased when reruns are few",
            "error": "coordinate error rate P(A_j ≠ θ_j) over all outputs",
        }
    settings["crosscheck_min_bits"] = CROSSCHECK_MIN_BITS
    return settings
