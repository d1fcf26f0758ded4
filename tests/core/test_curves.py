"""Curves, the result shape of the theory kinds: a mean and interval per grid point over
replicates, theory beside it, and how a sweep table flattens them."""

from __future__ import annotations

import math

import pytest
import torch

from core.curves import Curve, curve_from_samples, replicate_generator, seeded_steps
from core.reporter import InMemoryReporter, RunCancelled
from core.stats import summarize
from core.tables import Child, curve_leaves, sweep_table


def test_a_curve_holds_the_mean_and_t_interval_at_each_point() -> None:
    samples = [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]  # 3 replicates × 2 points
    curve = curve_from_samples("E_ridge", "gamma", [0.1, 1.0], samples, theory=[2.1, 19.0])
    second = summarize([10.0, 20.0, 30.0])
    assert curve.mean == (2.0, 20.0) and curve.n_seeds == 3
    assert curve.ci95[1] == (second.ci95_low, second.ci95_high)
    assert curve.as_json()["theory"] == [2.1, 19.0]
    assert curve.as_json()["ci95"][0] == list(curve.ci95[0])  # type: ignore[arg-type]


def test_one_replicate_gives_no_interval_and_a_ragged_sample_is_refused() -> None:
    alone = curve_from_samples("m", "alpha", [0.1, 0.2], [[0.9, 0.5]])
    assert alone.ci95 == (None, None) and alone.as_json()["ci95"] == [None, None]
    with pytest.raises(ValueError, match="one value per grid point"):
        curve_from_samples("m", "alpha", [0.1, 0.2], [[0.9]])


@pytest.mark.parametrize("label", ["E.ridge", "gamma=1", "", "1st"])
def test_a_curve_label_that_would_break_a_table_path_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="letters, digits and _"):
        Curve(label, "x", (1.0,), (1.0,), (None,), None, 1)
    with pytest.raises(ValueError, match="letters, digits and _"):
        Curve("y", label, (1.0,), (1.0,), (None,), None, 1)


def test_a_theory_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Curve("y", "x", (1.0, 2.0), (1.0, 1.0), (None, None), (1.0,), 1)


def test_replicates_draw_distinct_streams_that_repeat_for_the_same_seed() -> None:
    draws = {
        (seed, r): torch.randn(4, generator=replicate_generator(seed, r)).tolist()
        for seed in (0, 1)
        for r in (0, 1)
    }
    assert len({tuple(v) for v in draws.values()}) == 4
    again = torch.randn(4, generator=replicate_generator(1, 0)).tolist()
    assert again == draws[(1, 0)]
    # A named stream of a replicate is its own generator, repeatable and distinct.
    noise = torch.randn(4, generator=replicate_generator(1, 0, "noise")).tolist()
    assert noise == torch.randn(4, generator=replicate_generator(1, 0, "noise")).tolist()
    assert noise not in (
        draws[(1, 0)],
        torch.randn(4, generator=replicate_generator(1, 0, "x")).tolist(),
    )


def test_seeded_steps_reports_progress_to_one_and_stops_when_asked() -> None:
    reporter = InMemoryReporter()
    assert [i for i, _ in seeded_steps([5, 6, 7], reporter, str)] == [0, 1, 2]
    assert [f for f, _ in reporter.progress_log] == pytest.approx([1 / 3, 2 / 3, 1.0])
    stopping = InMemoryReporter(stop_after_checks=1)
    with pytest.raises(RunCancelled):
        list(seeded_steps([5, 6, 7], stopping, str))


def test_curve_points_become_table_paths_and_average_over_a_cells_seeds() -> None:
    def result(level: float) -> dict[str, object]:
        curve = curve_from_samples("E", "gamma", [1e-5, 0.1], [[level, 2 * level]] * 2)
        with_theory = Curve("T", "p_over_n", (0.5,), (level,), ((0.0, 1.0),), (0.25,), 2)
        return {"curves": [curve.as_json(), with_theory.as_json()], "headline": {"gap": level}}

    leaves = dict(curve_leaves(result(1.0)["curves"]))
    assert leaves["curve.E.gamma=1e-05.mean"] == 1.0
    assert leaves["curve.E.gamma=0.1.mean"] == 2.0
    assert "curve.E.gamma=0.1.theory" not in leaves  # no theory, no column
    assert leaves["curve.T.p_over_n=0.5.theory"] == 0.25
    assert leaves["curve.T.p_over_n=0.5.ci95_high"] == 1.0
    (row,) = sweep_table(
        [Child({"w": 1, "seed": s}, "succeeded", result(level)) for s, level in enumerate([1, 3])]
    )
    assert row.values["curve.E.gamma=0.1.mean"].mean == 4.0
    assert row.values["curve.E.gamma=0.1.mean"].n == 2
    assert row.values["headline.gap"].mean == 2.0


def test_curve_leaves_skip_what_is_not_a_finite_curve_point() -> None:
    broken = [{"name": "E", "x_name": "g", "x": [1.0], "mean": [math.nan], "ci95": [None]}]
    assert dict(curve_leaves(broken)) == {}
    assert dict(curve_leaves(None)) == {} and dict(curve_leaves([3])) == {}


def test_a_theory_given_on_part_of_the_grid_is_null_elsewhere_and_left_out_of_the_table() -> None:
    curve = curve_from_samples("m", "alpha", [0.1, 0.2], [[1.0, 0.4]], theory=[0.998, None])
    assert curve.as_json()["theory"] == [0.998, None]
    leaves = dict(curve_leaves([curve.as_json()]))
    assert leaves["curve.m.alpha=0.1.theory"] == 0.998
    assert "curve.m.alpha=0.2.theory" not in leaves and leaves["curve.m.alpha=0.2.mean"] == 0.4
