"""What a probe sees of a finished experiment: its model and the data around it.

An experiment kind exposes itself to probes by registering a target builder (see
`registry.register_probe_target`) that rebuilds, from the experiment's spec and its final
weights, a `ProbeTarget`: the model plus its training items (members) and, where the kind
generates its data, items drawn from the same generator but never trained on
(non-members). Kinds that can plant canaries or that know the entropy of their facts add
those too. Everything is token sequences scored by next-token prediction, so one set of
probes serves every sequence-model kind.

Dimensions: N items, T positions, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import nn

from core.training.trainer import IGNORE_INDEX  # a target that is not scored

__all__ = ["IGNORE_INDEX", "Canaries", "Facts", "Feature", "ProbeTarget", "SequenceSet"]


class Feature(StrEnum):
    """What a target offers beyond a model and its training items; probes declare needs."""

    held_out = "held_out"  # non-members from the same generator as the members
    generation = "generation"  # members are texts whose continuation can be decoded
    canaries = "canaries"  # planted secrets from a declared space, with controls
    facts = "facts"  # facts whose attribute entropy under the generator is known
    # Token ids fixed by the spec's fields, not by the data drawn: a reference model of the
    # same kind trained on other data reads the same items with the same ids.
    fixed_vocabulary = "fixed_vocabulary"


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

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

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
class Facts:
    """Facts whose attribute the model must produce, scored only on the attribute's tokens
    (terminator included), with each attribute's surprisal −log₂ p(a) under the data
    generator: what a model that knows only the generator would pay for it. Their mean
    is the attribute's entropy; what a model pays less than that, it knows of the fact."""

    sequences: SequenceSet
    prior_bits: torch.Tensor  # (N,) float64


@dataclass(frozen=True)
class ProbeTarget:
    """A trained model with the data a probe compares it against.

    model: (B, T) token ids → (B, T, V) next-token logits, in eval mode.
    """

    model: nn.Module
    n_parameters: int
    vocab_size: int
    vocabulary: str  # identifies the token ↔ id map; equal for models that can share items
    members: SequenceSet
    non_members: SequenceSet | None = None
    canaries: Canaries | None = None
    facts: Facts | None = None
    # The same items scored on their answer only (a fact's attribute, a sum's result),
    # where an item has a part that can be recalled; None = score them whole.
    member_answers: SequenceSet | None = None
    non_member_answers: SequenceSet | None = None
    max_length: int | None = None  # the model's context; None = unbounded
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
