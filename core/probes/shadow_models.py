"""What the probes that read shadow models share (`lira`, `counterfactual`): their spec
fields, and each model's per-item statistics on the target's pool.

The server trains the shadows before such a probe runs (`core/shadows.py` says how they
are made); the probe gets them in `ProbeInputs.shadows`, row i of the inclusion matrix
being shadow i. The pool is the target's members followed by its non-members.

Dimensions: M shadow models, N pool items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import Field

from core.probes.features import Feature
from core.probes.registry import ProbeInputs, ProbeNotApplicableError
from core.probes.sequences import TokenStatistics, token_statistics
from core.probes.spec import ProbeSpec, ShadowRequest
from core.probes.target import SequenceSet
from core.reporter import Reporter
from core.shadows import inclusion_matrix, joined

# The most shadow models a spec may ask for (a sweep's axis holds at most 1,000 values);
# a server caps it lower (MEMLAB_MAX_SHADOWS).
MAX_SHADOWS = 1000


class ShadowProbeSpec(ProbeSpec):
    """Fields of every probe that reads shadow models."""

    shadows: int = Field(
        16,
        ge=2,
        le=MAX_SHADOWS,
        description="Shadow models to train, each on a random half of the target's pool "
        "(its members and non-members); every pool item is IN for half of them. The server "
        "caps it (MEMLAB_MAX_SHADOWS).",
    )
    pool_seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description="Draws which half each shadow trains on. Probes with the same pool seed "
        "and shadow count on one target share their shadow models.",
    )

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.held_out, Feature.shadow_training})

    def shadow_models(self) -> ShadowRequest:
        return ShadowRequest(count=self.shadows, seed=self.pool_seed)


@dataclass(frozen=True)
class PoolStatistics:
    """Every model's token statistics on the pool, and who trained on what.

    pool:       the N pool items (members first).
    is_member:  (N,) bool, the target's members.
    keep:       (M, N) bool, shadow i trained on pool item j.
    target:     the target model's statistics on the pool.
    shadows:    M statistics, one per shadow, in row order.
    """

    pool: SequenceSet
    is_member: torch.Tensor
    keep: torch.Tensor
    target: TokenStatistics
    shadows: tuple[TokenStatistics, ...]

    def stacked(
        self, statistic: Callable[[TokenStatistics], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(target's (N,), shadows' (M, N)) values of a per-item statistic, e.g.
        `TokenStatistics.mean_logit_confidence`."""
        shadow_values = torch.stack([statistic(s) for s in self.shadows])
        return statistic(self.target), shadow_values

    def training_size_note(self) -> str | None:
        """A warning when the shadows trained on a set of another size than the target's
        (more than 10% apart): LiRA models the target as one more shadow."""
        shadow_items = float(self.keep.sum(1).double().mean())
        target_items = int(self.is_member.sum())
        if abs(shadow_items - target_items) <= 0.1 * target_items:
            return None
        return (
            f"the shadows trained on {shadow_items:,.0f} items on average, the target on "
            f"{target_items:,}: a shadow of another training size is not the target's twin. "
            "Hold out as many items as the target trains on (e.g. associative_recall "
            "test_examples = train_examples, kg_memorization held_out_fraction 0.5)"
        )


def pool_statistics(
    spec: ShadowProbeSpec, inputs: ProbeInputs, reporter: Reporter
) -> PoolStatistics:
    """Run the target and every shadow over the pool (progress 0.1 → 0.8)."""
    target = inputs.target
    if len(inputs.shadows) != spec.shadows:
        raise ProbeNotApplicableError(
            f"{len(inputs.shadows)} shadow models were given for {spec.shadows} asked"
        )
    members, non_members = target.members, target.non_members
    if not isinstance(members, SequenceSet) or not isinstance(non_members, SequenceSet):
        raise ProbeNotApplicableError("shadow probes read token sequences on both sides")
    pool = joined(members, non_members)
    for index, shadow in enumerate(inputs.shadows):
        if shadow.vocabulary != target.vocabulary:
            raise ProbeNotApplicableError(f"shadow {index} reads other token ids than the target")
    is_member = torch.cat(
        [
            torch.ones(len(members), dtype=torch.bool),
            torch.zeros(len(non_members), dtype=torch.bool),
        ]
    )
    reporter.progress(0.1, f"scoring the target on {len(pool)} pool items")
    target_stats = token_statistics(target.trained_model, pool)
    shadow_stats = []
    for index, shadow in enumerate(inputs.shadows):
        reporter.progress(0.1 + 0.7 * index / len(inputs.shadows), f"scoring shadow {index}")
        shadow_stats.append(token_statistics(shadow.trained_model, pool))
    keep = inclusion_matrix(spec.pool_seed, spec.shadows, len(pool))
    return PoolStatistics(pool, is_member, keep, target_stats, tuple(shadow_stats))
