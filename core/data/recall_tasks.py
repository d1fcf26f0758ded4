"""Synthetic recall tasks as (inputs, targets) batches: MQAR, KEEP-n-TH and Haar projection.

Each generator returns inputs (N, T) of token ids and targets (N, T) holding the token
expected after each input position, IGNORE_INDEX where nothing is scored. Every draw
comes from the `torch.Generator` passed in, so a seed fixes the batch.

MQAR (multi-query associative recall), vocabulary V, length T, P pairs: keys from
[1, V/2), values from [V/2, V). The first 2P tokens are the key–value pairs; each key
then appears once more as a query, and only the queries are scored, the target of a
query being the value paired with its key. Two layouts:

- `zoology_mqar_batch`, as Zoology's `multiquery_ar` (Arora et al. 2024) lays it out:
  the P keys and the P values of a sequence are distinct; the query of each key sits at
  gap k ∈ 1..S after the context (position 2P + 2(k − 1), S = ⌊(T − 2P)/2⌋ slots) with
  probability ∝ k^(a − 1), a = `power_a`; every other position holds a token drawn
  uniformly from the whole vocabulary [0, V), unscored even where it happens to be a key.
  Nothing after a query tells which value answered it.
- `memlab_v1_mqar_batch`, memlab's first layout, kept so that stored runs rebuild their
  data: values drawn with replacement, query slots ∝ (slot + 1)^(−α), token 0 (`FILLER`)
  between queries, and each query followed by its answer. That answer leaks which
  values are used up: guessing among the context's values not yet seen after it (the
  "unqueried value" shortcut, `unqueried_value_shortcut`) scores H_P / P, with no key
  bound to its value. Example (V=16, T=12, P=2): predict 11 after the second 5 and 10
  after the second 3.

    >>> inputs, targets = memlab_v1_mqar_batch(
    ...     1, 16, 12, 2, alpha=0.1, rng=torch.Generator().manual_seed(2)
    ... )
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

FILLER = 0  # memlab_v1 MQAR's token between the pairs and the queries
# The most elements a temporary tensor here holds at once; larger batches go in chunks
# of rows, so memory stays bounded at large V, T or P.
_CHUNK_ELEMENTS = 1 << 22


def zoology_mqar_batch(
    count: int, vocab: int, seq_len: int, pairs: int, power_a: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` MQAR sequences in Zoology's layout: inputs (N, T), targets (N, T).

    Distinct keys from [1, V/2) and distinct values from [V/2, V) per sequence; the query
    of each key at gap k ∈ 1..S with probability ∝ k^(power_a − 1), no two queries at one
    gap; uniform random tokens from [0, V) everywhere else. Targets are IGNORE_INDEX except
    at the queries, where they are the paired value.

    Example (V=16, T=12, P=2, so S = 4 slots at positions 4, 6, 8, 10): the context is
    2→8, 6→10; key 2 is queried at position 4 (gap 1), key 6 at position 8 (gap 3). The
    other positions hold random tokens 13, 8, 9, 3, 0, 3: the token after each query is
    not its answer, and the 8 at position 6 is a value drawn by chance, not an answer.

    >>> inputs, targets = zoology_mqar_batch(
    ...     1, 16, 12, 2, power_a=0.01, rng=torch.Generator().manual_seed(0)
    ... )
    >>> inputs.tolist()
    [[2, 8, 6, 10, 2, 13, 8, 9, 6, 3, 0, 3]]
    >>> [(position, value) for position, value in enumerate(targets[0].tolist()) if value >= 0]
    [(4, 8), (8, 10)]
    """
    half = vocab // 2
    keys = _distinct_per_row(count, pairs, low=1, high=half, rng=rng)  # (N, P)
    values = _distinct_per_row(count, pairs, low=half, high=vocab, rng=rng)  # (N, P)
    context = 2 * pairs
    weights = query_gap_weights((seq_len - context) // 2, power_a)  # (S,)
    # gaps[:, i] = k − 1 for key i's query. Multinomial without replacement returns its
    # draws in the order drawn, each renormalised over the gaps still free, as numpy's
    # choice(p=…, replace=False) in Zoology, so key i's gap is the (i + 1)-th draw.
    gaps = torch.multinomial(weights.expand(count, -1), pairs, replacement=False, generator=rng)
    tokens = torch.randint(0, vocab, (count, seq_len), generator=rng)  # filler everywhere
    tokens[:, 0:context:2] = keys
    tokens[:, 1:context:2] = values
    query_positions = context + 2 * gaps  # (N, P)
    tokens.scatter_(1, query_positions, keys)
    targets = torch.full((count, seq_len), IGNORE_INDEX, dtype=torch.long)
    targets.scatter_(1, query_positions, values)  # predict the value at the query itself
    return tokens, targets


def query_gap_weights(slots: int, power_a: float) -> torch.Tensor:
    """Unnormalised probabilities (S,) of query gaps k = 1..S: k^(power_a − 1).

    power_a = 1 is uniform; Zoology's 0.01 makes gap k about 1/k as likely as gap 1, so
    most queries come soon after the context and a few come late."""
    return torch.arange(1, slots + 1, dtype=torch.float64) ** (power_a - 1)


def _distinct_per_row(
    count: int, size: int, low: int, high: int, rng: torch.Generator
) -> torch.Tensor:
    """(count, size) integers from [low, high), distinct within each row, uniformly drawn.

    The `size` largest of (high − low) uniform scores per row are a uniform sample without
    replacement, in random order."""
    span = high - low
    chunk = max(1, _CHUNK_ELEMENTS // span)
    rows = [
        torch.rand(min(chunk, count - start), span, generator=rng).topk(size, dim=1).indices
        for start in range(0, count, chunk)
    ]
    return torch.cat(rows) + low


def memlab_v1_mqar_batch(
    count: int, vocab: int, seq_len: int, pairs: int, alpha: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` MQAR sequences in memlab's first layout: inputs (N, T) and targets (N, T),
    IGNORE_INDEX except at queries. Unchanged since stored runs used it."""
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


def unqueried_value_shortcut(inputs: torch.Tensor, targets: torch.Tensor, pairs: int) -> float:
    """Expected accuracy of the "unqueried value" shortcut on MQAR inputs (N, T), targets
    (N, T): at each query, guess uniformly among the context's distinct values that have
    not appeared in the input since the context ended. It binds no key to its value.

    In the memlab_v1 layout each answer follows its query, so the j-th query of P is a
    guess among P − j + 1 values and the mean is H_P / P (a little less where a value
    drawn twice is used up by its twin's answer). In Zoology's layout nothing reveals the
    answers: random filler drops a value from the guess only by chance, as likely the
    answer as any other, so the expected score is 1/P, the chance of guessing among the
    P values (a little less where filler drops them all).
    Example: the memlab_v1 sequence below scores 1/2 at its first query (10 or 11) and 1
    at its second (11 was seen at position 9), 0.75 on average.

    >>> inputs = torch.tensor([[3, 10, 5, 11, 0, 0, 0, 0, 5, 11, 3, 10]])
    >>> targets = torch.full_like(inputs, IGNORE_INDEX)
    >>> targets[0, 8], targets[0, 10] = 11, 10
    >>> unqueried_value_shortcut(inputs, targets, pairs=2)
    0.75
    """
    context = 2 * pairs
    chunk = max(1, _CHUNK_ELEMENTS // (pairs * inputs.shape[1]))
    expected_hits: list[torch.Tensor] = []
    for start in range(0, inputs.shape[0], chunk):
        rows = slice(start, start + chunk)
        expected_hits.append(_shortcut_hits(inputs[rows], targets[rows], context))
    hits = torch.cat(expected_hits)
    return float(hits.mean()) if hits.numel() else 0.0


def _shortcut_hits(inputs: torch.Tensor, targets: torch.Tensor, context: int) -> torch.Tensor:
    """The shortcut's expected hit (Q,) at each of the Q queries of inputs (N, T)."""
    values = inputs[:, 1:context:2]  # (N, P)
    after = inputs[:, context:]  # (N, T − 2P)
    appears = after.unsqueeze(1) == values.unsqueeze(2)  # (N, P, T − 2P)
    offsets = torch.arange(after.shape[1])
    never = after.shape[1]
    first_seen = context + torch.where(appears, offsets, never).amin(dim=2)  # (N, P)
    # A value repeated in the context (memlab_v1 draws with replacement) counts once.
    repeats = (values.unsqueeze(2) == values.unsqueeze(1)).tril(diagonal=-1).any(dim=2)
    rows, positions = (targets != IGNORE_INDEX).nonzero(as_tuple=True)  # (Q,), (Q,)
    candidates = (first_seen[rows] > positions.unsqueeze(1)) & ~repeats[rows]  # (Q, P)
    is_answer = values[rows] == targets[rows, positions].unsqueeze(1)  # (Q, P)
    hit = (candidates & is_answer).any(dim=1).double()
    return hit / candidates.sum(dim=1).clamp(min=1)


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
