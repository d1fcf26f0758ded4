"""Character-level text: a vocabulary over a corpus, for nanoGPT-style character models.

Training windows are cut from the encoded lines by `core.training.samplers.TokenStreamSampler`.

Example:
    >>> vocab = CharVocab.from_texts(["<1+2=3>"])
    >>> vocab.decode(vocab.encode("<2+1=3>"))
    '<2+1=3>'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class UnknownCharacterError(ValueError):
    """Text holds a character outside the vocabulary it is encoded with."""


@dataclass(frozen=True)
class CharVocab:
    """Maps each distinct character to an id, in sorted order so the ids are reproducible."""

    chars: str

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharVocab:
        return cls("".join(sorted(set("".join(texts)))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def id(self, char: str) -> int:
        index = self.chars.find(char)
        if len(char) != 1 or index < 0:
            raise UnknownCharacterError(f"character {char!r} is not in the vocabulary")
        return index

    def encode(self, text: str) -> list[int]:
        return [self.id(c) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)
