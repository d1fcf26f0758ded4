"""The trainer's samplers: batches of fixed examples, and windows of a stream of shuffled
passes over token sequences, both fixed by the generator they are handed."""

import doctest

import pytest
import torch

import core.training.samplers
from core.training.samplers import ExampleSampler, TokenStreamSampler

CPU = torch.device("cpu")
SEQUENCES = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10]]


def test_the_stream_is_every_pass_a_permutation_of_the_whole_sequences() -> None:
    sampler = TokenStreamSampler(SEQUENCES, block_size=3, batch_size=2, passes=5, seed=0)
    stream = sampler.stream.tolist()
    assert len(stream) == 5 * 10
    by_first_token = {s[0]: s for s in SEQUENCES}
    position, orders = 0, []
    for _ in range(5):
        order = []
        for _ in SEQUENCES:
            sequence = by_first_token[stream[position]]
            assert stream[position : position + len(sequence)] == sequence
            position += len(sequence)
            order.append(sequence[0])
        assert sorted(order) == [1, 4, 6, 7]
        orders.append(order)
    assert len({tuple(order) for order in orders}) > 1, "each pass is shuffled afresh"


def test_targets_are_the_inputs_shifted_by_one_within_the_stream() -> None:
    sampler = TokenStreamSampler(SEQUENCES, block_size=4, batch_size=16, passes=3, seed=1)
    inputs, targets = sampler(torch.Generator().manual_seed(0), CPU)
    assert inputs.shape == targets.shape == (16, 4)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    stream = sampler.stream.tolist()
    for row, target in zip(inputs.tolist(), targets.tolist(), strict=True):
        window = row + target[-1:]
        assert any(stream[s : s + 5] == window for s in range(len(stream) - 4))


def test_the_last_window_is_drawn_only_when_allowed() -> None:
    # A stream of 6 tokens and windows of 5 leave two starts: 0 and 1 (the last window).
    def starts(use_last_window: bool) -> set[int]:
        sampler = TokenStreamSampler(
            [[1, 2, 3]], 4, 64, passes=2, seed=0, use_last_window=use_last_window
        )
        inputs, _ = sampler(torch.Generator().manual_seed(0), CPU)
        return {int(first) for first in inputs[:, 0]}

    assert starts(True) == {1, 2}
    assert starts(False) == {1}


def test_the_same_seeds_draw_the_same_batches() -> None:
    def batch(seed: int) -> torch.Tensor:
        sampler = TokenStreamSampler(SEQUENCES, 3, 8, passes=4, seed=seed)
        return sampler(torch.Generator().manual_seed(7), CPU)[0]

    assert torch.equal(batch(0), batch(0))
    assert not torch.equal(batch(0), batch(1))


def test_texts_shorter_than_one_window_or_none_at_all_are_refused() -> None:
    with pytest.raises(ValueError, match="shorter than block_size"):
        TokenStreamSampler([[1, 2]], block_size=8, batch_size=1, passes=2, seed=0)
    with pytest.raises(ValueError, match="empty"):
        TokenStreamSampler([], block_size=2, batch_size=1, passes=2, seed=0)


def test_example_batches_are_rows_of_the_fixed_examples() -> None:
    inputs = torch.arange(20).reshape(10, 2)
    sampler = ExampleSampler(inputs, inputs + 100, batch_size=6)
    batch_inputs, batch_targets = sampler(torch.Generator().manual_seed(0), CPU)
    assert torch.equal(batch_targets, batch_inputs + 100)
    assert all(row in inputs.tolist() for row in batch_inputs.tolist())


def test_the_docstring_example_holds() -> None:
    assert doctest.testmod(core.training.samplers).failed == 0
