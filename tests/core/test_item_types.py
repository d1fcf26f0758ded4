"""Probe targets hold typed items: token sequences or arrays (vectors, images, samples),
and a probe that cannot read a kind's items is refused at submission."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest
import torch

from core.built import item_digests
from core.catalog import parse_probe_spec
from core.probes.features import Feature, ItemType
from core.probes.target import ArraySet, SequenceSet
from core.specs import ComputedSpec, ComputeLimit


class _VectorKindSpec(ComputedSpec):
    """A kind whose runs offer feature vectors with held-out ones (never registered)."""

    kind: Literal["example_vectors"] = "example_vectors"
    smoke_fields: ClassVar[dict[str, Any]] = {"seed": 1}

    def compute_limits(self) -> tuple[ComputeLimit, ...]:
        return ()

    def probe_features(self) -> frozenset[Feature]:
        return frozenset({Feature.held_out})

    def probe_item_type(self) -> ItemType:
        return ItemType.vectors


def test_a_token_probe_is_refused_on_a_kind_whose_items_are_vectors() -> None:
    reason = parse_probe_spec({"kind": "loss_mia"}).inapplicability(_VectorKindSpec())
    assert reason is not None and "reads tokens items" in reason and "vectors" in reason


def test_an_array_set_is_not_a_token_set_and_labels_match_its_items() -> None:
    with pytest.raises(ValueError, match="SequenceSet"):
        ArraySet(torch.zeros(3, 2), ItemType.tokens)
    with pytest.raises(ValueError, match="labels"):
        ArraySet(torch.zeros(3, 2), ItemType.vectors, labels=torch.zeros(2, dtype=torch.long))
    images = ArraySet(torch.rand(4, 1, 2, 2), ItemType.images)
    assert len(images) == 4 and len(set(item_digests(images))) == 4


def test_a_sequence_digests_the_same_whatever_the_padding_of_its_set() -> None:
    short = SequenceSet.from_token_lists([[5, 6, 7]], [0], ["a"])
    padded = SequenceSet.from_token_lists([[5, 6, 7], [1, 2, 3, 4, 5, 6]], [0, 0], ["a", "b"])
    assert item_digests(short)[0] == item_digests(padded)[0]
    assert item_digests(padded)[0] != item_digests(padded)[1]
