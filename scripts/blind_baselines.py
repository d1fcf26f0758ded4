"""The blind baseline on every kind's membership split: does a score that never looks at
the model (−zlib length) tell members from non-members? It must not.

For each kind's `membership_spec()` (at least 200 members and 200 non-members), the split
as the membership probes draw it (balanced, seeded), the blind baseline's AUC and its 95%
bootstrap interval; then the same for capacity_tradeoff's joint split as it was before
members and non-members were matched per task, which the baseline does separate.

    .venv/bin/python scripts/blind_baselines.py
"""

from __future__ import annotations

from core.built import MembershipSplit
from core.catalog import all_kinds
from core.data.arithmetic import arithmetic_problems
from core.probes.membership import balanced_sets
from core.probes.scoring import bootstrap_auc_interval, roc_auc
from core.probes.sequences import zlib_bits
from core.probes.target import SequenceSet


def blind_baseline(split: MembershipSplit, seed: int) -> tuple[int, float, float, float]:
    """(items per side, AUC, interval low, interval high) of −zlib bits on the split."""
    assert split.non_members is not None
    members, non_members = balanced_sets(split.items_target(), max_items=2000, seed=seed)
    member_scores, non_member_scores = -zlib_bits(members.texts), -zlib_bits(non_members.texts)
    low, high = bootstrap_auc_interval(member_scores, non_member_scores, seed=seed)
    return len(members), roc_auc(member_scores, non_member_scores), low, high


def unmatched_joint_split() -> MembershipSplit:
    """capacity_tradeoff's joint split before strata: every training line against every
    held-out line (4 sums and the held-out facts)."""
    kind = all_kinds()["capacity_tradeoff"]
    assert kind.build is not None
    spec = kind.spec_class.membership_spec()
    built = kind.build(spec)
    assert built.membership.non_members is not None
    characters = built.vocabulary

    def encode(text: str) -> list[int]:
        return [characters.index(c) for c in text]

    held_out = set(getattr(spec, "held_out", ()))
    held_out_sums = [p.line for p in arithmetic_problems() if p.key in held_out]
    unseen_facts = [t for t in built.membership.non_members.texts if t.startswith("Capital")]
    return MembershipSplit(
        members=SequenceSet.from_texts(list(built.training_items.texts), encode),
        non_members=SequenceSet.from_texts(held_out_sums + unseen_facts, encode),
        rule="unmatched",
    )


def main() -> None:
    print("| kind | split | items per side | blind AUC | 95% interval |")
    print("|---|---|---|---|---|")
    for name, kind in sorted(all_kinds().items()):
        if kind.build is None:
            continue
        spec = kind.spec_class.membership_spec()
        n, auc, low, high = blind_baseline(kind.build(spec).membership, spec.seed)
        print(f"| {name} | membership_spec | {n} | {auc:.3f} | [{low:.3f}, {high:.3f}] |")
    n, auc, low, high = blind_baseline(unmatched_joint_split(), seed=0)
    print(
        f"| capacity_tradeoff | joint, unmatched (before) | {n} | {auc:.3f} | "
        f"[{low:.3f}, {high:.3f}] |"
    )


if __name__ == "__main__":
    main()
