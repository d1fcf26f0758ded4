"""Part "diffusion" of `associative_memory`: the seed paper's 2D toy, K training points on
the unit circle for each K of a grid, samples drawn from their energy at a fixed β, and
each sample classified as memorized, spurious or generalized (`core.probes.attractors`)
against K.

How samples are drawn (`energy`, `dynamics`):

- exact energy, **diffusion** (the default): the reverse VE SDE (σ = 1) with the exact
  empirical score, from t = 1 down to t_min = 1/(2σ²β), then the Tweedie denoised mean at
  t_min, one associative-memory step at β from the noisy state (`exact_reverse_diffusion`:
  `core.training.score_matching.euler_maruyama_samples` with the exact score, its state
  ending at t_min, then `core.theory.empirical_energy.energy_step`). Finite β is finite diffusion
  time, the paper's equivalence (seed-details.md: "generalization needs a finite β").
- exact energy, **descent**: the fixed-point iteration x ← Σ_μ softmax(−β‖x − ξ_μ‖²) ξ_μ
  from Gaussian starts, for at most `iterations` updates (samples still moving then are
  taken where they are). Its samples collapse onto the energy's minima, which at large K
  are a few shallow wells along the ring: compact states that copy no training point,
  which the rule calls spurious, so generalization does not show with it. Kept for
  comparison.
- **trained** (opt-in): for each (K, replicate) the paper's ScoreNet is trained by
  denoising score matching on the K points (`core.training.score_training`), each in its
  own checkpoint folder, resumable, and sampled by its Euler–Maruyama sampler down to
  `trained.t_min` (the paper's sampler). One network per (K, replicate) makes it far
  slower than the exact energy; it is not in the default or the smoke spec.

Per K, over replicates, the run reports the three fractions; `lone`, the part of the
generalized fraction that is stray single samples rather than extended clusters;
`copies_by_weight`, the share of samples whose softmax weight at β on one training point
exceeds 0.99 (read at the noisy state for diffusion, at the final state for descent, at
the sample for trained), a β-based view of copying beside the rule's; the mean radius
beside the K → ∞ ring radius R*(β) (exact energy only; not an independent test of the
ring: the final Tweedie step at β maps any noisy radius from 0.7 to 1.5 onto 0.98–0.99,
so on the exact diffusion path the radius lands near R*(β) by construction and says
only that the samples were denoised at β; no sweep claims it); the median and 95% quantile of
the distance to the nearest training point. Replicate 0's samples and
training points for each K are saved (`samples.safetensors`) for the `generation_copy`
probe, with the rule's thresholds carried in the probe target.

What decides whether the effects show (recorded in `settings`): β (through t_min), the
sample count (the link must bridge the gaps between neighbouring samples on the ring),
the SDE steps, and the rule's thresholds. Spurious samples are mostly those of compact
clusters between training points closer than about √(2/β) ≈ 0.32, which the energy at β
merges into one state (at K = 2 too, when the two points happen to lie that close); small
clumps of samples between farther points count as well. Expected: memorized falls with K and
generalized rises; spurious samples appear from the smallest K through the transition
and fade past it. Whether the spurious fraction PEAKS at the transition, above both ends
of the grid, is left to the measurement: random close pairs make spurious states common
at K = 2 too and the replicate spread is wide, so the sweeps test it with their claim on
`headline.spurious_excess_mean` (the peak chosen on half the replicates, its excess over
both ends measured on the other half) rather than this docstring asserting either way.

The headline pairs each replicate's own draws: memorized at the smallest K minus at the
largest, generalized the other way round; the K where spurious states peak is chosen
among the interior K on the even replicates and its excess over both ends measured on the
odd ones, so the interval does not judge a maximum on the draws that picked it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from safetensors.torch import load_file, save

from core.curves import (
    check_finite_result,
    check_grid,
    curve_from_samples,
    mean_and_interval,
    replicate_generator,
    seeded_steps,
)
from core.probes.attractors import (
    DEFAULT_COMPACT_SPREAD,
    DEFAULT_COPY_RATIO,
    DEFAULT_LINK_DISTANCE,
    DEFAULT_MEMORIZED_RADIUS,
    THRESHOLDS_NOTE,
    AttractorThresholds,
    classify_samples,
)
from core.probes.features import ItemType
from core.probes.target import ArraySet, ProbeTarget, TargetUnavailableError
from core.reporter import Reporter
from core.spec_model import SpecModel
from core.specs import field_error
from core.theory.empirical_energy import (
    DOMINANT_WEIGHT,
    circle_points,
    descend_empirical_energy,
    diffusion_time,
    dominant_weight,
    energy_step,
    ring_radius,
)
from core.training.score_matching import empirical_score, euler_maruyama_samples
from core.training.score_training import (
    ScopedReporter,
    ScoreTrainingSpec,
    sample_score_net,
    train_score_net,
)

SAMPLES_FILE = "samples.safetensors"
# σ of the VE SDE whose reverse the exact path integrates (the paper's toy: σ = 1).
SIGMA = 1.0
# The unit circle's diameter: a threshold this long counts every point as near every other.
CIRCLE_DIAMETER = 2.0
# The share of a (K, replicate) step's progress that training takes on the trained path.
TRAINING_SHARE = 0.9
_DEFAULT_K_GRID = (2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256, 1000)
_FRACTIONS = ("memorized", "spurious", "generalized")


class DiffusionSpec(SpecModel):
    """Part "diffusion": samples of the energy of K circle points, classified against K."""

    energy: Literal["exact", "trained"] = Field(
        "exact",
        description="exact: the empirical energy of the training points (training-free); "
        "trained: the paper's score network, one trained per K and replicate (opt-in, far "
        "slower).",
    )
    dynamics: Literal["diffusion", "descent"] = Field(
        "diffusion",
        description="How the exact energy is sampled. diffusion: the reverse SDE with the "
        "exact score down to t_min = 1/(2σ²β), then the Tweedie mean; descent: the "
        "fixed-point iteration, whose samples collapse onto the energy's minima (no "
        "generalization shows). Not used by the trained energy.",
    )
    k_grid: tuple[int, ...] = Field(
        _DEFAULT_K_GRID,
        description="Training-set sizes K, increasing; each replicate draws a fresh set per K.",
    )
    beta: float = Field(
        20.0,
        gt=0,
        le=10_000,
        description="Inverse temperature β of the energy, t_min = 1/(2σ²β) with σ = 1 "
        "(20 is the paper's toy value).",
    )
    samples: int = Field(1000, ge=2, le=100_000, description="Samples M per K and replicate.")
    steps: int = Field(
        500,
        ge=2,
        le=100_000,
        description="Euler–Maruyama steps of the exact reverse SDE from t = 1 to t_min "
        "(dynamics diffusion).",
    )
    start_std: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Descent starts are N(0, start_std²·I) (dynamics descent).",
    )
    iterations: int = Field(
        200, ge=1, le=100_000, description="Most fixed-point updates per sample (descent)."
    )
    tolerance: float = Field(
        1e-7,
        gt=0,
        le=1,
        description="A sample whose update moves it less than this stops (descent).",
    )
    memorized_radius: float = Field(
        DEFAULT_MEMORIZED_RADIUS,
        description="δ_m: a sample copies its nearest training point when within this of "
        "it and it passes the ratio test.",
    )
    copy_ratio: float = Field(
        DEFAULT_COPY_RATIO,
        gt=0,
        le=1,
        description="A sample copies its nearest training point only if that point is at "
        "most copy_ratio times as far as the second nearest.",
    )
    link_distance: float = Field(
        DEFAULT_LINK_DISTANCE,
        description="Samples that copy nothing and lie closer than this share a cluster "
        "(single linkage).",
    )
    compact_spread: float = Field(
        DEFAULT_COMPACT_SPREAD,
        description="A cluster whose RMS distance to its centroid is below this is compact "
        "(spurious when of two samples or more); wider clusters are generalized.",
    )
    probe_k: int | None = Field(
        None,
        description="The K whose training points and samples (replicate 0) a probe reads; "
        "null = the last K of k_grid.",
    )
    trained: ScoreTrainingSpec = Field(
        ScoreTrainingSpec(),
        description="The score network, its training and its sampler (energy trained only).",
    )

    @field_validator("link_distance", "memorized_radius", "compact_spread")
    @classmethod
    def _within_the_circle(cls, length: float) -> float:
        if not 0 < length < CIRCLE_DIAMETER:
            raise ValueError(
                f"must be positive and below {CIRCLE_DIAMETER:g}, the unit circle's "
                f"diameter (got {length:g}): at that length every point is near every other"
            )
        return length

    @field_validator("k_grid")
    @classmethod
    def _check_k_grid(cls, grid: tuple[int, ...]) -> tuple[int, ...]:
        check_grid(grid)
        if grid[0] < 1:
            raise ValueError("every K must be at least 1")
        return grid

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionSpec:
        if self.probe_k is not None and self.probe_k not in self.k_grid:
            raise field_error(
                "probe_k", f"probe_k {self.probe_k} is not on k_grid {list(self.k_grid)}"
            )
        if self.energy == "trained":
            trained = self.trained
            # dt ≤ 2·t_min at the last step: past it a step overshoots a training point
            # by more than its distance and the sampler diverges (score ≈ −(x − ξ)/(σ²t)).
            needed = math.ceil((1.0 - trained.t_min) / (2.0 * trained.t_min)) + 1
            if trained.sampler_steps < needed:
                raise field_error(
                    ("trained", "sampler_steps"),
                    f"{trained.sampler_steps} sampler steps from t = 1 to t_min = "
                    f"{trained.t_min:g} are longer than 2·t_min at the last step, where the "
                    f"score is stiff and the sampler diverges; use at least {needed} steps "
                    "or a larger trained.t_min",
                )
        if self.energy == "exact" and self.dynamics == "diffusion":
            t_min = diffusion_time(self.beta, SIGMA)
            if t_min >= 1.0:
                raise field_error(
                    "beta",
                    f"β = {self.beta:g} stops the reverse SDE at t_min = 1/(2β) = {t_min:g}, "
                    "not below its start t = 1; use β > 0.5",
                )
            needed = math.ceil((1.0 - t_min) / t_min) + 1
            if self.steps < needed:
                raise field_error(
                    "steps",
                    f"{self.steps} steps from t = 1 to t_min = {t_min:g} (β = {self.beta:g}) "
                    f"are longer than t_min itself, where the exact score is stiff; use at "
                    f"least {needed} steps",
                )
        return self

    @property
    def hash_exclude(self) -> frozenset[str]:  # type: ignore[override]
        """The fields the chosen energy and dynamics do not read cannot change the numbers."""
        descent = {"start_std", "iterations", "tolerance"}
        if self.energy == "trained":
            return frozenset({"dynamics", "steps", *descent})
        unused = descent if self.dynamics == "diffusion" else {"steps"}
        return frozenset({"trained", *unused})

    @property
    def target_k(self) -> int:
        """The K a probe reads."""
        return self.probe_k if self.probe_k is not None else self.k_grid[-1]

    @property
    def t_min(self) -> float:
        """Where the sampler stops: 1/(2σ²β) on the exact path, trained.t_min on the other."""
        return self.trained.t_min if self.energy == "trained" else diffusion_time(self.beta, SIGMA)

    @property
    def thresholds(self) -> AttractorThresholds:
        return AttractorThresholds(
            memorized_radius=self.memorized_radius,
            copy_ratio=self.copy_ratio,
            link_distance=self.link_distance,
            compact_spread=self.compact_spread,
        )


def run_diffusion(
    diffusion: DiffusionSpec, replicates: int, seed: int, run_hash: str, reporter: Reporter
) -> dict[str, Any]:
    """The diffusion part's result: curves against K, headline and settings; replicate 0's
    samples saved. `run_hash` names the run in the trained networks' checkpoints."""
    k_grid = diffusion.k_grid
    names = (*_FRACTIONS, "lone", "copies_by_weight", "radius", "nearest_median", "nearest_q95")
    values = {name: [[0.0] * len(k_grid) for _ in range(replicates)] for name in names}
    tensors: dict[str, torch.Tensor] = {}
    grid = [(r, i) for r in range(replicates) for i in range(len(k_grid))]
    generator = replicate_generator(seed, 0)

    def describe(item: tuple[int, int]) -> str:
        return f"replicate {item[0] + 1}/{replicates}, K = {k_grid[item[1]]}"

    for position, (replicate, index) in seeded_steps(grid, reporter, describe):
        if index == 0:
            generator = replicate_generator(seed, replicate)
        k = k_grid[index]
        training = circle_points(k, generator)  # (K, 2)
        if diffusion.energy == "trained":
            # Its own folder, its metrics under K<K>/r<r>, its progress inside this step's.
            scoped = ScopedReporter(
                reporter,
                reporter.checkpoint_dir() / f"score_K{k}_r{replicate}",
                prefix=f"K{k}/r{replicate}",
                start=position / len(grid),
                span=TRAINING_SHARE / len(grid),
            )
            state = f"{run_hash}/K{k}/r{replicate}"
            samples = _trained_samples(diffusion, training, generator, scoped, state)
            weighed = samples
        else:
            samples, weighed = _exact_samples(diffusion, training, generator, reporter)
        classified = classify_samples(samples, training, diffusion.thresholds)
        for name, value in classified.fractions().items():
            values[name][replicate][index] = value
        values["lone"][replicate][index] = classified.lone_fraction()
        dominated = dominant_weight(weighed, training, diffusion.beta) > DOMINANT_WEIGHT
        values["copies_by_weight"][replicate][index] = float(dominated.double().mean())
        values["radius"][replicate][index] = float(samples.norm(dim=1).mean())
        nearest = classified.nearest_distance
        values["nearest_median"][replicate][index] = float(nearest.median())
        values["nearest_q95"][replicate][index] = float(torch.quantile(nearest, 0.95))
        if replicate == 0:  # one set per K, as a probe reads it; the others differ only by draw
            tensors[f"samples.K{k}"] = samples.contiguous()
            tensors[f"training.K{k}"] = training.contiguous()

    _save_samples(tensors, reporter)
    exact = diffusion.energy == "exact"
    ring = ring_radius(diffusion.beta)
    curves = [
        curve_from_samples(
            name,
            "K",
            k_grid,
            values[name],
            [ring] * len(k_grid) if name == "radius" and exact else None,
        ).as_json()
        for name in names
    ]
    result = {
        "part": "diffusion",
        "curves": curves,
        "headline": _headline(k_grid, values, ring if exact else None),
        "settings": _settings(diffusion, replicates, ring),
    }
    return check_finite_result(result)


