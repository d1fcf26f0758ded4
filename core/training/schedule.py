"""Learning-rate schedules: linear warmup, cosine/linear/no decay to `min_lr`, then flat."""

from __future__ import annotations

import math

from core.specs import TrainSpec


def learning_rate(step: int, spec: TrainSpec) -> float:
    """Learning rate for optimizer step `step` (0-based).

    >>> spec = TrainSpec(steps=100, lr=1.0, min_lr=0.0, warmup_steps=10)
    >>> learning_rate(4, spec), learning_rate(10, spec), learning_rate(100, spec)
    (0.5, 1.0, 0.0)
    """
    warmup = spec.warmup
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    if spec.schedule == "constant":
        return spec.lr
    progress = min(1.0, (step - warmup) / max(1, spec.decay_end - warmup))
    if spec.schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return spec.min_lr + shape * (spec.lr - spec.min_lr)
