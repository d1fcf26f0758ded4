"""The recall-task generators build MQAR, KEEP-n-TH and Haar batches exactly as specified,
scoring only the positions that need recall or the projection."""

import doctest

import torch

import core.data.recall_tasks
from core.data.recall_tasks import FILLER, haar_batch, keep_nth_batch, mqar_batch
from core.training.trainer import IGNORE_INDEX


def test_mqar_sequences_hold_pairs_then_queries_whose_answer_is_the_paired_value() -> None:
    rng = torch.Generator().manual_seed(0)
    inputs, targets = mqar_batch(50, vocab=64, seq_len=32, pairs=4, alpha=0.1, rng=rng)
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


def test_mqar_positions_outside_pairs_and_queries_hold_filler() -> None:
    inputs, targets = mqar_batch(20, 64, 32, 4, 0.1, torch.Generator().manual_seed(3))
    queries = targets != IGNORE_INDEX
    answers = torch.zeros_like(queries)
    answers[:, 1:] = queries[:, :-1]
    context = torch.zeros_like(queries)
    context[:, :8] = True
    assert bool((inputs[~(queries | answers | context)] == FILLER).all())


def test_mqar_queries_crowd_the_early_slots_as_alpha_grows() -> None:
    def mean_query_position(alpha: float) -> float:
        _, targets = mqar_batch(400, 64, 64, 2, alpha, torch.Generator().manual_seed(5))
        return float((targets != IGNORE_INDEX).nonzero()[:, 1].double().mean())

    assert mean_query_position(2.0) < mean_query_position(0.0) - 10


def test_a_seed_fixes_the_batch() -> None:
    def draw(seed: int) -> torch.Tensor:
        return mqar_batch(4, 64, 32, 4, 0.1, torch.Generator().manual_seed(seed))[0]

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


def test_the_docstring_example_holds() -> None:
    assert doctest.testmod(core.data.recall_tasks).failed == 0
