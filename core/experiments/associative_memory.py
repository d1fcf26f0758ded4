"""`associative_memory`: the capacity of associative memories, and diffusion read as one.

Reproduces "Memorization to Generalization: Emergence of Diffusion Models from Associative
Memory" (Pham et al. 2025, arXiv 2505.21777) and the classical anchors it builds on, in two
parts, chosen by `part`:

- **capacity** (`core.theory.hopfield_capacity`): P random patterns stored in N units,
  cued with a fraction of their signs flipped, the overlap after synchronous updates
  against the load α = P/N. Memories (`core.theory.hopfield`): classical Hopfield with
  Hebbian weights, dense associative memory with F(x) = xⁿ, modern continuous Hopfield
  ξ ← X softmax(βXᵀξ). Expected, from the literature as the research notes recall it from
  memory: the Hebbian memory collapses near α_c ≈ 0.138 (Amit, Gutfreund & Sompolinsky
  1985; memlab solves their T = 0 equations and draws the retrieval overlap m(α) beside
  the run); the dense memory's capacity grows as N^{n−1} (Krotov & Hopfield 2016), so α
  far above 0.138 and growing with n; the modern memory retrieves P ≫ N patterns
  (Ramsauer et al. 2020): at β = 32, d = 64 memlab measures every load up to α = 128
  (8,192 patterns) retrieved, its state within 0.1·‖ξ_μ‖ of the cued pattern after 30
  updates (retrieval by distance, not cosine, which ignores the state's length).
  Example: `{"kind": "associative_memory"}` (Hebbian, N = 500, α = 0.05 … 0.25 by 0.01).
- **diffusion** (`core.theory.diffusion_memory`): the paper's 2D toy. K training points
  with uniform angle on the unit circle, for each K of `k_grid`; samples of their energy
  at a fixed β (default 20, the paper's toy value), by default the reverse diffusion with
  the exact empirical score stopped at t_min = 1/(2σ²β) and denoised (finite β is finite
  diffusion time), or the fixed-point descent of the energy, or opt-in the paper's
  trained score network. Each sample is classified memorized (it copies one training
  point), spurious (a compact recurring state that copies none) or generalized (an
  extended cluster, e.g. the ring, or a lone sample), by `core.probes.attractors`
  (memlab's rule: the paper's per-sample LPIPS rule does not transfer to 2D). Replicate
  0's samples and training points for each K are saved (`samples.safetensors`) for the
  `generation_copy` probe.
  Example: `{"kind": "associative_memory", "part": "diffusion"}`.

What decides whether the effects show is recorded in each result's `settings`: for
capacity, N, the cue corruption, the number of updates, β (at β = 8 and d = 64 the
modern memory's softmax spreads over many patterns and iterated updates drift to their
mean, hence the default 32) and the pattern kind; for diffusion, β (through t_min), the
sample count, the sampler and the rule's thresholds. With descent, samples collapse onto
the energy's minima (at large K a few shallow wells along the ring) and generalization
does not show; with the stopped reverse diffusion they spread over the ring. Spurious
samples are mostly compact clusters between training points closer than about √(2/β) ≈
0.32, which the energy at β merges; they fade past the transition. Whether they peak at
the transition, above both ends of the grid, is tested by the diffusion sweeps' claim on
`headline.spurious_excess_mean`, not asserted here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from core.curves import (
    MATRIX_DIM_DEFAULT,
    MATRIX_DIM_SETTING,
    MAX_STEPS_DEFAULT,
    MAX_STEPS_SETTING,
    THEORY_CELLS_DEFAULT,
    THEORY_CELLS_SETTING,
)
from core.probes.features import Feature, ItemType
from core.probes.target import ProbeTarget
from core.registry import register_kind
from core.reporter import Reporter
from core.spec_model import spec_hash
from core.specs import ComputedSpec, ComputeLimit, field_error
from core.theory.diffusion_memory import DiffusionSpec, run_diffusion, samples_target
from core.theory.hopfield_capacity import CapacitySpec, fill_memory_defaults, run_capacity

Part = Literal["capacity", "diffusion"]


# What a probe that reads samples is told about a capacity run, which saves none.
CAPACITY_REFUSAL = (
    'a capacity run of associative_memory saves no samples; submit part = "diffusion"'
)


class AssociativeMemorySpec(ComputedSpec):
    kind: Literal["associative_memory"] = "associative_memory"
    part: Part = Field(
        "capacity",
        description="capacity: retrieval against load for Hebbian, dense and modern "
        "memories (`capacity`); diffusion: samples of the energy of circle points "
        "classified against K (`diffusion`). The other part's sub-spec is not used.",
    )
    replicates: int = Field(
        5,
        ge=1,
        le=100,
        description="Monte Carlo replicates per grid point, each seeded from `seed`",
    )
    capacity: CapacitySpec = CapacitySpec()
    diffusion: DiffusionSpec = DiffusionSpec()

    derived_fields: ClassVar[tuple[str, ...]] = (
        "capacity.neurons",
        "capacity.loads",
        "capacity.updates",
    )
    smoke_fields: ClassVar[dict[str, Any]] = {
        "part": "diffusion",
        "replicates": 2,
        "diffusion": {"k_grid": [2, 16, 128], "samples": 200, "steps": 100},
    }

    @classmethod
    def fill_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The capacity part's size, loads and updates default to its memory's (filled
        before the sub-spec is merged with the default one, whose are the Hebbian's)."""
        if isinstance(raw.get("capacity"), dict):
            raw["capacity"] = fill_memory_defaults(raw["capacity"])
        return raw

    @property
    def hash_exclude(self) -> frozenset[str]:  # type: ignore[override]
        """The sub-spec of the part not run cannot change the numbers."""
        unused = "diffusion" if self.part == "capacity" else "capacity"
        return ComputedSpec.hash_exclude | {unused}

    @model_validator(mode="after")
    def _every_load_stores_a_pattern(self) -> AssociativeMemorySpec:
        if self.part != "capacity":
            return self
        capacity = self.capacity
        for alpha, count in zip(capacity.load_grid, capacity.pattern_counts(), strict=True):
            if count < 1:
                raise field_error(
                    ("capacity", "loads"),
                    f"load {alpha:g} stores round({alpha:g}·{capacity.units}) = 0 patterns "
                    f"in N = {capacity.units} units; raise the load or neurons",
                )
        return self

    def compute_limits(self) -> tuple[ComputeLimit, ...]:
        """Every side the part being run allocates (MATRIX_DIM) and the products it holds
        at once (THEORY_CELLS): patterns × units and cues × patterns for capacity, samples
        × K for diffusion's (M, K) weights; for the trained diffusion path also the
        training steps of all its networks (len(k_grid) × replicates of them) together,
        capped by MEMLAB_MAX_STEPS, the setting that caps a trained kind's train.steps
        (read here with the same default, 2,000,000). The part not run allocates nothing,
        so its sizes are not checked (the settings named are the same for both parts)."""

        def side(value: int, path: str) -> ComputeLimit:
            return ComputeLimit(value, path, MATRIX_DIM_SETTING, MATRIX_DIM_DEFAULT)

        def cells(value: int, path: str) -> ComputeLimit:
            return ComputeLimit(value, path, THEORY_CELLS_SETTING, THEORY_CELLS_DEFAULT)

        if self.part == "capacity":
            capacity = self.capacity
            patterns = max(capacity.pattern_counts())
            return (
                side(capacity.units, "spec.capacity.neurons"),
                side(patterns, "spec.capacity.loads"),
                side(capacity.max_cues, "spec.capacity.max_cues"),
                cells(patterns * capacity.units, "spec.capacity.loads"),
                cells(min(capacity.max_cues, patterns) * patterns, "spec.capacity.max_cues"),
            )
        diffusion = self.diffusion
        limits = (
            side(diffusion.samples, "spec.diffusion.samples"),
            side(diffusion.k_grid[-1], "spec.diffusion.k_grid"),
            cells(diffusion.samples * diffusion.k_grid[-1], "spec.diffusion.samples"),
        )
        if diffusion.energy == "trained":
            networks = len(diffusion.k_grid) * self.replicates
            limits += (
                ComputeLimit(
                    diffusion.trained.train.steps * networks,
                    "spec.diffusion.trained.train.steps",
                    MAX_STEPS_SETTING,
                    MAX_STEPS_DEFAULT,
                ),
            )
        return limits

    def probe_features(self) -> frozenset[Feature]:
        """Both parts answer with samples items and no further features, so a probe that
        reads samples reaches its own refusal: `generation_copy` says a capacity run saved
        none (`CAPACITY_REFUSAL`); a diffusion run offers its samples and training points."""
        return frozenset()

    def probe_item_type(self) -> ItemType:
        return ItemType.samples

    def offers_samples(self) -> bool:
        """Whether the run saves samples for `generation_copy` (the diffusion part only)."""
        return self.part == "diffusion"

    def samples_refusal(self) -> str:
        """What `generation_copy` says to a run that saves no samples."""
        return CAPACITY_REFUSAL


def _samples_target(
    spec: AssociativeMemorySpec, run_dir: Path, device: torch.device
) -> ProbeTarget:
    """The probe target of a diffusion run (`core.theory.diffusion_memory.samples_target`)."""
    if spec.part != "diffusion":
        raise ValueError(CAPACITY_REFUSAL)
    return samples_target(spec.diffusion, run_dir, device)


@register_kind(
    AssociativeMemorySpec,
    "Associative memory: Hopfield, dense and modern capacity against load, and samples of "
    "the energy of circle points (memorized, spurious, generalized vs K).",
    target_from_artifacts=_samples_target,
)
def run_associative_memory(spec: AssociativeMemorySpec, reporter: Reporter) -> dict[str, Any]:
    if spec.part == "capacity":
        return run_capacity(spec.capacity, spec.replicates, spec.seed, reporter)
    return run_diffusion(spec.diffusion, spec.replicates, spec.seed, spec_hash(spec), reporter)
