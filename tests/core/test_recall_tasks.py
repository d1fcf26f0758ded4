"""The recall-task generators build MQAR (in Zoology's layout and memlab's first one),
KEEP-n-TH and Haar batches exactly as specified, scoring only the positions that need
recall or the projection."""

import doctest
import math

import pytest
import torch

import core.data.recall_tasks
from core.data.recall_tasks import (
    FILLER,
    haar_batch,
    keep_nth_batch,
    memlab_v1_mqar_batch,
    unqueried_value_shortcut,
    zoology_mqar_batch,
)
from core.training.trainer import IGNORE_INDEX

ZOOLOGY_POWER_A = 0.01


def _within_sampling_error(observed: float, expected: float, draws: int) -> bool:
    """|observed − expected| within 4 standard errors of a frequency over `draws`."""
    return abs(observed - expected) <= 4 * math.sqrt(expected * (1 - expected) / draws)


def _query_positions(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and position (Q,), (Q,) of every scored query."""
    rows, positions = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
    return rows, positions


def test_zoology_mqar_draws_distinct_keys_and_values_and_scores_each_query_with_its_value() -> None:
    # Six values from only eight: drawn with replacement, most sequences would repeat one.
    inputs, targets = zoology_mqar_batch(
        300,
        vocab=16,
        seq_len=24,
        pairs=6,
        power_a=ZOOLOGY_POWER_A,
        rng=torch.Generator().manual_seed(9),
    )
    assert inputs.shape == targets.shape == (300, 24)
    for row in range(300):
        keys, values = inputs[row, 0:12:2], inputs[row, 1:12:2]
        assert bool((keys >= 1).all() and (keys < 8).all()), "keys come from [1, V/2)"
        assert bool((values >= 8).all() and (values < 16).all()), "values from [V/2, V)"
        assert len(set(keys.tolist())) == 6 and len(set(values.tolist())) == 6
        pairs = dict(zip(keys.tolist(), values.tolist(), strict=True))
        scored = (targets[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert len(scored) == 6, "one query per key, no two in one slot"
        assert all(position >= 12 and position % 2 == 0 for position in scored)
        assert {int(inputs[row, position]) for position in scored} == set(pairs)
        for position in scored:
            assert targets[row, position] == pairs[int(inputs[row, position])]


def test_zoology_mqar_query_gaps_follow_k_to_the_power_a_minus_one() -> None:
    # One pair, so the single query's gap is one draw of the law (with several, each later
    # query is drawn from the gaps still free). T = 40 leaves S = 19 gaps.
    draws, slots = 20_000, 19
    _, targets = zoology_mqar_batch(
        draws, 64, 40, 1, ZOOLOGY_POWER_A, torch.Generator().manual_seed(6)
    )
    _, positions = _query_positions(targets)
    gaps = (positions - 2) // 2 + 1  # gap k = 1 is the position right after the context
    counts = torch.bincount(gaps, minlength=slots + 1)[1:]
    law = torch.arange(1, slots + 1, dtype=torch.float64) ** (ZOOLOGY_POWER_A - 1)
    law /= law.sum()
    for k in range(slots):
        assert _within_sampling_error(float(counts[k]) / draws, float(law[k]), draws), k + 1
    assert float(law[0]) > 5 * float(law[-1])  # a skewed law, not a near-uniform one


def test_zoology_mqar_fills_every_other_position_uniformly_from_the_whole_vocabulary() -> None:
    inputs, targets = zoology_mqar_batch(
        2_000, 16, 32, 4, ZOOLOGY_POWER_A, torch.Generator().manual_seed(7)
    )
    filler = torch.ones_like(inputs, dtype=torch.bool)
    filler[:, :8] = False  # the context
    filler &= targets == IGNORE_INDEX  # not a query
    counts = torch.bincount(inputs[filler], minlength=16)
    draws = int(filler.sum())
    assert draws == 2_000 * (32 - 8 - 4)
    assert bool((targets[filler] == IGNORE_INDEX).all()), "filler is never scored"
    for token in range(16):  # 0, keys and values alike
        assert _within_sampling_error(float(counts[token]) / draws, 1 / 16, draws), token


def test_zoology_mqar_writes_no_answer_back_after_its_query() -> None:
    vocab = 16
    inputs, targets = zoology_mqar_batch(
        4_000, vocab, 32, 4, ZOOLOGY_POWER_A, torch.Generator().manual_seed(8)
    )
    rows, positions = _query_positions(targets)
    answers = targets[rows, positions]
    followed_by_answer = (inputs[rows, positions + 1] == answers).double().mean()
    # Only the filler's chance, 1/V, where memlab_v1 always writes the answer there.
    assert _within_sampling_error(float(followed_by_answer), 1 / vocab, len(rows))
    v1_inputs, v1_targets = memlab_v1_mqar_batch(
        100, vocab, 32, 4, 0.1, torch.Generator().manual_seed(8)
    )
    v1_rows, v1_positions = _query_positions(v1_targets)
    assert torch.equal(v1_inputs[v1_rows, v1_positions + 1], v1_targets[v1_rows, v1_positions])

    # Nor does the answer come back any later than by chance: it appears after its query
    # as often as the context's first non-answer value does.
    later = torch.arange(32).unsqueeze(0) > positions.unsqueeze(1)  # (Q, T)
    answer_later = ((inputs[rows] == answers.unsqueeze(1)) & later).any(1).double().mean()
    values = inputs[rows, 1:8:2]  # (Q, P)
    other = torch.where(values[:, 0] == answers, values[:, 1], values[:, 0])
    other_later = ((inputs[rows] == other.unsqueeze(1)) & later).any(1).double().mean()
    assert _within_sampling_error(float(answer_later), float(other_later), len(rows))


@pytest.mark.parametrize("pairs", [2, 4, 8])
def test_the_unqueried_value_shortcut_beats_chance_only_in_the_memlab_v1_layout(
    pairs: int,
) -> None:
    """Chance is 1/P: a model that binds no key to its value, guessing among the P values
    of the context, is right at each query with probability 1/P. memlab_v1's written-back
    answers lift the shortcut to H_P / P; Zoology's layout leaves it at chance."""
    vocab, seq_len, count = 1024, 64, 4_000  # a large V: memlab_v1 rarely repeats a value
    chance = 1 / pairs
    harmonic = sum(1 / j for j in range(1, pairs + 1)) / pairs
    queries = count * pairs
    rng = torch.Generator().manual_seed(10)
    zoology = unqueried_value_shortcut(
        *zoology_mqar_batch(count, vocab, seq_len, pairs, ZOOLOGY_POWER_A, rng), pairs
    )
    memlab_v1 = unqueried_value_shortcut(
        *memlab_v1_mqar_batch(count, vocab, seq_len, pairs, 0.1, rng), pairs
    )
    assert _within_sampling_error(zoology, chance, queries)
    assert abs(memlab_v1 - harmonic) < 0.01
    assert memlab_v1 > chance + 0.2


def test_memlab_v1_mqar_sequences_hold_pairs_then_queries_each_followed_by_its_answer() -> None:
    rng = torch.Generator().manual_seed(0)
    inputs, targets = memlab_v1_mqar_batch(50, vocab=64, seq_len=32, pairs=4, alpha=0.1, rng=rng)
    assert inputs.shape == targets.shape == (50, 32)
    for row in range(50):
        keys, values = inputs[row, 0:8:2], inputs[row, 1:8:2]
        assert bool((keys >= 1).all() and (keys < 32).all()), "keys come from [1, V/2)"
        assert bool((values >= 32).all() and (values < 64).all()), "values from [V/2, V)"
        assert len(set(keys.tolist())) == 4
        pairs = dict(zip(keys.tolist(), values.tolist(), strict=True))
        scored = (targets[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert len(scored) == 4 and min(scored) >= 8
        for position in scored:
            assert targets[row, position] == pairs[int(inputs[row, position])]
            assert inputs[row, position + 1] == targets[row, position], "the answer follows"


def test_memlab_v1_mqar_positions_outside_pairs_and_queries_hold_filler() -> None:
    inputs, targets = memlab_v1_mqar_batch(20, 64, 32, 4, 0.1, torch.Generator().manual_seed(3))
    queries = targets != IGNORE_INDEX
    answers = torch.zeros_like(queries)
    answers[:, 1:] = queries[:, :-1]
    context = torch.zeros_like(queries)
    context[:, :8] = True
    assert bool((inputs[~(queries | answers | context)] == FILLER).all())


def test_memlab_v1_mqar_queries_crowd_the_early_slots_as_alpha_grows() -> None:
    def mean_query_position(alpha: float) -> float:
        _, targets = memlab_v1_mqar_batch(400, 64, 64, 2, alpha, torch.Generator().manual_seed(5))
        return float((targets != IGNORE_INDEX).nonzero()[:, 1].double().mean())

    assert mean_query_position(2.0) < mean_query_position(0.0) - 10


@pytest.mark.parametrize("generator", [zoology_mqar_batch, memlab_v1_mqar_batch])
def test_a_seed_fixes_the_batch(generator: object) -> None:
    def draw(seed: int) -> torch.Tensor:
        return generator(4, 64, 32, 4, 0.1, torch.Generator().manual_seed(seed))[0]  # type: ignore[operator]

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_keep_nth_asks_for_the_nth_token_after_a_marker() -> None:
    inputs, targets = keep_nth_batch(
        5, vocab=10, seq_len=6, nth=3, rng=torch.Generator().manual_seed(1)
    )
    assert bool((inputs[:, -1] == 10).all())
    assert bool((inputs[:, :-1] >= 1).all() and (inputs[:, :-1] < 10).all())
    assert torch.equal(targets[:, -1], inputs[:, 2])
    assert bool((targets[:, :-1] == IGNORE_INDEX).all())


def test_haar_targets_are_the_windowed_haar_coefficient_as_a_class() -> None:
    """The docstring's example, then the definition checked by brute force."""
    bits = torch.tensor([1, 1, 0, 1, 0, 0, 1, 0])
    coefficients = [int(bits[t - 1 : t + 1].sum() - bits[t - 3 : t - 1].sum()) for t in range(3, 8)]
    assert coefficients == [-1, 0, -1, 0, 1]

    inputs, targets = haar_batch(40, seq_len=20, width=6, rng=torch.Generator().manual_seed(4))
    assert inputs.shape == targets.shape == (40, 20)
    assert set(inputs.unique().tolist()) == {1, 2}
    bits = inputs - 1
    assert bool((targets[:, :5] == IGNORE_INDEX).all())
    for t in range(5, 20):
        newer, older = bits[:, t - 2 : t + 1].sum(1), bits[:, t - 5 : t - 2].sum(1)
        assert torch.equal(targets[:, t], newer - older + 3)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(core.data.recall_tasks).failed == 0
