"""Claims held against a sweep's seeds: the verdict follows the 95% interval, paired by seed."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import core.claims
from core.claims import Claim, Greater, Side, Within, check_claim, selector_problems
from core.stats import t_quantile
from core.tables import Child


def runs(values: dict[int, list[float | None]], path: str = "acc") -> list[Child]:
    """Children of a one-axis sweep (`width`): each width's values by seed 0, 1, …; None
    is a failed run."""
    return [
        Child(
            {"width": width, "seed": seed},
            "failed" if value is None else "succeeded",
            None if value is None else {path: value, "chance": 0.25},
        )
        for width, found in values.items()
        for seed, value in enumerate(found)
    ]


def wider(**fields: Any) -> Greater:
    return Greater(
        test="greater",
        statement="wider is better",
        value="acc",
        cell={"width": 64},
        than=Side(cell={"width": 8}),
        **fields,
    )


def test_the_interval_is_over_the_differences_paired_by_seed() -> None:
    # Seed by seed the wide model is 0.10, 0.11, 0.12 better, though the seeds spread
    # far more than that: pairing is what makes the effect visible.
    children = runs({8: [0.30, 0.50, 0.70], 64: [0.40, 0.61, 0.82]})
    verdict = check_claim(wider(), children)
    half = t_quantile(0.975, 2) * 0.01 / math.sqrt(3)
    assert verdict.verdict == "shown" and verdict.n == 3
    assert verdict.mean == pytest.approx(0.11)
    assert (verdict.ci95_low, verdict.ci95_high) == pytest.approx((0.11 - half, 0.11 + half))
    assert "above 0" in verdict.reason


def test_an_effect_inside_the_noise_is_not_shown_and_an_opposite_one_is_reversed() -> None:
    noisy = runs({8: [0.5, 0.5, 0.5], 64: [0.7, 0.4, 0.55]})
    assert check_claim(wider(), noisy).verdict == "not shown"
    worse = runs({8: [0.9, 0.8, 0.85], 64: [0.5, 0.45, 0.52]})
    assert check_claim(wider(), worse).verdict == "reversed"


def test_a_margin_raises_the_bar() -> None:
    children = runs({8: [0.50, 0.50, 0.50], 64: [0.55, 0.56, 0.55]})
    assert check_claim(wider(), children).verdict == "shown"
    assert check_claim(wider(margin=0.1), children).verdict == "not shown"


def test_one_seed_or_none_gives_no_verdict() -> None:
    one = runs({8: [0.1, None], 64: [0.9, 0.95]})  # seed 1 failed at width 8: one pair left
    assert check_claim(wider(), one).verdict == "too few seeds"
    assert check_claim(wider().model_copy(update={"value": "missing"}), one).verdict == "no data"


def test_the_other_side_can_be_a_number_or_another_value_of_the_same_cell() -> None:
    children = runs({8: [0.30, 0.31, 0.29], 64: [0.9, 0.95, 0.92]})
    above_chance = Greater(
        test="greater", statement="s", value="acc", cell={"width": 8}, than=Side(value="chance")
    )
    assert check_claim(above_chance, children).verdict == "shown"
    above_half = Greater(test="greater", statement="s", value="acc", cell={"width": 8}, than=0.5)
    assert check_claim(above_half, children).verdict == "reversed"


def test_within_needs_the_whole_interval_inside_the_band() -> None:
    children = runs({8: [0.24, 0.26, 0.25], 64: [0.1, 0.4, 0.25]})
    at_chance = Within(
        test="within", statement="s", value="acc", cell={"width": 8}, of=0.25, tolerance=0.05
    )
    assert check_claim(at_chance, children).verdict == "shown"
    # Same mean, but three seeds this far apart cannot place it within 0.05 of chance.
    spread = Within(
        test="within", statement="s", value="acc", cell={"width": 64}, of=0.25, tolerance=0.05
    )
    assert check_claim(spread, children).verdict == "not shown"


def test_claims_parse_by_their_test_and_refuse_unknown_fields() -> None:
    adapter: TypeAdapter[list[Greater | Within]] = TypeAdapter(list[Claim])
    parsed = adapter.validate_python(
        [
            {"test": "greater", "statement": "s", "value": "v", "than": 0.5},
            {"test": "within", "statement": "s", "value": "v", "of": 0.25, "tolerance": 0.1},
        ]
    )
    assert [type(claim) for claim in parsed] == [Greater, Within]
    with pytest.raises(ValidationError):
        adapter.validate_python([{"test": "within", "statement": "s", "value": "v", "of": 0}])
    with pytest.raises(ValidationError):
        adapter.validate_python([{"test": "greater", "statement": "s", "value": "v", "thn": 1}])


def test_each_selector_must_pin_exactly_one_cell() -> None:
    cells = [{"width": w, "lr": lr} for w in (8, 64) for lr in (0.1, 0.01)]
    claims = [
        Greater(test="greater", statement="s", value="v", cell={"width": 64, "lr": 0.1}, than=0.0),
        Greater(test="greater", statement="s", value="v", cell={"width": 64}, than=0.0),
        Greater(
            test="greater",
            statement="s",
            value="v",
            cell={"depth": 2, "width": 8, "lr": 0.1},
            than=0.0,
        ),
        Greater(
            test="greater",
            statement="s",
            value="v",
            cell={"width": 8, "lr": 0.1},
            than=Side(cell={"width": 9, "lr": 0.1}),
        ),
    ]
    problems = dict(selector_problems(claims, cells))
    assert set(problems) == {"claims[1].cell", "claims[2].cell", "claims[3].than.cell"}
    assert "2 cells match" in problems["claims[1].cell"] and "lr" in problems["claims[1].cell"]
    assert "depth is not an axis" in problems["claims[2].cell"]
    assert "no cell" in problems["claims[3].than.cell"]


def test_the_module_s_worked_example_holds() -> None:
    assert doctest.testmod(core.claims).failed == 0


def test_seeds_with_a_value_on_one_side_only_are_left_out_and_said() -> None:
    # Seed 2 at width 8 failed: two pairs remain, and the reason says one seed was dropped.
    children = runs({8: [0.30, 0.31, None], 64: [0.9, 0.95, 0.92]})
    verdict = check_claim(wider(), children)
    assert verdict.n == 2 and "1 seed(s) with a value on one side only" in verdict.reason
    disjoint = [c for c in runs({8: [0.3, None], 64: [None, 0.9]})]
    assert check_claim(wider(), disjoint).verdict == "too few seeds"


@pytest.mark.parametrize(
    "than",
    [{}, {"cell": {"width": 64}}, {"cell": {"width": 64}, "value": "acc"}, {"value": "acc"}],
)
def test_a_claim_must_compare_two_different_things(than: dict[str, Any]) -> None:
    raw = {"test": "greater", "statement": "s", "value": "acc", "cell": {"width": 64}}
    with pytest.raises(ValidationError):
        TypeAdapter(Claim).validate_python({**raw, "than": than})


@pytest.mark.parametrize("field", ["of", "tolerance"])
def test_no_claim_holds_nan_or_infinity(field: str) -> None:
    raw = {"test": "within", "statement": "s", "value": "v", "of": 0.25, "tolerance": 0.1}
    with pytest.raises(ValidationError):
        TypeAdapter(Claim).validate_python({**raw, field: float("inf")})


def test_an_empty_other_cell_is_a_selector_too() -> None:
    cells = [{"width": 8}, {"width": 64}]
    claim = Greater(
        test="greater", statement="s", value="v", cell={"width": 64}, than=Side(cell={})
    )
    ((where, message),) = selector_problems([claim], cells)
    assert where == "claims[0].than.cell" and "2 cells match" in message
