"""What a kind builds from a spec before any training: data splits, vocabulary and model.

A kind's `build(spec) -> Built` is the one place its data and model are made. Training
calls it, and probing calls it again to rebuild the target around the final weights, so
a probe sees exactly the items that training saw, by construction rather than by a
second copy of the seeds and offsets.

Dimensions: N items, T positions, B batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from core.probes.target import Canaries, Facts, ItemSet, ProbeTarget, SequenceSet
from core.training.trainer import BatchSampler, Evaluator


@dataclass(frozen=True)
class MembershipSplit:
    """Items a membership probe compares: members (trained on) and non-members (never
    trained on), with the rule that drew them, in words, for the probe's report.

    member_answers / non_member_answers: the same items scored on their answer only (a
    fact's attribute, a sum's result), where an item has a part that can be recalled.
    member_strata / non_member_strata: each item's stratum (a task, a style) where the
    items fall into strata; membership attacks then compare as many of each stratum on
    both sides (`core.probes.membership.balanced_sets`). None = one stratum.
    """

    members: ItemSet
    non_members: ItemSet | None
    rule: str
    member_answers: SequenceSet | None = None
    non_member_answers: SequenceSet | None = None
    canaries: Canaries | None = None
    facts: Facts | None = None
    member_strata: tuple[str, ...] | None = None
    non_member_strata: tuple[str, ...] | None = None

    def items_target(self) -> ProbeTarget:
        """The split as a target without a model, for what reads items only (a blind
        baseline; the item-type and split checks)."""
        return ProbeTarget(
            model=None,
            n_parameters=0,
            vocab_size=0,
            vocabulary="",
            members=self.members,
            non_members=self.non_members,
            member_strata=self.member_strata,
            non_member_strata=self.non_member_strata,
        )


@dataclass(frozen=True)
class Built:
    """A spec made concrete.

    make_model:     a freshly initialised model (seeded from the spec), (B, T) → (B, T, V).
    training_items: every item the training batches are drawn from, as items, so that a
                    test can check members ⊆ training items and non-members ∩ them = ∅.
    sample_batch:   draws one training batch from `training_items`' data.
    evaluate:       the kind's evaluation on its eval split, called by the trainer.
    """

    make_model: Callable[[], nn.Module]
    training_items: ItemSet
    sample_batch: BatchSampler
    evaluate: Evaluator | None
    membership: MembershipSplit
    vocab_size: int
    vocabulary: str  # identifies the token ↔ id map; equal for models that can share items
    max_length: int | None = None  # the model's context; None = unbounded
    notes: dict[str, str] = field(default_factory=dict)

    def probe_target(self, model: nn.Module) -> ProbeTarget:
        """The probe target around `model` (the final weights already loaded)."""
        split = self.membership
        return ProbeTarget(
            model=model,
            n_parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=self.vocab_size,
            vocabulary=self.vocabulary,
            members=split.members,
            non_members=split.non_members,
            canaries=split.canaries,
            facts=split.facts,
            member_answers=split.member_answers,
            non_member_answers=split.non_member_answers,
            member_strata=split.member_strata,
            non_member_strata=split.non_member_strata,
            max_length=self.max_length,
            notes={"membership_rule": split.rule, **self.notes},
        )


def item_digests(items: ItemSet) -> list[str]:
    """One SHA-256 per item over its content (token ids and scored targets, or values),
    to compare item sets across two builds or against the training items."""
    return [hashlib.sha256(row).hexdigest() for row in items.row_bytes()]
