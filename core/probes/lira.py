"""`lira`: the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From
First Principles", S&P 2022), on shadow models the server trains for it.

For every pool item x, the shadows that trained on x (IN) and those that did not (OUT)
give two samples of φ(x), a statistic of the model on x; each is fitted with a Gaussian.
The target's own φ(x) is then scored:
  - online:  Λ(x) = log N(φ; μ_in(x), σ_in(x)²) − log N(φ; μ_out(x), σ_out(x)²);
  - offline: Λ(x) = log Pr[Z ≤ φ], Z ~ N(μ_out(x), σ_out(x)²): the one-sided test of the
    paper, how far above what OUT models give the target's φ lies (no IN model needed);
  - fixed variance: σ_in(x) and σ_out(x) replaced by one σ_in and one σ_out for every
    item, each the pooled within-item standard deviation of that side (Σ (φ − μ(x))²
    over items and models / Σ (n(x) − 1)). The paper prefers the global variance below
    about 64 shadows, where per-item variances rest on few values; so does the default.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from core.probes.membership import BLIND_BASELINE
from core.probes.registry import ProbeInputs, register_probe
from core.probes.scoring import attack_report, membership_metrics
from core.probes.sequences import TokenStatistics, zlib_bits
from core.probes.shadow_models import PoolStatistics, ShadowProbeSpec, pool_statistics
from core.reporter import Reporter
from core.spec_model import field_error

# Floor on a fitted standard deviation: an item every shadow scores identically would
# otherwise divide by zero.
MIN_STD = 1e-6
# Below this many shadows the headline uses the global variance (Carlini et al., §VI).
PER_ITEM_VARIANCE_FROM = 64
STATISTICS: dict[str, Callable[[TokenStatistics], torch.Tensor]] = {
    "logit_confidence": TokenStatistics.mean_logit_confidence,
    "loss": TokenStatistics.negative_mean_nll,
}


class LiraSpec(ShadowProbeSpec):
    kind: Literal["lira"] = "lira"
    statistic: Literal["logit_confidence", "loss"] = Field(
        "logit_confidence",
        description="φ(x): the mean logit-scaled confidence log(p/(1−p)) of the item's "
        "scored tokens, or −(mean token NLL).",
    )
    fixed_variance: bool | None = Field(
        None,
        description="Headline the online attack with global σ_in, σ_out rather than per-item "
        f"ones (every variant is reported either way); null: global below "
        f"{PER_ITEM_VARIANCE_FROM} shadows, as the paper advises.",
    )
    bootstrap_rounds: int = Field(
        1000, ge=10, le=100_000, description="Resamplings behind each AUC's 95% interval."
    )

    @model_validator(mode="after")
    def _two_in_and_two_out_per_item(self) -> LiraSpec:
        if self.shadows < 4:
            raise field_error(
                "shadows",
                f"a variance needs at least 2 IN and 2 OUT models per item, so 4 shadows; "
                f"{self.shadows} were asked",
            )
        return self

    @property
    def headline(self) -> str:
        fixed = self.fixed_variance
        if fixed is None:
            fixed = self.shadows < PER_ITEM_VARIANCE_FROM
        return "online_fixed_variance" if fixed else "online"


@dataclass(frozen=True)
class InOutFit:
    """Per-item Gaussians of φ over the IN and the OUT shadows, (N,) each, and each
    side's pooled within-item standard deviation."""

    mean_in: torch.Tensor
    std_in: torch.Tensor
    mean_out: torch.Tensor
    std_out: torch.Tensor
    global_std_in: float
    global_std_out: float

    def with_fixed_variance(self) -> InOutFit:
        """The same means, with each side's global σ for every item."""
        std_in = torch.full_like(self.std_in, self.global_std_in)
        std_out = torch.full_like(self.std_out, self.global_std_out)
        return InOutFit(
            self.mean_in, std_in, self.mean_out, std_out, self.global_std_in, self.global_std_out
        )


def fit_in_out(values: torch.Tensor, keep: torch.Tensor) -> InOutFit:
    """Mean and standard deviation (n − 1 in the denominator) of each item's IN values
    and OUT values, and each side's pooled σ: √(Σ_items Σ_models (φ − μ(x))² / Σ_items
    (n(x) − 1)).

    values: (M, N) φ of each shadow on each item; keep: (M, N) bool, IN where True.

    >>> fit = fit_in_out(torch.tensor([[1.0], [3.0], [0.0], [0.0]]),
    ...                  torch.tensor([[True], [True], [False], [False]]))
    >>> fit.mean_in.item(), round(fit.std_in.item(), 4), fit.mean_out.item(), fit.std_out.item()
    (2.0, 1.4142, 0.0, 0.0)
    """
    values = values.double()
    mean_in, std_in, global_in = _side_moments(values, keep)
    mean_out, std_out, global_out = _side_moments(values, ~keep)
    return InOutFit(mean_in, std_in, mean_out, std_out, global_in, global_out)


def online_scores(target: torch.Tensor, fit: InOutFit) -> torch.Tensor:
    """Λ(x) = log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²), (N,)."""
    return _log_normal(target, fit.mean_in, fit.std_in) - _log_normal(
        target, fit.mean_out, fit.std_out
    )


def offline_scores(target: torch.Tensor, fit: InOutFit) -> torch.Tensor:
    """Λ(x) = log Φ((φ − μ_out) / σ_out): higher the further φ lies above the OUT models'."""
    z = (target.double() - fit.mean_out) / fit.std_out.clamp(min=MIN_STD)
    return torch.special.log_ndtr(z)


def _side_moments(
    values: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per item (N,): the mean and sample σ of `values` (M, N) where `mask` holds; and
    the σ pooled over items. An item with one value on this side adds nothing to the
    pool and gets σ 0 (floored at MIN_STD where scored)."""
    count = mask.sum(0)  # (N,)
    mean = (values * mask).sum(0) / count.clamp(min=1)
    squares = ((values - mean).square() * mask).sum(0)  # (N,)
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    degrees = float((count - 1).clamp(min=0).sum())
    pooled = math.sqrt(float(squares.sum()) / degrees) if degrees > 0 else 0.0
    return mean, std, pooled


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
    target_values, shadow_values = stats.stacked(STATISTICS[spec.statistic])  # (N,), (M, N)
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
    headline = spec.headline
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
        "shadows": _shadow_summary(spec, stats, fit),
    }


def _shadow_summary(spec: LiraSpec, stats: PoolStatistics, fit: InOutFit) -> dict[str, Any]:
    trained_on = stats.keep.sum(1).double()
    return {
        "count": spec.shadows,
        "pool_seed": spec.pool_seed,
        "pool_items": int(stats.keep.shape[1]),
        "in_models_per_item": spec.shadows // 2,
        "items_per_shadow": {"mean": float(trained_on.mean()), "min": int(trained_on.min())},
        "target_training_items": int(stats.is_member.sum()),
        "note": stats.training_size_note(),
        "global_std": {"in": fit.global_std_in, "out": fit.global_std_out},
        "mean_gap_in_minus_out": float((fit.mean_in - fit.mean_out).mean()),
    }
