"""associative_recall builds MQAR, KEEP-n-TH and Haar tasks exactly as specified and scores
only the positions that need recall or the projection."""

import pytest
import torch
from pydantic import ValidationError

from core.experiments.associative_recall import (
    haar_batch,
    keep_nth_batch,
    mqar_batch,
    recall_accuracy,
    run,
)
from core.registry import parse_spec
from core.reporter import InMemoryReporter
from core.specs import spec_hash
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


def test_keep_nth_asks_for_the_nth_token_after_a_marker() -> None:
    inputs, targets = keep_nth_batch(
        5, vocab=10, seq_len=6, nth=3, rng=torch.Generator().manual_seed(1)
    )
    assert bool((inputs[:, -1] == 10).all())
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


def test_haar_width_is_part_of_the_hash_only_for_the_haar_task() -> None:
    def spec(**fields: object) -> object:
        return parse_spec({"kind": "associative_recall", **fields})

    assert spec_hash(spec(haar_width=4)) == spec_hash(spec())  # MQAR: as before the field
    assert spec_hash(spec(task="haar", haar_width=4)) != spec_hash(spec(task="haar"))


def test_impossible_shapes_are_refused() -> None:
    with pytest.raises(ValidationError, match="no room"):
        parse_spec({"kind": "associative_recall", "seq_len": 16, "num_kv_pairs": 8})
    with pytest.raises(ValidationError, match="even"):
        parse_spec({"kind": "associative_recall", "task": "haar", "haar_width": 5})
    with pytest.raises(ValidationError, match="classes"):
        parse_spec({"kind": "associative_recall", "task": "haar", "vocab_size": 8})


class Oracle(torch.nn.Module):
    """Predicts the scored targets perfectly (to test the scorer, not a model)."""

    def __init__(self, targets: torch.Tensor, vocab: int) -> None:
        super().__init__()
        self.targets, self.vocab = targets, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.offset = 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.targets[self.offset : self.offset + idx.shape[0]].clamp(min=0)
        self.offset += idx.shape[0]
        return torch.nn.functional.one_hot(rows, self.vocab).float()


def test_accuracy_counts_only_scored_positions() -> None:
    inputs, targets = mqar_batch(20, 64, 32, 4, 0.1, torch.Generator().manual_seed(2))
    assert recall_accuracy(Oracle(targets, 64), inputs, targets) == 1.0


@pytest.mark.parametrize(
    ("task", "mixer"),
    [
        ("mqar", {"type": "attention", "n_head": 2}),
        ("mqar", {"type": "s6", "state_size": 4}),
        ("haar", {"type": "mamba2", "state_size": 4}),
    ],
)
def test_a_short_run_reports_recall_accuracy(task: str, mixer: dict) -> None:
    spec = parse_spec(
        {
            "kind": "associative_recall",
            "task": task,
            "vocab_size": 32,
            "seq_len": 16,
            "num_kv_pairs": 2,
            "train_examples": 200,
            "test_examples": 50,
            "model": {"n_layer": 1, "width": 16, "mixer": mixer},
            "train": {
                "steps": 20,
                "batch_size": 16,
                "warmup_steps": 2,
                "eval_every": 10,
                "device": "cpu",
            },
        }
    )
    result = run(spec, InMemoryReporter())
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["mixer"] == mixer["type"] and result["training"]["steps"] == 20
    assert result["task"] == task


def test_the_same_spec_and_seed_give_the_same_numbers() -> None:
    spec = parse_spec(
        {
            "kind": "associative_recall",
            "task": "haar",
            "vocab_size": 16,
            "seq_len": 16,
            "train_examples": 100,
            "test_examples": 20,
            "model": {"n_layer": 1, "width": 8, "mixer": {"type": "s6", "state_size": 2}},
            "train": {"steps": 5, "batch_size": 8, "warmup_steps": 1, "device": "cpu"},
        }
    )
    first, second = run(spec, InMemoryReporter()), run(spec, InMemoryReporter())
    assert first["test_accuracy"] == second["test_accuracy"]
    assert first["training"]["final_train_loss"] == second["training"]["final_train_loss"]
