"""`counterfactual`: counterfactual memorization (Zhang et al., "Counterfactual Memorization
in Neural Language Models", 2021; after Feldman & Zhang 2020), on shadow models the
server trains for it.

    mem(x) = E_{S ∋ x}[acc(f_S, x)] − E_{S ∌ x}[acc(f_S, x)]

over models f_S trained on random subsets S of the pool: how much better the models do
on x when they trained on it than when they did not. An item any model gets right
(easy, or like many others) scores near 0 however often it was seen; only what a model
can do on x *because* it saw x counts. acc is the item's token accuracy (the fraction of
its scored tokens that are the argmax), so mem ∈ [−1, 1]; the same difference in −(mean
token NLL) is reported beside it.

The result gives each pool item's score, their distribution (quantiles and a histogram
over [−1, 1]) and the top-k items with their text. The target model itself is not read:
it only names the pool (its members and non-members).

Dimensions: M shadow models, N pool items.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import TokenStatistics
from core.probes.shadow_models import ShadowProbeSpec, pool_statistics
from core.reporter import Reporter

HISTOGRAM_BINS = 20  # over [−1, 1]: bins 0.1 wide
QUANTILES = (0.1, 0.5, 0.9, 0.99)


class CounterfactualSpec(ShadowProbeSpec):
    kind: Literal["counterfactual"] = "counterfactual"
    top_k: int = Field(20, ge=1, le=1000, description="The most memorized items to list.")


def in_out_means(values: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, the mean of `values` over the models that trained on it and over those
    that did not, (N,) each.

    values: (M, N) a per-item performance of each model; keep: (M, N) bool, IN where True.
    Every item has at least one model on each side (`core.shadows.inclusion_matrix`).
    """
    values = values.double()
    inside = (values * keep).sum(0) / keep.sum(0).clamp(min=1)
    outside = (values * ~keep).sum(0) / (~keep).sum(0).clamp(min=1)
    return inside, outside


def counterfactual_scores(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """mem(x) per item: the mean over IN models minus the mean over OUT models, (N,).

    >>> in_first_two = torch.tensor([[True, True], [True, True], [False, False], [False, False]])
    >>> counterfactual_scores(torch.tensor([[1.0, 1.0], [1.0, 0.5], [0.0, 0.5], [0.0, 0.0]]),
    ...                       in_first_two).tolist()
    [1.0, 0.5]
    """
    inside, outside = in_out_means(values, keep)
    return inside - outside


def distribution(scores: torch.Tensor) -> dict[str, Any]:
    """Quantiles, mean and a histogram over [−1, 1] of the per-item scores."""
    counts = torch.histc(scores.float(), bins=HISTOGRAM_BINS, min=-1.0, max=1.0)
    edges = torch.linspace(-1.0, 1.0, HISTOGRAM_BINS + 1)
    quantiles = torch.quantile(scores, torch.tensor(QUANTILES, dtype=torch.float64))
    return {
        "mean": float(scores.mean()),
        "quantiles": {f"{q:g}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        "histogram": {
            "edges": [round(float(e), 3) for e in edges],
            "counts": [int(c) for c in counts],
        },
    }


@register_probe(
    CounterfactualSpec,
    "Counterfactual memorization (Zhang 2021): accuracy of shadow models that trained on "
    "an item minus those that did not; per-item scores, their distribution, the top k.",
)
def run(spec: CounterfactualSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    stats = pool_statistics(spec, inputs, reporter)
    _, accuracy = stats.stacked(TokenStatistics.token_accuracy)  # (M, N)
    _, fit = stats.stacked(TokenStatistics.negative_mean_nll)
    reporter.progress(0.9, "scoring each pool item")
    inside, outside = in_out_means(accuracy, stats.keep)
    scores = inside - outside
    loss_scores = counterfactual_scores(fit, stats.keep)
    # Highest score first; among equal scores (many items sit at exactly 1 when every IN
    # model recalls them and no OUT model does), the larger gain in −ℓ first.
    by_loss = torch.argsort(loss_scores, descending=True, stable=True)
    order = by_loss[torch.argsort(scores[by_loss], descending=True, stable=True)]
    top = [
        {
            "text": stats.pool.texts[int(i)],
            "score": float(scores[i]),
            "accuracy_in": float(inside[i]),
            "accuracy_out": float(outside[i]),
            "loss_score": float(loss_scores[i]),
            "target_member": bool(stats.is_member[i]),
        }
        for i in order[: spec.top_k]
    ]
    return {
        "score": "mem(x) = mean token accuracy of IN shadows − of OUT shadows",
        "n_items": len(stats.pool),
        "distribution": distribution(scores),
        # The same difference in −(mean token NLL), unbounded: no histogram over [−1, 1].
        "loss_distribution": {
            key: value for key, value in distribution(loss_scores).items() if key != "histogram"
        },
        "by_target_membership": {
            "members": float(scores[stats.is_member].mean()),
            "non_members": float(scores[~stats.is_member].mean()),
        },
        "top": top,
        "scores": [round(float(s), 4) for s in scores],
        "shadows": {"count": spec.shadows, "pool_seed": spec.pool_seed},
    }
