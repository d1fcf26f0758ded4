"""Batch samplers for the trainer: random batches of fixed (N, T) examples, or random
windows of a token stream built from shuffled passes over training texts.

A sampler is called with the trainer's seeded generator and a device and returns
(inputs, targets), both (B, T); drawing only from that generator is what lets a
resumed run draw the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


class ExampleSampler:
    """Random batches (with replacement) of fixed training examples, drawn from the
    trainer's seeded generator so that a resumed run draws the same batches."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int) -> None:
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size

    def __call__(
        self, rng: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randint(0, self.inputs.shape[0], (self.batch_size,), generator=rng)
        return self.inputs[rows].to(device), self.targets[rows].to(device)


class TokenStreamSampler:
    """Random windows of `block_size + 1` tokens from one stream: `passes` passes over the
    token sequences, each pass in a fresh order drawn from `seed`, concatenated (as
    nanoGPT cuts its training windows). Inputs are a window's first T tokens and targets
    its last T.

    `use_last_window=False` never starts a window at the stream's very last position
    (starts are drawn from [0, N − T − 1) instead of [0, N − T)): immaterial over hundreds
    of passes, and what the character-level kinds were trained with, so their published
    numbers replay.

    Example:
        >>> sampler = TokenStreamSampler([[1, 2], [3]], block_size=2, batch_size=1, passes=2,
        ...                              seed=0)
        >>> sorted(sampler.stream.tolist())
        [1, 1, 2, 2, 3, 3]
        >>> inputs, targets = sampler(torch.Generator().manual_seed(0), torch.device("cpu"))
        >>> inputs.shape, targets.shape
        (torch.Size([1, 2]), torch.Size([1, 2]))
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        block_size: int,
        batch_size: int,
        passes: int,
        seed: int,
        *,
        use_last_window: bool = True,
    ) -> None:
        if not sequences:
            raise ValueError("cannot sample from an empty list of texts")
        order_rng = torch.Generator().manual_seed(seed)
        encoded = [torch.tensor(sequence, dtype=torch.long) for sequence in sequences]
        self.stream = torch.cat(
            [
                encoded[i]
                for _ in range(passes)
                for i in torch.randperm(len(sequences), generator=order_rng)
            ]
        )  # (N,) every pass, concatenated
        if self.stream.numel() <= block_size + 1:
            raise ValueError(
                f"the training text ({self.stream.numel()} tokens) is shorter than "
                f"block_size + 1 ({block_size + 1}); raise passes or lower block_size"
            )
        self.block_size, self.batch_size = block_size, batch_size
        self.start_limit = self.stream.numel() - block_size - (0 if use_last_window else 1)

    @classmethod
    def from_lines(
        cls,
        lines: Sequence[str],
        encode: Callable[[str], list[int]],
        block_size: int,
        batch_size: int,
        passes: int,
        seed: int,
    ) -> TokenStreamSampler:
        """Windows over text lines encoded by `encode` (a character vocabulary), never
        starting at the stream's last position: how the character-level kinds and their
        published runs are sampled."""
        return cls(
            [encode(line) for line in lines],
            block_size,
            batch_size,
            passes,
            seed,
            use_last_window=False,
        )

    def __call__(
        self, rng: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, self.start_limit, (self.batch_size,), generator=rng)
        windows = self.stream[starts[:, None] + torch.arange(self.block_size + 1)]  # (B, T + 1)
        return windows[:, :-1].to(device), windows[:, 1:].to(device)