def _exact_samples(
    diffusion: DiffusionSpec,
    training: torch.Tensor,
    generator: torch.Generator,
    reporter: Reporter,
) -> tuple[torch.Tensor, torch.Tensor]:
    """((M, 2) samples, (M, 2) the states their dominant weight is read at) of the exact
    energy of `training` (K, 2): the Tweedie means and the noisy states of the stopped
    reverse diffusion, or the points the descent reached (both)."""
    if diffusion.dynamics == "diffusion":
        noisy = exact_reverse_diffusion(
            training,
            diffusion.samples,
            diffusion.steps,
            diffusion.t_min,
            generator,
            reporter.should_stop,
        )
        return energy_step(noisy, training, diffusion.beta), noisy
    starts = diffusion.start_std * torch.randn(
        diffusion.samples, 2, generator=generator, dtype=torch.float64
    )
    reached = descend_empirical_energy(
        starts,
        training,
        diffusion.beta,
        diffusion.iterations,
        diffusion.tolerance,
        reporter.should_stop,
    )
    return reached, reached


def exact_reverse_diffusion(
    training: torch.Tensor,
    count: int,
    steps: int,
    t_min: float,
    generator: torch.Generator,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """(M, 2) the noisy states at exactly t_min of the reverse VE SDE (σ = SIGMA) with the
    exact score of `training` (K, 2), `steps` grid times from t = 1 to t_min (so steps − 1
    Euler–Maruyama steps). Their Tweedie mean at t_min = 1/(2σ²β) is
    `energy_step(noisy, training, β)`, one associative-memory step at β."""
    return euler_maruyama_samples(
        empirical_score(training, SIGMA),
        count,
        training.shape[1],
        SIGMA,
        steps,
        t_min,
        generator,
        noisy_at_t_min=True,
        should_stop=should_stop,
    )


def _trained_samples(
    diffusion: DiffusionSpec,
    training: torch.Tensor,
    generator: torch.Generator,
    scoped: ScopedReporter,
    state: str,
) -> torch.Tensor:
    """(M, 2) samples of a ScoreNet trained on `training` (K, 2) in `scoped`'s folder,
    resumed from its newest checkpoint of the same `state`; its seed is drawn from
    `generator`, so a resumed run draws the same."""
    net_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    net = train_score_net(
        training,
        diffusion.trained,
        scoped,
        seed=net_seed,
        checkpoint_state={"spec_hash": state},
    )
    return sample_score_net(
        net, diffusion.trained, diffusion.samples, generator, scoped.should_stop
    )


def _settings(diffusion: DiffusionSpec, replicates: int, ring: float) -> dict[str, Any]:
    exact = diffusion.energy == "exact"
    sampler: dict[str, Any]
    if not exact:
        sampler = {
            "sampler": "the trained ScoreNet's Euler–Maruyama sampler to trained.t_min, its "
            "last step's noiseless mean (the paper's sampler)",
            "sigma": diffusion.trained.sigma,
            "sampler_steps": diffusion.trained.sampler_steps,
            "training_steps": diffusion.trained.train.steps,
            "checkpoints": "one folder per (K, replicate): score_K<K>_r<replicate>",
        }
    elif diffusion.dynamics == "diffusion":
        sampler = {
            "sampler": "reverse VE SDE with the exact empirical score, Euler–Maruyama from "
            "t = 1 to t_min, then the Tweedie mean at t_min",
            "sigma": SIGMA,
            "steps": diffusion.steps,
        }
    else:
        sampler = {
            "sampler": "fixed-point descent of the exact energy at β",
            "start_std": diffusion.start_std,
            "iterations": diffusion.iterations,
            "tolerance": diffusion.tolerance,
        }
    return {
        "energy": diffusion.energy,
        "dynamics": diffusion.dynamics if exact else None,
        "beta": diffusion.beta,
        "t_min": diffusion.t_min,
        "kernel_width": 1.0 / math.sqrt(2.0 * diffusion.beta),
        "ring_gap": 1.0 - ring,
        "samples": diffusion.samples,
        **sampler,
        **diffusion.thresholds.as_dict(),
        "dominant_weight": DOMINANT_WEIGHT,
        "copies_by_weight": "the share of states whose softmax weight at β on one training "
        "point exceeds dominant_weight: the state lies in that point's basin at β. Read at the "
        "noisy state (exact diffusion: its Tweedie mean then lands on the point), at the "
        "final state (descent) or at the sample (trained: in a basin, not necessarily near "
        "the point)",
        "rule": "memorized: the sample copies one training point (nearest within δ_m and "
        "at most copy_ratio times the second nearest); the others clustered by single "
        "linkage: spurious, a compact cluster of two or more; generalized, an extended "
        "cluster or a lone sample (a cluster of one, also reported as `lone`, a part of "
        "the generalized fraction); the three fractions sum to 1",
        "training_points": "uniform angle on the unit circle, a fresh set per K and replicate",
        "spurious_peak": "K_spurious_peak chosen among the interior K on the even "
        "replicates (0, 2, …), spurious_excess over both ends measured on the odd ones",
        "artifact": SAMPLES_FILE,
        "probe_k": diffusion.target_k,
        "replicates": replicates,
        "theory": (
            "radius: R*(β), the K → ∞ ring radius of the paper's Eq. 13/18, a reference "
            "only: the final Tweedie step at β maps any noisy radius 0.7–1.5 onto "
            "0.98–0.99, so the samples' radius lands near R*(β) by construction"
            if exact
            else "none for a trained score"
        ),
    }


def _headline(
    k_grid: tuple[int, ...], values: dict[str, list[list[float]]], ring: float | None
) -> dict[str, float]:
    last = len(k_grid) - 1
    memorized, generalized = values["memorized"], values["generalized"]
    headline: dict[str, float] = {
        "memorized_at_smallest_K": _mean([row[0] for row in memorized]),
        "generalized_at_largest_K": _mean([row[last] for row in generalized]),
    }
    # Paired per replicate: each replicate's own draws at both ends of the grid.
    headline |= mean_and_interval("memorized_drop", [row[0] - row[last] for row in memorized])
    headline |= mean_and_interval("generalized_rise", [row[last] - row[0] for row in generalized])
    headline |= _spurious_peak(k_grid, values["spurious"])
    if ring is not None:
        headline["ring_radius_theory"] = ring
    radii = [row[last] for row in values["radius"]]
    headline |= mean_and_interval("ring_radius_at_largest_K", radii)
    return headline


def _spurious_peak(k_grid: tuple[int, ...], spurious: list[list[float]]) -> dict[str, float]:
    """The K where the spurious fraction peaks, chosen among the grid's interior points
    (the transition lies between its ends) on the even replicates, and its excess over
    the larger of the two ends per odd replicate (none with one replicate or a grid of
    fewer than three points)."""
    if len(k_grid) < 3:
        return {}
    choosing, measuring = spurious[0::2], spurious[1::2]
    interior = range(1, len(k_grid) - 1)
    peak = max(interior, key=lambda i: _mean([row[i] for row in choosing]))
    found = {"K_spurious_peak": float(k_grid[peak])}
    if measuring:
        last = len(k_grid) - 1
        found |= mean_and_interval(
            "spurious_excess", [row[peak] - max(row[0], row[last]) for row in measuring]
        )
    return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _save_samples(tensors: dict[str, torch.Tensor], reporter: Reporter) -> None:
    """Replicate 0's samples (M, 2) and training points (K, 2) for each K, as tensors
    `samples.K<K>` and `training.K<K>`: an artifact, and the file a probe target is
    read back from (written to a temporary name, then renamed, so a reader never sees
    half a file)."""
    data = save(tensors)
    reporter.save_artifact(SAMPLES_FILE, data)
    folder = reporter.checkpoint_dir()
    handle, staged = tempfile.mkstemp(dir=folder, prefix=".samples-")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(staged, folder / SAMPLES_FILE)


def samples_target(diffusion: DiffusionSpec, run_dir: Path, device: torch.device) -> ProbeTarget:
    """The probe target of a diffusion run: the training points of K = `probe_k` (the
    members) and the samples generated from them, replicate 0, read from the run's folder,
    with the run's thresholds as a note (JSON) for the probe to default to."""
    path = run_dir / SAMPLES_FILE
    if not path.is_file():
        raise TargetUnavailableError(f"the run left no {SAMPLES_FILE} to probe")
    tensors = load_file(str(path))
    k = diffusion.target_k
    training, samples = tensors[f"training.K{k}"], tensors[f"samples.K{k}"]
    return ProbeTarget(
        model=None,
        n_parameters=0,
        vocab_size=0,
        vocabulary="circle-2d",
        members=ArraySet(training.to(device), ItemType.samples),
        generated=ArraySet(samples.to(device), ItemType.samples),
        notes={
            "items": f"K = {k} training points on the unit circle and {len(samples)} "
            f"samples drawn from them ({_sampler_words(diffusion)}, replicate 0)",
            THRESHOLDS_NOTE: json.dumps(diffusion.thresholds.as_dict()),
        },
    )


def _sampler_words(diffusion: DiffusionSpec) -> str:
    if diffusion.energy == "trained":
        return "a trained score network"
    if diffusion.dynamics == "diffusion":
        return f"the exact reverse diffusion stopped at t_min = {diffusion.t_min:g}"
    return "descent of the exact energy"
