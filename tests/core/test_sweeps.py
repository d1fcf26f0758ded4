"""A sweep's expansion into cells: grid and random, axis paths, errors at the axis."""

from __future__ import annotations

import pytest

from core.catalog import get_kind
from core.sweeps import (
    AxisRange,
    AxisVariants,
    SweepInvalidError,
    axis_path_problem,
    expand,
    run_count,
    with_overrides,
    with_value,
)

CAPACITY = get_kind("capacity_tradeoff").spec_class
RECALL = get_kind("associative_recall").spec_class
BASE = {"kind": "capacity_tradeoff", "task": "facts", "train": {"steps": 10}}


def test_a_grid_crosses_the_axes_in_order_with_each_cell_s_seeds_together() -> None:
    axes = {"model.n_embd": [8, 16], "train.lr": [1e-3, 3e-3]}
    cells = expand(CAPACITY, BASE, axes, seeds=[0, 1])
    assert [c.coordinates for c in cells] == [
        {"model.n_embd": w, "train.lr": lr, "seed": s}
        for w in (8, 16)
        for lr in (1e-3, 3e-3)
        for s in (0, 1)
    ]
    first = cells[0].spec
    assert first.seed == 0 and first.model.n_embd == 8 and first.train.lr == 1e-3
    assert first.train.steps == 10 and first.task == "facts"  # the base is kept
    assert run_count(axes, 2, "grid", None) == len(cells) == 8


def test_values_merge_into_the_raw_base_so_derived_defaults_follow_them() -> None:
    # batch_size derives from the task: a task axis must not inherit the base task's.
    cells = expand(CAPACITY, {"kind": "capacity_tradeoff"}, {"task": ["arithmetic", "facts"]}, [0])
    assert [c.spec.train.batch_size for c in cells] == [882, 576]


def test_random_search_is_reproducible_and_draws_within_ranges() -> None:
    axes = {"train.lr": AxisRange(min=1e-4, max=1e-2, scale="log"), "model.n_embd": [8, 16]}
    first = expand(CAPACITY, BASE, axes, [0, 1], "random", samples=5, sampler_seed=3)
    again = expand(CAPACITY, BASE, axes, [0, 1], "random", samples=5, sampler_seed=3)
    other = expand(CAPACITY, BASE, axes, [0, 1], "random", samples=5, sampler_seed=4)
    assert [c.coordinates for c in first] == [c.coordinates for c in again]
    assert [c.coordinates for c in first] != [c.coordinates for c in other]
    assert all(1e-4 <= c.spec.train.lr <= 1e-2 for c in first)
    assert len(first) == run_count(axes, 2, "random", 5) == 10


def test_an_integer_range_rounds_its_draws() -> None:
    axis = AxisRange(min=8, max=64, integer=True)
    cells = expand(CAPACITY, BASE, {"model.n_embd": axis}, [0], "random", samples=6)
    assert all(isinstance(c.coordinates["model.n_embd"], int) for c in cells)


def test_axis_paths_walk_nested_specs_and_union_members() -> None:
    assert axis_path_problem(CAPACITY, "model.n_embd") is None
    assert axis_path_problem(RECALL, "model.mixer.n_head") is None  # a union member's field
    assert "no field 'n_embdd'" in (axis_path_problem(CAPACITY, "model.n_embdd") or "")
    assert "the spec has no field 'modle'" in (axis_path_problem(CAPACITY, "modle.x") or "")
    assert "seeds" in (axis_path_problem(CAPACITY, "seed") or "")
    # A leaf field has no fields below it.
    assert "has no field" in (axis_path_problem(CAPACITY, "train.lr.x") or "")


def test_with_value_copies_and_creates_the_sub_spec() -> None:
    base = {"kind": "capacity_tradeoff"}
    assert with_value(base, "model.n_embd", 8) == {
        "kind": "capacity_tradeoff",
        "model": {"n_embd": 8},
    }
    assert base == {"kind": "capacity_tradeoff"}


