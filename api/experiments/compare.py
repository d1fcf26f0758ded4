"""Several runs' metric series on one step axis, for curves overlaid."""

from __future__ import annotations

from collections.abc import Mapping

from store.repository import Series


def align_by_step(
    by_run: Mapping[str, Mapping[str, Series]],
) -> tuple[list[int], dict[str, dict[str, list[float | None]]]]:
    """Every step any series has, ascending, and each run's series by key as values at
    those steps (None where it logged nothing there).

    >>> one = Series([1, 3], [0.5, 0.25], 2)
    >>> align_by_step({"a": {"loss": one}, "b": {"loss": Series([2], [0.4], 1)}})
    ([1, 2, 3], {'a': {'loss': [0.5, None, 0.25]}, 'b': {'loss': [None, 0.4, None]}})
    """
    steps = sorted(
        {step for series in by_run.values() for s in series.values() for step in s.steps}
    )
    position = {step: index for index, step in enumerate(steps)}
    aligned: dict[str, dict[str, list[float | None]]] = {}
    for run_id, series in by_run.items():
        aligned[run_id] = {}
        for key, one in series.items():
            values: list[float | None] = [None] * len(steps)
            for step, value in zip(one.steps, one.values, strict=True):
                values[position[step]] = value
            aligned[run_id][key] = values
    return steps, aligned
