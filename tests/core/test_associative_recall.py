"""associative_recall builds MQAR, KEEP-n-TH and Haar tasks exactly as specified and scores
only the positions that need recall or the projection."""

import pytest
from pydantic import ValidationError

from core.catalog import parse_spec
from core.experiments.associative_recall import run
from core.reporter import InMemoryReporter
from core.spec_model import spec_hash


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
