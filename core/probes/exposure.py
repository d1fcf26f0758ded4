"""`exposure` (Carlini et al. 2019, "The Secret Sharer"): how far a planted canary's
likelihood stands out among all the secrets it could have been.

A canary is a template with a secret drawn from a space R (e.g. 5 digits, |R| = 10⁵),
planted r times in the training data. With ℓ(s) the model's total negative
log-likelihood in bits of the secret's tokens given the template,
    rank(s)     = position of s among all candidates sorted by ℓ (1 = most likely)
    exposure(s) = log₂|R| − log₂ rank(s)          ∈ [0, log₂|R|]
When |R| is at most `max_candidates` every candidate is scored and the rank is exact;
otherwise a seeded uniform sample of n candidates estimates it. A sample of n cannot
resolve a fraction below 1/n, so a sampled exposure is capped at log₂ n and, where the
cap binds, reported as a lower bound. The other planted secrets are left out of the
candidates, so that canaries planted in one run do not outrank each other. The
extrapolated exposure fits a skew-normal distribution to the candidates' ℓ by maximum
likelihood and reports −log₂ P(ℓ ≤ ℓ(s)), which can exceed log₂|R| when the canary is
far beyond every sample. (A fit by the method of moments, which earlier versions used,
moves the far tail by bits: the sample skewness is noisy near the skew-normal's bound.)
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


def fit_skew_normal_by_moments(samples: torch.Tensor) -> tuple[float, float, float]:
    """Location ξ, scale ω and shape α of a skew-normal matching the samples' mean,
    variance and skewness (the start of the maximum-likelihood fit)."""
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


def skew_normal_mean_nll(
    x: torch.Tensor, xi: torch.Tensor, log_omega: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """Mean negative log-density of the samples x (N,) under a skew-normal, whose density
    is (2/ω) φ(z) Φ(αz) with z = (x − ξ)/ω; a scalar, differentiable in the parameters."""
    z = (x - xi) / log_omega.exp()
    log_density = (
        math.log(2.0)
        - log_omega
        - 0.5 * z.square()
        - 0.5 * math.log(2 * math.pi)
        + torch.special.log_ndtr(alpha * z)
    )
    return -log_density.mean()


def fit_skew_normal(samples: torch.Tensor) -> tuple[float, float, float]:
    """Location ξ, scale ω and shape α of a skew-normal, by maximum likelihood.

    The samples are standardised first, so that one set of tolerances suits any scale of
    ℓ; L-BFGS starts from the moment fit and runs in float64 on the CPU, so the same
    samples always give the same fit.
    """
    x = samples.detach().double().cpu()
    mean, std = float(x.mean()), float(x.std())
    standard = (x - mean) / std  # (N,)
    xi, omega, alpha = fit_skew_normal_by_moments(standard)
    params = torch.tensor([xi, math.log(omega), alpha], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [params],
        max_iter=500,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = skew_normal_mean_nll(standard, params[0], params[1], params[2])
        loss.backward()
        return loss

    optimizer.step(closure)
    xi, log_omega, alpha = params.detach().tolist()
    return mean + std * xi, std * math.exp(log_omega), alpha


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


def cap_sampled_exposure(
    exposure: torch.Tensor, n_sampled: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled exposures (N,) capped at log₂ n_sampled, with which of them the cap bound.

    Among n sampled candidates a canary that beats them all is only known to beat a
    fraction ≥ 1 − 1/n of the space, i.e. to have at least about log₂ n bits; what the
    rank formula gives beyond that (up to log₂|R|) is not in the sample.

    >>> capped, bound = cap_sampled_exposure(torch.tensor([20.0, 3.0]), 1024)
    >>> capped.tolist(), bound.tolist()
    ([10.0, 3.0], [True, False])
    """
    cap = math.log2(n_sampled)
    return exposure.clamp(max=cap), exposure > cap


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
    if exhaustive:
        lower_bound = torch.zeros(len(rank_exposure), dtype=torch.bool)
    else:
        rank_exposure, lower_bound = cap_sampled_exposure(rank_exposure, len(candidate_bits))
    xi, omega, alpha = fit_skew_normal(candidate_bits)
    extrapolated = -torch.log2(skew_normal_cdf(secret_bits, xi, omega, alpha))
    per_canary = [
        {
            "text": text,
            "insertions": int(r),
            "nll_bits": float(bits),
            "exposure": float(rank_value),
            "exposure_is_lower_bound": bool(capped),
            "exposure_extrapolated": float(extrapolated_value),
        }
        for text, r, bits, rank_value, capped, extrapolated_value in zip(
            canaries.secrets.texts,
            canaries.insertions,
            secret_bits,
            rank_exposure,
            lower_bound,
            extrapolated,
            strict=True,
        )
    ]
    by_insertions = _by_insertions(canaries.insertions, rank_exposure, lower_bound, extrapolated)
    return {
        "space_size": canaries.space_size,
        "max_exposure_bits": math.log2(canaries.space_size),
        "rank": "exact (every candidate scored)"
        if exhaustive
        else "estimated from a sample; exposures at the cap are lower bounds",
        "n_candidates_scored": len(candidate_bits),
        # What a sample of n candidates can support: log₂ n bits; None when exact.
        "exposure_cap_bits": None if exhaustive else math.log2(len(candidate_bits)),
        "skew_normal": {"xi": xi, "omega": omega, "alpha": alpha, "fit": "maximum likelihood"},
        "by_insertions": by_insertions,
        # The same means keyed by insertion count (`r0` = the controls), so that a sweep
        # table can summarize them over seeds (it reads numbers in objects, not lists).
        "mean_exposure": {f"r{row['insertions']}": row["mean_exposure"] for row in by_insertions},
        "mean_exposure_extrapolated": {
            f"r{row['insertions']}": row["mean_exposure_extrapolated"] for row in by_insertions
        },
        "canaries": per_canary,
    }


def _by_insertions(
    insertions: torch.Tensor,
    exposure: torch.Tensor,
    lower_bound: torch.Tensor,
    extrapolated: torch.Tensor,
) -> list[dict[str, Any]]:
    """Mean (and spread of) exposure for each insertion count; 0 = never-inserted controls.
    Where some exposures are capped lower bounds, the mean is a lower bound too."""
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
                "n_lower_bounds": int(lower_bound[chosen].sum()),
                "mean_exposure_extrapolated": float(extrapolated[chosen].mean()),
            }
        )
    return rows
