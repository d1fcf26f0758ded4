"""Secret-Sharer canaries: secrets from a declared space, planted in training text.

A canary is `template` with `{secret}` replaced by `length` symbols from `alphabet`, so
the space R has |alphabet|^length members, each with an index in [0, |R|). For every
insertion count r in `insertions`, `per_insertion` secrets are planted r times in the
training data; `controls` more are drawn but never planted, to show the exposure of a
secret the model never saw. All draws are distinct and fixed by `seed`.

Example (alphabet "0123456789", length 3): index 42 is the secret "042", and with the
template "my pin is {secret}" the planted line is "my pin is 042".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from core.spec_model import SpecModel


class CanarySpec(SpecModel):
    """Which canaries to plant, and how often."""

    template: str = Field("my pin is {secret}", min_length=8, max_length=200)
    alphabet: str = Field("0123456789", min_length=2, max_length=64)
    length: int = Field(5, ge=1, le=12, description="Symbols per secret: |R| = |alphabet|^length.")
    insertions: tuple[int, ...] = Field(
        (1, 10, 100), min_length=1, max_length=8, description="Insertion counts r to test."
    )
    per_insertion: int = Field(4, ge=1, le=100, description="Canaries planted for each r.")
    controls: int = Field(4, ge=0, le=100, description="Canaries drawn but never planted.")
    seed: int = Field(0, ge=0, description="Seed of the secrets (data, not training).")

    @field_validator("template")
    @classmethod
    def _one_slot(cls, template: str) -> str:
        if template.count("{secret}") != 1 or "\n" in template:
            raise ValueError("template must hold '{secret}' exactly once and no newline")
        return template

    @field_validator("insertions")
    @classmethod
    def _positive(cls, counts: tuple[int, ...]) -> tuple[int, ...]:
        if any(r < 1 or r > 10_000 for r in counts):
            raise ValueError("every insertion count must be between 1 and 10,000")
        return counts

    @field_validator("alphabet")
    @classmethod
    def _distinct(cls, alphabet: str) -> str:
        if len(set(alphabet)) != len(alphabet) or "\n" in alphabet:
            raise ValueError("alphabet symbols must be distinct and not a newline")
        return alphabet

    @model_validator(mode="after")
    def _enough_secrets(self) -> CanarySpec:
        needed = self.per_insertion * len(self.insertions) + self.controls
        if needed > self.space_size:
            raise ValueError(f"{needed} distinct secrets do not fit a space of {self.space_size}")
        return self

    @property
    def planted_line_count(self) -> int:
        """Lines the canaries add to a training set: each planted one, its r times."""
        return self.per_insertion * sum(self.insertions)

    @property
    def space_size(self) -> int:
        return len(self.alphabet) ** self.length

    def secret(self, index: int) -> str:
        """The secret with this index: its digits in base |alphabet|, most significant first."""
        base = len(self.alphabet)
        symbols = []
        for _ in range(self.length):
            index, digit = divmod(index, base)
            symbols.append(self.alphabet[digit])
        return "".join(reversed(symbols))

    def text(self, index: int) -> str:
        """The canary line for the secret with this index (no newline)."""
        return self.template.replace("{secret}", self.secret(index))

    @property
    def secret_offset(self) -> int:
        """Characters of the template before the secret."""
        return self.template.index("{secret}")


@dataclass(frozen=True)
class Canary:
    index: int  # in [0, space_size)
    text: str
    insertions: int  # 0 = a never-inserted control


def draw_canaries(spec: CanarySpec) -> list[Canary]:
    """The planted canaries (grouped by r, in `insertions` order), then the controls."""
    count = spec.per_insertion * len(spec.insertions) + spec.controls
    indices = random.Random(spec.seed).sample(range(spec.space_size), count)
    plan = [r for r in spec.insertions for _ in range(spec.per_insertion)] + [0] * spec.controls
    return [Canary(i, spec.text(i), r) for i, r in zip(indices, plan, strict=True)]


def planted_lines(spec: CanarySpec) -> list[str]:
    """Every planted canary line, each repeated its insertion count, newline-terminated."""
    return [c.text + "\n" for c in draw_canaries(spec) for _ in range(c.insertions)]
