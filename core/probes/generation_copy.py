"""`generation_copy`: how much of what a generative run produced copies its training items.

For a run that saved generated samples (e.g. `associative_memory` with part "diffusion",
whose probe target holds the training points as members and the samples as `generated`),
the probe reports:

- the fractions of samples that are memorized, spurious or generalized, by the rule of
  `core.probes.attractors` (the one the kind itself applies); the share of lone samples,
  counted within generalized; how many training points are copied, how many spurious
  and extended clusters there are;
- the distribution of each sample's distance to its nearest training item (plain
  Euclidean, the smallest distance: the seed paper's L2 path ranked inverse distances, so
  its "nearest" neighbour was the farthest): quantiles and a histogram;
- the share of samples within δ_m of a training item (the paper's per-sample memorized
  rule) beside the rule's memorized fraction, since on a dense training set they differ.

Thresholds: a threshold given in the probe spec wins; one left null takes the run's (the
kind carries its thresholds in the target's note `attractor_thresholds`, JSON), and
without that the rule's defaults. The result says which applied (`thresholds_from`).

Single linkage is O(M²) in time, so at most `max_samples` samples are classified (the
first ones: a run's samples are independent draws) and the result says how many.

It reads items only, never a model, so it runs on a training-free run's saved artifact.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field

from core.probes.attractors import (
    THRESHOLDS_NOTE,
    AttractorThresholds,
    classify_samples,
    flatten,
)
from core.probes.features import ItemType
from core.probes.registry import ProbeInputs, register_probe
from core.probes.spec import ProbeSpec
from core.probes.target import ArraySet, ProbeTarget
from core.reporter import Reporter

if TYPE_CHECKING:
    from core.specs import ExperimentSpec

_QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}
# A run whose spec defines `offers_samples()` returning False (associative_memory's
# capacity part) answers with samples items but saves none; its spec may name what to
# submit instead with `samples_refusal()`.
_GENERIC_REFUSAL = "this run saves no samples to probe"


class GenerationCopySpec(ProbeSpec):
    kind: Literal["generation_copy"] = "generation_copy"
    reads: ClassVar[frozenset[ItemType]] = frozenset({ItemType.samples})

    memorized_radius: float | None = Field(
        None,
        gt=0,
        description="δ_m: a sample copies its nearest training item when within this of it "
        "and it passes the ratio test. Null = the run's, else the rule's default.",
    )
    copy_ratio: float | None = Field(
        None,
        gt=0,
        le=1,
        description="A sample copies its nearest training item only if that item is at most "
        "copy_ratio times as far as the second nearest. Null = the run's, else the default.",
    )
    link_distance: float | None = Field(
        None,
        gt=0,
        description="Samples that copy nothing and lie closer than this share a cluster "
        "(single linkage). Null = the run's, else the rule's default.",
    )
    compact_spread: float | None = Field(
        None,
        gt=0,
        description="Clusters with an RMS distance to their centroid below this are compact. "
        "Null = the run's, else the rule's default.",
    )
    histogram_bins: int = Field(
        20,
        ge=1,
        le=1000,
        description="Bins of the nearest-distance histogram, from 0 to the largest distance.",
    )
    max_samples: int = Field(
        8192,
        ge=2,
        le=50_000,
        description="Most samples classified (the first ones); single linkage is O(M²).",
    )

    def refusal(self, experiment: ExperimentSpec) -> str | None:
        """Refused when the run's spec says it saves no samples (`offers_samples()` False,
        e.g. associative_memory's capacity part): the kind decides, not its name here."""
        offers_samples = getattr(experiment, "offers_samples", None)
        if offers_samples is None or offers_samples():
            return None
        reason = getattr(experiment, "samples_refusal", None)
        return str(reason()) if reason is not None else _GENERIC_REFUSAL

    def thresholds(self, target: ProbeTarget) -> tuple[AttractorThresholds, dict[str, str]]:
        """The thresholds applied, each the probe's if given, else the run's (the target's
        note), else the default; and where each came from ("probe", "run", "default")."""
        carried = json.loads(target.notes.get(THRESHOLDS_NOTE, "{}"))
        chosen: dict[str, float] = {}
        source: dict[str, str] = {}
        for name, default in AttractorThresholds().as_dict().items():
            given = getattr(self, name)
            if given is not None:
                chosen[name], source[name] = float(given), "probe"
            elif name in carried:
                chosen[name], source[name] = float(carried[name]), "run"
            else:
                chosen[name], source[name] = default, "default"
        return AttractorThresholds(**chosen), source


def distance_histogram(distances: torch.Tensor, bins: int) -> dict[str, list[float]]:
    """Counts of `distances` (M,) in `bins` equal bins from 0 to the largest (the last bin
    closed), with the bins' edges."""
    top = float(distances.max()) if len(distances) else 0.0
    edges = torch.linspace(0.0, top if top > 0 else 1.0, bins + 1, dtype=torch.float64)
    index = torch.bucketize(distances, edges[1:-1], right=True)  # (M,) in 0 … bins − 1
    counts = torch.bincount(index, minlength=bins)
    return {"edges": edges.tolist(), "counts": [float(c) for c in counts.tolist()]}


def distance_summary(distances: torch.Tensor) -> dict[str, float]:
    """Smallest, largest, mean and quantiles of `distances` (M,)."""
    summary = {
        "min": float(distances.min()),
        "max": float(distances.max()),
        "mean": float(distances.mean()),
    }
    levels = torch.tensor(list(_QUANTILES.values()), dtype=torch.float64)
    values = torch.quantile(distances, levels).tolist()
    return summary | dict(zip(_QUANTILES, values, strict=True))


def _items(target: ProbeTarget) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples (M, ...), training items (K, ...)) of the target, on the CPU."""
    if target.generated is None:
        raise ValueError("the probed run saved no generated samples")
    if not isinstance(target.members, ArraySet):
        raise ValueError("the probed run's training items are token sequences, not arrays")
    if len(target.generated) == 0 or len(target.members) == 0:
        raise ValueError("the probed run saved no samples or no training items")
    return target.generated.values.cpu(), target.members.values.cpu()


@register_probe(
    GenerationCopySpec,
    "Generated samples memorized (copies), spurious (compact recurring states) or "
    "generalized (extended clusters, lone samples), and their distance to the nearest "
    "training item.",
)
def run(spec: GenerationCopySpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    everything, training = _items(inputs.target)
    samples = everything[: spec.max_samples]
    thresholds, source = spec.thresholds(inputs.target)
    reporter.progress(0.1, f"classifying {len(samples)} samples against {len(training)} items")
    classified = classify_samples(samples, training, thresholds)
    distances = classified.nearest_distance
    reporter.progress(0.9, "summarising nearest distances")
    within = (distances <= thresholds.memorized_radius).double().mean()
    return {
        "fractions": classified.fractions(),
        "lone": classified.lone_fraction(),
        "counts": classified.counts(),
        "within_memorized_radius": float(within),
        "nearest_distance": distance_summary(distances),
        "histogram": distance_histogram(distances, spec.histogram_bins),
        "thresholds": thresholds.as_dict(),
        "thresholds_from": source,
        "n_samples": len(everything),
        "n_classified": len(samples),
        "n_training": len(training),
        "dimensions": int(flatten(samples[:1]).shape[1]),
        "rule": "copies per sample, the rest by single-linkage cluster "
        "(core.probes.attractors); Euclidean distances",
    }
