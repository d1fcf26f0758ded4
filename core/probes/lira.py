"""`lira`: the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From
First Principles", S&P 2022), on shadow models the server trains for it.

For every pool item x, the shadows that trained on x (IN) and those that did not (OUT)
give two samples of φ(x), a statistic of the model on x; each is fitted with a Gaussian.
The target's own φ(x) is then scored:
  - online:  Λ(x) = log N(φ; μ_in(x), σ_in(x)²) − log N(φ; μ_out(x), σ_out(x)²);
  - offline: Λ(x) = log Pr[Z ≤ φ], Z ~ N(μ_out(x), σ_out(x)²): the one-sided test of the
    paper, how far above what OUT models give the target's φ lies (no IN model needed);
  - fixed variance: σ_in and σ_out replaced by one σ for every item, the pooled
    within-item standard deviation of IN and OUT values (the paper's choice when few
    shadows are trained).
All four variants are reported; `fixed_variance` says which online one is the headline.

φ is the logit-scaled confidence log(p / (1 − p)) of each scored token, averaged over
the item's scored tokens (`statistic: "loss"` uses −(mean token NLL) instead). Calibrating
item by item is what beats a global LOSS threshold: an item easy for every model has a
high φ whether or not it was trained on, and only LiRA knows to expect that. LOSS on
the same items is reported beside it, with the blind baseline that never looks at a model.

Dimensions: M shadow models, N pool items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from core.probes.membership import BLIND_BASELINE
from core.probes.registry import ProbeInputs, register_probe
from core.probes.scoring import attack_report, membership_metrics
from core.probes.sequences import zlib_bits
from core.probes.shadow_models import ShadowProbeSpec, pool_statistics
from core.reporter import Reporter
from core.spec_model import field_error

# Floor on a fitted standard deviation: an item every shadow scores identically would
# otherwise divide by zero.
MIN_STD = 1e-6
_STATISTIC_METHODS = {"logit_confidence": "mean_logit_confidence", "loss": "negative_mean_nll"}


class LiraSpec(ShadowProbeSpec):
    kind: Literal["lira"] = "lira"
    statistic: Literal["logit_confidence", "loss"] = Field(
        "logit_confidence",
        description="φ(x): the mean logit-scaled confidence log(p/(1−p)) of the item's "
        "scored tokens, or −(mean token NLL).",
    )
    fixed_variance: bool = Field(
        False,
        description="Headline the online attack with one global σ instead of per-item "
        "σ_in, σ_out (every variant is reported either way). Needed below 4 shadows.",
    )
    bootstrap_rounds: int = Field(
        1000, ge=10, le=100_000, description="Resamplings behind each AUC's 95% interval."
    )

    @model_validator(mode="after")
    def _enough_shadows_for_per_item_variance(self) -> LiraSpec:
        if self.shadows < 4 and not self.fixed_variance:
            raise field_error(
                "shadows",
                f"per-item variances need at least 2 IN and 2 OUT models per item, so 4 "
                f"shadows; {self.shadows} were asked: give more, or fixed_variance true",
            )
        return self


@dataclass(frozen=True)
class InOutFit:
    """Per-item Gaussians of φ over the IN and the OUT shadows, (N,) each."""

    mean_in: torch.Tensor
    std_in: torch.Tensor
    mean_out: torch.Tensor
    std_out: torch.Tensor

    def with_fixed_variance(self) -> InOutFit:
        """The same means, with one σ for every item and both sides."""
        pooled = torch.full_like(self.std_in, self.global_std)
        return InOutFit(self.mean_in, pooled, self.mean_out, pooled)

    @property
    def global_std(self) -> float:
        """√(mean over items and sides of the within-item variance)."""
        return float(torch.cat([self.std_in, self.std_out]).square().mean().sqrt())


def fit_in_out(values: torch.Tensor, keep: torch.Tensor) -> InOutFit:
    """Mean and (population) standard deviation of each item's IN values and OUT values.

    values: (M, N) φ of each shadow on each item; keep: (M, N) bool, IN where True.

    >>> fit = fit_in_out(torch.tensor([[1.0], [3.0], [0.0], [0.0]]),
    ...                  torch.tensor([[True], [True], [False], [False]]))
    >>> fit.mean_in.item(), fit.std_in.item(), fit.mean_out.item(), fit.std_out.item()
    (2.0, 1.0, 0.0, 0.0)
    """
    values = values.double()
    mean_in, std_in = _masked_moments(values, keep)
    mean_out, std_out = _masked_moments(values, ~keep)
    return InOutFit(mean_in, std_in, mean_out, std_out)


def online_scores(target: torch.Tensor, fit: InOutFit) -> torch.Tensor:
    """Λ(x) = log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²), (N,)."""
    return _log_normal(target, fit.mean_in, fit.std_in) - _log_normal(
        target, fit.mean_out, fit.std_out
    )


def offline_scores(target: torch.Tensor, fit: InOutFit) -> torch.Tensor:
    """Λ(x) = log Φ((φ − μ_out) / σ_out): higher the further φ lies above the OUT models'."""
    z = (target.double() - fit.mean_out) / fit.std_out.clamp(min=MIN_STD)
    return torch.special.log_ndtr(z)


