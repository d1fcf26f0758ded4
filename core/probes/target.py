"""What a probe sees of a finished experiment: a model, or saved artifacts, and the items
around it.

A kind's `build(spec)` (core/built.py) makes its items; the catalog rebuilds them around
the final weights (or, for a kind that does not train, loads them from the run's saved
artifacts) as a `ProbeTarget`: the training items (members) and, where the kind generates
its data, items drawn from the same generator but never trained on (non-members). Kinds
that can plant canaries or that know the entropy of their facts add those too.

Items are typed. Token sequences scored by next-token prediction (`SequenceSet`) are
what the sequence-model kinds offer; vectors, images and generated samples
(`ArraySet`) are what kinds such as diffusion or tabular learners offer. Each probe
declares the item types it reads (`ProbeSpec.reads`), and a kind the types it offers
(`ExperimentSpec.probe_item_type`), so a probe that cannot read a kind's items is refused
at submission.

Dimensions: N items, T positions, V vocabulary, D features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from core.probes.features import ItemType
from core.training.trainer import IGNORE_INDEX  # a target that is not scored

__all__ = [
    "IGNORE_INDEX",
    "ArraySet",
    "AttributeChoices",
    "Canaries",
    "Facts",
    "ItemSet",
    "ProbeTarget",
    "SequenceSet",
    "TargetUnavailableError",
]


class TargetUnavailableError(LookupError):
    """A finished run left nothing a probe target can be built from (no checkpoint, no
    saved samples); a kind's `target_from_artifacts` raises it too."""


