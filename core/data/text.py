"""Character-level text data: a vocabulary over a corpus and nanoGPT-style window sampling.

Training text is a list of lines. `LineStreamSampler` shuffles the lines anew for each
pass, concatenates the passes into one stream, and cuts random windows of
`block_size + 1` characters out of it, as nanoGPT does for its character-level runs.

Example:
    >>> vocab = CharVocab.from_texts(["<1+2=3>"])
    >>> vocab.decode(vocab.encode("<2+1=3>"))
    '<2+1=3>'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


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


class LineStreamSampler:
    """Draws (inputs, targets) windows from a stream of freshly shuffled passes over `lines`."""

    def __init__(
        self,
        lines: Sequence[str],
        vocab: CharVocab,
        block_size: int,
        batch_size: int,
        passes: int,
        seed: int,
    ) -> None:
        if not lines:
            raise ValueError("cannot sample from an empty list of lines")
        order_rng = torch.Generator().manual_seed(seed)
        encoded = [torch.tensor(vocab.encode(line), dtype=torch.long) for line in lines]
        stream = [
            encoded[i]
            for _ in range(passes)
            for i in torch.randperm(len(lines), generator=order_rng)
        ]
        self.stream = torch.cat(stream)  # (N,) every pass, concatenated
        if self.stream.numel() <= block_size + 1:
            raise ValueError(
                f"the training text ({self.stream.numel()} characters) is shorter than "
                f"block_size + 1 ({block_size + 1}); raise passes or lower block_size"
            )
        self.block_size = block_size
        self.batch_size = batch_size

    def __call__(
        self, rng: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Starts are drawn from [0, N - T - 1): the stream's very last window is never used,
        # which is immaterial over hundreds of passes and kept so published numbers replay.
        starts = torch.randint(
            0, self.stream.numel() - self.block_size - 1, (self.batch_size,), generator=rng
        )
        offsets = starts[:, None] + torch.arange(self.block_size + 1)  # (B, T + 1)
        windows = self.stream[offsets]
        return windows[:, :-1].to(device), windows[:, 1:].to(device)
