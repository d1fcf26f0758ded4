"""Specs are strict, immutable, hashable descriptions of a run."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.catalog import all_kinds, get_kind, parse_spec
from core.experiments.capacity_tradeoff import CapacityTradeoffSpec
from core.registry import UnknownKindError
from core.spec_model import spec_hash
from core.specs import TrainSpec


def test_a_misspelt_nested_field_is_rejected_with_its_path() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spec({"kind": "capacity_tradeoff", "train": {"stepz": 10}})
    (error,) = caught.value.errors()
    assert error["loc"] == ("train", "stepz")
    assert error["type"] == "extra_forbidden"


def test_specs_are_frozen() -> None:
    spec = TrainSpec()
    with pytest.raises(ValidationError):
        spec.steps = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lr": 0.001, "min_lr": 0.01}, "min_lr"),
        ({"steps": 10, "warmup_steps": 20}, "warmup_steps"),
        ({"warmup_steps": 100, "decay_steps": 50}, "decay_steps"),
        ({"steps": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_training_settings_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainSpec(**fields)


def test_spec_hash_ignores_how_defaults_were_given_but_not_values() -> None:
    bare = parse_spec({"kind": "capacity_tradeoff"})
    explicit = parse_spec({"kind": "capacity_tradeoff", "seed": 0, "task": "arithmetic"})
    reseeded = parse_spec({"kind": "capacity_tradeoff", "seed": 1})
    assert spec_hash(bare) == spec_hash(explicit)
    assert spec_hash(bare) != spec_hash(reseeded)


def test_registry_lists_capacity_tradeoff_with_a_valid_default_spec() -> None:
    kind = get_kind("capacity_tradeoff")
    assert "capacity_tradeoff" in all_kinds()
    assert isinstance(kind.default_spec(), CapacityTradeoffSpec)
    assert kind.description


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownKindError, match="capacity_tradeoff"):
        parse_spec({"kind": "no_such_kind"})


def test_task_picks_the_papers_block_and_batch_unless_given() -> None:
    math = parse_spec({"kind": "capacity_tradeoff", "task": "arithmetic"})
    facts = parse_spec({"kind": "capacity_tradeoff", "task": "facts"})
    custom = parse_spec(
        {"kind": "capacity_tradeoff", "task": "facts", "block_size": 32, "train": {"batch_size": 8}}
    )
    assert (math.block_size, math.train.batch_size) == (9, 882)
    assert (facts.block_size, facts.train.batch_size) == (24, 576)
    assert (custom.block_size, custom.train.batch_size) == (32, 8)
    assert custom.train.lr == 0.01  # other training defaults are not lost


def test_held_out_problems_must_be_single_digit_sums_or_differences() -> None:
    with pytest.raises(ValidationError, match="not of the form"):
        parse_spec({"kind": "capacity_tradeoff", "held_out": ["12+3"]})


def test_a_size_preset_sets_the_model_and_explicit_fields_still_win() -> None:
    n56 = parse_spec({"kind": "capacity_tradeoff", "size": "n56"})
    assert (n56.model.n_layer, n56.model.n_embd, n56.model.bias) == (1, 56, False)
    large = parse_spec({"kind": "capacity_tradeoff", "size": "mlt", "train": {"lr": 3e-5}})
    assert (large.model.n_layer, large.model.n_head, large.model.n_embd) == (6, 6, 384)
    assert (large.model.dropout, large.train.weight_decay, large.train.device) == (0.2, 0.1, "cuda")
    assert (large.train.lr, large.train.min_lr) == (3e-5, 1e-6)
    assert large.train.steps == 30_000


def test_limits_and_checkpoint_intervals_do_not_change_the_hash() -> None:
    base = parse_spec({"kind": "capacity_tradeoff"})
    limited = parse_spec(
        {"kind": "capacity_tradeoff", "max_wall_s": 60, "train": {"checkpoint_every": 7}}
    )
    relearned = parse_spec({"kind": "capacity_tradeoff", "train": {"lr": 0.02}})
    assert spec_hash(base) == spec_hash(limited)
    assert spec_hash(base) != spec_hash(relearned)


def test_a_nested_spec_of_another_type_replaces_the_default_rather_than_merging() -> None:
    spec = parse_spec({"kind": "associative_recall", "model": {"mixer": {"type": "s6"}}})
    assert spec.model.mixer.type == "s6"  # type: ignore[attr-defined]
    same_type = parse_spec({"kind": "associative_recall", "model": {"mixer": {"n_head": 4}}})
    assert same_type.model.mixer.n_head == 4  # type: ignore[attr-defined]
    assert same_type.model.width == 64  # the rest of the kind's default model is kept


STORED_V1 = json.loads(
    (Path(__file__).parent / "fixtures" / "specs_v1" / "stored_specs.json").read_text()
)


def test_a_new_request_decays_matrices_only_unless_it_asks_for_all() -> None:
    assert TrainSpec().weight_decay_on == "matrices"
    assert get_kind("fictional_qa").default_spec().train.weight_decay_scope == "matrices"
    asked = get_kind("fictional_qa").spec_class.model_validate(
        {"kind": "fictional_qa", "train": {"weight_decay_on": "all"}}
    )
    assert asked.train.weight_decay_scope == "all"
    with pytest.raises(ValidationError, match="weight_decay_on"):
        TrainSpec(weight_decay_on="norms")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(STORED_V1))
def test_a_stored_spec_without_the_decay_rule_keeps_decaying_every_parameter(name: str) -> None:
    raw = STORED_V1[name]["spec"]
    assert "weight_decay_on" not in raw["train"]
    stored = parse_spec(raw)
    # The stored context reaches the nested train spec, and the kind's default train spec
    # (which says "matrices") is not laid over the field the stored one lacks.
    assert stored.train.weight_decay_on is None
    assert stored.train.weight_decay_scope == "all"
    assert spec_hash(stored) == STORED_V1[name]["spec_hash"]
    # The same fields submitted today are a new request: "matrices", another hash.
    fresh = get_kind(raw["kind"]).spec_class.model_validate(raw)
    assert fresh.train.weight_decay_scope == "matrices"
    assert spec_hash(fresh) != spec_hash(stored)


def test_a_spec_stored_with_the_decay_rule_reads_back_as_it_was_submitted() -> None:
    kind = get_kind("associative_recall")
    for on in ("matrices", "all"):
        submitted = kind.spec_class.model_validate(
            {"kind": "associative_recall", "train": {"weight_decay_on": on}}
        )
        stored = parse_spec(submitted.model_dump(mode="json"))
        assert stored == submitted
        assert stored.train.weight_decay_scope == on
        assert spec_hash(stored) == spec_hash(submitted)