@pytest.mark.parametrize(
    ("axes", "path", "fragment"),
    [
        ({"model.n_embd": [8, -1]}, ("axes", "model.n_embd", 1), "value -1"),
        ({"model.n_embd": []}, ("axes", "model.n_embd"), "at least one"),
        ({"train.lr": AxisRange(min=0.1, max=1.0)}, ("axes", "train.lr"), "random"),
    ],
)
def test_problems_name_the_axis_and_value(axes: dict, path: tuple, fragment: str) -> None:
    with pytest.raises(SweepInvalidError) as raised:
        expand(CAPACITY, BASE, axes, [0])
    problem = raised.value.problems[0]
    assert problem.path == path and fragment in problem.message


def test_a_range_must_be_ordered_and_positive_on_a_log_scale() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        AxisRange(min=2, max=1)
    with pytest.raises(ValueError, match="min > 0"):
        AxisRange(min=0, max=1, scale="log")


def test_variants_merge_several_fields_and_cross_with_other_axes() -> None:
    corpora = AxisVariants(
        variants={
            "one copy x4": {"n_facts": 4, "train": {"batch_size": 16}},
            "wide": {"model": {"n_embd": 32}},
        }
    )
    axes = {"corpus": corpora, "model.n_layer": [1, 2]}
    cells = expand(CAPACITY, BASE, axes, seeds=[0, 1, 2])
    assert run_count(axes, 3, "grid", None) == len(cells) == 12
    assert cells[0].coordinates == {"corpus": "one copy x4", "model.n_layer": 1, "seed": 0}
    first, last = cells[0].spec, cells[-1].spec
    assert (first.n_facts, first.train.batch_size, first.train.steps) == (4, 16, 10)
    assert (last.model.n_embd, last.model.n_layer, last.n_facts) == (32, 2, 50)
    drawn = expand(CAPACITY, BASE, {"corpus": corpora}, [0], "random", samples=6)
    assert {c.coordinates["corpus"] for c in drawn} <= {"one copy x4", "wide"}


def test_a_bad_variant_is_named() -> None:
    bad = AxisVariants(variants={"fine": {}, "broken": {"model": {"n_embd": 0}}})
    with pytest.raises(SweepInvalidError) as raised:
        expand(CAPACITY, BASE, {"corpus": bad}, [0])
    (problem,) = raised.value.problems
    assert problem.path == ("axes", "corpus", "broken") and "variant 'broken'" in problem.message


def test_with_overrides_merges_objects_and_copies() -> None:
    raw = {"model": {"n_embd": 8, "n_layer": 1}, "tags": [1]}
    merged = with_overrides(raw, {"model": {"n_embd": 16}, "tags": [2]})
    assert merged == {"model": {"n_embd": 16, "n_layer": 1}, "tags": [2]}
    assert raw == {"model": {"n_embd": 8, "n_layer": 1}, "tags": [1]}


@pytest.mark.parametrize(
    ("axes", "fragment"),
    [
        ({"v": {"x": {"model": {"n_embd": 28}}}, "model.n_embd": [14, 56]}, "model.n_embd"),
        ({"v": {"x": {"model": {"n_embd": 28}}}, "model": [{"n_layer": 1}]}, "axis 'model'"),
        ({"v": {"x": {"seed": 3}}}, "sets seed"),
        ({"v": {"x": {"task": "facts"}}, "w": {"y": {"task": "joint"}}}, "axis 'w'"),
    ],
)
def test_a_variant_may_not_set_what_another_axis_sets(axes: dict, fragment: str) -> None:
    read = {k: AxisVariants(variants=v) if k in ("v", "w") else v for k, v in axes.items()}
    with pytest.raises(SweepInvalidError) as raised:
        expand(CAPACITY, BASE, read, [0])
    assert any(fragment in p.message for p in raised.value.problems), raised.value.problems


def test_a_variant_that_switches_a_union_member_replaces_the_object() -> None:
    base = {"kind": "associative_recall", "model": {"mixer": {"type": "attention", "n_head": 2}}}
    s4d = AxisVariants(variants={"s4d": {"model": {"mixer": {"type": "s4d", "state_size": 8}}}})
    (cell,) = expand(RECALL, base, {"mixer": s4d}, [0])
    assert cell.spec.model.mixer.type == "s4d" and cell.spec.model.mixer.state_size == 8
