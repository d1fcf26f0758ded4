"""Shadow models: runs of a target's spec, each trained on a random half of its pool.

The likelihood-ratio attack (LiRA, Carlini et al. 2022) and counterfactual memorization
(Zhang et al. 2021) both compare models that trained on an item with models that did not.
memlab makes them from the target's own membership split: the *pool* is the target's
members followed by its non-members (one generator, so every pool item could have been a
member), and shadow model i trains on the items that row i of a seeded inclusion matrix
keeps. Each item is kept by ⌊M/2⌋ of the M shadows: with M even, every item has as many
IN models as OUT models.

A kind offers this with one field, `pool_subset`, which its `build` hands to
`train_on_pool_subset`: the kind builds the target's data as always, and the shadow's
training items, batches and membership split are then cut from the pool. A shadow run
is an ordinary experiment of the kind (its spec is the target's plus `pool_subset`), so
it is queued, batched with the other shadows where the kind batches (they differ only in
`pool_subset.index`), checkpointed and listed like any run, and a later probe on the same
pool finds it again by its spec hash.

Shadows share the target's seed, hence its initial weights and its batch-order stream:
they differ only in the half of the pool they train on.

Dimensions: M shadow models, N pool items, T positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field, model_validator

from core.built import Built, MembershipSplit
from core.evaluation import argmax_recall
from core.probes.target import IGNORE_INDEX, SequenceSet
from core.spec_model import SpecModel, field_error
from core.training.samplers import ExampleSampler

if TYPE_CHECKING:
    from core.specs import ExperimentSpec

# The field that makes a run a shadow, and its path among a kind's batch fields.
POOL_SUBSET_FIELD = "pool_subset"
SHADOW_INDEX_PATH = "pool_subset.index"


class PoolSubset(SpecModel):
    """Which half of its pool a shadow model trains on: row `index` of the inclusion
    matrix that `seed` draws for `count` shadow models."""

    seed: int = Field(0, ge=0, le=2**31 - 1, description="Draws the inclusion matrix.")
    count: int = Field(..., ge=2, le=4096, description="Shadow models sharing the matrix.")
    index: int = Field(..., ge=0, description="This shadow's row of the matrix.")

    @model_validator(mode="after")
    def _index_in_range(self) -> PoolSubset:
        if self.index >= self.count:
            raise field_error("index", f"index ({self.index}) must be below count ({self.count})")
        return self


def pool_subset_field() -> Any:
    """The `pool_subset` field, described once for every kind that has it."""
    return Field(
        None,
        description="Train on a random half of this spec's membership pool (its members "
        "and non-members) instead of its training items: a shadow model for the lira and "
        "counterfactual probes, which submit these runs themselves. Null: an ordinary run.",
    )


def inclusion_matrix(seed: int, count: int, pool_size: int) -> torch.Tensor:
    """(M, N) bool: entry (i, j) says whether shadow i trains on pool item j.

    Each column holds exactly ⌊M/2⌋ trues (every item is IN for half of the shadows), as
    in Carlini et al.'s code: a uniform draw per entry, ranked within each column.

    >>> keep = inclusion_matrix(seed=0, count=4, pool_size=6)
    >>> keep.sum(0).tolist()
    [2, 2, 2, 2, 2, 2]
    """
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(count, pool_size, generator=generator)
    ranks = draws.argsort(0).argsort(0)  # (M, N) each entry's rank within its column
    return ranks < count // 2


def pool_items(split: MembershipSplit) -> SequenceSet:
    """The pool: the split's members, then its non-members."""
    members, non_members = split.members, split.non_members
    if not isinstance(members, SequenceSet) or not isinstance(non_members, SequenceSet):
        raise ValueError("a pool needs members and non-members that are token sequences")
    return joined(members, non_members)


