"""Batch samplers for the trainer over fixed example sets (kinds whose items are (N, T)
inputs with their targets, rather than a text stream)."""

from __future__ import annotations

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
