"""Synthetic recall tasks as (inputs, targets) batches: MQAR, KEEP-n-TH and Haar projection.

Each generator returns inputs (N, T) of token ids and targets (N, T) holding the token
expected after each input position, IGNORE_INDEX where nothing is scored. Every draw
comes from the `torch.Generator` passed in, so a seed fixes the batch.

MQAR (Zoology's multi-query associative recall), vocabulary V, length T, P pairs: keys
from [1, V/2), values from [V/2, V), token 0 (`FILLER`) elsewhere. The first 2P tokens
are the key–value pairs; each key then appears once more as a query, at a slot drawn
with probability ∝ (slot + 1)^(−α) over the free slots, followed by its value. Only the
queries are scored, and the target of a query is the value paired with its key.
Example (V=16, T=12, P=2): predict 11 after the second 5 and 10 after the second 3.

    >>> inputs, targets = mqar_batch(1, 16, 12, 2, alpha=0.1, rng=torch.Generator().manual_seed(2))
    >>> inputs.tolist()
    [[3, 10, 5, 11, 0, 0, 0, 0, 5, 11, 3, 10]]
    >>> [(position, value) for position, value in enumerate(targets[0].tolist()) if value >= 0]
    [(8, 11), (10, 10)]

KEEP-n-TH: T random tokens from [1, V), then the marker token V; the target after the
marker is the n-th token.

Haar: T random bits as tokens 1 (bit 0) and 2 (bit 1); at every t ≥ w − 1 the target is
the coefficient of the last w bits on the Haar wavelet of width w (+1 on the newer half,
−1 on the older), shifted by w/2 to be a class in [0, w].
Example (w=4): bits 1 1 0 1 0 0 1 0 → coefficients from t=3 on −1, 0, −1, 0, 1 → targets
1, 2, 1, 2, 3 (positions 0–2 not scored).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from core.training.trainer import IGNORE_INDEX

FILLER = 0  # MQAR's token between the pairs and the queries


def mqar_batch(
    count: int, vocab: int, seq_len: int, pairs: int, alpha: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` MQAR sequences: inputs (N, T) and targets (N, T), IGNORE_INDEX except at queries."""
    half = vocab // 2
    keys = torch.stack([torch.randperm(half - 1, generator=rng)[:pairs] + 1 for _ in range(count)])
    values = torch.randint(half, vocab, (count, pairs), generator=rng)
    tokens = torch.full((count, seq_len + 1), FILLER, dtype=torch.long)
    tokens[:, 0 : 2 * pairs : 2] = keys
    tokens[:, 1 : 2 * pairs : 2] = values
    # Free slots after the context hold (query, answer) pairs; power-law over slot index.
    slots = (seq_len + 1 - 2 * pairs) // 2
    weights = (torch.arange(slots, dtype=torch.float64) + 1) ** -alpha
    targets = torch.full((count, seq_len + 1), IGNORE_INDEX, dtype=torch.long)
    for row in range(count):
        chosen = torch.multinomial(weights, pairs, replacement=False, generator=rng)
        order = torch.randperm(pairs, generator=rng)
        positions = 2 * pairs + 2 * chosen  # the query's position
        tokens[row, positions] = keys[row, order]
        tokens[row, positions + 1] = values[row, order]
        targets[row, positions] = values[row, order]  # predict the value after the query
    return tokens[:, :-1], targets[:, :-1]


def keep_nth_batch(
    count: int, vocab: int, seq_len: int, nth: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """T random tokens then the marker `vocab`; the target after the marker is token n."""
    tokens = torch.randint(1, vocab, (count, seq_len), generator=rng)
    inputs = torch.cat([tokens, torch.full((count, 1), vocab)], dim=1)  # (N, T + 1)
    targets = torch.full_like(inputs, IGNORE_INDEX)
    targets[:, -1] = tokens[:, nth - 1]
    return inputs, targets


def haar_batch(
    count: int, seq_len: int, width: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """T random bits as tokens 1/2; target at t ≥ width − 1 is (Haar coefficient + width/2).

    coefficient_t = Σ_{t−w/2 < s ≤ t} b_s − Σ_{t−w < s ≤ t−w/2} b_s.
    """
    bits = torch.randint(0, 2, (count, seq_len), generator=rng)
    sums = F.pad(bits.cumsum(1), (1, 0))  # sums[:, i] = Σ_{s < i} b_s, (N, T + 1)
    half = width // 2
    end = torch.arange(width - 1, seq_len) + 1  # one past each scored position
    newer = sums[:, end] - sums[:, end - half]
    older = sums[:, end - half] - sums[:, end - width]
    targets = torch.full((count, seq_len), IGNORE_INDEX, dtype=torch.long)
    targets[:, width - 1 :] = newer - older + half
    return bits + 1, targets