def joined(first: SequenceSet, second: SequenceSet) -> SequenceSet:
    """`first`'s items then `second`'s, right-padded to one width; where either side
    carries repeat counts, an item of the other counts once."""
    width = max(first.inputs.shape[1], second.inputs.shape[1])
    inputs = torch.cat([_pad(first.inputs, width, 0), _pad(second.inputs, width, 0)])
    targets = torch.cat(
        [_pad(first.targets, width, IGNORE_INDEX), _pad(second.targets, width, IGNORE_INDEX)]
    )
    repeats = None
    if first.repeats is not None or second.repeats is not None:
        repeats = torch.cat([_repeats_of(first), _repeats_of(second)])
    return SequenceSet(inputs, targets, first.texts + second.texts, repeats)


def train_on_pool_subset(built: Built, subset: PoolSubset | None, batch_size: int) -> Built:
    """`built` as the shadow that `subset` names: it trains on the pool items its row
    keeps (an item with repeat count r drawn r times as often), its members are those
    items and its non-members the rest of the pool. Unchanged when `subset` is None.

    The kind's own evaluation still runs (its figures read the kind's splits, half of
    which the shadow may have trained on); `eval/shadow_in_accuracy` and
    `eval/shadow_out_accuracy`, the argmax recall on the shadow's two halves, are added.
    """
    if subset is None:
        return built
    pool = pool_items(built.membership)
    kept = inclusion_matrix(subset.seed, subset.count, len(pool))[subset.index]  # (N,)
    inside = pool.subset(kept.nonzero().squeeze(1))
    outside = pool.subset((~kept).nonzero().squeeze(1))
    rows = _training_rows(inside)
    sampler = ExampleSampler(inside.inputs[rows], inside.targets[rows], batch_size)
    base_evaluate = built.evaluate

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        figures = base_evaluate(model) if base_evaluate is not None else {}
        return {
            **figures,
            "eval/shadow_in_accuracy": argmax_recall(
                model, inside.inputs, inside.targets, batch_size=512
            ).accuracy,
            "eval/shadow_out_accuracy": argmax_recall(
                model, outside.inputs, outside.targets, batch_size=512
            ).accuracy,
        }

    return Built(
        make_model=built.make_model,
        training_items=inside,
        sample_batch=sampler,
        evaluate=evaluate,
        membership=MembershipSplit(
            members=inside,
            non_members=outside,
            rule=f"shadow {subset.index} of {subset.count} (pool seed {subset.seed}): members, "
            "the pool items it trained on; non-members, the rest of the pool. The pool: "
            + built.membership.rule,
        ),
        vocab_size=built.vocab_size,
        vocabulary=built.vocabulary,
        max_length=built.max_length,
        notes={**built.notes, "shadow": f"{subset.index} of {subset.count}"},
    )


def shadow_specs(target: ExperimentSpec, count: int, seed: int) -> list[ExperimentSpec]:
    """The specs of the `count` shadow models of `target` whose inclusion matrix `seed`
    draws: the target's spec (without its own probes) with `pool_subset` set."""
    fields = target.model_dump(mode="json", exclude={"probes", "max_wall_s"})
    return [
        type(target).model_validate(
            {**fields, POOL_SUBSET_FIELD: {"seed": seed, "count": count, "index": index}}
        )
        for index in range(count)
    ]


def _pad(values: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    """(N, T) right-padded with `fill` to (N, width)."""
    if values.shape[1] == width:
        return values
    padding = torch.full((values.shape[0], width - values.shape[1]), fill, dtype=values.dtype)
    return torch.cat([values, padding], dim=1)


def _repeats_of(items: SequenceSet) -> torch.Tensor:
    """Each item's repeat count, 1 where the set carries none, (N,)."""
    if items.repeats is not None:
        return items.repeats
    return torch.ones(len(items), dtype=torch.long)


def _training_rows(items: SequenceSet) -> torch.Tensor:
    """Row indices with each item repeated its repeat count, (Σ repeats,)."""
    indices = torch.arange(len(items))
    if items.repeats is None:
        return indices
    return indices.repeat_interleave(items.repeats.clamp(min=1))
