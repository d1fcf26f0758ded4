"""`exposure` (Carlini et al. 2019, "The Secret Sharer"): how far a planted canary's
likelihood stands out among all the secrets it could have been.

A canary is a template with a secret drawn from a space R (e.g. 5 digits, |R| = 10⁵),
planted r times in the training data. With ℓ(s) the model's total negative
log-likelihood in bits of the secret's tokens given the template,
    rank(s)     = position of s among all candidates sorted by ℓ (1 = most likely)
    exposure(s) = log₂|R| − log₂ rank(s)          ∈ [0, log₂|R|]
When |R| is at most `max_candidates` every candidate is scored and the rank is exact;
otherwise a seeded uniform sample estimates it. The other planted secrets are left out
of the candidates, so that canaries planted in one run do not outrank each other. The
extrapolated exposure fits a skew-normal distribution to the candidates' ℓ (by the
method of moments) and reports −log₂ P(ℓ ≤ ℓ(s)), which can exceed log₂|R| when the
canary is far beyond every sample.
Never-inserted controls (r = 0) show the exposure of a secret the model never saw.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from core.probes.features import Feature
from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import token_statistics
from core.probes.spec import ProbeSpec
from core.probes.target import Canaries
from core.reporter import Reporter

_SMALLEST_PROBABILITY = 1e-300  # exposures are capped near 997 bits rather than infinite


class ExposureSpec(ProbeSpec):
    kind: Literal["exposure"] = "exposure"
    max_candidates: int = Field(
        100_000,
        ge=100,
        le=2_000_000,
        description="Score every candidate secret up to this many; beyond, sample this many.",
    )

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.canaries})


def exposure_from_rank(rank: torch.Tensor, space_size: int) -> torch.Tensor:
    """log₂|R| − log₂ rank.

    >>> exposure_from_rank(torch.tensor([1.0, 1024.0]), 1024).tolist()
    [10.0, 0.0]
    """
    return math.log2(space_size) - torch.log2(rank.double())


def ranks(
    secret_bits: torch.Tensor, candidate_bits: torch.Tensor, space_size: int, exhaustive: bool
) -> torch.Tensor:
    """Each secret's rank among the candidates by ℓ (lower ℓ ranks first), (N,):
    1 + the number of candidates more likely than it, counted exactly when every
    candidate was scored, else scaled up from a uniform sample to the whole space.

    The caller leaves the planted secrets out of the candidates: with several canaries in
    one run, the others would otherwise take the top ranks from each other.
    """
    lower = (candidate_bits[None, :] < secret_bits[:, None]).double().sum(1)
    if exhaustive:
        return 1 + lower
    return 1 + space_size * lower / len(candidate_bits)


def fit_skew_normal(samples: torch.Tensor) -> tuple[float, float, float]:
    """Location ξ, scale ω and shape α of a skew-normal, by the method of moments."""
    x = samples.double()
    mean, std = float(x.mean()), float(x.std())
    skew = float(((x - mean) ** 3).mean()) / std**3
    skew = max(min(skew, 0.99), -0.99)  # the skew-normal cannot be more skewed than ±0.995
    power = abs(skew) ** (2 / 3)
    delta = math.copysign(
        math.sqrt(math.pi / 2 * power / (power + ((4 - math.pi) / 2) ** (2 / 3))), skew
    )
    alpha = delta / math.sqrt(1 - delta**2)
    omega = std / math.sqrt(1 - 2 * delta**2 / math.pi)
    xi = mean - omega * delta * math.sqrt(2 / math.pi)
    return xi, omega, alpha


def skew_normal_cdf(x: torch.Tensor, xi: float, omega: float, alpha: float) -> torch.Tensor:
    """P(X ≤ x) for each x, integrating the density 2 φ(z) Φ(αz) numerically in float64."""
    z_max = ((x.double() - xi) / omega).clamp(min=-38.0)
    results = []
    for upper in z_max.tolist():
        grid = torch.linspace(-38.0, upper, 20_001, dtype=torch.float64)
        density = 2 * torch.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
        density = density * torch.special.ndtr(alpha * grid)
        results.append(float(torch.trapezoid(density, grid)))
    return torch.tensor(results, dtype=torch.float64).clamp(min=_SMALLEST_PROBABILITY, max=1.0)


def _candidate_bits(canaries: Canaries, spec: ExposureSpec, model: torch.nn.Module) -> torch.Tensor:
    """ℓ in bits of every candidate secret (or of a seeded uniform sample of them),
    leaving out the planted secrets (never-inserted controls stay in)."""
    if canaries.space_size <= spec.max_candidates:
        indices = torch.arange(canaries.space_size)
    else:
        generator = torch.Generator().manual_seed(spec.seed)
        indices = torch.randint(canaries.space_size, (spec.max_candidates,), generator=generator)
    planted = canaries.indices[canaries.insertions > 0]
    indices = indices[~torch.isin(indices, planted)]
    bits = []
    for start in range(0, len(indices), 8192):
        chunk = canaries.candidates(indices[start : start + 8192])
        bits.append(token_statistics(model, chunk, batch_size=1024).total_nll_bits())
    return torch.cat(bits)


@register_probe(ExposureSpec, "Secret Sharer exposure of planted canaries, rank and skew-normal.")
def run(spec: ExposureSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    canaries = inputs.target.canaries
    assert canaries is not None  # guaranteed by the `canaries` need
    model = inputs.target.model
    exhaustive = canaries.space_size <= spec.max_candidates
    reporter.progress(0.05, f"scoring {min(canaries.space_size, spec.max_candidates):,} candidates")
    candidate_bits = _candidate_bits(canaries, spec, model)
    secret_bits = token_statistics(model, canaries.secrets).total_nll_bits()
    reporter.progress(0.9, "ranking the canaries")
    rank_exposure = exposure_from_rank(
        ranks(secret_bits, candidate_bits, canaries.space_size, exhaustive), canaries.space_size
    )
    xi, omega, alpha = fit_skew_normal(candidate_bits)
    extrapolated = -torch.log2(skew_normal_cdf(secret_bits, xi, omega, alpha))
    per_canary = [
        {
            "text": text,
            "insertions": int(r),
            "nll_bits": float(bits),
            "exposure": float(rank_value),
            "exposure_extrapolated": float(extrapolated_value),
        }
        for text, r, bits, rank_value, extrapolated_value in zip(
            canaries.secrets.texts,
            canaries.insertions,
            secret_bits,
            rank_exposure,
            extrapolated,
            strict=True,
        )
    ]
    return {
        "space_size": canaries.space_size,
        "max_exposure_bits": math.log2(canaries.space_size),
        "rank": "exact (every candidate scored)" if exhaustive else "estimated from a sample",
        "n_candidates_scored": len(candidate_bits),
        "skew_normal": {"xi": xi, "omega": omega, "alpha": alpha},
        "by_insertions": _by_insertions(canaries.insertions, rank_exposure, extrapolated),
        "canaries": per_canary,
    }


def _by_insertions(
    insertions: torch.Tensor, exposure: torch.Tensor, extrapolated: torch.Tensor
) -> list[dict[str, Any]]:
    """Mean (and spread of) exposure for each insertion count; 0 = never-inserted controls."""
    rows = []
    for count in torch.unique(insertions).tolist():
        chosen = insertions == count
        rows.append(
            {
                "insertions": int(count),
                "n_canaries": int(chosen.sum()),
                "mean_exposure": float(exposure[chosen].mean()),
                "min_exposure": float(exposure[chosen].min()),
                "max_exposure": float(exposure[chosen].max()),
                "mean_exposure_extrapolated": float(extrapolated[chosen].mean()),
            }
        )
    return rows
