"""Property tests: whatever JSON arrives, spec validation answers with a ValidationError or a
spec that round-trips, never with another exception (which the API would turn into a 500)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.catalog import parse_spec
from core.registry import UnknownKindError
from core.spec_model import spec_hash

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "seed",
        "task",
        "size",
        "model",
        "train",
        "held_out",
        "n_facts",
        "facts_seed",
        "block_size",
        "max_wall_s",
    ]
)
train_fields = st.dictionaries(
    st.sampled_from(
        ["steps", "batch_size", "lr", "min_lr", "warmup_steps", "decay_steps", "device", "schedule"]
    ),
    json_values,
    max_size=4,
)


@st.composite
def raw_specs(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = draw(st.dictionaries(field_names, json_values, max_size=4))
    if draw(st.booleans()):
        raw["train"] = draw(train_fields)
    raw["kind"] = draw(st.sampled_from(["capacity_tradeoff", "capacity_tradeoff", "nope", 3]))
    return raw


@settings(max_examples=300, deadline=None)
@given(raw_specs())
def test_any_json_is_either_a_clean_validation_error_or_a_spec_that_round_trips(raw: dict) -> None:
    try:
        spec = parse_spec(raw)
    except (ValidationError, UnknownKindError):
        return
    again = parse_spec(spec.model_dump(mode="json"))
    assert again == spec
    assert spec_hash(again) == spec_hash(spec)
    estimate = spec.resource_estimate()
    assert estimate.parameters > 0 and estimate.steps == spec.train.steps  # type: ignore[attr-defined]


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    steps=st.integers(1, 10_000),
    width=st.sampled_from([14, 28, 56]),
)
def test_hash_tracks_exactly_the_fields_that_change_results(
    seed: int, steps: int, width: int
) -> None:
    base = {"kind": "capacity_tradeoff", "seed": seed, "model": {"n_embd": width}}
    spec = parse_spec({**base, "train": {"steps": steps, "warmup_steps": 0}})
    same = parse_spec({**base, "train": {"steps": steps, "warmup_steps": 0, "checkpoint_every": 3}})
    other = parse_spec({**base, "train": {"steps": steps + 1, "warmup_steps": 0}})
    assert spec_hash(spec) == spec_hash(same)
    assert spec_hash(spec) != spec_hash(other)