def _masked_moments(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    count = mask.sum(0).clamp(min=1)
    mean = (values * mask).sum(0) / count
    variance = ((values - mean).square() * mask).sum(0) / count
    return mean, variance.sqrt()


def _log_normal(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    std = std.clamp(min=MIN_STD)
    return (
        -0.5 * ((x.double() - mean) / std).square() - torch.log(std) - 0.5 * math.log(2 * math.pi)
    )


@register_probe(
    LiraSpec,
    "Likelihood-ratio attack (Carlini 2022) on shadow models trained on halves of the "
    "target's pool; online/offline, fixed variance; AUC, TPR at 1% and 0.1% FPR beside LOSS.",
)
def run(spec: LiraSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    stats = pool_statistics(spec, inputs, reporter)
    method = _STATISTIC_METHODS[spec.statistic]
    target_values, shadow_values = stats.stacked(method)  # (N,), (M, N)
    reporter.progress(0.85, "fitting IN/OUT Gaussians and bootstrapping")
    fit = fit_in_out(shadow_values, stats.keep)
    fixed = fit.with_fixed_variance()
    variants = {
        "online": online_scores(target_values, fit),
        "offline": offline_scores(target_values, fit),
        "online_fixed_variance": online_scores(target_values, fixed),
        "offline_fixed_variance": offline_scores(target_values, fixed),
    }
    members, non_members = stats.is_member, ~stats.is_member
    resampling = {"seed": spec.seed, "bootstrap_rounds": spec.bootstrap_rounds}
    headline = "online_fixed_variance" if spec.fixed_variance else "online"
    blind = -zlib_bits(stats.pool.texts)
    loss = -stats.target.mean_nll()
    report = attack_report(
        variants[headline][members],
        variants[headline][non_members],
        blind[members],
        blind[non_members],
        blind_baseline=BLIND_BASELINE,
        **resampling,
    )
    return {
        "score": f"LiRA {headline.replace('_', ' ')} on φ = {spec.statistic.replace('_', ' ')}",
        "headline": headline,
        **report,
        "variants": {
            name: membership_metrics(scores[members], scores[non_members], **resampling)
            for name, scores in variants.items()
        },
        "loss_attack": {
            "score": "−ℓ(x), the target's mean token NLL (the LOSS attack, one global threshold)",
            **membership_metrics(loss[members], loss[non_members], **resampling),
        },
        "shadows": _shadow_summary(spec, stats.keep, fit),
    }


def _shadow_summary(spec: LiraSpec, keep: torch.Tensor, fit: InOutFit) -> dict[str, Any]:
    trained_on = keep.sum(1).double()
    return {
        "count": spec.shadows,
        "pool_seed": spec.pool_seed,
        "pool_items": int(keep.shape[1]),
        "in_models_per_item": spec.shadows // 2,
        "items_per_shadow": {"mean": float(trained_on.mean()), "min": int(trained_on.min())},
        "global_std": fit.global_std,
        "mean_gap_in_minus_out": float((fit.mean_in - fit.mean_out).mean()),
    }
