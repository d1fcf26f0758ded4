"""`min_k_pp_mia` (Min-K%++, Zhang et al. 2024): Min-K% on standardised token log-probs.

Per token z_t = (log p(x_t) − μ_t) / σ_t, with μ_t and σ_t the mean and standard
deviation of log p(v) under the model's own next-token distribution; the score is the
mean of the lowest k% of z_t. Training pushes a member's tokens towards local maxima of
the likelihood, which the standardisation measures against the model's own spread.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from core.probes.membership import MembershipProbeSpec, run_attack
from core.probes.registry import ProbeInputs, register_probe
from core.probes.sequences import TokenStatistics, lowest_fraction_mean
from core.probes.target import SequenceSet
from core.reporter import Reporter

_MIN_STD = 1e-8  # a one-hot prediction has σ_t = 0; its z_t is then 0, not ±∞


class MinKPlusPlusMiaSpec(MembershipProbeSpec):
    kind: Literal["min_k_pp_mia"] = "min_k_pp_mia"
    k: float = Field(0.2, gt=0, le=1, description="Fraction of lowest z-scores averaged.")


def standardised_log_probs(stats: TokenStatistics) -> torch.Tensor:
    """z_t = (log p(x_t) − μ_t) / σ_t at scored positions, (N, T)."""
    z = (stats.log_prob - stats.mean_log_prob) / stats.std_log_prob.clamp(min=_MIN_STD)
    return z.masked_fill(stats.std_log_prob < _MIN_STD, 0.0)


@register_probe(MinKPlusPlusMiaSpec, "Min-K%++: Min-K% over z-scored token log-probs.")
def run(spec: MinKPlusPlusMiaSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    def score(stats: TokenStatistics, _: SequenceSet) -> torch.Tensor:
        return lowest_fraction_mean(standardised_log_probs(stats), stats.scored, spec.k)

    return run_attack(
        spec, inputs.target, reporter, score, score_name=f"mean of the lowest {spec.k:.0%} z_t"
    )
