"""A sweep's table: cells, counts, summaries over seeds, and the t interval."""

from __future__ import annotations

import math

import pytest

from core.stats import summarize, t_quantile
from core.tables import Child, flat_table, numeric_leaves, sweep_table


@pytest.mark.parametrize(
    ("df", "published"),
    # Student's t, 97.5% points, as printed in every table (e.g. NIST/SEMATECH).
    [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045), (120, 1.980)],
)
def test_t_quantiles_match_the_published_table(df: int, published: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(published, abs=5e-4)


def test_a_summary_has_the_t_interval_of_the_mean() -> None:
    summary = summarize([1.0, 2.0, 3.0])
    half = 4.302652729749 * 1.0 / math.sqrt(3)
    assert (summary.n, summary.mean, summary.std) == (3, 2.0, 1.0)
    assert summary.ci95_low == pytest.approx(2.0 - half)
    assert summary.ci95_high == pytest.approx(2.0 + half)
    alone = summarize([5.0])
    assert (alone.mean, alone.std, alone.ci95_low) == (5.0, None, None)


def test_numeric_leaves_flatten_results_and_skip_the_rest() -> None:
    result = {"final": {"facts": 0.5, "score": 1}, "ok": True, "xs": [1, 2], "x": None}
    assert dict(numeric_leaves(result)) == {"final.facts": 0.5, "final.score": 1.0}
    assert dict(numeric_leaves({"v": math.nan})) == {}


def test_cells_summarize_succeeded_seeds_and_count_the_others() -> None:
    children = [
        Child({"w": 14, "seed": 0}, "succeeded", {"final": {"facts": 0.2}}),
        Child({"w": 14, "seed": 1}, "succeeded", {"final": {"facts": 0.4}}),
        Child({"w": 14, "seed": 2}, "failed", None),
        Child(
            {"w": 28, "seed": 0},
            "succeeded",
            {"final": {"facts": 0.9}},
            probes={"loss_mia": {"attack": {"auc": 0.7}}},
        ),
        Child({"w": 28, "seed": 1}, "cancelled", {"final": {"facts": 0.0}}),
    ]
    first, second = sweep_table(children)
    assert first.cell == {"w": 14} and second.cell == {"w": 28}
    assert first.counts["succeeded"] == 2 and first.counts["failed"] == 1
    assert first.values["final.facts"].mean == pytest.approx(0.3)
    assert first.values["final.facts"].n == 2
    assert second.values["final.facts"].n == 1  # the cancelled child is counted, not averaged
    assert second.values["probe.loss_mia.attack.auc"].mean == 0.7
    assert "probe.loss_mia.attack.auc" not in first.values


def test_the_flat_table_has_a_column_per_statistic_and_none_where_a_cell_has_no_value() -> None:
    children = [
        Child({"w": 14, "seed": 0}, "succeeded", {"a": 1.0}),
        Child({"w": 28, "seed": 0}, "succeeded", {"b": 2.0}),
    ]
    columns, rows = flat_table(sweep_table(children))
    assert columns[:2] == ["w", "n_queued"]
    assert "a.mean" in columns and "b.ci95_high" in columns
    first = dict(zip(columns, rows[0], strict=True))
    assert first["w"] == 14 and first["a.mean"] == 1.0 and first["b.mean"] is None
    assert first["n_succeeded"] == 1
