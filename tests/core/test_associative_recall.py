"""associative_recall builds MQAR, KEEP-n-TH and Haar tasks exactly as specified and scores
only the positions that need recall or the projection."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from core.catalog import get_kind, parse_spec
from core.data.recall_tasks import unqueried_value_shortcut
from core.experiments.associative_recall import (
    TEST_SEED_OFFSET,
    AssociativeRecallSpec,
    build_split,
    held_out_split,
    run,
    shortcut_accuracy,
)
from core.reporter import InMemoryReporter
from core.spec_model import spec_hash

STORED_SPECS = Path(__file__).parent / "fixtures" / "specs_v1" / "stored_specs.json"
# The default spec as memlab stored it before `generator` existed (all fields written out).
STORED_DEFAULT = json.loads(STORED_SPECS.read_text())["associative_recall"]
# SHA-256 of the inputs' then the targets' int64 bytes of that spec's training split
# (20,000 sequences, seed 0) and test split (1,000, seed 1,000,003), as the generator
# before the zoology layout (commit dff5498) built them.
STORED_DEFAULT_SPLIT_DIGESTS = {
    0: "be2716cc7f825f608f7ad8e5b6d63b995ea597a267a743272fc2fd722f55ed9b",
    1_000_003: "55fd8e861f79dd96b6b1a94e44c439caa10a93a0aa39cdab22b64ef8fc1acec6",
}


def request(**fields: object) -> AssociativeRecallSpec:
    """A spec as the API validates a new request (not as a stored one)."""
    return AssociativeRecallSpec.model_validate({"kind": "associative_recall", **fields})


def stored(raw: dict[str, object]) -> AssociativeRecallSpec:
    """A spec as the worker reads one back from the store."""
    spec = parse_spec(raw)
    assert isinstance(spec, AssociativeRecallSpec)
    return spec


def _digest(inputs: torch.Tensor, targets: torch.Tensor) -> str:
    return hashlib.sha256(inputs.numpy().tobytes() + targets.numpy().tobytes()).hexdigest()


def test_a_spec_stored_before_the_generator_field_rebuilds_its_memlab_v1_data() -> None:
    spec = stored(STORED_DEFAULT["spec"])
    assert "generator" not in STORED_DEFAULT["spec"] and spec.generator == "memlab_v1"
    assert spec_hash(spec) == STORED_DEFAULT["spec_hash"]
    test_seed = spec.seed + TEST_SEED_OFFSET
    for seed, count in ((spec.seed, spec.train_examples), (test_seed, spec.test_examples)):
        assert _digest(*build_split(spec, count, seed)) == STORED_DEFAULT_SPLIT_DIGESTS[seed]


def test_a_new_request_gets_the_zoology_generator_and_its_own_hash() -> None:
    new = request()
    assert new.generator == "zoology"
    assert get_kind("associative_recall").default_spec() == new
    assert spec_hash(new) != STORED_DEFAULT["spec_hash"]
    # Naming memlab_v1 (and the old weight-decay rule, null) trains what the stored spec
    # trained, so the hashes are equal.
    old_train = {**STORED_DEFAULT["spec"]["train"], "weight_decay_on": None}
    named = AssociativeRecallSpec.model_validate(
        {**STORED_DEFAULT["spec"], "generator": "memlab_v1", "train": old_train}
    )
    assert spec_hash(named) == STORED_DEFAULT["spec_hash"]
    # A spec stored after the field existed names its generator and keeps it.
    assert stored({**STORED_DEFAULT["spec"], "generator": "zoology"}).generator == "zoology"


def test_each_generator_hashes_only_its_own_gap_law_parameter() -> None:
    zoology, memlab_v1 = request(), request(generator="memlab_v1")
    assert spec_hash(request(power_law_alpha=2.0)) == spec_hash(zoology)
    assert spec_hash(request(power_a=0.5)) != spec_hash(zoology)
    assert spec_hash(request(generator="memlab_v1", power_a=0.5)) == spec_hash(memlab_v1)
    assert spec_hash(request(generator="memlab_v1", power_law_alpha=2.0)) != spec_hash(memlab_v1)
    # Other tasks ignore the generator.
    assert spec_hash(request(task="haar")) == spec_hash(request(task="haar", generator="memlab_v1"))


def test_the_reported_shortcut_is_the_unqueried_value_guess_on_the_test_sequences() -> None:
    """At the default P = 4, guessing among the context's values not yet seen after it
    scores near H_4 / 4 = 0.52 in memlab_v1 (a little less at V = 64, where a repeated
    value hides its twin's answer) and near the chance of guessing among the 4 values,
    1/4, in Zoology's layout."""
    memlab_v1 = request(generator="memlab_v1")
    assert shortcut_accuracy(memlab_v1) == unqueried_value_shortcut(*held_out_split(memlab_v1), 4)
    assert shortcut_accuracy(memlab_v1) == pytest.approx(0.52, abs=0.03)
    zoology = request()
    assert shortcut_accuracy(zoology) == unqueried_value_shortcut(*held_out_split(zoology), 4)
    assert shortcut_accuracy(zoology) == pytest.approx(0.25, abs=0.02)
    assert shortcut_accuracy(request(task="keep_nth")) is None


def test_haar_width_is_part_of_the_hash_only_for_the_haar_task() -> None:
    assert spec_hash(request(haar_width=4)) == spec_hash(request())  # MQAR: as before the field
    assert spec_hash(request(task="haar", haar_width=4)) != spec_hash(request(task="haar"))


def test_impossible_shapes_are_refused() -> None:
    with pytest.raises(ValidationError, match="no room"):
        request(seq_len=16, num_kv_pairs=8)
    with pytest.raises(ValidationError, match="even"):
        request(task="haar", haar_width=5)
    with pytest.raises(ValidationError, match="classes"):
        request(task="haar", vocab_size=8)


@pytest.mark.parametrize(
    ("task", "mixer"),
    [
        ("mqar", {"type": "attention", "n_head": 2}),
        ("mqar", {"type": "s6", "state_size": 4}),
        ("haar", {"type": "mamba2", "state_size": 4}),
    ],
)
def test_a_short_run_reports_recall_accuracy(task: str, mixer: dict) -> None:
    spec = request(
        task=task,
        vocab_size=32,
        seq_len=16,
        num_kv_pairs=2,
        train_examples=200,
        test_examples=50,
        model={"n_layer": 1, "width": 16, "mixer": mixer},
        train={"steps": 20, "batch_size": 16, "warmup_steps": 2, "eval_every": 10, "device": "cpu"},
    )
    result = run(spec, InMemoryReporter())
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["mixer"] == mixer["type"] and result["training"]["steps"] == 20
    assert result["task"] == task
    # Beside the accuracy, the score a model binding no key to its value would get.
    assert result["shortcut_accuracy"] == shortcut_accuracy(spec)
    assert (result["shortcut_accuracy"] is None) == (task != "mqar")
    assert result["generator"] == ("zoology" if task == "mqar" else None)


def test_the_same_spec_and_seed_give_the_same_numbers() -> None:
    spec = request(
        task="haar",
        vocab_size=16,
        seq_len=16,
        train_examples=100,
        test_examples=20,
        model={"n_layer": 1, "width": 8, "mixer": {"type": "s6", "state_size": 2}},
        train={"steps": 5, "batch_size": 8, "warmup_steps": 1, "device": "cpu"},
    )
    first, second = run(spec, InMemoryReporter()), run(spec, InMemoryReporter())
    assert first["test_accuracy"] == second["test_accuracy"]
    assert first["training"]["final_train_loss"] == second["training"]["final_train_loss"]
