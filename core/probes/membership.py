"""The shared shape of a membership-inference probe: score members and non-members with
one function of the model's token statistics, then report the attack beside a blind
baseline. The probe kinds (loss_mia, zlib_mia, min_k_mia, …) differ only in the score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field

from core.probes.features import Feature
from core.probes.scoring import attack_report
from core.probes.sequences import TokenStatistics, token_statistics, zlib_bits
from core.probes.spec import ProbeSpec
from core.probes.target import ProbeTarget, SequenceSet
from core.reporter import Reporter

# (token statistics of a set, the set) → one score per item, higher = more likely member.
ScoreFn = Callable[[TokenStatistics, SequenceSet], torch.Tensor]
# (members' statistics, non-members' statistics) → more figures for the report.
ExtraFn = Callable[[TokenStatistics, TokenStatistics], dict[str, Any]]

BLIND_BASELINE = "−(zlib-compressed length of the item), which never looks at the model"


class MembershipProbeSpec(ProbeSpec):
    """Common fields of the membership attacks."""

    max_items: int = Field(
        2000,
        ge=10,
        le=100_000,
        description="Members and non-members each subsampled (seeded) to at most this many.",
    )
    bootstrap_rounds: int = Field(
        1000,
        ge=10,
        le=100_000,
        description="Resamplings behind the AUC's 95% interval, for the attack and the "
        "blind baseline alike.",
    )

    needs: ClassVar[frozenset[Feature]] = frozenset({Feature.held_out})


def balanced_sets(
    target: ProbeTarget, max_items: int, seed: int
) -> tuple[SequenceSet, SequenceSet]:
    """Members and non-members of equal size (the smaller set's, at most `max_items`),
    drawn seeded; where the target gives strata, as many of each stratum on both sides."""
    assert target.non_members is not None  # guaranteed by the `held_out` need
    if target.member_strata is not None and target.non_member_strata is not None:
        pairs = matched_pairs(target.member_strata, target.non_member_strata, seed)[:max_items]
        member_rows = torch.tensor(sorted(member for member, _ in pairs), dtype=torch.long)
        non_member_rows = torch.tensor(sorted(other for _, other in pairs), dtype=torch.long)
        return target.members.subset(member_rows), target.non_members.subset(non_member_rows)
    size = min(len(target.members), len(target.non_members), max_items)
    generator = torch.Generator().manual_seed(seed)
    members = target.members.subset(torch.randperm(len(target.members), generator=generator)[:size])
    non_members = target.non_members.subset(
        torch.randperm(len(target.non_members), generator=generator)[:size]
    )
    return members, non_members


def matched_pairs(
    member_strata: Sequence[str], non_member_strata: Sequence[str], seed: int
) -> list[tuple[int, int]]:
    """(member row, non-member row) pairs of one stratum each, as many in a stratum as
    its smaller side has, in a seeded random order (so any prefix is balanced too); a
    stratum that only one side has is left out.

    Members and non-members then come from one mixture, so an attack cannot win by
    telling strata apart (sums from facts, one style from another).

    >>> members, others = ["sum", "sum", "sum", "fact"], ["fact", "fact", "sum"]
    >>> sorted((members[m], others[n]) for m, n in matched_pairs(members, others, seed=0))
    [('fact', 'fact'), ('sum', 'sum')]
    """
    generator = torch.Generator().manual_seed(seed)
    pairs: list[tuple[int, int]] = []
    for stratum in sorted(set(member_strata) & set(non_member_strata)):
        ours = [i for i, s in enumerate(member_strata) if s == stratum]
        theirs = [i for i, s in enumerate(non_member_strata) if s == stratum]
        size = min(len(ours), len(theirs))
        ours_drawn = torch.randperm(len(ours), generator=generator)[:size].tolist()
        theirs_drawn = torch.randperm(len(theirs), generator=generator)[:size].tolist()
        pairs += [(ours[a], theirs[b]) for a, b in zip(ours_drawn, theirs_drawn, strict=True)]
    order = torch.randperm(len(pairs), generator=generator).tolist()
    return [pairs[i] for i in order]


def run_attack(
    spec: MembershipProbeSpec,
    target: ProbeTarget,
    reporter: Reporter,
    score: ScoreFn,
    *,
    score_name: str,
    extra: ExtraFn | None = None,
) -> dict[str, Any]:
    """Score both sets with `score`, and report the attack and the blind baseline; `extra`
    adds figures of its own from the same token statistics (e.g. a sweep of k)."""
    members, non_members = balanced_sets(target, spec.max_items, spec.seed)
    reporter.progress(0.1, f"scoring {len(members)} members")
    member_stats = token_statistics(target.model, members)
    member_scores = score(member_stats, members)
    reporter.progress(0.5, f"scoring {len(non_members)} non-members")
    non_member_stats = token_statistics(target.model, non_members)
    non_member_scores = score(non_member_stats, non_members)
    reporter.progress(0.9, "bootstrapping the AUC")
    report = attack_report(
        member_scores,
        non_member_scores,
        -zlib_bits(members.texts),
        -zlib_bits(non_members.texts),
        seed=spec.seed,
        bootstrap_rounds=spec.bootstrap_rounds,
        blind_baseline=BLIND_BASELINE,
    )
    added = extra(member_stats, non_member_stats) if extra else {}
    return {
        "score": score_name,
        **report,
        **score_summary(member_scores, non_member_scores),
        **added,
    }


def score_summary(members: torch.Tensor, non_members: torch.Tensor) -> dict[str, Any]:
    """Mean score of each set, to read beside the AUC."""
    return {
        "mean_score": {
            "members": float(members.nanmean()),
            "non_members": float(non_members.nanmean()),
        }
    }
