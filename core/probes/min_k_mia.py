"""`min_k_mia` (Min-K% Prob, Shi et al. 2024): score = mean of the lowest k% token log-probs.

An unseen item tends to hold a few very surprising tokens; a memorized one has none, so
the mean over its least likely tokens is higher for members. The result also reports the
AUC for a sweep of k.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.probes.membership import MembershipProbeSpec, run_attack
from core.probes.registry import ProbeInputs, register_probe
from core.probes.scoring import roc_auc
from core.probes.sequences import TokenStatistics, lowest_fraction_mean
from core.reporter import Reporter

K_SWEEP = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


class MinKMiaSpec(MembershipProbeSpec):
    kind: Literal["min_k_mia"] = "min_k_mia"
    k: float = Field(0.2, gt=0, le=1, description="Fraction of lowest-probability tokens.")


def k_sweep(member_stats: TokenStatistics, non_member_stats: TokenStatistics) -> dict[str, Any]:
    """The attack's AUC for each k of K_SWEEP, from the same token statistics."""
    return {
        "k_sweep": [
            {
                "k": k,
                "auc": roc_auc(
                    lowest_fraction_mean(member_stats.log_prob, member_stats.scored, k),
                    lowest_fraction_mean(non_member_stats.log_prob, non_member_stats.scored, k),
                ),
            }
            for k in K_SWEEP
        ]
    }


@register_probe(MinKMiaSpec, "Min-K% Prob: mean of the lowest k% token log-probs (k=0.2).")
def run(spec: MinKMiaSpec, inputs: ProbeInputs, reporter: Reporter) -> dict[str, Any]:
    return run_attack(
        spec,
        inputs.target,
        reporter,
        lambda stats, _: lowest_fraction_mean(stats.log_prob, stats.scored, spec.k),
        score_name=f"mean of the lowest {spec.k:.0%} log p(x_t)",
        extra=k_sweep,
    )