@dataclass(frozen=True)
class SequenceSet:
    """N token sequences, right-padded, with the next-token targets that count.

    inputs:  (N, T) token ids; padding positions hold any valid id.
    targets: (N, T) the token expected after each input position, IGNORE_INDEX where
             the position is padding or is not scored (e.g. the question of a QA pair).
    texts:   N human-readable strings (for zlib, reports and extraction).
    repeats: (N,) how many times each item occurs in the training data; None = once.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    texts: tuple[str, ...]
    repeats: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape or self.inputs.dim() != 2:
            raise ValueError(
                f"inputs {tuple(self.inputs.shape)} and targets {tuple(self.targets.shape)} "
                "must both be (N, T)"
            )
        if len(self.texts) != self.inputs.shape[0]:
            raise ValueError(f"{len(self.texts)} texts for {self.inputs.shape[0]} sequences")

    item_type: ClassVar[ItemType] = ItemType.tokens

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def row_bytes(self) -> list[bytes]:
        """Each item's content (token ids, then scored targets) as bytes, for digests; the
        right padding (token 0, not scored) is left out, so an item digests the same in
        sets padded to different widths."""
        rows = []
        for tokens, targets in zip(self.inputs.tolist(), self.targets.tolist(), strict=True):
            end = len(tokens)
            while end and tokens[end - 1] == 0 and targets[end - 1] == IGNORE_INDEX:
                end -= 1
            rows.append(torch.tensor(tokens[:end] + targets[:end], dtype=torch.int64))
        return [row.numpy().tobytes() for row in rows]

    def subset(self, rows: torch.Tensor) -> SequenceSet:
        """The sequences at `rows` (a 1-D index tensor), in that order."""
        return SequenceSet(
            self.inputs[rows],
            self.targets[rows],
            tuple(self.texts[int(i)] for i in rows),
            self.repeats[rows] if self.repeats is not None else None,
        )

    @classmethod
    def from_token_lists(
        cls,
        sequences: list[list[int]],
        scored_from: list[int],
        texts: list[str],
        repeats: list[int] | None = None,
    ) -> SequenceSet:
        """Language-model items: predict token t+1 from tokens ≤ t, scoring the targets
        from index `scored_from[i]` of sequence i on (0 = the whole sequence after its
        first token). Sequences are right-padded with token 0, which is never scored."""
        width = max(len(s) for s in sequences) - 1
        inputs = torch.zeros(len(sequences), width, dtype=torch.long)
        targets = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.long)
        for row, (tokens, first) in enumerate(zip(sequences, scored_from, strict=True)):
            ids = torch.tensor(tokens, dtype=torch.long)
            inputs[row, : len(tokens) - 1] = ids[:-1]
            start = max(first - 1, 0)  # target index j predicts token j + 1
            targets[row, start : len(tokens) - 1] = ids[start + 1 :]
        counts = torch.tensor(repeats, dtype=torch.long) if repeats is not None else None
        return cls(inputs, targets, tuple(texts), counts)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        encode: Callable[[str], list[int]],
        max_tokens: int | None = None,
        scored_from: list[int] | None = None,
        repeats: list[int] | None = None,
    ) -> SequenceSet:
        """Language-model items from texts. A text longer than `max_tokens` + 1 tokens (the
        model's context) keeps its last ones, where the answer is; `scored_from[i]` is the
        token index of text i from which targets count (default: all after the first)."""
        sequences, firsts = [], []
        for row, text in enumerate(texts):
            tokens = encode(text)
            first = scored_from[row] if scored_from is not None else 0
            if max_tokens is not None and len(tokens) > max_tokens + 1:
                cut = len(tokens) - (max_tokens + 1)
                tokens, first = tokens[cut:], max(first - cut, 0)
            sequences.append(tokens)
            firsts.append(first)
        return cls.from_token_lists(sequences, firsts, list(texts), repeats)


@dataclass(frozen=True)
class ArraySet:
    """N items that are arrays rather than token sequences: feature vectors (N, D), images
    (N, C, H, W) or generated samples of either shape, with an optional label per item.

    values: (N, ...) float tensor; labels: (N,) int64 or None.
    """

    values: torch.Tensor
    item_type: ItemType
    labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.item_type is ItemType.tokens:
            raise ValueError("token sequences are a SequenceSet, not an ArraySet")
        if self.labels is not None and self.labels.shape != self.values.shape[:1]:
            raise ValueError(f"{tuple(self.labels.shape)} labels for {self.values.shape[0]} items")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def row_bytes(self) -> list[bytes]:
        """Each item's values as bytes, for digests."""
        return [row.contiguous().numpy().tobytes() for row in self.values.cpu()]


ItemSet = SequenceSet | ArraySet


@dataclass(frozen=True)
class Canaries:
    """Secret-Sharer canaries: secrets drawn from a space of `space_size` candidates, each
    planted `insertions[i]` times in the training data (0 = a never-inserted control).

    secrets:    one sequence per canary, scored only on the secret's tokens.
    candidates: maps candidate indices (M,) in [0, space_size) to their sequences, scored
                the same way, so a canary's rank among all candidates can be computed.
    """

    secrets: SequenceSet
    insertions: torch.Tensor  # (N,)
    indices: torch.Tensor  # (N,) each secret's index in [0, space_size)
    space_size: int
    candidates: Callable[[torch.Tensor], SequenceSet]


@dataclass(frozen=True)
class AttributeChoices:
    """What each fact's attribute could have been among the attribute values of the
    training facts, for the bits of the mapping (which value goes with which fact).

    values:  N strings, fact i's attribute, in the order the generator drew the facts
             (the order of `Facts.sequences`).
    without_replacement: the generator never gives two facts one value, so fact i could
             only have had a value that facts 0 … i−1 had not taken.
    pose:    (fact indices (M,), values (M,)) → M sequences, the j-th being fact
             `facts[j]`'s prompt followed by `values[j]`, scored exactly as
             `Facts.sequences` scores the fact's own attribute (terminator included).
    """

    values: tuple[str, ...]
    without_replacement: bool
    pose: Callable[[Sequence[int], Sequence[str]], SequenceSet]

    def __post_init__(self) -> None:
        if self.without_replacement and len(set(self.values)) != len(self.values):
            raise ValueError("values drawn without replacement must be distinct")

    def candidates(self, fact: int) -> list[str]:
        """The values still available to fact `fact` (its own among them): the distinct
        values of the training facts, less those drawn before it when drawing is without
        replacement."""
        if self.without_replacement:
            return list(self.values[fact:])
        return list(dict.fromkeys(self.values))


@dataclass(frozen=True)
class Facts:
    """Facts whose attribute the model must produce, scored only on the attribute's tokens
    (terminator included), with each attribute's surprisal −log₂ p(a) under the data
    generator: what a model that knows only the generator would pay for it. Their mean
    is the attribute's entropy; what a model pays less than that, it knows of the fact.

    `choices`, where the kind gives it, lets a probe ask how well the model tells a fact's
    own attribute from the other facts' (the mapping); None = only the total is measured.
    """

    sequences: SequenceSet
    prior_bits: torch.Tensor  # (N,) float64
    choices: AttributeChoices | None = None


@dataclass(frozen=True)
class ProbeTarget:
    """A finished run with the items a probe compares it against.

    model: (B, T) token ids → (B, T, V) next-token logits, in eval mode; None for a target
           built from saved artifacts (e.g. generated samples) of a kind that does not
           train, whose probes read items only.
    """

    model: nn.Module | None
    n_parameters: int
    vocab_size: int
    vocabulary: str  # identifies the token ↔ id map; equal for models that can share items
    members: ItemSet
    non_members: ItemSet | None = None
    canaries: Canaries | None = None
    facts: Facts | None = None
    # The same items scored on their answer only (a fact's attribute, a sum's result),
    # where an item has a part that can be recalled; None = score them whole.
    member_answers: SequenceSet | None = None
    non_member_answers: SequenceSet | None = None
    max_length: int | None = None  # the model's context; None = unbounded
    notes: dict[str, str] = field(default_factory=dict)
    # Each member's and non-member's stratum (a task, a style), where items fall into
    # strata: membership attacks compare as many of each on both sides. None = one.
    member_strata: tuple[str, ...] | None = None
    non_member_strata: tuple[str, ...] | None = None
    # What a generative run produced (samples of the members' shape), for probes that ask
    # how close generation comes to the training items; None = the run generated nothing.
    generated: ArraySet | None = None

    @property
    def device(self) -> torch.device:
        return next(self.trained_model.parameters()).device

    @property
    def trained_model(self) -> nn.Module:
        """The model, for probes that query one (every probe that reads token sequences)."""
        if self.model is None:
            raise ValueError("this target was built from saved artifacts and has no model")
        return self.model
